"""Reading a recording back: the poses and their sidecars, as the offline tools need them.

A recording (see :mod:`rtpose.recording.recorder`) is ``<stem>.h5`` (or the
``.csv`` twin) plus ``<stem>_predicted.csv``, ``<stem>_timing.csv``,
``<stem>_events.csv`` and maybe ``<stem>_settings.json``. ``rtpose analyze``
writes the same files; a DeepLabCut ``.h5``/``.csv`` alone (no sidecars) reads
too, with frame numbers from its index and no timestamps.

Floats are read back bit for bit: the ``.h5`` stores float64, and CSVs are
parsed with ``float_precision="round_trip"`` (pandas' default parser can be
off in the last bit), so a replay sees exactly the numbers the live run saw.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import RecordingError
from ..multianimal.layout import AnimalLayout
from .dlc_table import H5_KEY, dlc_columns, read_csv_table, table_layout
from .recorder import TRACK_COLUMN_PREFIX, RecordingPaths


@dataclass
class Recording:
    """One stream's recorded poses, row ``i`` = one processed frame.

    ``frame`` (N,) frame indices; ``stream`` (N,) stream numbers (0 without a timing sidecar);
    ``pose`` (N, K, 3) measured x, y, likelihood (multi-animal: K = A*P + U flat rows, ``bodyparts`` their
    flat names ``mouse1.snout``, ``layout`` the animals; see :mod:`rtpose.multianimal.layout`); ``predicted`` the same for the Kalman prediction
    (None without ``_predicted.csv``); ``t_frame_ns`` (N,) the frames' times as the Kalman filter and
    the rules saw them (None without ``_timing.csv``); ``timing`` / ``events`` the sidecar tables
    (None when absent); ``settings`` the run's settings (None when absent).
    """

    paths: RecordingPaths
    scorer: str
    bodyparts: tuple[str, ...]
    frame: np.ndarray
    stream: np.ndarray
    pose: np.ndarray
    predicted: np.ndarray | None
    t_frame_ns: np.ndarray | None
    timing: pd.DataFrame | None
    events: pd.DataFrame | None
    settings: dict | None
    layout: AnimalLayout | None = None

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def track_id(self) -> np.ndarray | None:
        """Multi-animal recordings: (N, A) track id per slot (the timing table's ``track_<individual>``
        columns; -1: empty slot); None for one animal or without a timing table."""
        if self.layout is None or self.timing is None:
            return None
        cols = [TRACK_COLUMN_PREFIX + ind for ind in self.layout.individuals]
        if not set(cols) <= set(self.timing.columns):
            return None
        return self.timing[cols].to_numpy(np.int64)

    def times_s(self, fps: float | None = None) -> np.ndarray:
        """Seconds since the first row: from ``t_frame_ns`` when recorded, else ``frame / fps``
        (``fps`` default 30 when unknown)."""
        if self.t_frame_ns is not None and len(self.t_frame_ns):
            return (self.t_frame_ns - self.t_frame_ns[0]) * 1e-9
        return (self.frame - (self.frame[0] if len(self.frame) else 0)) / float(fps or 30.0)


def read_pose_table(path: str | Path) -> pd.DataFrame:
    """A DeepLabCut pose file (``.h5`` key ``df_with_missing``, or its ``.csv``), floats exact."""
    path = Path(path)
    try:
        if path.suffix == ".csv":
            return read_csv_table(path, exact=True)
        return pd.read_hdf(path, key=H5_KEY)
    except FileNotFoundError:
        raise RecordingError(f"{path} does not exist; give the .h5 (or .csv) a recording or analysis wrote") from None
    except (KeyError, ValueError, OSError, IndexError) as exc:
        raise RecordingError(f"{path} is not a DeepLabCut pose table ({type(exc).__name__}: {exc}); give the .h5 "
                             "or .csv that rtpose run --record, rtpose analyze or DeepLabCut wrote") from exc


def table_arrays(table: pd.DataFrame, source: str) -> tuple[str, tuple[str, ...], np.ndarray]:
    """(scorer, bodyparts, (N, K, 3) float64 x/y/likelihood) of a DeepLabCut pose table; a multi-animal
    table's bodyparts are its flat names (``mouse1.snout``, ...; :func:`table_layout` gives the animals)."""
    cols = table.columns
    if not isinstance(cols, pd.MultiIndex) or cols.nlevels not in (3, 4):
        raise RecordingError(f"{source}: expected DeepLabCut's column levels (scorer, [individuals,] bodyparts, "
                             f"coords), got {cols.nlevels}; give a pose file rtpose or DeepLabCut wrote")
    scorer = str(cols.get_level_values(0)[0])
    try:
        layout = table_layout(cols)
    except ValueError as exc:
        raise RecordingError(f"{source}: {exc}; give a pose file rtpose or DeepLabCut's analyze_videos wrote") from None
    bodyparts = (layout.flat_names() if layout is not None
                 else tuple(dict.fromkeys(str(b) for b in cols.get_level_values(1))))
    if layout is None and list(cols) != list(dlc_columns(scorer, bodyparts)):
        raise RecordingError(f"{source}: columns are not x, y, likelihood per bodypart in DeepLabCut's order; "
                             "give a pose file rtpose or DeepLabCut's analyze_videos wrote")
    values = table.to_numpy(dtype=np.float64).reshape(len(table), len(bodyparts), 3)
    return scorer, bodyparts, values


def read_recording(path: str | Path) -> Recording:
    """Read ``<stem>.h5`` (or ``.csv``) and whatever sidecars exist beside it."""
    path = Path(path)
    paths = RecordingPaths.for_output(path)
    pose_file = path if path.suffix in (".h5", ".csv") and path.exists() else (
        paths.h5 if paths.h5.exists() else paths.csv)
    if not pose_file.exists():
        raise RecordingError(f"{path}: no recording there (looked for {paths.h5.name} and {paths.csv.name}); "
                             "give the .h5 that rtpose run --record or rtpose analyze wrote")
    table = read_pose_table(pose_file)
    scorer, bodyparts, pose = table_arrays(table, str(pose_file))
    n = len(pose)
    timing = pd.read_csv(paths.timing_csv) if paths.timing_csv.exists() else None
    if timing is not None and len(timing) != n:
        raise RecordingError(f"{paths.timing_csv.name} has {len(timing)} rows but {pose_file.name} has {n}; the "
                             "files of one recording always hold the same rows: was one of them replaced?")
    if timing is not None:
        frame = timing["frame"].to_numpy(np.int64)
        stream = timing["stream"].to_numpy(np.int64)
        t_frame_ns = timing["t_frame_ns"].to_numpy(np.int64) if "t_frame_ns" in timing else None
    else:
        index = table.index
        frame = (index.to_numpy(np.int64) if pd.api.types.is_integer_dtype(index)
                 else np.arange(n, dtype=np.int64))
        stream = np.zeros(n, np.int64)
        t_frame_ns = None
    predicted = None
    if paths.predicted_csv.exists():
        _, pbody, predicted = table_arrays(read_pose_table(paths.predicted_csv), str(paths.predicted_csv))
        if pbody != bodyparts or len(predicted) != n:
            raise RecordingError(f"{paths.predicted_csv.name} does not match {pose_file.name} (bodyparts or rows); "
                                 "the files of one recording always match: was one of them replaced?")
    events = pd.read_csv(paths.events_csv, keep_default_na=False) if paths.events_csv.exists() else None
    settings = json.loads(paths.settings_json.read_text()) if paths.settings_json.exists() else None
    return Recording(paths=paths, scorer=scorer, bodyparts=bodyparts, frame=frame, stream=stream, pose=pose,
                     predicted=predicted, t_frame_ns=t_frame_ns, timing=timing, events=events, settings=settings,
                     layout=table_layout(table.columns))
