"""rtpose.kalman: filtering and forward prediction of body-part tracks (deterministic, synthetic time)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from rtpose.errors import ConfigError
from rtpose.kalman import KalmanInputError, KalmanPredictor, warmup

FRAME_NS = 33_333_333  # 30 fps
AHEAD_NS = 33_000_000  # predict one frame ahead (typical closed-loop latency)


@pytest.fixture(scope="module", autouse=True)
def _compiled():
    warmup()


def _pose(xy, likelihood=1.0):
    xy = np.asarray(xy, np.float64).reshape(-1, 2)
    pose = np.empty((len(xy), 3))
    pose[:, :2] = xy
    pose[:, 2] = likelihood
    return pose


def _run(kf, times_ns, poses, ahead_ns=AHEAD_NS):
    """Feed every frame; return filtered (at t) and predicted (at t + ahead) positions, (T, K, 2)."""
    T, K, _ = poses.shape
    filt = np.empty((T, K, 3))
    pred = np.empty((T, K, 3))
    for i in range(T):
        kf.update(int(times_ns[i]), poses[i])
        kf.predict(int(times_ns[i]), filt[i])
        kf.predict(int(times_ns[i]) + ahead_ns, pred[i])
    return filt[..., :2], pred[..., :2]


def _rms(err):
    return float(np.sqrt(np.mean(np.sum(err**2, axis=-1))))


def test_exact_constant_velocity_track_is_predicted_ahead_almost_exactly():
    times = np.arange(120) * FRAME_NS + 5_000_000_000
    v = np.array([[140.0, -65.0], [-30.0, 12.5]])  # px/s, two parts
    x0 = np.array([[100.0, 300.0], [420.0, 80.0]])

    def truth(t_ns):
        return x0 + v * (t_ns - times[0]) * 1e-9

    poses = np.stack([_pose(truth(t)) for t in times])
    for model in ("cv", "ca"):
        kf = KalmanPredictor(2, model=model, process_noise=1.0, measurement_noise_px=0.5)
        _, pred = _run(kf, times, poses)
        err = np.abs(pred - np.stack([truth(t + AHEAD_NS) for t in times]))
        assert err[:3].max() > 1.0, "not converged at the start: the test can tell"
        assert err[-30:].max() < 1e-3, model
        # far ahead too
        out = np.empty((2, 3))
        kf.predict(int(times[-1]) + 500_000_000, out)
        assert np.abs(out[:, :2] - truth(times[-1] + 500_000_000)).max() < 1e-2


def test_transition_and_process_noise_matrices():
    from rtpose.kalman import _transition

    dt, q = 0.04, 7.0
    for n, F_exp, Q_exp in [
        (2, [[1, dt], [0, 1]], [[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]]),
        (3, [[1, dt, dt**2 / 2], [0, 1, dt], [0, 0, 1]],
         [[dt**5 / 20, dt**4 / 8, dt**3 / 6], [dt**4 / 8, dt**3 / 3, dt**2 / 2], [dt**3 / 6, dt**2 / 2, dt]]),
    ]:
        F, Q = np.empty((n, n)), np.empty((n, n))
        _transition(dt, q, F, Q, True)
        assert np.allclose(F, F_exp, rtol=1e-14, atol=0)
        assert np.allclose(Q, q * np.array(Q_exp), rtol=1e-14, atol=0)
        _transition(0.0, q, F, Q, True)  # dt = 0: identity, no noise
        assert np.array_equal(F, np.eye(n)) and not Q.any()


def test_exact_constant_acceleration_track_is_predicted_by_the_ca_model():
    times = np.arange(150) * FRAME_NS

    def truth(t_ns):
        t = t_ns * 1e-9
        return np.array([[30.0, 200.0]]) + np.array([[50.0, -20.0]]) * t + 0.5 * np.array([[120.0, 80.0]]) * t**2

    poses = np.stack([_pose(truth(t)) for t in times])
    kf = KalmanPredictor(1, model="ca", process_noise=1.0, measurement_noise_px=0.5)
    _, pred = _run(kf, times, poses)
    err = np.abs(pred - np.stack([truth(t + AHEAD_NS) for t in times]))
    assert err[-30:].max() < 1e-3


def test_noisy_constant_velocity_track_beats_raw_and_last_pose():
    rng = np.random.default_rng(0)
    T, sigma = 300, 3.0
    times = np.arange(T) * FRAME_NS
    v = np.array([[150.0, -90.0]])
    truth = np.array([[200.0, 300.0]]) + v * (times * 1e-9)[:, None, None]
    meas = truth + rng.normal(0, sigma, truth.shape)
    poses = np.concatenate([meas, np.ones((T, 1, 1))], axis=-1)
    kf = KalmanPredictor(1, model="cv", process_noise=50.0, measurement_noise_px=sigma)
    filt, pred = _run(kf, times, poses)
    truth_ahead = np.array([[200.0, 300.0]]) + v * ((times + AHEAD_NS) * 1e-9)[:, None, None]
    s = slice(30, None)  # after convergence
    raw = _rms(meas[s] - truth[s])
    last_pose = _rms(meas[s] - truth_ahead[s])
    assert _rms(filt[s] - truth[s]) < 0.5 * raw
    assert _rms(pred[s] - truth_ahead[s]) < 0.5 * raw
    assert _rms(pred[s] - truth_ahead[s]) < 0.4 * last_pose


def _labels_as_waypoints(openfield_dir):
    with open(openfield_dir / "labeled" / "CollectedData_Pranav.csv", newline="") as fh:
        rows = list(csv.reader(fh))[3:]
    return np.array([[float(v) for v in r[1:]] for r in rows]).reshape(len(rows), 4, 2)


def _catmull_rom(points, seg_frames):
    """Smooth C1 path through `points` (N, K, 2), `seg_frames` samples per segment."""
    p = np.concatenate([points[:1], points, points[-1:]])
    out = []
    for i in range(1, len(p) - 2):
        for u in np.arange(seg_frames) / seg_frames:
            p0, p1, p2, p3 = p[i - 1], p[i], p[i + 1], p[i + 2]
            out.append(0.5 * (2 * p1 + (-p0 + p2) * u + (2 * p0 - 5 * p1 + 4 * p2 - p3) * u**2
                              + (-p0 + 3 * p1 - 3 * p2 + p3) * u**3))
    return np.array(out)


def test_real_label_trajectory_with_dropouts(openfield_dir):
    """All 4 parts move smoothly through their human-labelled positions, one every 8 frames
    (median speed ~100 px/s, up to ~450 px/s: a walking mouse); noisy decodes with random
    low-likelihood garbage and a 1 s occlusion of the snout."""
    rng = np.random.default_rng(42)
    waypoints = _labels_as_waypoints(openfield_dir)[:40]
    truth = _catmull_rom(waypoints, 8)  # (T, 4, 2) at 30 fps
    T = len(truth)
    times = np.arange(T, dtype=np.int64) * FRAME_NS + 10**12
    meas = truth + rng.normal(0, 2.0, truth.shape)
    like = rng.uniform(0.6, 1.0, (T, 4))
    drop = rng.random((T, 4)) < 0.1
    like[drop] = rng.uniform(0, 0.3, drop.sum())
    meas[drop] += rng.normal(0, 80, (drop.sum(), 2))  # low-likelihood decodes are garbage
    occl = slice(200, 230)
    like[occl, 0] = 0.05
    poses = np.concatenate([meas, like[..., None]], axis=-1)

    kf = KalmanPredictor(4, model="cv", measurement_noise_px=2.0, max_gap_s=0.5)
    pred = np.empty((T, 4, 3))
    for i in range(T):
        kf.update(int(times[i]), poses[i])
        kf.predict(int(times[i]) + FRAME_NS, pred[i])  # one frame ahead
    assert np.array_equal(pred[..., 2], like), "likelihood column is the last measured likelihood"
    truth_ahead = np.concatenate([truth[1:], truth[-1:]])
    ok = np.isfinite(pred[..., 0])
    assert not ok[occl.start + 16:occl.stop, 0].any(), "snout lost after 0.5 s without a valid decode"
    assert ok[30:, 1:].all()
    # baseline: hold the last pose with likelihood >= 0.5
    held = meas.copy()
    for i in range(1, T):
        held[i][like[i] < 0.5] = held[i - 1][like[i] < 0.5]
    s = np.zeros((T, 4), bool)
    s[30:-1] = True
    s &= ok
    kalman_err = _rms(pred[..., :2][s] - truth_ahead[s])
    held_err = _rms(held[s] - truth_ahead[s])
    assert kalman_err < 0.8 * held_err, (kalman_err, held_err)


def test_constant_acceleration_model_tracks_acceleration_better():
    rng = np.random.default_rng(3)
    T = 150
    times = np.arange(T) * FRAME_NS
    a = np.array([300.0, -200.0])  # px/s^2

    def truth(t_ns):
        t = t_ns * 1e-9
        return np.array([50.0, 400.0]) + np.array([20.0, 10.0]) * t + 0.5 * a * t**2

    meas = np.stack([truth(t) for t in times])[:, None, :] + rng.normal(0, 1.0, (T, 1, 2))
    poses = np.concatenate([meas, np.ones((T, 1, 1))], axis=-1)
    ahead = 100_000_000
    target = np.stack([truth(t + ahead) for t in times])[:, None, :]
    errs = {}
    # CV at its best process noise over four decades vs CA with an untuned one
    for model, q in [("cv", q) for q in (1e2, 1e3, 1e4, 1e5, 1e6)] + [("ca", 1e3)]:
        _, pred = _run(KalmanPredictor(1, model=model, process_noise=q, measurement_noise_px=1.0), times, poses, ahead)
        errs[model, q] = _rms(pred[60:] - target[60:])
    best_cv = min(e for (m, _), e in errs.items() if m == "cv")
    assert errs["ca", 1e3] < 0.5 * best_cv, errs


def test_low_likelihood_measurements_are_skipped():
    times = np.arange(20) * FRAME_NS
    kf_a = KalmanPredictor(2, min_likelihood=0.5)
    kf_b = KalmanPredictor(2, min_likelihood=0.5)
    for i, t in enumerate(times):
        pose = _pose([[10.0 + i, 20.0], [30.0, 40.0 - 2 * i]], 0.9)
        pose_b = pose.copy()
        if i in (8, 9, 10):
            pose[0] = [900.0, -500.0, 0.2]  # outlier with low likelihood
            pose_b[0] = [-7.0, 3.0, 0.2]  # a different outlier: must make no difference
        if i == 12:
            pose[1] = [np.nan, 40.0, 0.99]  # non-finite position: skipped whatever its likelihood
            pose_b[1] = [np.inf, 5.0, 0.99]
        kf_a.update(int(t), pose)
        kf_b.update(int(t), pose_b)
        out_a, out_b = np.empty((2, 3)), np.empty((2, 3))
        kf_a.predict(int(t) + AHEAD_NS, out_a)
        kf_b.predict(int(t) + AHEAD_NS, out_b)
        assert np.array_equal(out_a, out_b)
        if i in (8, 9, 10):
            assert out_a[0, 2] == 0.2, "likelihood column copies the last measured likelihood"
            assert abs(out_a[0, 0] - (10 + i)) < 3.0, "the skipped part only advanced"
    # a threshold exactly at the likelihood fuses it
    kf = KalmanPredictor(1, min_likelihood=0.5)
    kf.update(0, _pose([[1.0, 2.0]], 0.5))
    assert kf.tracking.all()


def test_gap_longer_than_max_gap_resets_the_part():
    kf = KalmanPredictor(2, max_gap_s=0.5)
    out = np.empty((2, 3))
    t = 0
    for i in range(30):  # both parts moving at +300 px/s in x
        kf.update(t, _pose([[10.0 * i, 0.0], [10.0 * i, 50.0]], 0.9))
        t += FRAME_NS
    # part 0 disappears; part 1 stays
    last = 10.0 * 29
    for i in range(15):  # 0.5 s of invalid decodes: within the gap, still extrapolated
        kf.update(t, _pose([[0.0, 0.0], [10.0 * (30 + i), 50.0]], [0.1, 0.9]))
        t += FRAME_NS
    kf.predict(t, out)
    assert kf.tracking.all() and out[0, 0] > last + 100  # still moving on at ~300 px/s
    kf.update(t, _pose([[0.0, 0.0], [10.0 * 45, 50.0]], [0.1, 0.9]))  # now 0.53 s without a valid decode
    assert list(kf.tracking) == [False, True]
    kf.predict(t + AHEAD_NS, out)
    assert np.isnan(out[0, :2]).all() and out[0, 2] == 0.1 and np.isfinite(out[1, :2]).all()
    # the next valid measurement re-initialises it: position = measurement, velocity zero
    t += FRAME_NS
    kf.update(t, _pose([[123.0, 456.0], [10.0 * 46, 50.0]], 0.95))
    for ahead in (0, AHEAD_NS, 10**9):
        kf.predict(t + ahead, out)
        assert out[0, 0] == 123.0 and out[0, 1] == 456.0 and out[0, 2] == 0.95
    # ... with a fresh covariance, the same as a brand-new filter's
    fresh = KalmanPredictor(2, max_gap_s=0.5)
    fresh.update(t, _pose([[123.0, 456.0], [0.0, 0.0]], [0.95, 0.0]))
    assert np.array_equal(kf._P[0], fresh._P[0]) and np.array_equal(kf._x[0], fresh._x[0])
    # a valid measurement after a long gap re-initialises directly, without an invalid one between
    kf2 = KalmanPredictor(1, max_gap_s=0.5)
    kf2.update(0, _pose([[0.0, 0.0]]))
    kf2.update(FRAME_NS, _pose([[10.0, 0.0]]))
    kf2.update(FRAME_NS + 600_000_000, _pose([[500.0, 5.0]]))
    kf2.predict(FRAME_NS + 700_000_000, out[:1])
    assert out[0, 0] == 500.0 and out[0, 1] == 5.0


def test_predict_does_not_mutate_state():
    rng = np.random.default_rng(1)
    kf = KalmanPredictor(3, model="ca")
    twin = KalmanPredictor(3, model="ca")
    for i in range(40):
        pose = _pose(rng.normal(100, 5, (3, 2)), rng.uniform(0, 1, 3))
        kf.update(i * FRAME_NS, pose)
        twin.update(i * FRAME_NS, pose)
        snapshot = [a.copy() for a in (kf._x, kf._P, kf._live, kf._t_valid_ns, kf._like)]
        a, b = np.empty((3, 3)), np.empty((3, 3))
        kf.predict(i * FRAME_NS + 50_000_000, a)
        kf.predict(i * FRAME_NS + 7_000_000_000, np.empty((3, 3)))
        kf.predict(i * FRAME_NS + 50_000_000, b)
        assert np.array_equal(a, b, equal_nan=True)
        for before, after in zip(snapshot, (kf._x, kf._P, kf._live, kf._t_valid_ns, kf._like)):
            assert np.array_equal(before, after)
        assert kf.t_ns == i * FRAME_NS
    c = np.empty((3, 3))
    twin.predict(39 * FRAME_NS + 50_000_000, c)
    assert np.array_equal(a, c, equal_nan=True)


def test_timestamps_must_not_go_back():
    kf = KalmanPredictor(1)
    out = np.empty((1, 3))
    kf.update(1_000, _pose([[1.0, 1.0]]))
    kf.update(1_000, _pose([[3.0, 1.0]]))  # equal timestamp: dt = 0, fused again
    kf.predict(1_000, out)
    assert 1.0 < out[0, 0] < 3.0
    with pytest.raises(KalmanInputError, match="earlier") as err:
        kf.update(999, _pose([[1.0, 1.0]]))
    assert isinstance(err.value, ValueError)
    with pytest.raises(KalmanInputError, match="earlier"):
        kf.predict(999, out)
    assert kf.t_ns == 1_000
    kf.reset()
    assert kf.t_ns is None
    kf.update(5, _pose([[7.0, 8.0]], 0.7))  # after reset, any time
    kf.predict(5, out)
    assert np.array_equal(out, [[7.0, 8.0, 0.7]])


def test_never_seen_and_reset_parts():
    kf = KalmanPredictor(2)
    out = np.full((2, 3), 5.0)
    kf.predict(123, out)  # before any update
    assert np.isnan(out[:, :2]).all() and (out[:, 2] == 0.0).all()
    kf.update(0, _pose([[1.0, 2.0], [3.0, 4.0]], [0.9, 0.2]))
    kf.predict(FRAME_NS, out)
    assert np.array_equal(out[0], [1.0, 2.0, 0.9])
    assert np.isnan(out[1, :2]).all() and out[1, 2] == 0.2
    kf.reset()
    kf.predict(0, out)
    assert np.isnan(out[:, :2]).all() and (out[:, 2] == 0.0).all() and not kf.tracking.any()


def test_forgotten_parts_restart_from_their_next_measurement():
    """forget(): an animal slot taken by another animal starts afresh (no velocity carried over); the
    other parts keep their tracks."""
    kf = KalmanPredictor(4)
    for i in range(5):  # every part moves +10 px a frame in x
        kf.update(i * FRAME_NS, _pose([[10.0 * i, 0.0]] * 4))
    kf.forget(2, 4)
    assert kf.tracking.tolist() == [True, True, False, False]
    out = np.zeros((4, 3))
    kf.predict(5 * FRAME_NS, out)
    assert np.isnan(out[2:, :2]).all() and (out[2:, 2] == 0.0).all() and out[0, 0] == pytest.approx(50.0, abs=0.5)
    kf.update(5 * FRAME_NS, _pose([[50.0, 0.0]] * 2 + [[300.0, 100.0]] * 2))  # the newcomer
    kf.predict(6 * FRAME_NS, out)
    assert out[2, 0] == 300.0 and out[2, 1] == 100.0  # re-initialised: position, velocity zero
    assert out[0, 0] == pytest.approx(60.0, abs=0.5)
    with pytest.raises(IndexError):
        kf.forget(3, 5)


def test_vectorised_equals_independent_single_part_filters():
    rng = np.random.default_rng(9)
    K, T = 5, 200
    times = np.cumsum(rng.integers(20_000_000, 45_000_000, T))  # jittery frame intervals
    times[50] = times[49]  # a repeated timestamp
    poses = np.concatenate([rng.normal(0, 50, (T, K, 2)).cumsum(axis=0) * 0.1,
                            rng.uniform(0, 1, (T, K, 1))], axis=-1)
    poses[100:125, 2, 2] = 0.0  # part 2 lost long enough to be reset
    for model in ("cv", "ca"):
        opts = dict(model=model, process_noise=3e4, measurement_noise_px=1.5, min_likelihood=0.3, max_gap_s=0.4)
        kf = KalmanPredictor(K, **opts)
        singles = [KalmanPredictor(1, **opts) for _ in range(K)]
        out, one = np.empty((K, 3)), np.empty((1, 3))
        for i in range(T):
            kf.update(int(times[i]), poses[i])
            kf.predict(int(times[i]) + AHEAD_NS, out)
            for k in range(K):
                singles[k].update(int(times[i]), np.ascontiguousarray(poses[i, k:k + 1]))
                singles[k].predict(int(times[i]) + AHEAD_NS, one)
                assert np.array_equal(out[k], one[0], equal_nan=True)
            if i == 124:
                assert not kf.tracking[2], "the test covers a reset"


def test_rejects_bad_arguments():
    for kwargs in (dict(model="kalman"), dict(process_noise=-1.0), dict(measurement_noise_px=0.0),
                   dict(max_gap_s=-0.1), dict(min_likelihood=float("nan"))):
        with pytest.raises(ConfigError):
            KalmanPredictor(2, **kwargs)
    with pytest.raises(ConfigError):
        KalmanPredictor(0)
    kf = KalmanPredictor(2)
    for bad in (np.zeros((3, 3)), np.zeros((2, 3), np.float32), np.zeros((3, 2)).T, [[0, 0, 1], [0, 0, 1]]):
        with pytest.raises(KalmanInputError):
            kf.update(0, bad)
    with pytest.raises(KalmanInputError):
        kf.update(1.5, np.zeros((2, 3)))
    with pytest.raises(KalmanInputError):
        kf.predict(0, np.zeros((2, 2)))
    assert kf.t_ns is None


def test_update_and_predict_allocate_no_buffers():
    import tracemalloc

    K = 500  # 12 KB per pose: any per-call copy would show
    kf = KalmanPredictor(K, model="ca")
    pose = _pose(np.arange(2 * K, dtype=np.float64), 0.9)
    out = np.empty((K, 3))
    kf.update(0, pose)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        for i in range(1, 50):
            kf.update(i * FRAME_NS, pose)
            kf.predict(i * FRAME_NS + AHEAD_NS, out)
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - base < 4096 and current - base < 1024
