"""Percentile summaries of latency samples (pure: arrays in, numbers out).

Used by the sweep and by every script under ``latency_tests/`` so that all
results use the same percentile definition (NumPy's linear interpolation) and
the same keys: ``n``, ``p50``, ``p90``, ``p99``, ``max``, ``mean``.
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping

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


def ns_to_us(samples_ns) -> np.ndarray:
    return np.asarray(samples_ns, dtype=np.float64) * 1e-3


def ns_to_ms(samples_ns) -> np.ndarray:
    return np.asarray(samples_ns, dtype=np.float64) * 1e-6


def fmt(value: float, digits: int = 3) -> str:
    """A number for a table: fixed digits, '—' for NaN/None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}f}"


def format_row(name: str, s: Mapping[str, float], unit: str = "ms", digits: int = 3, width: int = 24) -> str:
    """One aligned text line: name, p50, p90, p99, max (and n)."""
    cells = "".join(f"{fmt(s.get(k, float('nan')), digits):>10}" for k in ("p50", "p90", "p99", "max"))
    return f"{name:<{width}}{cells}{int(s.get('n', 0)):>9}"


def format_header(unit: str = "ms", width: int = 24) -> str:
    return f"{'(' + unit + ')':<{width}}{'p50':>10}{'p90':>10}{'p99':>10}{'max':>10}{'n':>9}"


def ratio(a: float, b: float) -> float:
    """a / b, NaN when b is 0 or either is NaN."""
    if b == 0 or math.isnan(a) or math.isnan(b):
        return float("nan")
    return a / b
