"""Writing frames and pre-filled labels into a DeepLabCut project's ``labeled-data/<video>/`` folder.

The layout is DeepLabCut's own (2.2 and later, 3.x), as ``extract_frames`` and
the labelling GUI write it and ``create_training_dataset`` reads it:

- ``img<frame>.png``: the video frame, named by its frame index zero-padded to
  ``ceil(log10(frames in the video))`` digits (``img0042.png`` in a 2330-frame video);
- ``CollectedData_<scorer>.h5`` (key ``df_with_missing``) and ``.csv``: one row per
  image, index the three-level ``("labeled-data", <video>, <image>)``, columns
  ``(scorer, bodyparts, coords)`` with coords ``x, y`` (no likelihood), float64,
  NaN for a point not placed.

Labels already in the folder are never replaced: frames whose image already has
a row keep it (and their PNG); only new frames are added, and the table stays
sorted by image name.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import pandas as pd

from ..errors import ConfigError, RecordingError

H5_KEY = "df_with_missing"


def image_name(frame: int, n_video_frames: int) -> str:
    """DeepLabCut's ``extract_frames`` name: ``img`` + frame index padded to ceil(log10(n)) digits."""
    width = max(1, int(math.ceil(math.log10(n_video_frames)))) if n_video_frames > 1 else 1
    return f"img{frame:0{width}d}.png"


def collected_data(points_xy: np.ndarray, scorer: str, bodyparts: Sequence[str], video: str,
                   images: Sequence[str]) -> pd.DataFrame:
    """(N, K, 2) x/y -> DeepLabCut's CollectedData table."""
    points_xy = np.asarray(points_xy, np.float64)
    columns = pd.MultiIndex.from_product([[scorer], list(bodyparts), ["x", "y"]],
                                         names=["scorer", "bodyparts", "coords"])
    index = pd.MultiIndex.from_tuples([("labeled-data", video, name) for name in images])
    return pd.DataFrame(points_xy.reshape(len(points_xy), 2 * len(bodyparts)), index=index, columns=columns)


def as_multiindex_rows(table: pd.DataFrame) -> pd.DataFrame:
    """A CollectedData table whose index is ``labeled-data/<video>/<img>`` strings (DeepLabCut before 2.2,
    e.g. tests/data/openfield) turned into the three-level index (DeepLabCut's ``guarantee_multiindex_rows``)."""
    if not isinstance(table.index, pd.MultiIndex):
        table = table.copy()
        table.index = pd.MultiIndex.from_tuples([tuple(str(p).replace("\\", "/").split("/")) for p in table.index])
    return table


def read_collected_data(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if path.suffix == ".csv":
        first = pd.read_csv(path, header=None, nrows=1, keep_default_na=False, dtype=str).iloc[0].tolist()
        n_index = 1  # "scorer" then, since DeepLabCut 2.2, two empty cells over the 3 index columns
        while n_index < len(first) and first[n_index] == "":
            n_index += 1
        table = pd.read_csv(path, header=[0, 1, 2], index_col=list(range(n_index)), float_precision="round_trip")
    else:
        table = pd.read_hdf(path, key=H5_KEY)
    table = as_multiindex_rows(table)
    table.index.names = [None] * table.index.nlevels  # DeepLabCut's rows are unnamed
    table.columns.names = ["scorer", "bodyparts", "coords"]
    return table


def write_labeled_data(project: str | Path, video: str | Path, frames: dict[int, np.ndarray],
                       points_xy: dict[int, np.ndarray], *, scorer: str, bodyparts: Sequence[str],
                       n_video_frames: int) -> tuple[Path, list[int], list[int]]:
    """Write ``frames`` (frame index -> BGR image) and their ``points_xy`` ((K, 2) each) into
    ``project/labeled-data/<video stem>/``. Returns (folder, frames added, frames skipped because
    the folder already has labels for them)."""
    video_name = Path(video).stem
    folder = Path(project) / "labeled-data" / video_name
    folder.mkdir(parents=True, exist_ok=True)
    h5, csv = folder / f"CollectedData_{scorer}.h5", folder / f"CollectedData_{scorer}.csv"
    existing = None
    if h5.exists():
        existing = read_collected_data(h5)
    elif csv.exists():
        existing = read_collected_data(csv)
    if existing is not None:
        theirs = list(dict.fromkeys(existing.columns.get_level_values("bodyparts")))
        if str(existing.columns.get_level_values("scorer")[0]) != scorer or theirs != list(bodyparts):
            raise ConfigError(f"{h5 if h5.exists() else csv} holds labels of scorer "
                              f"{existing.columns.get_level_values('scorer')[0]!r} for bodyparts {', '.join(theirs)}; "
                              f"these are for {scorer!r} and {', '.join(bodyparts)}: use the project's scorer and "
                              "a model of the same bodyparts")
    done = set(existing.index.get_level_values(-1)) if existing is not None else set()
    added, skipped = [], []
    for frame in sorted(frames):
        name = image_name(frame, n_video_frames)
        if name in done:
            skipped.append(frame)
            continue
        path = folder / name
        if not path.exists() and not cv2.imwrite(str(path), frames[frame]):
            raise RecordingError(f"cannot write {path}; check the folder's permissions and free space")
        added.append(frame)
    if not added:
        return folder, added, skipped
    new = collected_data(np.stack([points_xy[f] for f in added]), scorer, bodyparts, video_name,
                         [image_name(f, n_video_frames) for f in added])
    table = new if existing is None else pd.concat([existing.astype(np.float64), new])
    table = table.sort_index()
    tmp = h5.with_name(h5.name + ".partial-write")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pd.errors.PerformanceWarning)
        table.to_hdf(tmp, key=H5_KEY, mode="w")
    tmp.replace(h5)
    table.to_csv(csv)
    return folder, added, skipped


def read_frames(video: str | Path, wanted: Sequence[int]) -> tuple[dict[int, np.ndarray], int]:
    """The frames ``wanted`` of ``video`` (read in order, not by seeking: H.264 seeks can land on the
    wrong frame) and the video's frame count."""
    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        raise RecordingError(f"cannot open video {video}; check the path (OpenCV reads .mp4, .avi, ...)")
    try:
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        todo = set(int(f) for f in wanted)
        last = max(todo) if todo else -1
        out: dict[int, np.ndarray] = {}
        index = 0
        while index <= last and capture.grab():
            if index in todo:
                ok, image = capture.retrieve()
                if ok:
                    out[index] = image
            index += 1
    finally:
        capture.release()
    missing = sorted(todo - set(out))
    if missing:
        raise RecordingError(f"{video} ended before frame {missing[0]} ({index} frames read); are these poses of "
                             "this video?")
    return out, max(count, index)
