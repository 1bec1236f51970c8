"""Percentile summaries of latency samples (pure: arrays in, numbers out).

Used by the sweep and by every script under ``latency_tests/`` so that all
results use the same percentile definition (NumPy's linear interpolation) and
the same keys: ``n``, ``p50``, ``p90``, ``p99``, ``max``, ``mean``.
"""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np

PERCENTILES = (50, 90, 99)
KEYS = ("p50", "p90", "p99", "max", "mean")


def summarize(samples: Iterable[float] | np.ndarray) -> dict[str, float]:
    """``{"n", "p50", "p90", "p99", "max", "mean"}`` of ``samples`` (NaN when empty)."""
    v = np.asarray(samples, dtype=np.float64).ravel()
    if v.size == 0:
        return {"n": 0} | {k: float("nan") for k in KEYS}
    pct = np.percentile(v, PERCENTILES)
    out: dict[str, float] = {"n": int(v.size)}
    out.update({f"p{p}": float(x) for p, x in zip(PERCENTILES, pct)})
    out["max"] = float(v.max())
    out["mean"] = float(v.mean())
    return out


def fmt(value: float, digits: int = 3) -> str:
    """A number for a table: fixed digits, '—' for NaN/None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}f}"
