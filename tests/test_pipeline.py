"""The whole pipeline on the synthetic camera and the hand-built analytic model: real poses, exact accounting,
clean stops, errors that keep the recording."""

import threading

import numpy as np
import pytest

from rtpose.drivers.sources.synthetic import SyntheticSource
from rtpose.errors import SourceError
from rtpose.model import OnnxPoseModel
from rtpose.pipeline import Pipeline, PipelineConfig
from rtpose.recording import RecorderSink, read_dlc_table
from rtpose.sinks.base import Sink

#: The analytic model decoded with offsets finds the drawn keypoints within this many pixels.
TOLERANCE_PX = 2.0


class CollectSink(Sink):
    """Copies every row it is given; can stop the pipeline or raise after N frames."""

    name = "collect"

    def __init__(self, stop_after=None, pipeline=None, raise_after=None):
        self.rows = []
        self.stop_after, self.pipeline, self.raise_after = stop_after, pipeline, raise_after
        self.closed = False
        self.streams = None

    def open(self, streams):
        self.streams = streams

    def write(self, batch):
        for i in range(batch.n):
            self.rows.append((int(batch.stream[i]), int(batch.frame_index[i]), batch.pose[i].copy(),
                              batch.predicted[i].copy(), int(batch.t_capture_ns[i]), int(batch.t_decoded_ns[i]),
                              int(batch.t_target_ns[i])))
        if self.stop_after is not None and len(self.rows) >= self.stop_after:
            self.pipeline.stop()
        if self.raise_after is not None and len(self.rows) >= self.raise_after:
            raise KeyboardInterrupt

    def close(self):
        self.closed = True


def _synthetic(n=None, seed=0):
    return SyntheticSource(width=320, height=240, fps=30.0, n_frames=n, seed=seed)


def _check_poses(rows, sources):
    assert rows
    for stream, frame, pose, *_ in rows:
        truth = sources[stream].truth(frame)
        err = np.linalg.norm(pose[:, :2] - truth, axis=1)
        assert err.max() <= TOLERANCE_PX, (frame, err)
        assert (pose[:, 2] > 0).all()  # the analytic model's scores are not calibrated likelihoods


def test_live_pipeline_produces_the_ground_truth_poses(analytic_model):
    src = _synthetic(150)
    sink = CollectSink()
    p = Pipeline([src], OnnxPoseModel(analytic_model), sinks=[sink], config=PipelineConfig(live=True))
    summary = p.run()
    assert summary.captured == 150
    assert summary.captured == summary.processed + summary.dropped
    assert summary.processed == len(sink.rows) and sink.closed
    _check_poses(sink.rows, [src])
    frames = [r[1] for r in sink.rows]
    assert frames == sorted(frames)
    for *_, t_capture, t_decoded, t_target in sink.rows:
        assert t_capture <= t_decoded <= t_target  # live predictions are for "now" (delay 0)
    assert summary.latency_ms["end_to_end"]["p50"] > 0


def test_offline_lossless_batched_processes_every_frame_in_order(analytic_model, tmp_path):
    src = _synthetic(90, seed=3)
    sink = CollectSink()
    rec = RecorderSink(tmp_path / "out.h5", chunk_frames=16)
    p = Pipeline([src], OnnxPoseModel(analytic_model), sinks=[sink, rec],
                 config=PipelineConfig(live=False, batch_size=4, ring_slots=9, output_delay_ms=10))
    summary = p.run()
    assert (summary.captured, summary.processed, summary.dropped) == (90, 90, 0)
    assert [r[1] for r in sink.rows] == list(range(90))
    _check_poses(sink.rows, [src])
    table = read_dlc_table(tmp_path / "out.h5")
    assert len(table) == 90 and list(table.columns.get_level_values("bodyparts").unique()) == ["head", "body", "tail"]
    np.testing.assert_allclose(table.to_numpy().reshape(90, 3, 3), np.stack([r[2] for r in sink.rows]))
    # offline predictions are for media time + delay, from the frame rate
    frame, t_target = sink.rows[30][1], sink.rows[30][6]
    assert t_target == frame * int(1e9 / 30.0) + 10_000_000


def test_kalman_prediction_ahead_beats_last_pose_on_the_moving_mouse(analytic_model):
    src = _synthetic(120, seed=5)
    sink = CollectSink()
    Pipeline([src], OnnxPoseModel(analytic_model), sinks=[sink],
             config=PipelineConfig(live=False, batch_size=2, output_delay_ms=100, kalman_min_likelihood=0.05)).run()
    # prediction made at frame f for +100 ms (3 frames) vs the truth at f+3, after the filter settled
    pred_err, last_err = [], []
    for _, frame, pose, predicted, *_ in sink.rows[20:-3]:
        future = src.truth(frame + 3)
        pred_err.append(np.linalg.norm(predicted[:, :2] - future, axis=1).mean())
        last_err.append(np.linalg.norm(pose[:, :2] - future, axis=1).mean())
    assert np.mean(pred_err) < np.mean(last_err)


def test_two_cameras_are_batched_together(analytic_model):
    a, b = _synthetic(60, seed=1), _synthetic(60, seed=2)
    sink = CollectSink()
    summary = Pipeline([a, b], OnnxPoseModel(analytic_model), sinks=[sink],
                       config=PipelineConfig(live=False, batch_size=4)).run()
    assert [s.processed for s in summary.streams] == [60, 60]
    _check_poses(sink.rows, [a, b])


def test_stop_from_a_sink_ends_an_endless_run_with_exact_accounting(analytic_model):
    sink = CollectSink(stop_after=25)
    p = Pipeline([_synthetic(None)], OnnxPoseModel(analytic_model), sinks=[sink])
    sink.pipeline = p
    summary = p.run()
    assert summary.processed >= 25
    assert summary.captured == summary.processed + summary.dropped


def test_ctrl_c_stops_cleanly_and_keeps_the_recording(analytic_model, tmp_path):
    rec = RecorderSink(tmp_path / "r.h5", chunk_frames=1000)
    sink = CollectSink(raise_after=12)
    summary = Pipeline([_synthetic(None)], OnnxPoseModel(analytic_model), sinks=[rec, sink]).run()
    assert summary.interrupted
    assert summary.sinks["recorder"]["frames_written"] == len(sink.rows) >= 12
    assert len(read_dlc_table(tmp_path / "r.h5")) == len(sink.rows)


class FailingSource(SyntheticSource):
    """A camera that is unplugged after ``fail_at`` frames."""

    def __init__(self, fail_at, **kw):
        super().__init__(**kw)
        self.fail_at = fail_at
        self.count = 0

    def _do_read_into(self, out):
        if self.count == self.fail_at:
            raise SourceError(self.name, "camera unplugged")
        self.count += 1
        return super()._do_read_into(out)


def test_source_failure_raises_after_flushing_the_recording(analytic_model, tmp_path):
    src = FailingSource(40, width=320, height=240, fps=30.0)
    rec = RecorderSink(tmp_path / "r.h5", chunk_frames=1000)
    sink = CollectSink()
    p = Pipeline([src], OnnxPoseModel(analytic_model), sinks=[rec, sink], config=PipelineConfig(live=False, batch_size=4))
    with pytest.raises(SourceError, match="camera unplugged"):
        p.run()
    assert sink.closed and p.summary is not None
    assert p.summary.captured == 40 == p.summary.processed + p.summary.dropped
    assert len(read_dlc_table(tmp_path / "r.h5")) == len(sink.rows) == p.summary.processed


def test_stages_run_before_sinks_and_see_the_poses(analytic_model):
    from rtpose.results import Action

    seen = []

    class Stage:
        name = "probe"

        def open(self, streams):
            seen.append(("open", len(streams)))

        def process(self, batch):
            batch.actions.append(Action("event", "probe", int(batch.t_capture_ns[0]), int(batch.frame_index[0])))

    class ActionSink(CollectSink):
        def write(self, batch):
            seen.append(("actions", len(batch.actions)))

    Pipeline([_synthetic(5)], OnnxPoseModel(analytic_model), stages=[Stage()], sinks=[ActionSink()],
             config=PipelineConfig(live=False, batch_size=1)).run()
    assert seen[0] == ("open", 1) and seen[1:] == [("actions", 1)] * 5


def test_status_callback_reports_progress(analytic_model):
    statuses = []
    event = threading.Event()

    def on_status(st):
        statuses.append(st)
        event.set()

    Pipeline([_synthetic(40)], OnnxPoseModel(analytic_model),
             config=PipelineConfig(live=False, status_interval_s=0.0)).run(on_status=on_status)
    assert event.is_set() and statuses[-1].processed <= 40 and statuses[-1].fps > 0


def test_a_failure_while_opening_still_closes_every_sink(analytic_model, tmp_path):
    from rtpose.drivers.sources.video import VideoFileSource

    sink = CollectSink()
    p = Pipeline([VideoFileSource(tmp_path / "missing.mp4")], OnnxPoseModel(analytic_model), sinks=[sink])
    with pytest.raises(SourceError, match="missing.mp4"):
        p.run()
    assert sink.closed


def test_raw_video_is_recorded_with_an_index_matching_the_poses(analytic_model, tmp_path):
    import cv2
    import pandas as pd

    src = _synthetic(30, seed=4)
    rec = RecorderSink(tmp_path / "p.h5")
    summary = Pipeline([src], OnnxPoseModel(analytic_model), sinks=[rec],
                       config=PipelineConfig(live=False, batch_size=2, record_video=str(tmp_path / "raw.avi"))).run()
    assert summary.sinks["video"]["video_frames_written"] + summary.sinks["video"]["video_frames_dropped"] == 30
    index = pd.read_csv(tmp_path / "raw_frames.csv")
    timing = pd.read_csv(tmp_path / "p_timing.csv")
    written = summary.sinks["video"]["video_frames_written"]
    assert len(index) == written and written > 0
    merged = index.merge(timing, on="frame", suffixes=("_video", ""))
    assert (merged["t_capture_ns_video"] == merged["t_capture_ns"]).all()  # same frames, same stamps
    cap = cv2.VideoCapture(str(tmp_path / "raw.avi"))
    ok, frame = cap.read()
    cap.release()
    expected = np.zeros((240, 320, 3), np.uint8)
    src.render(int(index["frame"][0]), expected)
    assert ok and np.abs(frame.astype(int) - expected).mean() < 3  # MJPG is lossy


def test_live_target_is_decode_end_plus_output_delay_and_n_frames_is_the_bound(analytic_model):
    """What docs/protocol.md says about ``t_target_ns``, ``n_frames`` and when ``pred`` is NaN."""
    sink = CollectSink()
    config = PipelineConfig(live=True, output_delay_ms=25, max_frames=40)
    Pipeline([_synthetic(100)], OnnxPoseModel(analytic_model), sinks=[sink], config=config).run()
    assert sink.streams[0].n_frames == 40  # frames=100 capped by max_frames (--frames)
    assert sink.rows and all(t_target == t_decoded + 25_000_000 for *_, t_decoded, t_target in sink.rows)
    sink = CollectSink()
    Pipeline([_synthetic(None)], OnnxPoseModel(analytic_model), sinks=[sink], config=PipelineConfig(max_frames=3)).run()
    assert sink.streams[0].n_frames == 3  # endless, bounded by --frames
    assert PipelineConfig().kalman_min_likelihood == 0.5 and PipelineConfig().kalman_max_gap_s == 0.5  # the doc's numbers
