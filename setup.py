"""Package list for setuptools.

`exporters/` and `drivers/` sit at the top of the repository (so a newcomer finds
them by folder name) but are installed inside the package as `rtpose.exporters`
and `rtpose.drivers`, never as top-level import names. Everything else is in
pyproject.toml.
"""

from setuptools import find_packages, setup


def _mapped(folder: str, prefix: str) -> list[str]:
    return [prefix] + [f"{prefix}.{name}" for name in find_packages(folder)]


setup(
    packages=find_packages(include=["rtpose", "rtpose.*"])
    + _mapped("exporters", "rtpose.exporters")
    + _mapped("drivers", "rtpose.drivers"),
)
