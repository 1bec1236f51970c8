"""Labelled openfield frames and the seeded train/validation split (no TensorFlow).

Shared by ``train.py`` (TensorFlow) and ``evaluate.py`` (onnxruntime only), so the
validation frames are defined in exactly one place.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "openfield" / "labeled"
CSV_NAME = "CollectedData_Pranav.csv"
BODYPARTS = ("snout", "leftear", "rightear", "tailbase")
#: Channels swapped by a mirror image (one flip): left ear <-> right ear.
MIRROR_PERMUTATION = (0, 2, 1, 3)
SPLIT_SEED = 0
NUM_VAL = 15


@dataclass(frozen=True)
class LabelledFrame:
    name: str            # PNG file name, e.g. "img0001.png"
    xy: np.ndarray       # (K, 2) float32 pixel coordinates, NaN where unlabelled


def load_labels(data_dir: Path = DATA_DIR) -> list[LabelledFrame]:
    """Parse DeepLabCut's CollectedData CSV (3 header rows: scorer, bodyparts, coords).

    Empty or non-numeric cells become NaN (unlabelled point)."""
    path = Path(data_dir) / CSV_NAME
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    parts_row, coords_row = rows[1], rows[2]
    columns = {}
    for col, (bp, c) in enumerate(zip(parts_row[1:], coords_row[1:]), start=1):
        columns[(bp, c)] = col
    missing = [bp for bp in BODYPARTS if (bp, "x") not in columns or (bp, "y") not in columns]
    if missing:
        raise ValueError(f"{path} lacks columns for {missing}")
    frames = []
    for row in rows[3:]:
        if not row or not row[0].strip():
            continue
        xy = np.full((len(BODYPARTS), 2), np.nan, dtype=np.float32)
        for k, bp in enumerate(BODYPARTS):
            for j, c in enumerate("xy"):
                cell = row[columns[(bp, c)]].strip() if columns[(bp, c)] < len(row) else ""
                try:
                    v = float(cell)
                except ValueError:
                    v = math.nan
                xy[k, j] = v
        frames.append(LabelledFrame(name=Path(row[0].replace("\\", "/")).name, xy=xy))
    return sorted(frames, key=lambda fr: fr.name)


def split(frames: list[LabelledFrame], seed: int = SPLIT_SEED, num_val: int = NUM_VAL):
    """Seeded split: returns (train, val), val sorted by name."""
    order = np.random.default_rng(seed).permutation(len(frames))
    val_idx = set(int(i) for i in order[:num_val])
    train = [fr for i, fr in enumerate(frames) if i not in val_idx]
    val = [fr for i, fr in enumerate(frames) if i in val_idx]
    return train, val


def read_rgb(name: str, data_dir: Path = DATA_DIR) -> np.ndarray:
    """Read a labelled PNG as (H, W, 3) uint8 RGB."""
    import cv2

    img = cv2.imread(str(Path(data_dir) / name), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(Path(data_dir) / name)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
