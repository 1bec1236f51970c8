"""Shared fixtures: hand-built ONNX models (no training, no TensorFlow), the real openfield
labels (in the repository: tests/data/openfield/), and ZeroMQ resources that are always released."""

from __future__ import annotations

import gc
import os
import sys
import threading
import warnings
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # test helpers (analytic_model, dlc_graphs)

# TensorFlow (the TF exporter tests) and torch (the DeepLabCut 3 exporter tests) share this process;
# torch must then never import triton, whose LLVM segfaults beside TensorFlow. The exporter does the
# same before it imports torch (rtpose.exporters.deps.block_triton); here it also covers test modules
# that import torch or deeplabcut themselves, at collection.
from rtpose.exporters.deps import block_triton  # noqa: E402

block_triton()

REPO = Path(__file__).resolve().parents[1]
#: Real DeepLabCut labels and 5 held-out frames (see README.md there for what and why).
OPENFIELD = Path(__file__).resolve().parent / "data" / "openfield"
OPENFIELD_FILES = ("labeled/CollectedData_Pranav.csv", "labeled/img0007.png", "labeled/img0013.png",
                   "labeled/img0015.png", "labeled/img0019.png", "labeled/img0025.png")


#: Why a DeepLabCut 3 exporter test is skipped: exactly what is missing and how to install it.
DLC3_MISSING = ("torch/DeepLabCut 3 not installed: install the export-torch extra (pip install 'rtpose[export-torch]') "
                "to run the DeepLabCut 3 exporter tests")


@pytest.fixture(scope="session")
def torch_stack():
    """torch, once DeepLabCut 3's model code, onnx and onnxruntime are known to import (else the test is skipped,
    naming what is missing)."""
    torch = pytest.importorskip("torch", reason=DLC3_MISSING)
    pytest.importorskip("deeplabcut.pose_estimation_pytorch.models", reason=DLC3_MISSING)
    pytest.importorskip("onnx", reason=DLC3_MISSING)
    pytest.importorskip("onnxruntime", reason="onnxruntime not installed: pip install 'rtpose[cpu]'")
    return torch


@pytest.fixture(scope="session")
def dlc3_td_export(torch_stack, tmp_path_factory):
    """(.onnx path, ExportReport) of the DeepLabCut 3 top-down fixture (tests/data/dlc3_td), exported once for
    every test that needs it (the export and its checks take ~25 s)."""
    import numpy as np

    import dlc3_td_models as T
    from dlc3_ma_models import export_checked

    reference = np.load(T.DATA / f"{T.NET}.reference.npz")
    _, onnx_path, report = export_checked(T, tmp_path_factory.mktemp("dlc3_td"), "twomice_td.onnx",
                                          str(reference["weights_sha256"]))
    return onnx_path, report


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
def popen():
    """``popen(args, **kwargs)`` starts a subprocess (``subprocess.Popen``) that is always ended after the
    test: killed if still running, its pipes read and closed, and waited for."""
    import subprocess

    started: list[subprocess.Popen] = []

    def start(args, **kwargs) -> subprocess.Popen:
        proc = subprocess.Popen(args, **kwargs)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


@pytest.fixture
def ipc_dir():
    """A short temporary folder for ipc:// socket files (their paths are limited to ~100 bytes)."""
    import shutil
    import tempfile

    d = tempfile.mkdtemp(prefix="rtz", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _child_processes() -> set[int]:
    """Process ids of this process's children, running or not yet reaped (Linux /proc)."""
    kids: set[int] = set()
    for task in os.listdir(f"/proc/{os.getpid()}/task"):
        try:
            with open(f"/proc/{os.getpid()}/task/{task}/children") as fh:
                kids.update(int(pid) for pid in fh.read().split())
        except OSError:  # the thread ended meanwhile
            pass
    return kids


@pytest.fixture(autouse=True)
def _every_test_closes_what_it_opens():
    """No thread or child process a test started may outlive it, and nothing it opened may be left
    for the garbage collector to close (ZeroMQ sockets and contexts, files: they warn when it does)."""
    threads = set(threading.enumerate())
    children = _child_processes()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        yield
        gc.collect()  # the finalisers of whatever the test dropped without closing run now, here
        # What survives that collection is alive (modules, caches, wider-scoped fixtures): move it out of the
        # collector's sight, so the next test's collection scans only what that test creates. With TensorFlow
        # and torch imported, a full collection takes ~0.3-0.6 s, which over ~700 tests was minutes of the suite.
        gc.freeze()
    leaks = [w for w in caught if issubclass(w.category, ResourceWarning)]
    for w in caught:  # hand every other warning on to pytest's report
        if w not in leaks:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
    problems = [f"thread {t.name!r} still running" for t in threading.enumerate() if t not in threads and t.is_alive()]
    problems += [f"child process {pid} still running or never waited for" for pid in _child_processes() - children]
    problems += [f"left to the garbage collector: {w.message}" for w in leaks]
    if problems:
        pytest.fail("the test left resources behind: " + "; ".join(problems), pytrace=False)
