"""Tracking quality against ground truth: identity switches (CLEAR-MOT), misses, false positives.

:func:`clear_mot` follows the CLEAR MOT metrics of Bernardin & Stiefelhagen, "Evaluating Multiple
Object Tracking Performance: The CLEAR MOT Metrics" (EURASIP J. Image Video Process., 2008):

* Objects are the ground-truth animals present in a frame; hypotheses are the tracker's animals
  with an id (a track id, or a slot index: whatever identity you want to score) and at least one
  keypoint. Their distance is the mean keypoint distance (px) over the body parts both have.
  Where it is known which animal each hypothesis really is (simulated detections,
  :func:`.simulate.source_of_slots`), pass it as ``hyp_truth``: the correspondence is then exact
  (an object matches the hypothesis made from it, whatever the distance) and no threshold decides.
  With distances alone, animals closer to each other than ``max_distance_px`` can be matched
  crosswise and kept so (the rule below) until the distance breaks, which counts switches the
  tracker did not make; pick ``max_distance_px`` well below the animals' closest spacing and well
  above the keypoint error.
* Frame by frame, a correspondence (object, hypothesis) from the previous frame is kept if both
  are still present and closer than ``max_distance_px``. The remaining objects and hypotheses are
  matched by minimum total distance (:mod:`.assignment`), pairs further than ``max_distance_px``
  not allowed.
* An **identity switch** (CLEAR-MOT's *mismatch*) is counted when an object is matched to a
  hypothesis other than the one it was last matched to, in any earlier frame (so an animal that
  disappears and comes back under a new id counts one switch). Two animals swapping identities
  count two switches (one per animal).
* ``misses``: objects present but unmatched; ``false_positives``: hypotheses unmatched;
  MOTA = 1 − (misses + false positives + switches) / objects; MOTP = mean distance of matches.

``id_switches_per_1000_frames`` = 1000 × switches / frames: "swaps per 1000 frames" in rtpose's
measurements means exactly this number.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .assignment import FORBIDDEN, assign

__all__ = ["MotResult", "clear_mot", "pose_distances"]


@dataclass(frozen=True)
class MotResult:
    frames: int
    objects: int  # ground-truth animal-frames present
    matches: int
    misses: int
    false_positives: int
    id_switches: int
    motp_px: float  # mean distance of matched pairs (NaN without matches)
    switch_frames: tuple[int, ...]  # frame index of each switch (repeated for several in one frame)

    @property
    def mota(self) -> float:
        return 1.0 - (self.misses + self.false_positives + self.id_switches) / max(self.objects, 1)

    @property
    def id_switches_per_1000_frames(self) -> float:
        return 1000.0 * self.id_switches / max(self.frames, 1)


def pose_distances(gt: np.ndarray, hyp: np.ndarray) -> np.ndarray:
    """``(N, K, 2)`` objects x ``(H, K, >=2)`` hypotheses -> ``(N, H)`` mean keypoint distance over the
    parts finite in both (NaN where they share none)."""
    d = np.linalg.norm(gt[:, None, :, :2] - hyp[None, :, :, :2], axis=-1)  # (N, H, K)
    ok = np.isfinite(d)
    n = ok.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, np.where(ok, d, 0.0).sum(-1) / n, np.nan)


def clear_mot(gt: np.ndarray, hyp: np.ndarray, hyp_ids: np.ndarray, max_distance_px: float,
              gt_present: np.ndarray | None = None, hyp_truth: np.ndarray | None = None) -> MotResult:
    """Score a tracked sequence against ground truth (see the module docstring).

    Args:
        gt: ``(F, N, K, 2)`` ground-truth keypoints per frame and animal (NaN: unknown part).
        hyp: ``(F, A, K, >=2)`` tracker output per frame and slot (NaN: missing part / empty slot).
        hyp_ids: ``(F, A)`` integer identity of each hypothesis (-1: none): track ids, or slot
            indices where the slot holds an animal, depending on which identity is scored.
        max_distance_px: largest mean keypoint distance of a valid correspondence.
        gt_present: ``(F, N)`` bool, which animals are present (default: those with a finite keypoint).
        hyp_truth: ``(F, A)`` the ground-truth animal each hypothesis is (-1: none), if known:
            the distance is then replaced by this exact correspondence.
    """
    gt = np.asarray(gt, dtype=np.float64)
    hyp = np.asarray(hyp, dtype=np.float64)
    hyp_ids = np.asarray(hyp_ids)
    F, N = gt.shape[:2]
    if hyp.shape[0] != F or hyp_ids.shape != hyp.shape[:2]:
        raise ValueError(f"gt {gt.shape}, hyp {hyp.shape} and hyp_ids {hyp_ids.shape} do not describe the same frames")
    if gt_present is None:
        gt_present = np.isfinite(gt).all(-1).any(-1)
    hyp_present = (hyp_ids >= 0) & np.isfinite(hyp[..., :2]).all(-1).any(-1)
    prev: dict[int, int] = {}  # object -> hypothesis id, previous frame
    last: dict[int, int] = {}  # object -> hypothesis id it was last matched to
    objects = matches = misses = fps = switches = 0
    dist_sum = 0.0
    switch_frames: list[int] = []
    for f in range(F):
        objs = np.flatnonzero(gt_present[f])
        hs = np.flatnonzero(hyp_present[f])
        slot_of = {int(hyp_ids[f, h]): int(h) for h in hs}
        geo = pose_distances(gt[f, objs], hyp[f, hs]) if objs.size and hs.size else np.zeros((objs.size, hs.size))
        dist = geo
        if hyp_truth is not None:  # exact: 0 for the hypothesis made from the object, "too far" otherwise
            dist = np.where(hyp_truth[f, hs][None, :] == objs[:, None], 0.0, np.inf)
        col_of_h = {int(h): c for c, h in enumerate(hs)}
        row_of_o = {int(o): r for r, o in enumerate(objs)}
        current: dict[int, int] = {}
        used_h: set[int] = set()
        for o, hid in prev.items():
            if o in row_of_o and hid in slot_of:
                rc = row_of_o[o], col_of_h[slot_of[hid]]
                if dist[rc] <= max_distance_px:
                    current[o] = hid
                    used_h.add(hid)
                    dist_sum += geo[rc]
        rest_o = [int(o) for o in objs if int(o) not in current]
        rest_h = [int(h) for h in hs if int(hyp_ids[f, h]) not in used_h]
        if rest_o and rest_h:
            rows, cols = [row_of_o[o] for o in rest_o], [col_of_h[h] for h in rest_h]
            sub = dist[np.ix_(rows, cols)]
            sub = np.where(np.isfinite(sub) & (sub <= max_distance_px), sub, FORBIDDEN)
            r2c, _ = assign(sub)
            for r, c in enumerate(r2c):
                if c < 0 or sub[r, c] >= FORBIDDEN:
                    continue
                o, hid = rest_o[r], int(hyp_ids[f, rest_h[c]])
                if o in last and last[o] != hid:
                    switches += 1
                    switch_frames.append(f)
                current[o] = hid
                dist_sum += geo[rows[r], cols[c]]
        for o, hid in current.items():
            last[o] = hid
        objects += objs.size
        matches += len(current)
        misses += objs.size - len(current)
        fps += hs.size - len(current)
        prev = current
    return MotResult(frames=F, objects=objects, matches=matches, misses=misses, false_positives=fps,
                     id_switches=switches, motp_px=dist_sum / matches if matches else float("nan"),
                     switch_frames=tuple(switch_frames))
