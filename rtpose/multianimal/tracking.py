"""Identity over time: keep each animal in its own slot from frame to frame.

A bottom-up multi-animal model gives, per frame, up to ``D`` animals in arbitrary order (the
assembler's order is not an identity). :class:`IdentityTracker` writes them into ``A`` identity
*slots* (row ``a`` of the multi-animal layout, :mod:`.layout`) so that the same animal stays in the
same slot, and gives every slot a *track id* (``int64``, ``-1`` for an empty slot) that changes only
when a new track starts there.

Method, per frame at ``t_ns`` (time is an argument, integer nanoseconds, never going back):

1. **Death.** A track not matched for more than ``max_lost_s`` ends: its slot becomes free (id -1).
2. **Prediction.** Every body part of every track has a constant-velocity Kalman filter (the kernels
   of :mod:`rtpose.kalman`, x and y independent, dt from the frame timestamps); it predicts the
   part's position at ``t_ns`` and the variance of that prediction. A part never seen, or not
   seen for ``max_lost_s``, has no prediction.
3. **Cost.** Track ``a`` vs detection ``d``: the mean distance (px) between predicted and detected
   keypoints over the parts the track predicts, each weighted by the inverse of its prediction's
   variance (a part unseen for a while, whose prediction drifts, counts little); a predicted part
   the detection lacks counts as ``missing_part_px`` (20 px), so that of two detections near a
   track the one showing more of the animal wins (an animal half hidden under another, showing
   one keypoint, does not take the other's slot). With no part in common, the distance between the (weighted) mean of the predicted
   and the mean of the detected keypoints: with disjoint part sets (head only, then tail only)
   this can exceed the gate and start a new track. The
   track's gate is ``gate_px + gate_growth_px_s * (time since the track was last matched)``, so a
   lost animal is looked for in a growing circle; a pair further than the gate is forbidden, and
   the cost is the distance divided by the gate (a Mahalanobis-like distance in units of the
   track's uncertainty, so a lost track with a wide gate does not take a detection from a track
   that predicts it closely).
4. **Assignment.** Optimal (minimum total cost) one-to-one matching of tracks to detections
   (:mod:`.assignment`, the Hungarian method) on a matrix padded with "unmatched" rows and columns:
   a track left unmatched costs 1 (a whole gate), so each pair inside a gate beats no match. As a
   matching cascade (as in DeepSORT): first the tracks matched in the previous frame, then those
   lost one frame longer, and so on, each group on the detections left; so a track lost longer
   (with its wider gate) never takes a detection from one seen more recently, e.g. the track of an
   animal hidden under another does not pull the visible animal's detection into its own slot.
5. **Birth.** A detection no track takes starts a new track (a new id) in the lowest free slot; if no
   slot is free it takes the slot of the track lost the longest (that track ends); if every slot's
   track was matched this frame the detection is dropped (more animals than slots;
   :attr:`IdentityTracker.dropped` counts them).
6. **Output and filter update.** Matched and new tracks' detections are copied into their slots
   (unchanged: x, y, likelihood); every other slot is NaN. A lost track keeps its id (>= 0) with
   a NaN pose until it is matched again or dies. Then each filter fuses its part (x, y finite and
   likelihood ``>= min_likelihood``) unless it is further than ``outlier_sigmas`` standard
   deviations from its prediction (an outlier: copied to the output, not fused, so one wild
   keypoint does not throw the velocity off); a new track's filters start from its first detection.

Detections are rows of a ``(D, K, 3)`` float64 array (x, y, likelihood), NaN for missing parts
(as in the layout); a row with fewer than ``min_keypoints`` valid parts is no detection.
Pure computation: no I/O, threads or clocks. All state and scratch is preallocated; ``update`` runs
one Numba kernel and allocates nothing (only the first call with more detection rows than before
grows the scratch). Call :func:`warmup` at start-up so the first frame does not pay for JIT
compilation. One instance per stream and thread.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ..errors import ConfigError, RtposeError
from ..kalman import _predict_kernel, _update_kernel
from .assignment import FORBIDDEN, AssignmentWorkspace, solve_assignment

__all__ = ["IdentityTracker", "TrackerInputError", "warmup"]


class TrackerInputError(RtposeError, ValueError):
    """Detections, outputs or a timestamp given to the tracker are invalid (wrong shape, time going back)."""


#: In the matching cascade, a detection is left to a track lost longer when that track's prediction is
#: closer than this fraction of the recently seen track's (raw distances, px). Without it, an animal
#: whose detections were missing for a few frames beside another lost its slot to the other's track,
#: which was seen a frame ago and had the detection inside its gate (measured on the analytic
#: multi-animal model in the pipeline: docs/multianimal-tracking.md). A half is far from a tie, so the
#: cascade's purpose stays: an animal hidden under another, whose lost track predicts it near the
#: visible one, does not take the visible animal's detection.
CLOSER_LOST_FRACTION = 0.5


@numba.njit(cache=True, nogil=True)
def _closer_lost_track(a, jd, t_group, t_ns, dist, done, track_id, t_seen_ns, gate_px, gate_growth_px_s):
    """Whether a live track lost longer than ``a``'s group predicts detection ``jd`` much closer than ``a``."""
    raw_a = dist[a, jd] * (gate_px + gate_growth_px_s * (t_ns - t_seen_ns[a]) * 1e-9)
    for b in range(track_id.shape[0]):
        if b == a or done[b] or track_id[b] < 0 or t_seen_ns[b] >= t_group or dist[b, jd] >= FORBIDDEN:
            continue
        raw_b = dist[b, jd] * (gate_px + gate_growth_px_s * (t_ns - t_seen_ns[b]) * 1e-9)
        if raw_b < CLOSER_LOST_FRACTION * raw_a:
            return True
    return False


# Numba's cache keys on this file only: after editing rtpose/kalman.py's or .assignment's kernels,
# clear __pycache__ (or touch this file) so this kernel is recompiled with them.
@numba.njit(cache=True, nogil=True)
def _track_kernel(det, t_ns, dt, out, out_ids,
                  track_id, t_seen_ns, next_id, dropped,
                  x, P, live, t_valid_ns, like, pred, pvar, fuse, F, Q, T, F_pred, p0,
                  q, r, min_like, max_gap_ns, max_lost_ns, gate_px, gate_growth_px_s, min_keypoints, outlier_sigmas, missing_part_px,
                  det_rows, dist, cost, row_to_col, matched_det, slot_of_det, taken, done,
                  u, v, minv, p, way, used):
    A, K, _ = out.shape
    # 1. death
    for a in range(A):
        if track_id[a] >= 0 and t_ns - t_seen_ns[a] > max_lost_ns:
            track_id[a] = -1
            for k in range(K):
                live[a * K + k] = False
    # 2. prediction of every part at t_ns, and its variance (constant velocity: P00 + 2dt P01 + dt² P11 + q dt³/3)
    _predict_kernel(x, live, like, dt, F_pred, pred)
    for i in range(A * K):
        pvar[i] = P[i, 0, 0] + 2.0 * dt * P[i, 0, 1] + dt * dt * P[i, 1, 1] + q * dt * dt * dt / 3.0
    # valid detection rows
    D = 0
    for d in range(det.shape[0]):
        n_ok = 0
        for k in range(K):
            if math.isfinite(det[d, k, 0]) and math.isfinite(det[d, k, 1]) and det[d, k, 2] >= min_like:
                n_ok += 1
        if n_ok >= min_keypoints and n_ok > 0:
            det_rows[D] = d
            D += 1
    # 3. distance (in gates) of every track to every detection: dist[a, jd], FORBIDDEN outside the gate
    for a in range(A):
        gate = gate_px + gate_growth_px_s * (t_ns - t_seen_ns[a]) * 1e-9
        for jd in range(D):
            dist[a, jd] = FORBIDDEN
        if track_id[a] < 0:
            continue
        for jd in range(D):
            d = det_rows[jd]
            s = 0.0
            w_common = 0.0
            w_missing = 0.0
            px = 0.0
            py = 0.0
            w_pred = 0.0
            dx = 0.0
            dy = 0.0
            n_det = 0
            for k in range(K):
                xp = pred[a * K + k, 0]
                yp = pred[a * K + k, 1]
                xd = det[d, k, 0]
                yd = det[d, k, 1]
                p_ok = math.isfinite(xp) and math.isfinite(yp)
                d_ok = math.isfinite(xd) and math.isfinite(yd) and det[d, k, 2] >= min_like
                w = 1.0 / (pvar[a * K + k] + r) if p_ok else 0.0
                if p_ok:
                    px += w * xp
                    py += w * yp
                    w_pred += w
                if d_ok:
                    dx += xd
                    dy += yd
                    n_det += 1
                if p_ok and d_ok:
                    s += w * math.sqrt((xp - xd) ** 2 + (yp - yd) ** 2)
                    w_common += w
                elif p_ok:
                    w_missing += w
            if w_common > 0.0:
                c = (s + w_missing * missing_part_px) / (w_common + w_missing)
            elif w_pred > 0.0 and n_det > 0:
                c = math.sqrt((px / w_pred - dx / n_det) ** 2 + (py / w_pred - dy / n_det) ** 2)
            else:
                continue
            if c <= gate:
                dist[a, jd] = c / gate
    # 4. assignment, as a matching cascade: the tracks seen most recently first, then those lost
    #    one frame longer, and so on, each group on the detections still free
    for jd in range(D):
        matched_det[jd] = False
        slot_of_det[jd] = -1
    for a in range(A):
        taken[a] = False
        done[a] = track_id[a] < 0
    n = A + D
    while True:
        newest = -1
        for a in range(A):
            if not done[a] and (newest < 0 or t_seen_ns[a] > t_seen_ns[newest]):
                newest = a
        if newest < 0:
            break
        t_group = t_seen_ns[newest]
        # (A + D) x (D + A): tracks x detections | tracks unmatched; dummies x detections | dummies x dummies
        for a in range(A):
            in_group = not done[a] and t_seen_ns[a] == t_group
            for jd in range(D):
                cost[a, jd] = dist[a, jd] if in_group and not matched_det[jd] else FORBIDDEN
                if cost[a, jd] < FORBIDDEN and _closer_lost_track(a, jd, t_group, t_ns, dist, done, track_id,
                                                                   t_seen_ns, gate_px, gate_growth_px_s):
                    cost[a, jd] = FORBIDDEN  # left to the track lost longer that predicts it far better
            for j in range(A):
                cost[a, D + j] = FORBIDDEN
            cost[a, D + a] = 1.0 if in_group else 0.0
            if in_group:
                done[a] = True
        for jd in range(D):
            for j in range(n):
                cost[A + jd, j] = FORBIDDEN
            cost[A + jd, jd] = 0.0
            for a in range(A):
                cost[A + jd, D + a] = 0.0
        csub = cost[:n, :n]
        solve_assignment(csub, row_to_col, u, v, minv, p, way, used)
        for a in range(A):
            j = row_to_col[a]
            if j < D and cost[a, j] < FORBIDDEN:
                matched_det[j] = True
                slot_of_det[j] = a
                taken[a] = True
    for a in range(A):
        if taken[a]:
            t_seen_ns[a] = t_ns
    # 5. birth
    for jd in range(D):
        if matched_det[jd]:
            continue
        slot = -1
        for a in range(A):
            if track_id[a] < 0 and not taken[a]:
                slot = a
                break
        if slot < 0:  # no free slot: the track lost the longest gives way
            for a in range(A):
                if not taken[a] and (slot < 0 or t_seen_ns[a] < t_seen_ns[slot]):
                    slot = a
        if slot < 0:
            dropped[0] += 1
            continue
        track_id[slot] = next_id[0]
        next_id[0] += 1
        t_seen_ns[slot] = t_ns
        taken[slot] = True
        slot_of_det[jd] = slot
        for k in range(K):
            live[slot * K + k] = False
    # 6. output and filter update
    for a in range(A):
        out_ids[a] = track_id[a]
        for k in range(K):
            for c3 in range(3):
                out[a, k, c3] = np.nan
    for jd in range(D):
        a = slot_of_det[jd]
        if a >= 0:
            d = det_rows[jd]
            for k in range(K):
                for c3 in range(3):
                    out[a, k, c3] = det[d, k, c3]
    # a continuing track's part further than 4 sigma from its prediction is an outlier: not fused
    for a in range(A):
        for k in range(K):
            i = a * K + k
            for c3 in range(3):
                fuse[i, c3] = out[a, k, c3]
            if live[i] and math.isfinite(fuse[i, 0]):
                e2 = (fuse[i, 0] - pred[i, 0]) ** 2 + (fuse[i, 1] - pred[i, 1]) ** 2
                if e2 > outlier_sigmas * outlier_sigmas * (pvar[i] + r):
                    fuse[i, 0] = np.nan
                    fuse[i, 1] = np.nan
                    fuse[i, 2] = np.nan
    _update_kernel(x, P, live, t_valid_ns, like, fuse, t_ns, dt, q, r, min_like, max_gap_ns, p0, F, Q, T)
    return D


class IdentityTracker:
    """Keeps up to ``max_animals`` animals of ``num_bodyparts`` parts each in stable identity slots.

    Args:
        max_animals: A, the number of identity slots (DeepLabCut's ``individuals``).
        num_bodyparts: K, body parts per animal.
        gate_px: largest mean keypoint distance (px) between a track's prediction and a detection
            for the detection to continue the track (one frame after the last match).
        gate_growth_px_s: the gate widens by this much per second a track goes unmatched.
        max_lost_s: a track unmatched for longer than this ends and frees its slot.
        min_keypoints: a detection needs at least this many valid keypoints.
        min_likelihood: keypoints below this likelihood count as missing (for cost and filters).
        process_noise: Kalman white-noise acceleration density, px^2/s^3 (constant velocity).
            Default 1e4, ten times below :class:`~rtpose.kalman.KalmanPredictor`'s: a steadier
            velocity to coast through occlusions (fewer swaps on the synthetic crossings).
        measurement_noise_px: standard deviation of a detected x or y, px.
        init_velocity_std_px_s: prior std of a new track's velocity.
        outlier_sigmas: a continuing track's keypoint further than this many standard deviations
            from its prediction is not fused into the filter.
        missing_part_px: in the cost, a part the track predicts but the detection lacks counts as
            this distance (px): of two detections near a track, the one showing more of it wins.

    See the module docstring for the rules. :meth:`update` per frame.
    """

    def __init__(self, max_animals: int, num_bodyparts: int, *, gate_px: float = 50.0,
                 gate_growth_px_s: float = 150.0, max_lost_s: float = 1.0, min_keypoints: int = 1,
                 min_likelihood: float = 0.0, process_noise: float = 1.0e4,
                 measurement_noise_px: float = 4.0, init_velocity_std_px_s: float = 500.0,
                 outlier_sigmas: float = 4.0, missing_part_px: float = 20.0):
        checks = {
            "max_animals": (max_animals, int(max_animals) == max_animals and max_animals >= 1),
            "num_bodyparts": (num_bodyparts, int(num_bodyparts) == num_bodyparts and num_bodyparts >= 1),
            "gate_px": (gate_px, math.isfinite(gate_px) and gate_px > 0),
            "gate_growth_px_s": (gate_growth_px_s, math.isfinite(gate_growth_px_s) and gate_growth_px_s >= 0),
            "max_lost_s": (max_lost_s, math.isfinite(max_lost_s) and max_lost_s >= 0),
            "min_keypoints": (min_keypoints, int(min_keypoints) == min_keypoints and 1 <= min_keypoints <= num_bodyparts),
            "min_likelihood": (min_likelihood, not math.isnan(min_likelihood)),
            "process_noise": (process_noise, math.isfinite(process_noise) and process_noise >= 0),
            "measurement_noise_px": (measurement_noise_px, math.isfinite(measurement_noise_px) and measurement_noise_px > 0),
            "init_velocity_std_px_s": (init_velocity_std_px_s, math.isfinite(init_velocity_std_px_s) and init_velocity_std_px_s >= 0),
            "outlier_sigmas": (outlier_sigmas, outlier_sigmas > 0),
            "missing_part_px": (missing_part_px, math.isfinite(missing_part_px) and missing_part_px >= 0),
        }
        for name, (value, ok) in checks.items():
            if not ok:
                raise ConfigError(f"tracker {name}={value!r} is invalid; see IdentityTracker's documentation for units and ranges")
        if gate_px >= FORBIDDEN / 10:
            raise ConfigError(f"tracker gate_px={gate_px!r} is too large; use a distance in pixels")
        self.max_animals = A = int(max_animals)
        self.num_bodyparts = K = int(num_bodyparts)
        self.gate_px = float(gate_px)
        self.gate_growth_px_s = float(gate_growth_px_s)
        self.max_lost_s = float(max_lost_s)
        self.min_keypoints = int(min_keypoints)
        self.min_likelihood = float(min_likelihood)
        self.process_noise = float(process_noise)
        self.measurement_noise_px = float(measurement_noise_px)
        self.outlier_sigmas = float(outlier_sigmas)
        self.missing_part_px = float(missing_part_px)
        self._r = self.measurement_noise_px ** 2
        self._max_lost_ns = int(round(self.max_lost_s * 1e9))
        self._p0 = np.array([self._r, float(init_velocity_std_px_s) ** 2])
        n = A * K
        self._x = np.zeros((n, 2, 2))
        self._P = np.zeros((n, 2, 2))
        self._live = np.zeros(n, np.bool_)
        self._t_valid_ns = np.zeros(n, np.int64)
        self._like = np.zeros(n)
        self._pred = np.zeros((n, 3))
        self._pvar = np.zeros(n)
        self._fuse = np.zeros((n, 3))
        self._F, self._Q, self._T, self._F_pred = (np.zeros((2, 2)) for _ in range(4))
        self._track_id = np.full(A, -1, np.int64)
        self._t_seen_ns = np.zeros(A, np.int64)
        self._next_id = np.zeros(1, np.int64)
        self._dropped = np.zeros(1, np.int64)
        self._taken = np.zeros(A, np.bool_)
        self._done = np.zeros(A, np.bool_)
        self._t_ns: int | None = None
        self._max_det = -1
        self._grow(A)

    def _grow(self, max_det: int) -> None:
        if max_det <= self._max_det:
            return
        self._max_det = max_det
        n = self.max_animals + max_det
        self._det_rows = np.zeros(max_det, np.int64)
        self._matched_det = np.zeros(max_det, np.bool_)
        self._slot_of_det = np.zeros(max_det, np.int64)
        self._cost = np.zeros((n, n))
        self._dist = np.zeros((self.max_animals, max_det))
        self._row_to_col = np.zeros(n, np.int64)
        self._ws = AssignmentWorkspace(n)

    # -- state ---------------------------------------------------------------------------------

    @property
    def t_ns(self) -> int | None:
        """Time of the last update (ns), or None before the first one."""
        return self._t_ns

    @property
    def track_ids(self) -> np.ndarray:
        """Copy of the ``(A,)`` track id per slot (-1: empty)."""
        return self._track_id.copy()

    @property
    def tracks_started(self) -> int:
        """Number of tracks started so far (the next new track's id)."""
        return int(self._next_id[0])

    @property
    def dropped(self) -> int:
        """Detections dropped because every slot's track was matched in the same frame."""
        return int(self._dropped[0])

    def reset(self) -> None:
        """Forget every track (ids restart at 0) and the time."""
        self._live[:] = False
        self._track_id[:] = -1
        self._t_seen_ns[:] = 0
        self._next_id[0] = 0
        self._dropped[0] = 0
        self._t_ns = None

    # -- per frame -----------------------------------------------------------------------------

    def update(self, t_ns: int, detections: np.ndarray, out_animals: np.ndarray, out_track_ids: np.ndarray) -> int:
        """Track one frame: ``detections`` ``(D, K, 3)`` in any order -> ``out_animals`` ``(A, K, 3)`` by slot.

        ``out_track_ids`` ``(A,)`` int64 receives each slot's track id (-1: empty). Both outputs are
        the caller's (preallocated, C-contiguous). Returns the number of valid detections.
        """
        if isinstance(t_ns, bool) or not isinstance(t_ns, (int, np.integer)):
            raise TrackerInputError(f"t_ns must be an integer number of nanoseconds, got {t_ns!r}")
        t_ns = int(t_ns)
        A, K = self.max_animals, self.num_bodyparts
        det = detections
        if not (isinstance(det, np.ndarray) and det.dtype == np.float64 and det.ndim == 3
                and det.shape[1:] == (K, 3) and det.flags.c_contiguous):
            raise TrackerInputError(f"detections must be a C-contiguous float64 array of shape (D, {K}, 3) "
                                    "(np.ascontiguousarray once into a reused buffer: another layout would "
                                    "compile the kernel again); got "
                                    f"{getattr(det, 'dtype', type(det).__name__)} {getattr(det, 'shape', '')}")
        if not (isinstance(out_animals, np.ndarray) and out_animals.dtype == np.float64
                and out_animals.shape == (A, K, 3) and out_animals.flags.c_contiguous and out_animals.flags.writeable):
            raise TrackerInputError(f"out_animals must be a writeable C-contiguous float64 array of shape ({A}, {K}, 3); "
                                    f"got {getattr(out_animals, 'dtype', '')} {getattr(out_animals, 'shape', '')}")
        if not (isinstance(out_track_ids, np.ndarray) and out_track_ids.dtype == np.int64
                and out_track_ids.shape == (A,) and out_track_ids.flags.writeable):
            raise TrackerInputError(f"out_track_ids must be a writeable int64 array of shape ({A},)")
        if self._t_ns is None:
            dt = 0.0
        elif t_ns < self._t_ns:
            raise TrackerInputError(f"t_ns={t_ns} is earlier than the last update ({self._t_ns}); "
                                    "timestamps must not go back (use one tracker per stream, or reset() it)")
        else:
            dt = (t_ns - self._t_ns) * 1e-9
        self._grow(det.shape[0])
        ws = self._ws
        n_det = _track_kernel(det, t_ns, dt, out_animals, out_track_ids,
                              self._track_id, self._t_seen_ns, self._next_id, self._dropped,
                              self._x, self._P, self._live, self._t_valid_ns, self._like, self._pred,
                              self._pvar, self._fuse, self._F, self._Q, self._T, self._F_pred, self._p0,
                              self.process_noise, self._r, self.min_likelihood, self._max_lost_ns, self._max_lost_ns,
                              self.gate_px, self.gate_growth_px_s, self.min_keypoints, self.outlier_sigmas, self.missing_part_px,
                              self._det_rows, self._dist, self._cost, self._row_to_col, self._matched_det, self._slot_of_det,
                              self._taken, self._done, ws.u, ws.v, ws.minv, ws.p, ws.way, ws.used)
        self._t_ns = t_ns
        return int(n_det)


def warmup() -> None:
    """Compile (or load from cache) the tracking kernel."""
    tr = IdentityTracker(2, 2)
    det = np.array([[[1.0, 2.0, 0.9], [3.0, 4.0, 0.9]], [[50.0, 60.0, 0.9], [np.nan, np.nan, np.nan]]])
    out = np.empty((2, 2, 3))
    ids = np.empty(2, np.int64)
    tr.update(0, det, out, ids)
    tr.update(33_000_000, det[::-1].copy(), out, ids)
