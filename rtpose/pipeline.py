"""The live/offline pipeline: sources → capture threads → rings → batcher →
model → decode → Kalman prediction → stages (rules) → sinks.

One capture thread per source writes into its ring; the inference loop runs
on the thread that calls :meth:`Pipeline.run`. Every frame yields one row of a
preallocated :class:`~rtpose.results.PoseBatch` with its stage timestamps,
measured pose and predicted pose.

Time: ``t_capture_ns`` is stamped by the capture thread. The Kalman filter is
driven by frame timestamps only: in live mode the capture stamps, in offline
(lossless) mode the media time ``frame_index / fps`` (reading a file as fast as
possible says nothing about when the animal moved). Live predictions are made
for "now + output_delay" (the moment the output takes effect); offline ones for
"frame time + output_delay".

Stopping: Ctrl-C (KeyboardInterrupt) or :meth:`Pipeline.stop` ends the run
cleanly; sinks are always closed (files flushed) and frame accounting is exact:
``captured == processed + dropped`` per stream.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from .batcher import Batcher
from .capture import CaptureThread
from .clock import Clock, monotonic_ns
from .decode import Decoder
from .decode import warmup as warmup_decode
from .errors import ConfigError
from .framing import Framing
from .kalman import KalmanPredictor
from .kalman import warmup as warmup_kalman
from .multianimal.live import AnimalStep
from .multianimal.topdown_model import TopDownStep
from .preprocess import FrameLoader
from .results import Event, PoseBatch, StreamInfo
from .memory import MODEL_BYTES_PER_PIXEL, check_fits
from .recording.video import VIDEO_BUFFERS, VideoRecorder, planned_video_paths
from .ring import FrameRing
from .stats import LatencyStats

log = logging.getLogger(__name__)


@dataclass
class PipelineConfig:
    """Knobs of a run. ``live=True`` uses the newest-frame policy, else lossless."""

    live: bool = True
    batch_size: int = 1
    max_wait_ms: float = 2.0
    ring_slots: int = 4
    max_frames: int | None = None  # per source
    first_frame: int = 0  # frame index of each source's first frame (a video read from frame N on)
    output_delay_ms: float = 0.0
    kalman_model: str = "cv"
    kalman_process_noise: float | None = None  # None: the model's default (see rtpose.kalman)
    kalman_measurement_noise_px: float = 2.0
    kalman_min_likelihood: float = 0.5
    kalman_max_gap_s: float = 0.5
    status_interval_s: float = 1.0
    record_video: str | None = None  # .avi/.mp4 path: every captured frame (one file per stream)
    overwrite: bool = False  # replace an existing record_video file instead of refusing
    framing: Framing | None = None  # crop / resize / dynamic crop (rtpose.framing); None: whole frames
    #: multi-animal models: keyword arguments of rtpose.multianimal.tracking.IdentityTracker (None: its defaults)
    tracker_options: dict | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.batch_size, int) and self.batch_size >= 1):
            raise ConfigError(f"batch_size must be a whole number >= 1, got {self.batch_size!r}")
        if self.max_frames is not None and not (isinstance(self.max_frames, int) and self.max_frames >= 1):
            raise ConfigError(f"max_frames must be None (no limit) or a whole number >= 1, got {self.max_frames!r}")
        for name in ("output_delay_ms", "max_wait_ms"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"{name} must be a finite number of milliseconds >= 0, got {value!r}")


def _one_tap(taps: list):
    """The capture thread's one tap from several (the raw-video recorder, sinks that need frames)."""
    if len(taps) <= 1:
        return taps[0] if taps else None

    def tap(frame, frame_index: int, t_capture_ns: int) -> None:
        for t in taps:
            t(frame, frame_index, t_capture_ns)

    return tap


def _frame_bound(n_frames: int | None, max_frames: int | None) -> int | None:
    """How many frames a run takes from a stream at most: the source's count capped by
    ``max_frames``; None when neither bounds it (a camera, an endless synthetic source)."""
    bounds = [n for n in (n_frames, max_frames) if n is not None]
    return min(bounds) if bounds else None


@dataclass
class StreamCounts:
    stream_id: str
    captured: int
    processed: int
    dropped: int
    fps: float = 0.0  # the source's nominal frame rate (0: unknown)
    #: Frames the camera numbered (its own frame counter) that never reached the ring: lost in the camera,
    #: the link or the driver before capture. Only sources with a frame counter (Basler, GenICam) count them.
    lost_before_capture: int = 0


@dataclass
class RunSummary:
    streams: list[StreamCounts]
    duration_s: float
    latency_ms: dict[str, dict[str, float]]
    provider: str
    batch_size: int
    live: bool
    interrupted: bool = False
    sinks: dict[str, dict[str, object]] = field(default_factory=dict)
    model_settings: str = ""  # e.g. "2 CPU threads, spinning off"
    stopped_by: str = ""  # the error that ended the run early (e.g. a camera unplugged), "" otherwise
    #: multi-animal models: animals per frame, assembly (top-down: detector, crop, pose, decode) and tracking
    #: cost per frame (AnimalStep.summary, TopDownStep.summary)
    animals: dict[str, float] = field(default_factory=dict)
    #: how the model ran: provider asked for / used, fallback and its reason, CUDA graphs, I/O binding,
    #: decode in graph, TensorRT engine build (OnnxPoseModel.execution(); empty for other backends)
    execution: dict = field(default_factory=dict)

    @property
    def captured(self) -> int:
        return sum(s.captured for s in self.streams)

    @property
    def processed(self) -> int:
        return sum(s.processed for s in self.streams)

    @property
    def dropped(self) -> int:
        return sum(s.dropped for s in self.streams)

    @property
    def lost_before_capture(self) -> int:
        return sum(s.lost_before_capture for s in self.streams)

    @property
    def fps(self) -> float:
        return self.processed / self.duration_s if self.duration_s > 0 else 0.0


@dataclass
class Status:
    """A snapshot for a live status line."""

    elapsed_s: float
    captured: int
    processed: int
    dropped: int
    fps: float
    latency_p50_ms: float


class Pipeline:
    """Wire sources, a model and sinks; call :meth:`run`."""

    def __init__(self, sources: Sequence, model, *, sinks: Sequence = (), stages: Sequence = (),
                 config: PipelineConfig | None = None, clock: Clock = monotonic_ns):
        if not sources:
            raise ConfigError("a pipeline needs at least one source")
        self.sources = list(sources)
        self.model = model
        self.sinks = list(sinks)
        self.stages = list(stages)
        self.config = config or PipelineConfig()
        self.clock = clock
        self.stats = LatencyStats()
        self.summary: RunSummary | None = None
        self._stop = threading.Event()
        self.streams: list[StreamInfo] = []
        self.video_recorders: list[VideoRecorder] = []

    def stop(self) -> None:
        """Ask the run to end (thread-safe; e.g. from a signal handler)."""
        self._stop.set()

    # ------------------------------------------------------------------ set-up
    def _open(self) -> tuple[list[FrameRing], list[CaptureThread], Batcher, PoseBatch, FrameLoader]:
        cfg = self.config
        meta = self.model.metadata
        infos = [src.open() for src in self.sources]
        shapes = {(i.height, i.width) for i in infos}
        if len(shapes) != 1:
            raise ConfigError(f"all sources of one run must share a frame size, got {sorted(shapes)}")
        height, width = shapes.pop()
        self._check_memory(height, width)
        self.streams = [StreamInfo(src.name, i.width, i.height, i.fps, meta.pose_names,
                                   _frame_bound(i.n_frames, cfg.max_frames), layout=meta.layout)
                        for src, i in zip(self.sources, infos)]
        wakeup = threading.Event()
        policy = "newest" if cfg.live else "lossless"
        slots = max(cfg.ring_slots, 3 if cfg.live else cfg.batch_size + 1)
        rings = [FrameRing((height, width, 3), slots=slots, policy=policy, wakeup=wakeup) for _ in self.sources]
        batch_size = max(cfg.batch_size, len(self.sources)) if cfg.live else cfg.batch_size
        if batch_size > 1 and not meta.batch_invariant:
            batch_size = self._unbatched(batch_size)
        loader = FrameLoader(self.model, cfg.framing, width, height, len(self.sources))
        if loader.dynamic is not None and meta.multianimal:
            raise ConfigError("dynamic cropping follows one animal; with a multi-animal model use --crop (a fixed "
                              "part of the frame) or the whole frame")
        if loader.dynamic is not None and batch_size != 1:
            raise ConfigError(f"dynamic cropping crops each frame around the previous frame's pose, so it runs "
                              f"one frame at a time: use --batch 1 (not {batch_size})")
        loader.prepare_model(batch_size)
        batcher = Batcher(rings, batch_size=batch_size, max_wait_ms=cfg.max_wait_ms, clock=self.clock)
        self.video_recorders = []
        if cfg.record_video:
            videos = planned_video_paths(cfg.record_video, len(self.streams))[::2]
            for path, info in zip(videos, self.streams):
                self.video_recorders.append(VideoRecorder(path, frame_shape=(height, width, 3), fps=info.fps or 30.0,
                                                          overwrite=cfg.overwrite))
        taps = []
        for s in range(len(self.sources)):
            stream_taps = [self.video_recorders[s].offer] if self.video_recorders else []
            for sink in self.sinks:  # sinks that need the frames (the live preview); plain objects need not
                tap = sink.frame_tap(s) if hasattr(sink, "frame_tap") else None
                if tap is not None:
                    stream_taps.append(tap)
            taps.append(_one_tap(stream_taps))
        captures = [CaptureThread(src, ring, max_frames=cfg.max_frames, clock=self.clock, name=f"rtpose-capture-{i}",
                                  tap=tap, first_index=cfg.first_frame)
                    for i, (src, ring, tap) in enumerate(zip(self.sources, rings, taps))]
        n_animals = meta.layout.n_animals if meta.multianimal else 0
        return rings, captures, batcher, PoseBatch(batch_size, len(meta.pose_names), n_animals), loader

    def _unbatched(self, batch_size: int) -> int:
        """Batch size 1 for a model that does not declare itself batch-invariant (never batch it silently)."""
        name = getattr(self.model, "path", "the model")
        if len(self.sources) > 1:
            raise ConfigError(
                f"{name} does not declare itself batch-invariant (exported by an earlier rtpose or another tool), "
                f"so its {len(self.sources)} cameras cannot share a batch; re-export it with `rtpose export` "
                "(which checks batch invariance), or run one camera per process")
        log.warning("%s does not declare itself batch-invariant (exported by an earlier rtpose or another tool): "
                    "running one frame at a time instead of batches of %d; re-export it with `rtpose export` to "
                    "batch", name, batch_size)
        return 1

    def _check_memory(self, height: int, width: int) -> None:
        """Refuse a frame size whose buffers cannot fit, before allocating any of them."""
        cfg = self.config
        frame = height * width * 3
        slots = max(cfg.ring_slots, 3 if cfg.live else cfg.batch_size + 1)
        batch = max(cfg.batch_size, len(self.sources)) if cfg.live else cfg.batch_size
        parts = {
            "frame rings": len(self.sources) * slots * frame,
            "network": batch * height * width * MODEL_BYTES_PER_PIXEL,
            "video recording buffers": (len(self.sources) * VIDEO_BUFFERS * frame) if cfg.record_video else 0,
        }
        check_fits(f"{width}x{height} frames (batch {batch})", parts,
                   "use a smaller frame size (e.g. synthetic:640x480, or a camera's width=/height= options)")

    # ------------------------------------------------------------------ run
    def run(self, on_status: Callable[[Status], None] | None = None) -> RunSummary:
        """Run until every source ends, :meth:`stop` is called or Ctrl-C.

        Raises the first error of a source, the model or a sink *after* closing
        every sink (so recordings are flushed); :attr:`summary` is set once frames
        could flow (an error while opening sources or the model leaves it None).
        """
        cfg = self.config
        meta = self.model.metadata
        try:
            rings, captures, batcher, batch, loader = self._open()
        except BaseException as setup_error:
            # nothing ran: release what sources and sinks already hold (a bound socket, an open port)
            for closeable in [*self.sources, *self.sinks, *self.video_recorders]:
                try:
                    closeable.close()
                except Exception as close_error:  # reported with, not instead of, the set-up error
                    setup_error.add_note(f"also failed to close {closeable!r}: {close_error}")
            raise
        # A model that decodes inside its graph hands over poses: the pipeline's decoder is skipped.
        graph_decode = bool(getattr(self.model, "decodes_in_graph", False))
        decoder = animals = topdown = None
        if meta.topdown_model:  # detector, crops, pose model on all crops, then identity slots per stream
            animals = topdown = TopDownStep(self.model, len(self.sources), batch.capacity, self.clock,
                                            cfg.tracker_options)
        elif meta.multianimal:  # DeepLabCut's assembly, then identity slots per stream
            animals = AnimalStep(meta.assembly, meta.layout, len(self.sources), batch.capacity, self.clock,
                                 cfg.tracker_options)
        elif not graph_decode:
            warmup_decode()  # compile (or load cached) Numba kernels before the first frame, not on it
            decoder = Decoder(meta.stride, meta.locref_stdev, meta.num_bodyparts, batch.capacity,
                              clip_scores=meta.clip_scores)
        warmup_kalman()
        predictors = [KalmanPredictor(batch.num_bodyparts, model=cfg.kalman_model,
                                      process_noise=cfg.kalman_process_noise,
                                      measurement_noise_px=cfg.kalman_measurement_noise_px,
                                      min_likelihood=cfg.kalman_min_likelihood, max_gap_s=cfg.kalman_max_gap_s)
                      for _ in self.sources]
        frame_period_ns = [int(1e9 / s.fps) if s.fps > 0 else 33_333_333 for s in self.streams]
        delay_ns = int(cfg.output_delay_ms * 1e6)
        reported_drops = [0] * len(rings)
        reported_lost = [0] * len(rings)  # frames the cameras' own counters say were lost before capture
        interrupted = finished = False
        clock = self.clock
        t_start = clock()
        next_status = t_start + int(cfg.status_interval_s * 1e9)
        error: BaseException | None = None
        try:
            for stage in self.stages:
                stage.open(self.streams)
            for sink in self.sinks:
                sink.open(self.streams)
            for cap in captures:
                cap.start()
            while not self._stop.is_set():
                for cap, ring in zip(captures, rings):
                    if cap.error is not None and not ring.has_unread():  # its frames captured before are
                        cap.check()  # processed first: a camera that fails costs no frame it delivered
                n = batcher.next_batch(loader, batch, self._stop)
                if n == 0:
                    if batcher.finished:
                        finished = True
                        break
                    continue
                batch.t_infer_start_ns[:n] = clock()
                if topdown is not None:
                    topdown.infer(batch, n)
                    batch.t_infer_end_ns[:n] = clock()
                    topdown.decode(batch, n)
                elif animals is not None:
                    maps = self.model.run_animals(n)
                    batch.t_infer_end_ns[:n] = clock()
                    animals.decode(maps, batch, n)
                elif graph_decode:
                    poses = self.model.run_poses(n)
                    batch.t_infer_end_ns[:n] = clock()
                    np.copyto(batch.pose[:n], poses)
                else:
                    scmap, locref = self.model.run(n)
                    batch.t_infer_end_ns[:n] = clock()
                    decoder.decode(scmap, locref, batch.pose, n)
                loader.to_full_frame(batch, n)
                loader.observe(batch, n)
                for i in range(n):  # the frame's time on its stream's timeline (tracker, Kalman, rules)
                    batch.t_frame_ns[i] = (int(batch.t_capture_ns[i]) if cfg.live
                                           else int(batch.frame_index[i]) * frame_period_ns[batch.stream[i]])
                if animals is not None:
                    animals.track(batch, n, lambda s, first, stop: predictors[s].forget(first, stop))
                batch.t_decoded_ns[:n] = t_now = clock()
                for i in range(n):
                    s = batch.stream[i]
                    t_meas = int(batch.t_frame_ns[i])
                    t_target = (t_now if cfg.live else t_meas) + delay_ns
                    predictors[s].update(t_meas, batch.pose[i])
                    predictors[s].predict(t_target, batch.predicted[i])
                    batch.t_target_ns[i] = t_target
                batch.t_predicted_ns[:n] = clock()
                for s, ring in enumerate(rings):
                    if ring.dropped > reported_drops[s]:
                        batch.events.append(Event("drop", int(batch.t_capture_ns[0]), int(batch.frame_index[0]),
                                                  name=self.streams[s].stream_id,
                                                  detail=f"{ring.dropped - reported_drops[s]} frames", stream=s))
                        reported_drops[s] = ring.dropped
                for s, src in enumerate(self.sources):
                    lost = getattr(src, "frames_lost", 0)
                    if lost > reported_lost[s]:
                        batch.events.append(Event("drop", int(batch.t_capture_ns[0]), int(batch.frame_index[0]),
                                                  name=self.streams[s].stream_id,
                                                  detail=f"{lost - reported_lost[s]} frames lost before capture "
                                                         "(gap in the camera's frame counter)", stream=s))
                        reported_lost[s] = lost
                for stage in self.stages:
                    stage.process(batch)
                for sink in self.sinks:
                    sink.write(batch)
                batch.t_emitted_ns[:n] = t_emit = clock()
                self.stats.add(batch)
                if on_status is not None and t_emit >= next_status:
                    next_status = t_emit + int(cfg.status_interval_s * 1e9)
                    on_status(self._status(rings, t_emit - t_start))
            for cap in captures:
                cap.check()
            interrupted = self._stop.is_set() and not finished  # stop(): a signal or the caller
        except KeyboardInterrupt:
            interrupted = True
        except BaseException as exc:
            error = exc
        finally:
            for cap in captures:
                cap.stop()
            for ring in rings:
                ring.close_reader()  # unblocks a lossless writer; counts unseen frames as dropped
            for cap in captures:
                cap.join(5.0)
            for ring in rings:
                ring.close_reader()  # frames published while the capture thread was stopping
            for src in self.sources:
                try:
                    src.close()
                except Exception as exc:  # keep the first error, but close everything
                    error = error or exc
            failed = next((i for i, cap in enumerate(captures) if error is not None and cap.error is error), None)
            if failed is not None:  # a camera failed (e.g. unplugged): say so in the recording, then close it
                batch.clear()
                batch.events.append(Event("device", clock(), captures[failed].frames_read,
                                          name=self.streams[failed].stream_id, detail=str(error), stream=failed))
                for sink in self.sinks:
                    try:
                        sink.write(batch)
                    except Exception as exc:  # the camera's error is the one to report
                        error.add_note(f"also failed to record it in {sink.name}: {exc}")
            sink_summaries = {}
            for i, video in enumerate(self.video_recorders):
                try:
                    video.close()
                except Exception as exc:
                    error = error or exc
                sink_summaries[f"video{i}" if len(self.video_recorders) > 1 else "video"] = video.summary()
            for sink in self.sinks:  # every sink is closed exactly once, opened or not
                try:
                    sink.close()
                except Exception as exc:
                    error = error or exc
                sink_summaries[sink.name] = sink.summary()
            self.summary = RunSummary(
                streams=[StreamCounts(info.stream_id, r.captured, r.processed, r.dropped, float(info.fps or 0.0),
                                      int(getattr(src, "frames_lost", 0)))
                         for info, r, src in zip(self.streams, rings, self.sources)],
                duration_s=(clock() - t_start) * 1e-9,
                latency_ms=self.stats.summary(),
                provider=getattr(self.model, "provider", "?"),
                model_settings=getattr(self.model, "settings", ""),
                execution=self.model.execution() if hasattr(self.model, "execution") else {},
                batch_size=batch.capacity,
                live=cfg.live,
                interrupted=interrupted,
                sinks=sink_summaries,
                animals=animals.summary() if animals is not None else {},
                stopped_by=f"{type(error).__name__}: {error}" if error is not None else "",
            )
        if error is not None:
            raise error
        return self.summary

    def _status(self, rings: Sequence[FrameRing], elapsed_ns: int) -> Status:
        processed = sum(r.processed for r in rings)
        e2e = self.stats.samples_ms["end_to_end"]
        recent = e2e[: min(self.stats.count, self.stats.capacity)]
        return Status(
            elapsed_s=elapsed_ns * 1e-9,
            captured=sum(r.captured for r in rings),
            processed=processed,
            dropped=sum(r.dropped for r in rings),
            fps=processed / (elapsed_ns * 1e-9) if elapsed_ns else 0.0,
            latency_p50_ms=float(np.median(recent[-300:])) if len(recent) else float("nan"),
        )
