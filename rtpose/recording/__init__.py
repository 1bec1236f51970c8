"""Recording poses to DeepLabCut-compatible files (``.h5`` + ``.csv``) and sidecars.

The names below are imported on first use: the pipeline imports ``.video`` from here, and must not
need pandas/PyTables (what the DeepLabCut tables are written with) to run without recording.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "dlc_columns": "dlc_table", "pose_frame": "dlc_table", "read_dlc_table": "dlc_table",
    "RecorderSink": "recorder", "RecordingPaths": "recorder",
}
__all__ = ["RecorderSink", "RecordingPaths", "dlc_columns", "pose_frame", "read_dlc_table"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
