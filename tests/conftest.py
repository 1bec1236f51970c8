"""Shared fixtures: hand-built ONNX models (no training, no TensorFlow), the real openfield
labels (in the repository: tests/data/openfield/), and ZeroMQ resources that are always released."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # test helpers (analytic_model, dlc_graphs)

REPO = Path(__file__).resolve().parents[1]
#: Real DeepLabCut labels and 5 held-out frames (see README.md there for what and why).
OPENFIELD = Path(__file__).resolve().parent / "data" / "openfield"
OPENFIELD_FILES = ("labeled/CollectedData_Pranav.csv", "labeled/img0007.png", "labeled/img0013.png",
                   "labeled/img0015.png", "labeled/img0019.png", "labeled/img0025.png")


@pytest.fixture(scope="session")
def analytic_model(tmp_path_factory) -> Path:
    """The hand-built head/body/tail model that really finds the synthetic mouse."""
    from analytic_model import build_analytic_model

    return build_analytic_model(tmp_path_factory.mktemp("models") / "analytic.onnx")


@pytest.fixture(scope="session")
def openfield_dir() -> Path:
    """The real openfield labels shipped with the tests; a missing file is a broken checkout: fail, naming it."""
    missing = [name for name in OPENFIELD_FILES if not (OPENFIELD / name).is_file()]
    if missing:
        pytest.fail(f"test data missing from the repository: {', '.join(str(OPENFIELD / m) for m in missing)} "
                    "(git checkout tests/data)")
    return OPENFIELD


@pytest.fixture
def zmq_ctx():
    """A private ZeroMQ context. Afterwards every socket made from it is closed and the context
    terminated (its inproc:// addresses are free again at once): nothing is left to the garbage collector."""
    import zmq

    ctx = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


@pytest.fixture
def ipc_dir():
    """A short temporary folder for ipc:// socket files (their paths are limited to ~100 bytes)."""
    import shutil
    import tempfile

    d = tempfile.mkdtemp(prefix="rtz", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)
