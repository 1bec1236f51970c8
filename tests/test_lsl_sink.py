"""``--lsl``: poses as an LSL MoCap stream, received by a real LSL inlet in the same test.

Checks the channel layout and metadata the inlet sees, every value, the order, and that each
timestamp is the frame's capture time mapped to LSL's clock (the sink's ClockMap, computed here
independently), not the time it was sent.
"""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest

from rtpose.errors import ConfigError, MissingDependencyError
from rtpose.results import PoseBatch, StreamInfo
from rtpose.sinks.lsl import ClockMap, LslOutletSink, channel_layout

BP = ("snout", "leftear", "rightear", "tailbase")
WAIT_S = 30.0  # discovery and delivery on a loaded machine; the test waits for data, never for time
T0 = 1_000_000_000_000  # CLOCK_MONOTONIC ns of the first frame


def test_channel_layout():
    assert channel_layout(("snout", "tail")) == [
        ("snout_x", "pixels", "PositionX"), ("snout_y", "pixels", "PositionY"),
        ("snout_likelihood", "normalized", "Likelihood"),
        ("tail_x", "pixels", "PositionX"), ("tail_y", "pixels", "PositionY"),
        ("tail_likelihood", "normalized", "Likelihood"),
    ]


def test_clock_map_keeps_the_tightest_reading():
    ns = iter([100, 180, 1000, 1010, 5000, 5500])  # brackets of 80, 10, 500 ns
    lsl = iter([7.0, 8.0, 9.0])
    cmap = ClockMap.measure(lambda: next(ns), lambda: next(lsl), tries=3)
    assert cmap == ClockMap(anchor_ns=1005, anchor_s=8.0)
    assert cmap.to_lsl(1005 + 2_500_000_000) == 10.5


def test_missing_pylsl_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pylsl", None)  # import pylsl -> ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'rtpose\[lsl\]'"):
        LslOutletSink("rtpose")


def test_stream_name_is_required():
    with pytest.raises(ConfigError, match="--lsl needs a stream name"):
        LslOutletSink("  ", pylsl_module=object())


def _batch(frames: list[tuple[int, int, np.ndarray]], k: int = len(BP)) -> PoseBatch:
    """A batch of (stream, t_capture_ns, pose K x 3) rows."""
    b = PoseBatch(len(frames), k)
    b.n = len(frames)
    for i, (stream, t, pose) in enumerate(frames):
        b.stream[i] = stream
        b.frame_index[i] = i
        b.t_capture_ns[i] = t
        b.pose[i] = pose
        b.predicted[i] = pose + 1000  # never what LSL carries
    return b


def _poses(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    poses = []
    for _ in range(n):
        p = np.empty((len(BP), 3))
        p[:, :2] = rng.uniform(0, 640, (len(BP), 2))
        p[:, 2] = rng.uniform(0, 1, len(BP))
        poses.append(p)
    poses[1][2, :2] = np.nan  # a NaN travels as NaN
    return poses


def _inlet(pylsl, source_id: str):
    found = pylsl.resolve_byprop("source_id", source_id, 1, WAIT_S)
    assert found, f"no LSL stream with source_id {source_id!r} was found within {WAIT_S} s"
    inlet = pylsl.StreamInlet(found[0], max_buflen=60, processing_flags=0)  # timestamps exactly as sent
    inlet.open_stream(WAIT_S)
    return inlet


def _pull(inlet, n: int):
    samples, stamps = [], []
    while len(samples) < n:
        chunk, ts = inlet.pull_chunk(timeout=WAIT_S, max_samples=n - len(samples))
        assert chunk, f"received {len(samples)} of {n} samples"
        samples += chunk
        stamps += ts
    return np.array(samples, np.float32), np.array(stamps)


def test_inlet_receives_layout_values_and_capture_timestamps():
    pylsl = pytest.importorskip("pylsl", reason="pylsl not installed: pip install 'rtpose[lsl]'")
    sink = LslOutletSink("rtpose-test-single")
    sink.open([StreamInfo("camera:0", 640, 480, 30.0, BP)])
    try:
        inlet = _inlet(pylsl, "rtpose:rtpose-test-single:0")
        assert sink.outlets[0].wait_for_consumers(WAIT_S)
        info = inlet.info(WAIT_S)
        assert (info.name(), info.type(), info.channel_count(), info.nominal_srate()) == \
               ("rtpose-test-single", "MoCap", 12, 30.0)
        assert info.channel_format() == pylsl.cf_float32
        layout = channel_layout(BP)
        assert info.get_channel_labels() == [label for label, _, _ in layout]
        assert info.get_channel_units() == [unit for _, unit, _ in layout]
        assert info.get_channel_types() == [kind for _, _, kind in layout]
        assert info.desc().child("acquisition").child_value("camera") == "camera:0"

        poses = _poses(5)
        # capture times: irregular, as a real camera's; sent later and in two batches
        times = [T0, T0 + 33_366_667, T0 + 66_700_001, T0 + 100_100_000, T0 + 166_000_000]
        sink.write(_batch([(0, t, p) for t, p in zip(times[:2], poses[:2])]))
        sink.write(_batch([(0, t, p) for t, p in zip(times[2:], poses[2:])]))
        values, stamps = _pull(inlet, 5)
    finally:
        sink.close()
    expected = np.stack([p.reshape(-1) for p in poses]).astype(np.float32)
    np.testing.assert_array_equal(values, expected)  # bit-exact float32, NaN where NaN, in order
    # the capture clock mapped to local_clock(), computed here from the map's anchors
    cmap = sink.clock_map
    mapped = np.array([(t - cmap.anchor_ns) * 1e-9 + cmap.anchor_s for t in times])
    np.testing.assert_allclose(stamps, mapped, rtol=0, atol=1e-9)  # float rounding, not timing
    assert abs(cmap.anchor_s - pylsl.local_clock()) < 3600  # it is LSL's clock, not an unrelated one
    assert sink.summary()["sent"] == 5 and sink.summary()["dropped"] == 0


def test_several_cameras_get_one_outlet_each():
    pylsl = pytest.importorskip("pylsl", reason="pylsl not installed: pip install 'rtpose[lsl]'")
    sink = LslOutletSink("rtpose-test-multi")
    sink.open([StreamInfo("camera:0", 640, 480, 30.0, BP), StreamInfo("camera:1", 320, 240, 0.0, BP)])
    try:
        inlets = [_inlet(pylsl, f"rtpose:rtpose-test-multi:{i}") for i in (0, 1)]
        for outlet in sink.outlets:
            assert outlet.wait_for_consumers(WAIT_S)
        assert [i.info(WAIT_S).name() for i in inlets] == ["rtpose-test-multi_0", "rtpose-test-multi_1"]
        assert inlets[1].info(WAIT_S).channel_count() == 12
        assert inlets[1].info(WAIT_S).nominal_srate() == pylsl.IRREGULAR_RATE  # no frame rate known
        poses = _poses(4, seed=1)
        b = PoseBatch(4, len(BP))
        b.n = 4
        for i, (stream, t) in enumerate([(0, T0), (1, T0 + 5), (1, T0 + 10), (0, T0 + 20)]):
            b.stream[i], b.t_capture_ns[i] = stream, t
            b.pose[i] = poses[i]
        sink.write(b)
        v0, s0 = _pull(inlets[0], 2)
        v1, s1 = _pull(inlets[1], 2)
    finally:
        sink.close()
    np.testing.assert_array_equal(v0, np.stack([poses[0].reshape(-1), poses[3].reshape(-1)]).astype(np.float32))
    np.testing.assert_array_equal(v1, np.stack([poses[1].reshape(-1), poses[2].reshape(-1)]).astype(np.float32))
    cmap = sink.clock_map
    np.testing.assert_allclose(s0, [cmap.to_lsl(T0), cmap.to_lsl(T0 + 20)], rtol=0, atol=1e-9)
    np.testing.assert_allclose(s1, [cmap.to_lsl(T0 + 5), cmap.to_lsl(T0 + 10)], rtol=0, atol=1e-9)


class _BlockingLsl:
    """A stand-in pylsl whose push blocks until released: liblsl stuck, or a slow machine."""

    IRREGULAR_RATE = 0.0
    cf_float32 = 1

    def __init__(self):
        self.release = threading.Event()
        self.entered = threading.Event()
        self.pushed: list[tuple[np.ndarray, list]] = []

    @staticmethod
    def local_clock() -> float:
        return 50.0

    class _Xml:
        def append_child(self, name):
            return self

        def append_child_value(self, name, value):
            return self

    def StreamInfo(self, name, kind, n, rate, fmt, source_id):  # noqa: N802 - pylsl's name
        test = self

        class Info:
            def desc(self):
                return test._Xml()

            def name(self):
                return name
        return Info()

    def StreamOutlet(self, info):  # noqa: N802 - pylsl's name
        test = self

        class Outlet:
            def push_chunk(self, values, timestamps):
                test.entered.set()
                test.release.wait()
                test.pushed.append((np.array(values), list(timestamps)))
        return Outlet()


def test_write_never_waits_for_liblsl():
    fake = _BlockingLsl()
    sink = LslOutletSink("x", queue_frames=3, pylsl_module=fake, clock=lambda: 0)
    sink.open([StreamInfo("camera:0", 640, 480, 30.0, BP)])
    poses = _poses(6)
    try:
        sink.write(_batch([(0, T0, poses[0])]))
        assert fake.entered.wait(WAIT_S)  # the pushing thread is stuck inside liblsl with frame 0
        # returns at once: frames 1 and 2 fill the ring behind the stuck frame 0, 3 to 5 are dropped
        sink.write(_batch([(0, T0 + i, poses[i]) for i in range(1, 6)]))
        assert sink.dropped == 3
    finally:
        fake.release.set()
        sink.close()
    assert sink.summary()["sent"] == 3 and sink.summary()["dropped"] == 3
    rows = np.concatenate([v for v, _ in fake.pushed])
    np.testing.assert_array_equal(rows, np.stack([p.reshape(-1) for p in poses[:3]]).astype(np.float32))
    stamps = [t for _, ts in fake.pushed for t in ts]
    assert stamps == [50.0 + (T0 + i) * 1e-9 for i in range(3)]  # fake clocks: anchor 0 ns <-> 50 s


@pytest.mark.slow
def test_rtpose_run_lsl_reaches_an_inlet_with_the_recorded_capture_times(analytic_model, tmp_path, capsys):
    """`rtpose run --lsl`: an inlet in this process receives the run's poses, each stamped with the
    capture time the recording lists for that frame. The inlet thread stops the run (SIGINT, as
    Ctrl-C) once it has its samples; --frames only bounds a run whose stream is never found."""
    import os
    import signal

    import pandas as pd

    from rtpose.cli import main
    from rtpose.recording import read_dlc_table

    pylsl = pytest.importorskip("pylsl", reason="pylsl not installed: pip install 'rtpose[lsl]'")
    n = 10
    got: dict = {}

    def receive():
        try:
            inlet = _inlet(pylsl, "rtpose:rtpose-cli-test:0")
            got["info"] = inlet.info(WAIT_S)
            got["values"], got["stamps"] = _pull(inlet, n)
        except BaseException as exc:  # reported below, in the test's thread
            got["error"] = exc
        finally:
            os.kill(os.getpid(), signal.SIGINT)

    receiver = threading.Thread(target=receive)
    receiver.start()
    out = tmp_path / "run.h5"
    try:
        main(["run", "--source", "synthetic:160x120@30", "--frames", "3000", "--quiet",
              "--model", str(analytic_model), "--lsl", "rtpose-cli-test", "--record", str(out)])
    finally:
        receiver.join()
    assert "error" not in got, got.get("error")
    text = capsys.readouterr().out
    assert "lsl" in text and "clock_offset_s" in text
    labels = got["info"].get_channel_labels()
    poses = read_dlc_table(out)
    bodyparts = list(dict.fromkeys(poses.columns.get_level_values(1)))
    assert labels == [label for label, _, _ in channel_layout(bodyparts)]
    timing = pd.read_csv(tmp_path / "run_timing.csv")
    t_capture = timing["t_capture_ns"].to_numpy()
    # this test's own reading of the clock offset only needs to tell frames 33 ms apart
    own = ClockMap.measure(__import__("time").monotonic_ns, pylsl.local_clock)
    offset_s = own.anchor_s - own.anchor_ns * 1e-9
    rows = [int(np.argmin(np.abs(t_capture * 1e-9 + offset_s - s))) for s in got["stamps"]]
    assert rows == list(range(rows[0], rows[0] + n))  # consecutive recorded frames, in order
    offsets = got["stamps"] - t_capture[rows] * 1e-9
    assert np.ptp(offsets) < 1e-9  # every sample: its frame's capture time under one clock map (float rounding)
    frames = timing["frame"].to_numpy()[rows]
    expected = poses.loc[frames].to_numpy(np.float64).astype(np.float32)
    np.testing.assert_array_equal(got["values"], expected)


@pytest.mark.slow
def test_demo_takes_lsl(tmp_path, capsys):
    """`rtpose demo --lsl NAME`: the bundled model and video, every processed frame pushed."""
    pytest.importorskip("pylsl", reason="pylsl not installed: pip install 'rtpose[lsl]'")
    from rtpose.cli import main

    assert main(["demo", "--frames", "5", "--out-dir", str(tmp_path), "--lsl", "rtpose-demo-test"]) == 0
    text = capsys.readouterr().out
    line = next(line for line in text.splitlines() if line.strip().startswith("lsl:"))
    processed = int(text.split("processed ")[1].split()[0])
    assert "streams=['rtpose-demo-test']" in line and f"sent={processed}," in line and "dropped=0" in line
