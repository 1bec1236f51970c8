"""``--threads auto``: the thread rule (pure), the load meter (injected clock and readings), switching at
batch boundaries, identical poses whatever the thread count, and the CLI."""

import json
import math

import numpy as np
import pytest

from rtpose.adaptive_threads import AdaptiveThreadsModel, LoadMeter, ThreadRule
from rtpose.cli import main
from rtpose.errors import ConfigError
from rtpose.recording import read_dlc_table


@pytest.mark.parametrize("other, current, expected", [
    (0.0, 2, 2), (0.45, 2, 2), (0.55, 2, 1), (1.0, 2, 1), (2.0, 2, 1),  # load rising: fewer threads past 0.5 core
    (0.3, 1, 1), (0.24, 1, 2), (0.0, 1, 2),  # load falling: more threads only below 0.25 core
    (float("nan"), 1, 1), (float("nan"), 2, 2),  # unknown load: keep
])
def test_two_cores(other, current, expected):
    assert ThreadRule(2).choose(other, current) == expected


def test_four_cores_give_up_one_thread_per_busy_core():
    rule = ThreadRule(4)
    assert [rule.choose(o, 4) for o in (0.0, 0.6, 1.0, 1.6, 2.6, 3.6, 8.0)] == [4, 3, 3, 2, 1, 1, 1]
    assert rule.choose(1.3, 4) == 3  # load rising: 1.3 cores busy leaves 3 threads
    assert rule.choose(1.3, 2) == 2  # falling: a third thread only once the load is below 1.25
    assert rule.choose(1.2, 2) == 3
    assert rule.counts() == (4, 3, 2, 1)


def test_many_cores_build_at_most_four_sessions_and_round_down_to_them():
    rule = ThreadRule(16)
    assert rule.counts() == (16, 15, 8, 1)
    assert [rule.choose(o, 16) for o in (0.0, 0.6, 1.6, 7.6, 8.6, 15.0)] == [16, 15, 8, 8, 1, 1]
    assert rule.choose(1.2, 8) == 15 and rule.choose(0.2, 15) == 16  # back up as the load falls
    assert rule.choose(0.3, 15) == 15  # ... only below 0.25 of the next core


def test_rule_thresholds_are_checked():
    with pytest.raises(ConfigError, match="at least one usable core"):
        ThreadRule(0)
    with pytest.raises(ConfigError, match="up_at"):
        ThreadRule(2, down_at=0.2, up_at=0.4)


class FakeClock:
    def __init__(self):
        self.t = 0

    def __call__(self):
        return self.t


def test_load_meter_reports_other_programs_per_window():
    clock = FakeClock()
    readings = iter([(100.0, 10.0), (100.9, 10.4), (102.4, 10.9)])  # (machine busy s, own s)
    meter = LoadMeter(clock, window_s=0.5, read=lambda: next(readings))
    clock.t = 400_000_000
    assert meter.poll() is None  # the window is not over: no reading taken
    clock.t = 500_000_000
    assert meter.poll() == pytest.approx((0.9 - 0.4) / 0.5)  # 1.0 core used by others
    clock.t = 1_500_000_000
    assert meter.poll() == pytest.approx((1.5 - 0.5) / 1.0)


def test_load_meter_unknown_load_is_nan():
    clock = FakeClock()
    meter = LoadMeter(clock, window_s=0.5, read=lambda: (None, 1.0))
    clock.t = 10**9
    assert math.isnan(meter.poll())


class FakeModel:
    """Records the calls a pipeline makes; ``run`` returns which session ran."""

    def __init__(self, threads):
        self.threads = threads
        self.calls = []
        self.metadata, self.path, self.provider, self.spinning = "meta", "model.onnx", "CPUExecutionProvider", False

    def prepare(self, *args, variable_size=False):
        self.calls.append(("prepare", args))

    def set_input_size(self, *args):
        self.calls.append(("set_input_size", args))

    def load_frame(self, row, frame):
        self.calls.append(("load_frame", row))

    def map_shape(self):
        return (30, 40)

    def run(self, n):
        self.calls.append(("run", n))
        return self.threads


class FakeMeter:
    def __init__(self, loads):
        self.loads = list(loads)

    def poll(self):
        return self.loads.pop(0) if self.loads else None


def test_switches_between_batches_never_inside_one():
    built = {}
    model = AdaptiveThreadsModel(lambda n: built.setdefault(n, FakeModel(n)), ThreadRule(2),
                                 FakeMeter([None, 1.0, None, None, 0.1]))
    assert sorted(built) == [1, 2]  # every session is built at start-up, none during the run
    model.prepare(4, 480, 640)
    model.set_input_size(240, 320)
    for m in built.values():  # shapes reach every session, so a switch needs no preparation
        assert m.calls == [("prepare", (4, 480, 640)), ("set_input_size", (240, 320))]
    ran = []
    for _ in range(5):
        model.load_frame(0, None)
        model.load_frame(1, None)
        ran.append(model.run(2))
    # load 1.0 core measured after batch 2 -> batches 3-5 on one thread until 0.1 after batch 5
    assert ran == [2, 2, 1, 1, 1]
    assert model.threads == 2  # back to two for the next batch
    assert [c for c in built[1].calls if c[0] != "prepare" and c[0] != "set_input_size"] == \
        [("load_frame", 0), ("load_frame", 1), ("run", 2)] * 3
    assert model.log.switches == 2 and model.log.batches == {2: 2, 1: 3}
    assert "auto threads" in model.settings and "2 switches" in model.settings and "1.0 cores" in model.settings


def test_poses_are_the_same_whatever_the_thread_count():
    """Switching sessions mid-run changes speed, never the outputs: a real model, switched every batch."""
    import cv2

    from rtpose.model import OnnxPoseModel, load_model
    from rtpose.models import default_model_path

    path = default_model_path()
    cap = cv2.VideoCapture(str(path.parent.parent / "data" / "m3v1mp4.mp4"))
    frames = [cap.read()[1] for _ in range(6)]
    cap.release()
    fixed = load_model(None, providers=["cpu"], threads=2)
    model = AdaptiveThreadsModel(lambda n: OnnxPoseModel(path, providers=["cpu"], threads=n), ThreadRule(2),
                                 FakeMeter([1.0, 0.0] * 3))
    for m in (fixed, model):
        m.prepare(1, 480, 640)
    ran_on = []
    for frame in frames:
        fixed.load_frame(0, frame)
        want_sc, want_lr = (a.copy() for a in fixed.run(1))
        ran_on.append(model.threads)
        model.load_frame(0, frame)
        got_sc, got_lr = model.run(1)
        np.testing.assert_allclose(got_sc, want_sc, rtol=0, atol=1e-6)
        np.testing.assert_allclose(got_lr, want_lr, rtol=0, atol=1e-5)
    assert ran_on == [2, 1, 2, 1, 2, 1]


def test_cli_threads_auto_runs_and_is_recorded(analytic_model, tmp_path, capsys):
    out = tmp_path / "rec.h5"
    code = main(["run", "--source", "synthetic:320x240@30", "--frames", "30", "--no-pace", "--quiet",
                 "--model", str(analytic_model), "--threads", "auto", "--record", str(out)])
    text = capsys.readouterr().out
    assert code == 0
    assert "captured 30 = processed" in text
    settings = json.loads((tmp_path / "rec_settings.json").read_text())
    assert settings["threads"] == "auto"
    if len(__import__("os").sched_getaffinity(0)) > 1:
        assert "auto threads" in text


def test_cli_threads_must_be_a_number_or_auto(analytic_model, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--source", "synthetic:64x64", "--threads", "many", "--model", str(analytic_model)])
    assert exc.value.code == 2
    assert "'many' is not a whole number" in capsys.readouterr().err


def test_models_that_decode_in_the_graph_switch_the_same_way():
    class PosesModel(FakeModel):
        decodes_in_graph = True

        def run_poses(self, n):
            return ("poses", self.threads)

        def execution(self):
            return {"provider": self.provider, "decode_in_graph": True}

    model = AdaptiveThreadsModel(PosesModel, ThreadRule(2), FakeMeter([1.0]))
    assert model.decodes_in_graph
    assert [model.run_poses(1) for _ in range(2)] == [("poses", 2), ("poses", 1)]
    assert model.execution() == {"provider": "CPUExecutionProvider", "decode_in_graph": True, "threads": "auto"}


def test_auto_threads_with_dynamic_cropping_runs(analytic_model, tmp_path):
    """--threads auto with --dynamic-crop: every session is prepared for variable sizes (this crashed with a
    TypeError before) and the poses are recorded."""
    out = tmp_path / "auto.h5"
    assert main(["run", "--source", "synthetic:160x120@30", "--frames", "12", "--no-pace", "--quiet",
                 "--lossless", "--model", str(analytic_model), "--threads", "auto", "--dynamic-crop", "0.5,10",
                 "--record", str(out)]) == 0
    settings = json.loads((tmp_path / "auto_settings.json").read_text())
    assert settings["threads"] == "auto" and settings["dynamic_crop"] == {"threshold": 0.5, "margin_px": 10.0}
    assert len(read_dlc_table(out)) == 12
