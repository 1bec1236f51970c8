"""--target-latency-ms: candidates in accuracy order, the choice, the measurement (with an injected clock), the
command line and the recording of the choice."""

import json

import numpy as np
import pytest

from rtpose.autotune import Candidate, Measured, Variant, candidates, choose, find_twins, is_twin, measure
from rtpose.cli import main
from rtpose.drivers.sources.synthetic import SyntheticSource
from rtpose.model import OnnxPoseModel


def _m(resize, threads, p99, p50=None, precision="fp32"):
    variant = Variant("" if precision == "fp32" else f"m-{precision}.onnx", precision)
    return Measured(Candidate(resize, threads, variant), p50 if p50 is not None else p99 / 2, p99, 30)


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

    def model_for(cand):
        return models.setdefault(cand.threads, OnnxPoseModel(analytic_model, threads=cand.threads))

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


# -- precision: the model's twins ----------------------------------------------

def _twin(src, dst, **extra):
    """A copy of the rtpose file ``src`` at ``dst`` with these ``rtpose.extra.*`` metadata values."""
    import onnx

    proto = onnx.load(str(src))
    props = {p.key: p.value for p in proto.metadata_props}
    props.update({f"rtpose.extra.{k}": v for k, v in extra.items()})
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, props)
    onnx.save(proto, str(dst))
    return dst


@pytest.fixture
def twins(analytic_model, tmp_path):
    """The analytic model as an export of network ``abc`` with an FP16 and a gated INT8 twin beside it, and
    files that must not count: a refused INT8, another network, a file that is not a model."""
    d = tmp_path / "models"
    d.mkdir()
    base = _twin(analytic_model, d / "m.onnx", source_sha256="abc", precision="fp32")
    _twin(analytic_model, d / "m-fp16.onnx", source_sha256="abc", precision="fp16")
    _twin(analytic_model, d / "m-int8.onnx", source_sha256="abc", precision="int8", **{"gate.passed": "true"})
    _twin(analytic_model, d / "m-refused-int8.onnx", source_sha256="abc", precision="int8",
          **{"gate.passed": "false"})
    _twin(analytic_model, d / "other.onnx", source_sha256="def", precision="fp16")
    (d / "notes.onnx").write_bytes(b"not an onnx file")
    return base


def test_read_props_reads_what_onnx_reads_without_parsing_the_graph(twins):
    import onnx

    from rtpose.metadata import read_props
    from rtpose.models import default_model_path

    for path in (twins, default_model_path()):
        assert read_props(path) == {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert read_props(twins.parent / "notes.onnx") == {}


def test_find_twins_takes_the_same_network_at_other_precisions_and_only_gated_int8(twins):
    found = find_twins(twins)
    assert [(v.path.rsplit("/", 1)[1], v.precision) for v in found] == [
        ("m.onnx", "fp32"), ("m-fp16.onnx", "fp16"), ("m-int8.onnx", "int8")]
    from rtpose.metadata import read_props

    base = read_props(twins)
    assert "gate" in is_twin(base, read_props(twins.parent / "m-refused-int8.onnx"))
    assert "source_sha256 differs" in is_twin(base, read_props(twins.parent / "other.onnx"))
    assert "multi-animal" in is_twin(base, {**base, "rtpose.multianimal.layout": "{}"})
    assert is_twin({k: v for k, v in base.items() if "source_sha256" not in k}, base) is not None  # unknown source
    assert find_twins(twins.parent / "m-int8.onnx")[0].precision == "fp32"  # the FP32 twin ranks first


def test_candidates_rank_resize_before_precision():
    v = (Variant("m.onnx"), Variant("m-fp16.onnx", "fp16"), Variant("m-int8.onnx", "int8"))
    c = candidates(2, width=640, height=480, stride=8, variants=v)
    assert [(x.resize, x.variant.precision, x.threads) for x in c[:7]] == [
        (1.0, "fp32", 2), (1.0, "fp32", 1), (1.0, "fp16", 2), (1.0, "fp16", 1), (1.0, "int8", 2), (1.0, "int8", 1),
        (0.75, "fp32", 2)]


def test_choose_int8_at_full_size_before_fp32_at_a_smaller_size():
    measured = [_m(1.0, 2, 30), _m(1.0, 2, 20, precision="fp16"), _m(1.0, 2, 9, precision="int8"),
                _m(0.75, 2, 8), _m(0.5, 2, 4)]
    got = choose(10, measured)
    assert got.met and got.chosen.candidate.variant.precision == "int8" and got.chosen.candidate.resize == 1.0
    assert got.to_json()["precision"] == "int8" and got.to_json()["model"] == "m-int8.onnx"
    assert "int8 m-int8.onnx" in got.describe()
    assert choose(25, measured).chosen.candidate.variant.precision == "fp16"


def test_measure_tries_the_twins_in_accuracy_order_and_stops_at_the_first_that_meets(twins):
    clock = StepClock(0)
    cost_ms = {"fp32": 12, "fp16": 8, "int8": 3}
    models = {}

    def model_for(cand):  # each precision's frames take its cost on the injected clock
        clock.step = cost_ms[cand.variant.precision] * 1_000_000
        return models.setdefault(cand.variant.path, OnnxPoseModel(cand.variant.path, threads=1))

    cands = candidates(1, width=160, height=120, stride=8, variants=find_twins(twins))
    got = measure(model_for, _frames(), None, cands, target_ms=5.0, clock=clock)
    assert got.met and got.chosen.candidate.variant.precision == "int8" and got.chosen.p99_ms == pytest.approx(3)
    assert [m.candidate.variant.precision for m in got.measured] == ["fp32", "fp16", "int8"]  # resize 1 only


def test_run_with_a_target_measures_the_twins_and_records_the_precision(twins, tmp_path, capsys):
    out = tmp_path / "t.h5"
    assert main(["run", "--source", "synthetic:160x120@30", "--frames", "3", "--no-pace", "--quiet",
                 "--model", str(twins), "--record", str(out), "--target-latency-ms", "1e-9"]) == 0
    err = capsys.readouterr().err
    assert "also measuring the other exports of this network beside it: m-fp16.onnx (fp16), m-int8.onnx (int8)" in err
    tuned = json.loads((tmp_path / "t_settings.json").read_text())["target_latency"]
    assert {m["precision"] for m in tuned["measured"]} == {"fp32", "fp16", "int8"}  # nothing met: all measured
    assert "refused" not in json.dumps(tuned) and "other.onnx" not in json.dumps(tuned)
    assert main(["run", "--source", "synthetic:160x120@30", "--frames", "3", "--no-pace", "--quiet",
                 "--model", str(twins), "--record", str(out), "--overwrite", "--target-latency-ms", "1e9"]) == 0
    settings = json.loads((tmp_path / "t_settings.json").read_text())
    assert settings["target_latency"]["precision"] == "fp32" and settings["model"] == str(twins)


def test_target_latency_with_a_multi_animal_model_says_to_choose_by_hand(tmp_path, capsys):
    from analytic_animals import build_analytic_animals_model

    model = build_analytic_animals_model(tmp_path / "mice.onnx")
    assert main(["run", "--source", "synthetic:160x120@30", "--frames", "3", "--no-pace", "--quiet",
                 "--model", str(model), "--target-latency-ms", "10"]) == 2
    assert "single-animal models only" in capsys.readouterr().err
