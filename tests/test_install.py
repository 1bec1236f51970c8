"""The install scheme: `rtpose[cpu]` and `rtpose[gpu]` never pull both ONNX Runtime packages
(they share one folder and silently break each other), and this environment has exactly one."""

import importlib.metadata as md
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ORT_PACKAGES = {"onnxruntime", "onnxruntime-gpu"}


def _names(requirements):
    import re

    return {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower() for r in requirements}


def test_pyproject_keeps_onnxruntime_out_of_the_base_dependencies():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert not _names(project["dependencies"]) & ORT_PACKAGES
    extras = project["optional-dependencies"]
    assert _names(extras["cpu"]) & ORT_PACKAGES == {"onnxruntime"}
    assert _names(extras["gpu"]) & ORT_PACKAGES == {"onnxruntime-gpu"}
    for name, reqs in extras.items():
        if name not in ("cpu", "gpu"):
            assert not _names(reqs) & ORT_PACKAGES, f"extra {name} must not choose an ONNX Runtime"


def test_this_environment_has_exactly_one_working_onnxruntime():
    installed = set()
    for name in ORT_PACKAGES:
        try:
            md.version(name)
            installed.add(name)
        except md.PackageNotFoundError:
            pass
    assert len(installed) == 1, installed
    from rtpose.model import import_onnxruntime

    assert hasattr(import_onnxruntime(), "InferenceSession")


@pytest.mark.slow
@pytest.mark.parametrize("extras", ["cpu", "gpu,export"])
def test_documented_install_commands_resolve_to_one_onnxruntime(extras, tmp_path):
    """Ask pip (dry run, fresh resolution from the package index) what `pip install 'rtpose[...]'` installs."""
    report = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                           "--report", str(report), f"{REPO}[{extras}]"], capture_output=True, text=True)
    if proc.returncode != 0 and ("Could not" in proc.stderr and "connection" in proc.stderr.lower()):
        pytest.skip(f"package index not reachable: {proc.stderr.strip().splitlines()[-1]}")
    assert proc.returncode == 0, proc.stderr
    names = {item["metadata"]["name"].lower() for item in json.loads(report.read_text())["install"]}
    expected = "onnxruntime" if extras == "cpu" else "onnxruntime-gpu"
    assert names & ORT_PACKAGES == {expected}


BUILD_WARNINGS = ("BuildBackendWarning", "SetuptoolsDeprecationWarning", "would be ignored", "is deprecated")


@pytest.mark.slow
def test_building_the_package_prints_no_warnings(tmp_path):
    """`make demo` starts with an install: setuptools must have nothing to warn about (licence
    as an SPDX string, the firmware folders declared as data-only packages)."""
    src = tmp_path / "src"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in files.decode().split("\0"):
        if name and (REPO / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            (src / name).write_bytes((REPO / name).read_bytes())
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(tmp_path / "dist"),
                           str(src)], capture_output=True, text=True)
    if proc.returncode != 0 and ("Could not" in proc.stderr and "connection" in proc.stderr.lower()):
        pytest.skip(f"package index not reachable for the build requirements: {proc.stderr.strip().splitlines()[-1]}")
    assert proc.returncode == 0, proc.stderr
    output = proc.stdout + proc.stderr
    assert not [w for w in BUILD_WARNINGS if w in output], output
    import zipfile

    (wheel,) = (tmp_path / "dist").glob("rtpose-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "rtpose/drivers/firmware/rtpose_ttl/rtpose_ttl.ino" in names
    assert "rtpose/drivers/firmware/rtpose_ttl/rtpose_protocol.h" in names
    assert "rtpose/drivers/firmware/README.md" in names
