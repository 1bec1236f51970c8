"""Smoke tests of the latency_tests/ scripts' building blocks: they load, their fakes fit the
pipeline, and their scoring arithmetic is right. No timing is asserted."""

from __future__ import annotations

import numpy as np
import pytest

from rtpose.benchmark import latency_suite, report


@pytest.fixture(scope="module")
def mods():
    return {name: latency_suite.load(name) for name in latency_suite.TESTS + latency_suite.OPTIONAL}


def test_every_latency_test_loads_and_has_run_main_and_title(mods):
    assert set(mods) == set(latency_suite.TESTS + latency_suite.OPTIONAL)
    for name, mod in mods.items():
        assert callable(mod.run) and callable(mod.main), name
        assert isinstance(mod.TITLE, str) and mod.TITLE, name
        assert mod.__doc__ and "latency_tests/" in mod.__doc__, name  # says how to run it alone


def test_unknown_latency_test_is_a_config_error():
    from rtpose.errors import ConfigError

    with pytest.raises(ConfigError, match="no latency test"):
        latency_suite.load("no_such_test")


def test_zero_cost_model_runs_in_the_real_pipeline_and_decodes_its_peaks(mods):
    from _common import ZeroCostModel

    from rtpose.benchmark.replay import ReplaySource
    from rtpose.benchmark.sweep import CopySink
    from rtpose.pipeline import Pipeline, PipelineConfig

    model = ZeroCostModel(num_bodyparts=3, stride=8)
    sink = CopySink()
    p = Pipeline([ReplaySource(64, 48, 6, distinct=2)], model, sinks=[sink], config=PipelineConfig(live=False, batch_size=2))
    summary = p.run()
    assert summary.processed == 6 and sink.frames == 6
    centres = np.arange(3) * 8 + 4.0  # part k peaks at cell (k, k): x = y = k*stride + stride/2
    np.testing.assert_array_equal(sink._pose[0, :, 0], centres)
    np.testing.assert_array_equal(sink._pose[0, :, 1], centres)
    np.testing.assert_allclose(sink._pose[0, :, 2], 0.9, rtol=1e-6)


def test_prediction_scoring_on_constant_velocity_motion(mods):
    pred = mods["prediction"]
    fps, n = 30.0, 120
    speed_px_per_frame = np.array([3.0, 0.0])
    poses = np.zeros((n, 2, 3))
    poses[:, 0, :2] = np.arange(n)[:, None] * speed_px_per_frame + 100
    poses[:, 1, :2] = 50.0  # a still body part
    poses[..., 2] = 0.9
    poses[50, 1, 2] = 0.1  # low likelihood: not scored
    kal = pred.kalman_predictions(poses, fps, model="cv", process_noise=1e4, measurement_noise_px=1.0)
    s = pred.score(poses, fps, kal, slice(60, n))
    for label, ahead in pred.HORIZONS:
        r = s[label]
        # naive error: 3 px per frame ahead for the moving part, 0 for the still one -> mean 1.5*ahead
        assert r["naive_mean"] == pytest.approx(1.5 * ahead)
        assert r["kalman_mean"] < 0.1 * r["naive_mean"]  # a settled CV filter extrapolates exactly
        assert r["reduction_mean"] > 0.9
    xy, valid = pred.targets(poses, 0.5)
    np.testing.assert_allclose(xy[10, 0], poses[10, 0, :2] + [1.5, 0.0])  # midpoint of frames 10 and 11
    assert not valid[49, 1] and not valid[50, 1] and valid[51, 1] and not valid[n - 1].any()


def test_dlc_live_comparison_arithmetic(mods):
    dlc = mods["dlc_live_side_by_side"]
    n, k = 10, 2
    poses = np.zeros((n, k, 3))
    poses[..., 2] = 0.8
    other = poses.copy()
    other[3, 1, 0] += 0.03  # a tiny difference
    other[7, 0, 1] += 8.0  # a different cell, where another cell scored as high as the maximum
    ambiguous = np.zeros((n, k), bool)
    ambiguous[7, 0] = True
    a = {"poses": poses, "times_ns": np.full(n, 10_000_000), "total_ns": n * 10_000_000, "versions": ["x"]}
    batched = other.copy()
    batched[8:] = np.nan  # the last frames made no whole batch
    batched[2, 1, 1] += 5.0  # batching moved one clear keypoint
    b = {"poses": other, "batch_poses": batched, "ambiguous": ambiguous, "times_ns": np.full(n, 4_000_000),
         "total_ns": n * 4_000_000, "batch_fps": 300.0, "provider": "CPUExecutionProvider", "threads": 2, "spinning": "off"}
    r = dlc.compare("m", a, b, "64x48")
    assert r["ratio_p50"] == pytest.approx(0.4) and r["dlclive_fps"] == pytest.approx(100)
    assert r["rtpose_fps"] == pytest.approx(250)
    assert r["px_max"] == pytest.approx(8.0) and r["px_max_unambiguous"] == pytest.approx(0.03)
    assert r["ambiguous_fraction"] == pytest.approx(0.05)
    assert r["batch_px_max_unambiguous"] == pytest.approx(5.0) and not r["batch_equals_single"]
    b["batch_poses"] = np.where(np.isnan(batched), np.nan, other)
    assert dlc.compare("m", a, b, "64x48")["batch_equals_single"]


def test_pooling_two_runs_of_one_side(mods):
    dlc = mods["dlc_live_side_by_side"]
    poses = np.ones((3, 2, 3))
    a = {"poses": poses, "times_ns": np.array([1, 2, 3]), "total_ns": 6, "batch_fps": 10.0}
    b = {"poses": poses.copy(), "times_ns": np.array([4, 5, 6]), "total_ns": 15, "batch_fps": 20.0}
    pooled = dlc._pool(a, b)
    assert list(pooled["times_ns"]) == [1, 2, 3, 4, 5, 6] and pooled["total_ns"] == 21
    assert pooled["batch_fps"] == 15.0 and pooled["poses"] is poses
    b["poses"][0, 0, 0] = 2.0
    with pytest.raises(RuntimeError, match="different poses"):
        dlc._pool(a, b)


def test_other_load_is_measured():
    import sys

    from rtpose.benchmark.sysinfo import OtherLoad

    with OtherLoad() as load:
        sum(range(10000))
    if sys.platform.startswith("linux"):
        assert load.cores >= 0


def test_decode_speed_measures_one_shape(mods):
    r = mods["decode_speed"].measure(2, 6, 8, 3, n_calls=3)
    assert r["baseline"] in ("max_all", "max_per_channel")
    assert r["numba_over_max"] > 0 and r["numpy_over_numba"] > 0
    assert r["us"]["numba"]["n"] == 3


def test_latency_markdown_reports_skips_and_failures():
    md = report.latency_tables({
        "a": {"title": "A", "status": "skipped", "reason": "no python3.11"},
        "b": {"title": "B", "status": "failed", "reason": "RuntimeError: boom"},
        "c": {"title": "C", "status": "ok", "markdown": "| x |\n| --- |\n| 1 |", "verdict": "met"},
    })
    assert "Skipped: no python3.11" in md and "Failed: RuntimeError: boom" in md
    assert "| 1 |" in md and "**Goal:** met" in md


def test_busy_cores_are_the_scripts_own_processes_and_are_killed_by_pid(mods):
    import os

    from _common import busy_cores, load_conditions, usable_cores

    with busy_cores(1) as pids:
        assert len(pids) == 1
        os.kill(pids[0], 0)  # alive (raises if not)
        with open(f"/proc/{pids[0]}/stat") as f:
            ppid = int(f.read().rpartition(")")[2].split()[1])
        assert ppid == os.getpid()  # the loop is the script's own child (no shell in between)
    with pytest.raises(ProcessLookupError):
        os.kill(pids[0], 0)  # killed and reaped
    n = usable_cores()
    assert load_conditions() == [("idle", 0), ("1 core busy", 1), (f"all {n} cores busy", n)]
    assert load_conditions("one") == [("1 core busy", 1)]


def test_thread_settings_parse(mods):
    t = mods["threads_under_load"]
    assert t.parse_settings("2s,2,1") == [(2, True), (2, False), (1, False)]
    assert t.label(1, False) == "1 thread, spinning off"
    with pytest.raises(SystemExit, match="thread counts"):
        t.parse_settings("two")


def test_dlc_live_side_by_side_reports_every_load_condition(mods, monkeypatch, tmp_path):
    import rtpose.exporters

    dlc = mods["dlc_live_side_by_side"]
    n, k = 8, 2
    poses = np.zeros((n, k, 3))
    ran = []

    def side(times_ms, **extra):
        return {"poses": poses.copy(), "times_ns": np.full(n, int(times_ms * 1e6)), "total_ns": int(n * times_ms * 1e6),
                **extra}

    monkeypatch.setattr(dlc, "ensure_venv", lambda: tmp_path / "python")
    monkeypatch.setattr(dlc, "openfield_frames", lambda n: np.zeros((n, 48, 64, 3), np.uint8))
    monkeypatch.setattr(dlc, "model_folders", lambda tmp, only=None: [("m (fake)", tmp_path)])
    monkeypatch.setattr(rtpose.exporters, "export_model", lambda folder, out: out)
    monkeypatch.setattr(dlc, "run_dlclive", lambda *a: ran.append("dlc") or side(10.0, versions=["x"]))
    monkeypatch.setattr(dlc, "run_rtpose", lambda *a: ran.append("rt") or side(
        4.0, batch_poses=poses.copy(), ambiguous=np.zeros((n, k), bool), batch_fps=1.0, provider="CPU", threads=2,
        spinning="off"))
    result = dlc.run(quick=True, frames=n, loads="idle,one", setting_names="full,resize")
    assert ran == ["dlc", "rt", "rt", "dlc"] * 4  # A-B-B-A under each load, at each setting
    assert [(r["setting"], r["load"]) for r in result["rows"]] == [
        ("full frame", "idle"), ("full frame", "1 core busy"), ("resize 0.5", "idle"), ("resize 0.5", "1 core busy")]
    assert [r["busy_cores"] for r in result["rows"]] == [0, 1, 0, 1]
    assert result["rows"][1]["rtpose_p99_vs_idle"] == pytest.approx(1.0)
    assert "1 core busy" in result["markdown"] and "under load" in result["verdict"]
    assert "resize 0.5: 0.40" in result["verdict"]


def test_rtpose_side_at_matching_settings_runs_the_engines_framing(mods, analytic_model):
    from drivers_helpers import synthetic_frames

    dlc = mods["dlc_live_side_by_side"]
    frames = np.stack(synthetic_frames(8)[0])
    full = dlc.run_rtpose(analytic_model, frames, 1)
    for args in ({"resize": 0.5}, {"dynamic": (0.5, 10.0)}):
        got = dlc.run_rtpose(analytic_model, frames, 1, args)
        assert got["poses"].shape == full["poses"].shape and np.isnan(got["batch_poses"]).all()
        assert np.abs(got["poses"][..., :2] - full["poses"][..., :2]).max() < 2.0  # full-frame pixels
