"""Lazy imports of the export-only dependencies (TensorFlow, tf2onnx, onnx, onnxruntime; for
DeepLabCut 3 models torch and DeepLabCut 3's model code).

Nothing here imports them at module import time: ``rtpose.exporters`` and its
cache must import on a runtime-only install. Each accessor raises
:class:`~rtpose.errors.MissingDependencyError` with the pip command to run.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys

from rtpose.errors import MissingDependencyError

EXPORT_HINT = "install with `pip install 'rtpose[export]'`"
RUNTIME_HINT = "install with `pip install 'rtpose[cpu]'` (or 'rtpose[gpu]')"
EXPORT_MODULES = ("tensorflow", "tf2onnx", "onnx")
TORCH_HINT = "install with `pip install 'rtpose[export-torch]'`"
#: what exporting a DeepLabCut 3 ``.pt`` needs (DeepLabCut 3 defines the architectures)
TORCH_MODULES = ("torch", "torchvision", "deeplabcut", "onnx")
_TORCH_WHY = "Exporting a DeepLabCut 3 (PyTorch) model"


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


def block_triton() -> None:
    """Keep torch from importing triton: exporting traces on the CPU and never needs it, and triton's
    bundled LLVM crashes the process (segmentation fault in ``import triton``) when TensorFlow is
    already loaded, as it is in a process that also exports TF models (the test suite). Must run
    before the first ``import torch``; torch then treats triton as absent."""
    sys.modules.setdefault("triton", None)


def torch():
    block_triton()
    return _import("torch", TORCH_HINT, _TORCH_WHY)


def dlc3_pose_model():
    """DeepLabCut 3's ``PoseModel`` (the code that defines its architectures)."""
    block_triton()
    _import("deeplabcut", TORCH_HINT, _TORCH_WHY)
    return _import("deeplabcut.pose_estimation_pytorch.models.model", TORCH_HINT, _TORCH_WHY).PoseModel


def require_export(kind: str = "dlc") -> None:
    """Fail early, before any work, when the export extra for this source kind is not installed.

    ``kind`` is :attr:`.sources.Source.kind`: ``dlc3`` (a DeepLabCut 3 ``.pt``) needs the
    ``export-torch`` extra, every other kind the ``export`` extra.
    """
    modules, hint, what = ((TORCH_MODULES, TORCH_HINT, "a DeepLabCut 3 (PyTorch) model") if kind == "dlc3" else
                           (EXPORT_MODULES, EXPORT_HINT, "a TensorFlow/DeepLabCut model"))
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingDependencyError(f"Exporting {what} to ONNX needs {', '.join(missing)}, not installed; {hint}")
    onnxruntime()


def versions(kind: str = "dlc") -> dict[str, str]:
    """Versions of the export stack used for this source kind (imports it)."""
    if kind == "dlc3":
        block_triton()
        import deeplabcut

        return {
            "torch_version": torch().__version__,
            "deeplabcut_version": getattr(deeplabcut, "__version__", "?"),
            "onnx_version": onnx().__version__,
            "onnxruntime_version": onnxruntime().__version__,
        }
    tf = tensorflow()
    return {
        "tensorflow_version": tf.__version__,
        "tf2onnx_version": tf2onnx().__version__,
        "onnx_version": onnx().__version__,
        "onnxruntime_version": onnxruntime().__version__,
    }
