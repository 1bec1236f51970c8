"""Dynamic cropping on the CPU: small inputs on a single-threaded session (rtpose/small_inputs.py). The decision
is tested with injected timings; the model with a real file, asserting what it did with what it measured (never
which session was faster here) and that the thread count never changes an output."""

from __future__ import annotations

import numpy as np
import pytest

from rtpose.model import OnnxPoseModel
from rtpose.small_inputs import SmallInputs, limit, measure, sizes


def test_sizes_run_from_a_small_box_to_half_the_frame_on_the_stride_grid():
    assert sizes(480, 640, 8) == [(32, 32), (56, 80), (120, 160), (240, 320)]
    assert sizes(40, 40, 8) == [(8, 8), (16, 16), (32, 32)]  # at least one cell; repeats dropped; by area
    for h, w in sizes(97, 131, 16):
        assert h % 16 == 0 and w % 16 == 0 and 16 <= h <= 97 and 16 <= w <= 131


def test_limit_is_the_largest_size_up_to_which_one_thread_always_won():
    assert limit([(1024, 0.6, 1.0), (4480, 0.9, 1.2), (19200, 2.4, 2.5), (76800, 7.5, 5.6)]) == 19200
    assert limit([(1024, 0.6, 1.0), (4480, 1.3, 1.2), (19200, 2.4, 2.5)]) == 1024  # a loss stops it
    assert limit([(1024, 1.0, 1.0)]) == 0  # a tie is no gain
    assert limit([]) == 0


class Steps:
    """A clock that advances by what the running session is charged per call."""

    def __init__(self):
        self.t, self.cost = 0, 0

    def __call__(self):
        self.t += self.cost
        return self.t


def test_measure_times_both_sessions_per_size_and_stops_at_the_first_loss():
    clock = Steps()
    calls = []

    def session(name, ms_per_kpx):
        def run(h, w):
            calls.append((name, h * w))
            clock.cost = int(ms_per_kpx * h * w)  # ns per pixel, charged to the next clock() pair
        return run

    # one thread: 1000 ns/px; all threads: 100 us overhead + 300 ns/px -> one thread wins below ~143 px
    one = session("one", 1000)
    main = session("main", 300)
    shapes = [(8, 8), (10, 10), (12, 12), (16, 16)]

    def main_with_overhead(h, w):
        main(h, w)
        clock.cost += 100_000

    got = measure(one, main_with_overhead, shapes, 2, clock=clock, repeats=3)
    assert [px for px, _, _ in got.measured] == [64, 100, 144]  # stopped at the first size one thread lost
    assert got.max_px == 100 and got.threads == 2
    assert got.measured[0][1:] == pytest.approx((0.064, 0.1192))
    assert sum(1 for name, _ in calls if name == "one") == 3 * 4  # 1 untimed + 3 timed per size
    assert got.describe() == "dynamic crop: inputs up to 100 px on 1 thread"
    assert got.to_json()["one_thread_up_to_px"] == 100


def _frame():
    from rtpose.drivers.sources.synthetic import SyntheticSource

    frame = np.zeros((120, 160, 3), np.uint8)
    SyntheticSource(160, 120).render(0, frame)
    return frame


def test_a_dynamic_model_runs_small_inputs_on_one_thread_with_the_same_maps(analytic_model):
    frame = _frame()
    model = OnnxPoseModel(analytic_model, threads=2)
    model.prepare(1, 120, 160, variable_size=True)
    chosen = model.small_inputs
    assert isinstance(chosen, SmallInputs) and chosen.threads == 2 and chosen.measured
    assert chosen.max_px == limit(chosen.measured)  # what it did follows from what it measured
    assert model.execution()["small_inputs"] == chosen.to_json()
    model.small_inputs = SmallInputs(64 * 96, chosen.measured, 2)  # force a split to compare the sessions
    model._small_session = model._small_session or model._new_session(["CPUExecutionProvider"], [{}], threads=1)[0]
    reference = OnnxPoseModel(analytic_model, threads=2, small_inputs_on_one_thread=False)
    reference.prepare(1, 120, 160, variable_size=True)
    assert reference.small_inputs is None
    for h, w in [(64, 96), (120, 160), (32, 48), (64, 96)]:
        for m in (model, reference):
            m.set_input_size(h, w)
            m.load_frame(0, frame[:h, :w])
        ran = model._session_for(1)
        assert (ran is model._small_session) == (h * w <= 64 * 96)
        got, want = model.run(1), reference.run(1)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])


def test_no_second_session_without_dynamic_cropping_or_with_one_thread(analytic_model):
    fixed = OnnxPoseModel(analytic_model, threads=2)
    fixed.prepare(1, 120, 160)
    single = OnnxPoseModel(analytic_model, threads=1)
    single.prepare(1, 120, 160, variable_size=True)
    assert fixed.small_inputs is None and single.small_inputs is None
    assert "1 thread" not in fixed.settings
