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


def csv_header_rows(path: str | Path) -> list[int]:
    """The header rows of a DeepLabCut CSV: four when its second row is ``individuals`` (multi-animal)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        f.readline()
        second = f.readline()
    return [0, 1, 2, 3] if second.split(",", 1)[0].strip() == "individuals" else [0, 1, 2]


def read_dlc_table(path: str | Path) -> pd.DataFrame:
    """Read a DeepLabCut ``.h5`` or ``.csv`` pose file (single- or multi-animal) into the MultiIndex layout."""
    path = Path(path)
    if path.suffix == ".csv":
        return pd.read_csv(path, header=csv_header_rows(path), index_col=0)
    return pd.read_hdf(path, key=H5_KEY)
