"""Recording poses to DeepLabCut-compatible files (``.h5`` + ``.csv``) and sidecars."""

from .dlc_table import dlc_columns, pose_frame, read_dlc_table
from .recorder import RecorderSink, RecordingPaths

__all__ = ["RecorderSink", "RecordingPaths", "dlc_columns", "pose_frame", "read_dlc_table"]
