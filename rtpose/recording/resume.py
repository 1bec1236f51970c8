"""Continuing a recording that was interrupted (a stop signal, a crash, a killed cluster worker).

:class:`~rtpose.recording.recorder.RecorderSink` writes each chunk to the CSV
files first and to the ``.h5`` last, and cuts the CSV files back when a chunk
fails. A process killed between the two leaves CSV files one chunk ahead of
the ``.h5``. :func:`recover` makes every file of a recording hold the same
rows again - the ``.h5``'s rows, which are the last thing written - by cutting
the CSV files back to that many data lines (and dropping events of later
frames), and returns that row count, so a run can append from there with no
duplicate and no missing row.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .dlc_table import H5_KEY
from .recorder import RecordingPaths


@dataclass(frozen=True)
class Recovered:
    rows: int  # rows every file holds now
    first_frame: int | None  # frame index of the first row (None: no rows)
    last_frame: int | None  # frame index of the last row


class NotResumable(Exception):
    """The files cannot be continued (missing, unreadable, rows out of order); the caller starts over."""


def _h5_frames(path: Path) -> np.ndarray:
    """The frame numbers (row index) of a recording's .h5, read without loading the table."""
    try:
        with pd.HDFStore(path, mode="r") as store:
            if H5_KEY not in store:
                return np.zeros(0, np.int64)
            return np.asarray(store.select_column(H5_KEY, "index"))
    except Exception as exc:  # a damaged file: PyTables' own exception types
        raise NotResumable(f"{path} cannot be read ({type(exc).__name__}: {exc})") from exc


def _line_ends(path: Path) -> list[int]:
    """Byte offsets just after each newline of ``path``."""
    data = path.read_bytes()
    ends, pos = [], data.find(b"\n")
    while pos >= 0:
        ends.append(pos + 1)
        pos = data.find(b"\n", pos + 1)
    return ends


def _cut_to_rows(path: Path, header_lines: int, rows: int) -> None:
    """Keep the header and the first ``rows`` data lines of a CSV file (cut off anything after them)."""
    ends = _line_ends(path)
    if len(ends) < header_lines + rows:
        raise NotResumable(f"{path} holds {max(len(ends) - header_lines, 0)} rows, fewer than the .h5's {rows}")
    keep = ends[header_lines + rows - 1] if header_lines + rows else 0
    if keep != path.stat().st_size:
        os.truncate(path, keep)


def _pose_header_lines(path: Path) -> int:
    """DeepLabCut CSV headers are the scorer, bodyparts and coords rows (plus pandas' index-name row when
    present); counted from the file itself up to the first row whose first field is a frame number."""
    with open(path, newline="") as f:
        for i, row in enumerate(csv.reader(f)):
            if row and row[0].lstrip("-").isdigit():
                return i
            if i > 10:
                break
    return _count_lines(path)


def _count_lines(path: Path) -> int:
    return len(_line_ends(path))


def _filter_events(path: Path, last_frame: int | None) -> None:
    """Drop events of frames after ``last_frame`` (they are recorded again by the continuing run)."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise NotResumable(f"{path} has no header")
    keep = [rows[0]] + [r for r in rows[1:] if last_frame is not None and r and int(r[1]) <= last_frame]
    if len(keep) != len(rows):
        buf = io.StringIO(newline="")
        csv.writer(buf).writerows(keep)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(buf.getvalue())
        os.replace(tmp, path)


def recover(paths: RecordingPaths) -> Recovered:
    """Bring every file of an interrupted recording back to the ``.h5``'s rows; raise :class:`NotResumable`
    when that is impossible (a file missing or unreadable, the CSV holding fewer rows than the ``.h5``)."""
    paths.h5_tmp.unlink(missing_ok=True)  # a first chunk whose rename never happened
    for p in (paths.csv, paths.predicted_csv, paths.timing_csv, paths.events_csv):
        if not p.is_file():
            raise NotResumable(f"{p} is missing")
    frames = _h5_frames(paths.h5) if paths.h5.is_file() else np.zeros(0, np.int64)
    rows = len(frames)
    if rows and (frames.dtype.kind not in "iu" or not (np.diff(frames) == 1).all()):
        raise NotResumable(f"{paths.h5}: its frame numbers are not consecutive")
    _cut_to_rows(paths.csv, _pose_header_lines(paths.csv), rows)
    _cut_to_rows(paths.predicted_csv, _pose_header_lines(paths.predicted_csv), rows)
    _cut_to_rows(paths.timing_csv, 1, rows)
    first, last = (int(frames[0]), int(frames[-1])) if rows else (None, None)
    _filter_events(paths.events_csv, last)
    return Recovered(rows, first, last)
