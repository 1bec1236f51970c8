"""Kalman filtering and short-horizon prediction of body-part positions.

Closed-loop experiments act on where the animal *will be* when the output
fires, not where it was when the camera exposed the frame. This module filters
each body part's (x, y) track with a linear Kalman filter and extrapolates it
to any later time: typically ``t_capture_ns + expected latency``.

Models (per body part, x and y independent with identical dynamics):

* ``"cv"`` constant velocity, state (position, velocity). ``process_noise`` is
  the spectral density of white-noise *acceleration*, in px^2/s^3.
* ``"ca"`` constant acceleration, state (position, velocity, acceleration).
  ``process_noise`` is the spectral density of white-noise *jerk*, in px^2/s^5.

``measurement_noise_px`` is the standard deviation of a decoded position (px).
Because x and y share the model and are always measured together, they share
one covariance matrix per body part.

Rules:

* ``update(t_ns, pose)`` advances every body part to ``t_ns`` and fuses each
  part whose likelihood is ``>= min_likelihood`` (and whose x, y are finite);
  other parts only advance. Timestamps may repeat (dt = 0) but never go back.
* A part whose last fused measurement is more than ``max_gap_s`` old at an
  update is reset: it is not tracked (predictions are NaN) until its next valid
  measurement, which re-initialises it (position = measurement, velocity and
  acceleration zero, large covariance). The first measurement of a part
  initialises it the same way.
* ``predict(t_target_ns, out)`` writes x, y and a likelihood column into a
  ``(K, 3)`` array without touching the filter. x, y are NaN for parts not
  being tracked; the likelihood column is a copy of the last likelihood seen for
  the part in ``update`` (fused or not), 0.0 for a part never seen.

Pure computation: no clocks (time is an argument, integer nanoseconds), no I/O,
no threads. State lives in preallocated arrays; ``update`` and ``predict``
allocate nothing (Numba kernels). Call :func:`warmup` at start-up so the first
frame does not pay for JIT compilation. One instance per stream and thread.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .errors import ConfigError, RtposeError

__all__ = ["KalmanPredictor", "KalmanInputError", "DEFAULT_PROCESS_NOISE", "MODELS", "warmup"]

#: Model name -> state size (position, velocity[, acceleration]).
MODELS = {"cv": 2, "ca": 3}

#: Default ``process_noise`` per model: "cv" px^2/s^3 (acceleration), "ca" px^2/s^5 (jerk).
#: Starting points for a freely moving mouse at 30-100 fps; tune on recordings.
DEFAULT_PROCESS_NOISE = {"cv": 1.0e5, "ca": 1.0e7}

_FACT = np.array([1.0, 1.0, 2.0, 6.0, 24.0, 120.0])


class KalmanInputError(RtposeError, ValueError):
    """A pose or timestamp given to the Kalman predictor is invalid (wrong shape, time going back)."""


@numba.njit(cache=True, nogil=True)
def _transition(dt, q, F, Q, with_q):
    """F[i, j] = dt^(j-i)/(j-i)!; Q = q * integral of the white noise on the highest derivative."""
    n = F.shape[0]
    for i in range(n):
        for j in range(n):
            F[i, j] = dt ** (j - i) / _FACT[j - i] if j >= i else 0.0
            if with_q:
                p = 2 * n - 1 - i - j
                Q[i, j] = q * dt ** p / (p * _FACT[n - 1 - i] * _FACT[n - 1 - j])


@numba.njit(cache=True, nogil=True)
def _update_kernel(x, P, live, t_valid_ns, like, pose, t_ns, dt, q, r, min_like, max_gap_ns, p0, F, Q, T):
    K, _, n = x.shape
    _transition(dt, q, F, Q, True)
    for k in range(K):
        if live[k]:
            # predict the state: x <- F x (both axes), P <- F P F' + Q
            for a in range(2):
                for i in range(n):
                    s = 0.0
                    for j in range(i, n):
                        s += F[i, j] * x[k, a, j]
                    T[0, i] = s
                for i in range(n):
                    x[k, a, i] = T[0, i]
            for i in range(n):
                for j in range(n):
                    s = 0.0
                    for m in range(i, n):
                        s += F[i, m] * P[k, m, j]
                    T[i, j] = s
            for i in range(n):
                for j in range(i, n):
                    s = Q[i, j]
                    for m in range(j, n):
                        s += T[i, m] * F[j, m]
                    P[k, i, j] = s
                    P[k, j, i] = s
        mx = pose[k, 0]
        my = pose[k, 1]
        lk = pose[k, 2]
        like[k] = lk
        if live[k] and t_ns - t_valid_ns[k] > max_gap_ns:
            live[k] = False  # lost for too long: forget it
        if not (lk >= min_like and math.isfinite(mx) and math.isfinite(my)):
            continue
        if not live[k]:
            for i in range(n):
                x[k, 0, i] = 0.0
                x[k, 1, i] = 0.0
                for j in range(n):
                    P[k, i, j] = p0[i] if i == j else 0.0
            x[k, 0, 0] = mx
            x[k, 1, 0] = my
            live[k] = True
        else:
            # scalar measurement of position, same gain for x and y
            s = P[k, 0, 0] + r
            for i in range(n):
                T[0, i] = P[k, i, 0] / s
            ix = mx - x[k, 0, 0]
            iy = my - x[k, 1, 0]
            for i in range(n):
                x[k, 0, i] += T[0, i] * ix
                x[k, 1, i] += T[0, i] * iy
            for i in range(n):
                T[1, i] = P[k, 0, i]
            for i in range(n):
                for j in range(i, n):
                    v = P[k, i, j] - T[0, i] * T[1, j]
                    P[k, i, j] = v
                    P[k, j, i] = v
        t_valid_ns[k] = t_ns


@numba.njit(cache=True, nogil=True)
def _predict_kernel(x, live, like, dt, F, out):
    K, _, n = x.shape
    _transition(dt, 0.0, F, F, False)
    for k in range(K):
        if live[k]:
            for a in range(2):
                s = 0.0
                for j in range(n):
                    s += F[0, j] * x[k, a, j]
                out[k, a] = s
        else:
            out[k, 0] = np.nan
            out[k, 1] = np.nan
        out[k, 2] = like[k]


class KalmanPredictor:
    """Per-body-part Kalman filter (vectorised over K parts) with prediction to any later time.

    Args:
        num_bodyparts: K.
        model: ``"cv"`` (constant velocity) or ``"ca"`` (constant acceleration).
        process_noise: white-noise spectral density: px^2/s^3 (acceleration) for
            "cv", px^2/s^5 (jerk) for "ca". Default :data:`DEFAULT_PROCESS_NOISE`.
        measurement_noise_px: standard deviation of a measured x or y, in px.
        min_likelihood: measurements below this likelihood are not fused.
        max_gap_s: a part with no fused measurement for longer than this is reset.
        init_velocity_std_px_s: prior std of the velocity of a newly (re)initialised part.
        init_acceleration_std_px_s2: same for the acceleration ("ca" only).

    See the module docstring for the update/predict rules.
    """

    def __init__(self, num_bodyparts: int, *, model: str = "cv", process_noise: float | None = None,
                 measurement_noise_px: float = 2.0, min_likelihood: float = 0.5, max_gap_s: float = 0.5,
                 init_velocity_std_px_s: float = 500.0, init_acceleration_std_px_s2: float = 5000.0):
        if model not in MODELS:
            raise ConfigError(f"Kalman model {model!r} is unknown; use one of {sorted(MODELS)}")
        if process_noise is None:
            process_noise = DEFAULT_PROCESS_NOISE[model]
        checks = {
            "num_bodyparts": (num_bodyparts, num_bodyparts >= 1 and int(num_bodyparts) == num_bodyparts),
            "process_noise": (process_noise, math.isfinite(process_noise) and process_noise >= 0),
            "measurement_noise_px": (measurement_noise_px, math.isfinite(measurement_noise_px) and measurement_noise_px > 0),
            "min_likelihood": (min_likelihood, not math.isnan(min_likelihood)),
            "max_gap_s": (max_gap_s, max_gap_s >= 0),
            "init_velocity_std_px_s": (init_velocity_std_px_s, init_velocity_std_px_s >= 0),
            "init_acceleration_std_px_s2": (init_acceleration_std_px_s2, init_acceleration_std_px_s2 >= 0),
        }
        for name, (value, ok) in checks.items():
            if not ok:
                raise ConfigError(f"Kalman {name}={value!r} is invalid; see KalmanPredictor's documentation for units and ranges")
        self.num_bodyparts = int(num_bodyparts)
        self.model = model
        self.process_noise = float(process_noise)
        self.measurement_noise_px = float(measurement_noise_px)
        self.min_likelihood = float(min_likelihood)
        self.max_gap_s = float(max_gap_s)
        n = MODELS[model]
        K = self.num_bodyparts
        self._r = self.measurement_noise_px ** 2
        self._max_gap_ns = int(round(self.max_gap_s * 1e9))
        self._p0 = np.array([self._r, init_velocity_std_px_s ** 2, init_acceleration_std_px_s2 ** 2][:n])
        self._x = np.zeros((K, 2, n))
        self._P = np.zeros((K, n, n))
        self._live = np.zeros(K, np.bool_)
        self._t_valid_ns = np.zeros(K, np.int64)
        self._like = np.zeros(K)
        self._F = np.zeros((n, n))
        self._Q = np.zeros((n, n))
        self._T = np.zeros((n, n))
        self._F_pred = np.zeros((n, n))  # predict's own scratch: predict never writes shared state
        self._t_ns: int | None = None

    @property
    def t_ns(self) -> int | None:
        """Time of the last update (ns), or None before the first one."""
        return self._t_ns

    @property
    def tracking(self) -> np.ndarray:
        """Copy of the (K,) mask of parts currently tracked."""
        return self._live.copy()

    def reset(self) -> None:
        """Forget everything: every part untracked, no time, likelihoods 0."""
        self._x[:] = 0.0
        self._P[:] = 0.0
        self._live[:] = False
        self._t_valid_ns[:] = 0
        self._like[:] = 0.0
        self._t_ns = None

    def forget(self, start: int, stop: int) -> None:
        """Untrack parts ``start``..``stop - 1`` (e.g. an animal slot that another animal took): their next
        valid measurement re-initialises them, as a first one does. Allocates nothing."""
        if not 0 <= start <= stop <= self.num_bodyparts:
            raise IndexError(f"parts {start}..{stop - 1} outside 0..{self.num_bodyparts - 1}")
        self._live[start:stop] = False
        self._like[start:stop] = 0.0

    def update(self, t_ns: int, pose: np.ndarray) -> None:
        """Advance all parts to ``t_ns`` and fuse ``pose`` ((K, 3) float64 x, y, likelihood, C-contiguous)."""
        t_ns = _as_ns(t_ns, "t_ns")
        _check_pose_array("pose", pose, self.num_bodyparts, writeable=False)
        dt = self._seconds_since_update(t_ns, "update at t_ns", "timestamps must not go back "
                                        "(use one predictor per stream, or reset() it)")
        _update_kernel(self._x, self._P, self._live, self._t_valid_ns, self._like, pose, t_ns, dt,
                       self.process_noise, self._r, self.min_likelihood, self._max_gap_ns, self._p0,
                       self._F, self._Q, self._T)
        self._t_ns = t_ns

    def _seconds_since_update(self, t_ns: int, what: str, hint: str) -> float:
        if self._t_ns is None:
            return 0.0
        if t_ns < self._t_ns:
            raise KalmanInputError(f"{what}={t_ns} is earlier than the last update ({self._t_ns}); {hint}")
        return (t_ns - self._t_ns) * 1e-9

    def predict(self, t_target_ns: int, out: np.ndarray) -> np.ndarray:
        """Write the predicted (K, 3) x, y, likelihood at ``t_target_ns`` into ``out``; returns ``out``.

        ``t_target_ns`` must not be earlier than the last update. The filter is not modified.
        """
        t_target_ns = _as_ns(t_target_ns, "t_target_ns")
        _check_pose_array("out", out, self.num_bodyparts, writeable=True)
        dt = self._seconds_since_update(t_target_ns, "prediction target t_target_ns", "predict only forward in time")
        _predict_kernel(self._x, self._live, self._like, dt, self._F_pred, out)
        return out


_F64 = np.dtype(np.float64)


def _check_pose_array(name: str, arr, k: int, *, writeable: bool) -> None:
    """A (K, 3) C-contiguous aligned float64 array (writeable if it is an output), or KalmanInputError."""
    if not (isinstance(arr, np.ndarray) and arr.dtype == _F64 and arr.shape == (k, 3)
            and arr.flags.c_contiguous and arr.flags.aligned and (arr.flags.writeable or not writeable)):
        kind = "a writeable C-contiguous" if writeable else "a C-contiguous"
        raise KalmanInputError(f"{name} must be {kind} float64 array of shape ({k}, 3); got "
                               f"{getattr(arr, 'dtype', type(arr).__name__)} {getattr(arr, 'shape', '')}")


def _as_ns(t, name: str) -> int:
    if isinstance(t, bool) or not isinstance(t, (int, np.integer)):
        raise KalmanInputError(f"{name} must be an integer number of nanoseconds, got {t!r}")
    return int(t)


def warmup() -> None:
    """Compile (or load from cache) the kernels for both models."""
    pose = np.array([[1.0, 2.0, 0.9]])
    out = np.empty((1, 3))
    for model in MODELS:
        kf = KalmanPredictor(1, model=model)
        kf.update(0, pose)
        kf.update(1_000_000, pose)
        kf.predict(2_000_000, out)
