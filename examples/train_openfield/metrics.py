"""DeepLabCut-style decode and pose-error metrics in NumPy (no TensorFlow, no I/O).

Decode exactly as DeepLabCut: first maximum of each score map (row-major), then
x = col*stride + stride/2 + dx*locref_stdev (same for y with dy); the offsets are
laid out (h, w, K, 2) as (dx, dy).
"""

from __future__ import annotations

import numpy as np


def decode(scoremap: np.ndarray, locref: np.ndarray | None, stride: float, locref_stdev: float) -> np.ndarray:
    """(h, w, K) score maps (+ (h, w, 2K) offsets) of one frame -> (K, 3) x, y, score."""
    h, w, k = scoremap.shape
    flat = scoremap.reshape(h * w, k)
    idx = np.argmax(flat, axis=0)
    rows, cols = np.divmod(idx, w)
    out = np.empty((k, 3), dtype=np.float64)
    out[:, 0] = cols * stride + 0.5 * stride
    out[:, 1] = rows * stride + 0.5 * stride
    out[:, 2] = flat[idx, np.arange(k)]
    if locref is not None:
        off = locref.reshape(h, w, k, 2)[rows, cols, np.arange(k)]
        out[:, :2] += off * locref_stdev
    return out


def pose_errors(pred_xy: np.ndarray, true_xy: np.ndarray) -> np.ndarray:
    """Euclidean pixel errors, (N, K); NaN where the label is missing."""
    return np.linalg.norm(np.asarray(pred_xy, float) - np.asarray(true_xy, float), axis=-1)


def summarise(errors: np.ndarray, bodyparts) -> dict:
    """Mean error per bodypart and overall, PCK@5 and PCK@10 (over labelled points)."""
    valid = ~np.isnan(errors)
    e = errors[valid]
    per_part = {bp: float(np.nanmean(errors[:, k])) for k, bp in enumerate(bodyparts)}
    return {
        "per_bodypart_px": per_part,
        "mean_px": float(e.mean()),
        "median_px": float(np.median(e)),
        "max_px": float(e.max()),
        "pck5": float((e <= 5).mean()),
        "pck10": float((e <= 10).mean()),
        "num_points": int(e.size),
    }
