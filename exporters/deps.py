"""Lazy imports of the export-only dependencies (TensorFlow, tf2onnx, onnx, onnxruntime).

Nothing here imports them at module import time: ``rtpose.exporters`` and its
cache must import on a runtime-only install. Each accessor raises
:class:`~rtpose.errors.MissingDependencyError` with the pip command to run.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os

from rtpose.errors import MissingDependencyError

EXPORT_HINT = "install with `pip install 'rtpose[export]'`"
RUNTIME_HINT = "install with `pip install 'rtpose[cpu]'` (or 'rtpose[gpu]')"
EXPORT_MODULES = ("tensorflow", "tf2onnx", "onnx")


def _import(name: str, hint: str, why: str):
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise MissingDependencyError(f"{why} needs the Python package {name!r}, which is not installed; {hint}") from exc


def tensorflow():
    """Import TensorFlow quietly (its C++ log lines say nothing an exporter user needs)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    tf = _import("tensorflow", EXPORT_HINT, "Exporting a TensorFlow/DeepLabCut model")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    return tf


def tf2onnx():
    tensorflow()  # tf2onnx imports TensorFlow; make the quiet import happen first
    mod = _import("tf2onnx", EXPORT_HINT, "Exporting a TensorFlow/DeepLabCut model")
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    return mod


def onnx():
    return _import("onnx", EXPORT_HINT, "Writing an ONNX model")


def onnxruntime():
    return _import("onnxruntime", RUNTIME_HINT, "Checking an exported model")


def require_export() -> None:
    """Fail early, before any work, when the export extra is not installed."""
    missing = [name for name in EXPORT_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingDependencyError(
            f"Exporting a TensorFlow/DeepLabCut model to ONNX needs {', '.join(missing)}, not installed; {EXPORT_HINT}"
        )
    onnxruntime()


def versions() -> dict[str, str]:
    """Versions of the export stack (imports it)."""
    tf = tensorflow()
    return {
        "tensorflow_version": tf.__version__,
        "tf2onnx_version": tf2onnx().__version__,
        "onnx_version": onnx().__version__,
        "onnxruntime_version": onnxruntime().__version__,
    }
