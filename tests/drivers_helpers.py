"""Small helpers shared by tests: synthetic frames with ground truth, real tmpfs mounts."""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path

import numpy as np
import pytest

from rtpose.drivers.sources.synthetic import SyntheticSource


def synthetic_frames(n: int, width: int = 320, height: int = 240, seed: int = 0):
    """``n`` synthetic BGR frames and their (n, 3, 2) ground truth."""
    src = SyntheticSource(width=width, height=height, fps=30.0, seed=seed)
    frames = np.zeros((n, height, width, 3), np.uint8)
    with src:
        for i in range(n):
            src.read_into(frames[i])
    return frames, src.truth_many(range(n))


@contextlib.contextmanager
def tmpfs(where: Path, options: str, why: str):
    """Mount a real tmpfs with ``options`` (e.g. ``size=1m``, ``ro,size=1m``) at the new folder ``where``
    for the block; skips the test, saying ``why`` it needs one, where mounting is not allowed (needs root
    and CAP_SYS_ADMIN, as in the project's CI container)."""
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs ({options}) {why} (needs root and CAP_SYS_ADMIN): {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)
