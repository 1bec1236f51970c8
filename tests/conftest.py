"""Shared fixtures: hand-built ONNX models (no training, no TensorFlow) and real-data paths."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # test helpers (analytic_model, dlc_graphs)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "openfield"


@pytest.fixture(scope="session")
def analytic_model(tmp_path_factory) -> Path:
    """The hand-built head/body/tail model that really finds the synthetic mouse."""
    from analytic_model import build_analytic_model

    return build_analytic_model(tmp_path_factory.mktemp("models") / "analytic.onnx")


@pytest.fixture(scope="session")
def openfield_dir() -> Path:
    """The real DeepLabCut openfield data (video + 100 labelled frames), if present."""
    path = Path(os.environ.get("RTPOSE_OPENFIELD", SHARED))
    if not (path / "m3v1mp4.mp4").exists():
        pytest.skip(f"real openfield data not found at {path} (set RTPOSE_OPENFIELD)")
    return path


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
