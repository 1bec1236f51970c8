"""Which frames to label next: where the model is unsure or its points jump (pure: arrays in, picks out).

A frame is a candidate when

- *unsure*: some body part's likelihood is below ``pcutoff``; its score is how far below,
  ``(pcutoff - likelihood) / pcutoff`` (0..1) for the worst part; or
- *jump*: some body part, confident (>= ``pcutoff``) in this and the previous frame, moved more
  than ``jump_factor`` times its local median step (median over ``window`` frames around it,
  at least ``min_step_px``) and more than ``min_jump_px``; its score grows with the ratio and
  reaches 1 at twice ``jump_factor``.

The ``n`` picks are the highest-scoring candidates at least ``gap`` rows apart (``gap`` =
rows / (2 n) to start with, halved while fewer than ``n`` are found, never below ``min_gap``),
so they spread over the video instead of piling up in one bad second; neighbouring frames
would be near duplicates to label. Fewer than ``n`` come back when the candidates run out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class OutlierFrame:
    row: int  # row of the pose table
    frame: int  # frame index in the video
    reason: str  # "unsure", "jump" or "unsure+jump"
    score: float  # 0..1, higher first
    min_likelihood: float  # the frame's lowest likelihood
    jump_ratio: float  # the largest step / local median step of a confident part (0: none)
    bodyparts: tuple[str, ...]  # the parts that made it a candidate


def unsure_scores(pose: np.ndarray, pcutoff: float) -> np.ndarray:
    """(N, K) in 0..1: how far each likelihood is below ``pcutoff`` (0 at or above it; NaN counts as 0)."""
    lik = np.nan_to_num(pose[..., 2], nan=0.0)
    return np.clip((pcutoff - lik) / pcutoff, 0.0, 1.0) if pcutoff > 0 else np.zeros(lik.shape)


def jump_ratios(pose: np.ndarray, pcutoff: float, window: int = 31, min_step_px: float = 1.0) -> np.ndarray:
    """(N, K): each part's step from the previous row divided by its local median step (NaN where the
    part is not confident in both rows)."""
    xy = pose[..., :2]
    ok = pose[..., 2] >= pcutoff
    step = np.full(pose.shape[:2], np.nan)
    if len(pose) > 1:
        both = ok[1:] & ok[:-1]
        d = np.hypot(*(xy[1:] - xy[:-1]).transpose(2, 0, 1))
        step[1:] = np.where(both, d, np.nan)
    median = pd.DataFrame(step).rolling(window, center=True, min_periods=1).median().to_numpy()
    return step / np.maximum(np.nan_to_num(median, nan=min_step_px), min_step_px)


def pick_outliers(pose: np.ndarray, frames: np.ndarray, n: int, bodyparts: tuple[str, ...], *,
                  pcutoff: float = 0.6, jump_factor: float = 5.0, min_jump_px: float = 10.0,
                  window: int = 31, min_gap: int = 10) -> list[OutlierFrame]:
    """Up to ``n`` frames to label, in frame order (fewer when fewer frames are candidates)."""
    pose = np.asarray(pose, np.float64)
    rows = len(pose)
    if rows == 0 or n <= 0:
        return []
    unsure = unsure_scores(pose, pcutoff)
    ratio = jump_ratios(pose, pcutoff, window)
    step = np.full(pose.shape[:2], 0.0)
    step[1:] = np.nan_to_num(np.hypot(*(pose[1:, :, :2] - pose[:-1, :, :2]).transpose(2, 0, 1)), nan=0.0)
    jumped = np.nan_to_num(ratio, nan=0.0) > jump_factor
    jumped &= step > min_jump_px
    jump_score = np.where(jumped, np.clip(np.nan_to_num(ratio, nan=0.0) / (2 * jump_factor), 0.5, 1.0), 0.0)
    score = np.maximum(unsure.max(axis=1), jump_score.max(axis=1))
    candidates = np.flatnonzero(score > 0)
    order = candidates[np.lexsort((candidates, -score[candidates]))]  # best first, earlier frame on ties
    picked: list[int] = []
    min_gap = max(1, int(min_gap))
    gap = max(min_gap, rows // (2 * n))
    while len(picked) < n:
        for r in order:
            if len(picked) == n:
                break
            if all(abs(int(r) - p) >= gap for p in picked):
                picked.append(int(r))
        if gap == min_gap:
            break
        gap = max(min_gap, gap // 2)
    out = []
    for r in sorted(picked):
        is_unsure, is_jump = bool(unsure[r].max() > 0), bool(jumped[r].any())
        parts = tuple(b for k, b in enumerate(bodyparts) if unsure[r, k] > 0 or jumped[r, k])
        ratios = np.nan_to_num(ratio[r], nan=0.0)
        out.append(OutlierFrame(row=r, frame=int(frames[r]), reason="+".join(
            name for name, flag in (("unsure", is_unsure), ("jump", is_jump)) if flag),
            score=float(score[r]), min_likelihood=float(np.nan_to_num(pose[r, :, 2], nan=0.0).min()),
            jump_ratio=float(ratios.max()) if is_jump else 0.0, bodyparts=parts))
    return out
