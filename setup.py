"""Package list for setuptools.

`exporters/` and `drivers/` sit at the top of the repository (so a newcomer finds
them by folder name) but are installed inside the package as `rtpose.exporters`
and `rtpose.drivers`, never as top-level import names. Everything else is in
pyproject.toml.
"""

from setuptools import find_packages, setup


def _mapped(folder: str, prefix: str) -> list[str]:
    return [prefix] + [f"{prefix}.{name}" for name in find_packages(folder)]


# Folders shipped as data only (no __init__.py): the Arduino/Teensy firmware.
# Listed explicitly so setuptools neither warns that they "would be ignored"
# nor picks up stray folders (__pycache__) the way namespace discovery would.
DATA_PACKAGES = ["rtpose.drivers.firmware", "rtpose.drivers.firmware.rtpose_ttl"]

setup(
    packages=find_packages(include=["rtpose", "rtpose.*"])
    + _mapped("exporters", "rtpose.exporters")
    + _mapped("drivers", "rtpose.drivers")
    + DATA_PACKAGES,
)
