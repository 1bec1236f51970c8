"""TensorFlow/DeepLabCut (and DeepLabCut 3 PyTorch) to ONNX exporters (installed as ``rtpose.exporters``).

Public API (importing this package does not import TensorFlow or torch; the functions do)::

    from rtpose.exporters import export_model, export_keras_model, ensure_onnx
    report = export_model("dlc-models/exported/DLC_x", "mouse.onnx")      # -> ExportReport
    report = export_keras_model(keras_model, "net.onnx", bodyparts=[...], stride=8, locref_stdev=7.2801)
    path = ensure_onnx("dlc-models/exported/DLC_x")                         # cached export, or an .onnx as is
    report = quantize_int8("mouse.onnx", "mouse-int8.onnx", calibrate="session.mp4", labels="labeled-data/x")

See docs/export.md.
"""

from __future__ import annotations

__all__ = ["export_model", "export_keras_model", "ensure_onnx", "quantize_int8", "ExportReport", "ParityFigures",
           "Tolerance", "FP32_TOLERANCE", "FP16_TOLERANCE"]

_LAZY = {
    "export_model": "api",
    "export_keras_model": "api",
    "ensure_onnx": "cache",
    "quantize_int8": "int8",
    "ExportReport": "report",
    "ParityFigures": "report",
    "Tolerance": "report",
    "FP32_TOLERANCE": "report",
    "FP16_TOLERANCE": "report",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
