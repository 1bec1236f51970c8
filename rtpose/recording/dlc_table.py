"""DeepLabCut's pose table layout (pure; no file I/O except the reader helper).

DeepLabCut stores poses as a pandas DataFrame whose columns are a three-level
MultiIndex ``(scorer, bodyparts, coords)`` with coords ``x, y, likelihood``,
one row per frame (index = frame number, or image path for image folders),
saved with ``df.to_hdf(path, key="df_with_missing", format="table")`` and as CSV.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

H5_KEY = "df_with_missing"
COORDS = ("x", "y", "likelihood")


def dlc_columns(scorer: str, bodyparts: Sequence[str]) -> pd.MultiIndex:
    return pd.MultiIndex.from_product([[scorer], list(bodyparts), list(COORDS)],
                                      names=["scorer", "bodyparts", "coords"])


def pose_frame(poses: np.ndarray, scorer: str, bodyparts: Sequence[str], index: Sequence | None = None) -> pd.DataFrame:
    """(N, K, 3) x/y/likelihood → DeepLabCut DataFrame (float64)."""
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 3 or poses.shape[1:] != (len(bodyparts), 3):
        raise ValueError(f"poses must be (N, {len(bodyparts)}, 3), got {poses.shape}")
    return pd.DataFrame(poses.reshape(len(poses), 3 * len(bodyparts)), columns=dlc_columns(scorer, bodyparts),
                        index=pd.Index(index) if index is not None else None)


def read_dlc_table(path: str | Path) -> pd.DataFrame:
    """Read a DeepLabCut ``.h5`` or ``.csv`` pose file into the MultiIndex layout."""
    path = Path(path)
    if path.suffix == ".csv":
        return pd.read_csv(path, header=[0, 1, 2], index_col=0)
    return pd.read_hdf(path, key=H5_KEY)
