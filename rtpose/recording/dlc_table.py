"""DeepLabCut's pose table layout (pure; no file I/O except the reader helper).

DeepLabCut stores poses as a pandas DataFrame whose columns are a three-level
MultiIndex ``(scorer, bodyparts, coords)`` with coords ``x, y, likelihood``,
one row per frame (index = frame number, or image path for image folders),
saved with ``df.to_hdf(path, key="df_with_missing", format="table")`` and as CSV.
Multi-animal tables have four levels, ``(scorer, individuals, bodyparts, coords)``,
with the unique body parts under the individual ``single``
(:meth:`rtpose.multianimal.layout.AnimalLayout.columns`).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..multianimal.layout import UNIQUE_INDIVIDUAL, AnimalLayout

H5_KEY = "df_with_missing"
COORDS = ("x", "y", "likelihood")


def dlc_columns(scorer: str, bodyparts: Sequence[str], layout: AnimalLayout | None = None) -> pd.MultiIndex:
    """DeepLabCut's columns; with a multi-animal ``layout`` (``bodyparts`` its flat names) the four-level ones."""
    if layout is None:
        return pd.MultiIndex.from_product([[scorer], list(bodyparts), list(COORDS)],
                                          names=["scorer", "bodyparts", "coords"])
    return pd.MultiIndex.from_tuples([(scorer, ind, bp, c) for ind, bp in layout.columns() for c in COORDS],
                                     names=["scorer", "individuals", "bodyparts", "coords"])


def pose_frame(poses: np.ndarray, scorer: str, bodyparts: Sequence[str], index: Sequence | None = None,
               layout: AnimalLayout | None = None) -> pd.DataFrame:
    """(N, K, 3) x/y/likelihood → DeepLabCut DataFrame (float64); multi-animal with ``layout``."""
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 3 or poses.shape[1:] != (len(bodyparts), 3):
        raise ValueError(f"poses must be (N, {len(bodyparts)}, 3), got {poses.shape}")
    return pd.DataFrame(poses.reshape(len(poses), 3 * len(bodyparts)), columns=dlc_columns(scorer, bodyparts, layout),
                        index=pd.Index(index) if index is not None else None)


def table_layout(columns: pd.MultiIndex) -> AnimalLayout | None:
    """The animal layout of a four-level (multi-animal) DeepLabCut table; None for a single-animal one.
    Raises ValueError when the columns are not DeepLabCut's multi-animal order."""
    if columns.nlevels != 4:
        return None
    individuals, bodyparts, unique = [], [], []
    for _, ind, bp, _c in columns[::len(COORDS)]:
        if ind == UNIQUE_INDIVIDUAL:
            unique.append(str(bp))
            continue
        if ind not in individuals:
            individuals.append(str(ind))
        if len(individuals) == 1:
            bodyparts.append(str(bp))
    layout = AnimalLayout(tuple(individuals), tuple(bodyparts), tuple(unique))
    if list(columns) != list(dlc_columns(str(columns[0][0]), layout.flat_names(), layout)):
        raise ValueError("the columns are not x, y, likelihood per individual and body part in DeepLabCut's "
                         "multi-animal order")
    return layout


#: The first field of each header row of a DeepLabCut CSV (pandas writes the column-level names there).
HEADER_NAMES = ("scorer", "individuals", "bodyparts", "coords")


def read_csv_table(path: str | Path, *, exact: bool = False) -> pd.DataFrame:
    """A DeepLabCut CSV (three header rows, or four with ``individuals``) as the MultiIndex table.

    Read by hand rather than by ``pd.read_csv(header=[0, 1, 2])``: pandas takes a first data row whose
    values are all empty (a frame where no animal was found: common with several animals) for an
    index-name row and drops it. ``exact``: floats parsed to the same double they were written from."""
    with open(path, encoding="utf-8", newline="") as f:
        header = []
        for row in csv.reader(f):
            if not row or row[0] not in HEADER_NAMES or len(header) == len(HEADER_NAMES):
                break
            header.append(row)
    if not header:
        raise ValueError(f"{path}: no DeepLabCut header rows ({', '.join(HEADER_NAMES[:1] + HEADER_NAMES[2:])})")
    columns = pd.MultiIndex.from_arrays([r[1:] for r in header], names=[r[0] for r in header])
    try:
        table = pd.read_csv(path, header=None, skiprows=len(header), index_col=0,
                            float_precision="round_trip" if exact else None)
    except pd.errors.EmptyDataError:  # the header alone: a recording stopped before its first rows
        return pd.DataFrame(np.empty((0, len(columns))), index=pd.Index([], dtype=np.int64), columns=columns)
    table.index.name = None
    table.columns = columns
    return table


def read_dlc_table(path: str | Path) -> pd.DataFrame:
    """Read a DeepLabCut ``.h5`` or ``.csv`` pose file (single- or multi-animal) into the MultiIndex layout."""
    path = Path(path)
    if path.suffix == ".csv":
        return read_csv_table(path)
    return pd.read_hdf(path, key=H5_KEY)
