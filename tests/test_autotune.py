"""--target-latency-ms: candidates in accuracy order, the choice, the measurement (with an injected clock), the
command line and the recording of the choice."""

import json

import numpy as np
import pytest

from rtpose.autotune import Candidate, Measured, candidates, choose, measure
from rtpose.cli import main
from rtpose.drivers.sources.synthetic import SyntheticSource
from rtpose.model import OnnxPoseModel


def _m(resize, threads, p99, p50=None):
    return Measured(Candidate(resize, threads), p50 if p50 is not None else p99 / 2, p99, 30)


def test_candidates_go_from_most_to_least_accurate_and_skip_tiny_inputs():
    c = candidates(2, width=640, height=480, stride=8)
    assert [x.resize for x in c[:4]] == [1.0, 1.0, 0.75, 0.75] and [x.threads for x in c[:2]] == [2, 1]
    assert candidates(1, width=640, height=480, stride=8)[:2] == [Candidate(1.0, 1), Candidate(0.75, 1)]
    small = candidates(2, width=128, height=96, stride=8)  # 0.25 -> 24 px < 4 cells
    assert min(x.resize for x in small) == 0.35 and all(int(96 * x.resize) >= 32 for x in small)


def test_choose_the_most_accurate_setting_meeting_the_target():
    measured = [_m(1.0, 2, 30), _m(1.0, 1, 25), _m(0.5, 2, 9), _m(0.5, 1, 8), _m(0.25, 2, 3)]
    got = choose(10, measured)
    assert got.met and got.chosen.candidate == Candidate(0.5, 1)  # resize 0.5; the faster thread count there
    assert choose(100, measured).chosen.candidate == Candidate(1.0, 1)
    none = choose(1, measured)
    assert not none.met and none.chosen.candidate == Candidate(0.25, 2) and "NOT MET" in none.describe()
    assert "resize 0.5, 1 thread" in got.describe() and got.to_json()["resize"] == 0.5


class StepClock:
    """Every call is ``step_ns`` later than the previous one: each timed frame takes exactly one step."""

    def __init__(self, step_ns):
        self.t, self.step = 0, step_ns

    def __call__(self):
        self.t += self.step
        return self.t


def _frames(n=4):
    src = SyntheticSource(160, 120)
    frames = np.zeros((n, 120, 160, 3), np.uint8)
    for i in range(n):
        src.render(i, frames[i])
    return frames


def test_measure_stops_at_the_first_resize_that_meets_the_target(analytic_model):
    models = {}

    def model_for(threads):
        return models.setdefault(threads, OnnxPoseModel(analytic_model, threads=threads))

    cands = candidates(2, width=160, height=120, stride=8)
    met = measure(model_for, _frames(), None, cands, target_ms=5.0, clock=StepClock(1_000_000))
    assert met.met and met.chosen.candidate.resize == 1.0 and met.chosen.p99_ms == pytest.approx(1.0)
    assert {m.candidate.resize for m in met.measured} == {1.0}  # no need to try coarser settings
    missed = measure(model_for, _frames(), None, cands, target_ms=0.5, clock=StepClock(1_000_000))
    assert not missed.met and len(missed.measured) == len(cands)


def test_run_with_a_target_records_the_choice(analytic_model, tmp_path, capsys):
    out = tmp_path / "t.h5"
    assert main(["run", "--source", "synthetic:160x120@30", "--frames", "5", "--no-pace", "--quiet",
                 "--model", str(analytic_model), "--record", str(out), "--target-latency-ms", "1e9"]) == 0
    assert "target 1e+09 ms at p99: chose resize 1," in capsys.readouterr().out  # the most accurate meets any target
    settings = json.loads((tmp_path / "t_settings.json").read_text())
    assert settings["resize"] == 1.0 and settings["target_latency"]["met"] is True
    assert settings["target_latency"]["measured"][0]["frames"] == 30


def test_a_target_no_setting_meets_uses_the_fastest_and_says_so(analytic_model, capsys):
    assert main(["run", "--source", "synthetic:160x120@30", "--frames", "3", "--no-pace", "--quiet",
                 "--model", str(analytic_model), "--target-latency-ms", "1e-9"]) == 0
    assert "NOT MET by any setting; using the fastest" in capsys.readouterr().out


def test_target_latency_leaves_resize_and_threads_to_itself(analytic_model, capsys):
    assert main(["run", "--source", "synthetic", "--model", str(analytic_model), "--target-latency-ms", "10",
                 "--resize", "0.5"]) == 2
    assert "chooses --resize and --threads itself" in capsys.readouterr().err
