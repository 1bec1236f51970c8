"""What a bottom-up multi-animal model would report, made from ground truth: for tracker tests and
measurements without a network.

:func:`simulate_detections` turns ground-truth keypoints (e.g. the synthetic source's
``animal_truth_many`` and ``visible_many``) into per-frame detections in the layout the tracker
reads: ``(F, D, K, 3)`` x, y, likelihood, NaN for missing, rows in a random order. Seeded.

Errors it adds, each optional: Gaussian jitter (``jitter_px``, per coordinate); hidden keypoints
(``visible`` False) are not detected; other keypoints go missing at random (``p_missing``); a few
are outliers displaced by ``outlier_px`` in a random direction (``p_outlier``); whole animals can be
absent (``absent``, e.g. an animal leaving the arena); an animal with no keypoint left is no
detection. Likelihoods are uniform in ``likelihood_range``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["simulate_detections", "source_of_slots"]


def simulate_detections(truth: np.ndarray, visible: np.ndarray | None = None, *, seed: int = 0,
                        jitter_px: float = 0.0, p_missing: float = 0.0, p_outlier: float = 0.0,
                        outlier_px: float = 30.0, absent: np.ndarray | None = None,
                        max_detections: int | None = None, shuffle: bool = True,
                        likelihood_range: tuple[float, float] = (0.6, 1.0), return_source: bool = False):
    """``truth`` ``(F, N, K, 2)`` -> detections ``(F, D, K, 3)``, ``D = max_detections or N``.

    ``visible`` ``(F, N, K)`` bool (default all) and ``absent`` ``(F, N)`` bool (default none).
    With ``shuffle`` every frame's rows (NaN rows included) are in a random order. With
    ``return_source`` also returns ``(F, D)`` int64: the animal each row was made from (-1: none).
    """
    truth = np.asarray(truth, dtype=np.float64)
    F, N, K, _ = truth.shape
    D = N if max_detections is None else int(max_detections)
    if D < N:
        raise ValueError(f"max_detections={D} is smaller than the {N} animals")
    rng = np.random.default_rng(seed)
    xy = truth + rng.normal(0.0, jitter_px, truth.shape) if jitter_px > 0 else truth.copy()
    out_mask = rng.random((F, N, K)) < p_outlier
    angle = rng.uniform(0, 2 * np.pi, (F, N, K))
    xy[..., 0] += np.where(out_mask, outlier_px * np.cos(angle), 0.0)
    xy[..., 1] += np.where(out_mask, outlier_px * np.sin(angle), 0.0)
    seen = np.ones((F, N, K), bool) if visible is None else np.asarray(visible, bool).copy()
    seen &= rng.random((F, N, K)) >= p_missing
    if absent is not None:
        seen &= ~np.asarray(absent, bool)[..., None]
    like = rng.uniform(*likelihood_range, (F, N, K))
    det = np.full((F, D, K, 3), np.nan)
    rows = np.concatenate([xy, like[..., None]], axis=-1)
    rows[~seen] = np.nan
    det[:, :N] = rows
    source = np.full((F, D), -1, np.int64)
    source[:, :N] = np.where(seen.any(-1), np.arange(N)[None, :], -1)
    if shuffle:
        order = np.argsort(rng.random((F, D)), axis=1)
        det = np.take_along_axis(det, order[:, :, None, None], axis=1)
        source = np.take_along_axis(source, order, axis=1)
    return (det, source) if return_source else det


def source_of_slots(detections: np.ndarray, source: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """Which animal each tracker slot holds: ``(F, A)`` int64 (-1: empty), from the ``source`` of
    :func:`simulate_detections` and the tracker's output ``slots`` ``(F, A, K, 3)``.

    The tracker copies a detection row into a slot unchanged, so each filled slot equals exactly one
    detection row of its frame (NaN positions included).
    """
    F, A = slots.shape[:2]
    out = np.full((F, A), -1, np.int64)
    for f in range(F):
        for a in range(A):
            if not np.isfinite(slots[f, a, :, 0]).any():
                continue
            same = np.flatnonzero([np.array_equal(slots[f, a], row, equal_nan=True) for row in detections[f]])
            if same.size:
                out[f, a] = source[f, same[0]]
    return out
