"""Small helpers shared by tests: synthetic frames with ground truth."""

from __future__ import annotations

import numpy as np

from rtpose.drivers.sources.synthetic import SyntheticSource


def synthetic_frames(n: int, width: int = 320, height: int = 240, seed: int = 0):
    """``n`` synthetic BGR frames and their (n, 3, 2) ground truth."""
    src = SyntheticSource(width=width, height=height, fps=30.0, seed=seed)
    frames = np.zeros((n, height, width, 3), np.uint8)
    with src:
        for i in range(n):
            src.read_into(frames[i])
    return frames, src.truth_many(range(n))
