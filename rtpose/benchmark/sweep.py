"""The ``rtpose benchmark`` sweep: the real pipeline over sizes x batches x providers.

For every combination the real :class:`~rtpose.pipeline.Pipeline` runs in
offline (lossless) mode on a :class:`~.replay.ReplaySource` of that frame size
(pre-rendered synthetic mouse frames, so drawing costs nothing on the capture
thread), with the real model (:class:`~rtpose.model.OnnxPoseModel`), decoder,
Kalman predictor and a sink (:class:`CopySink`, which copies the poses out as a
consumer would). A short warm-up run with the same model comes first (JIT
compilation, ONNX Runtime's first-run allocations). The numbers are the
pipeline's own per-frame stage statistics (:attr:`Pipeline.stats`).

Per frame and stage (``rtpose.stats.STAGE_SPANS``): ``queue`` (waiting in the
frame ring), ``preprocess`` (colour conversion and copy into the model input),
``inference`` (the whole batch's network run: every frame of a batch waits for
it), ``decode``, ``predict`` (Kalman), ``emit`` (the sinks) and ``end_to_end``
(capture to emit). Offline, the capture thread runs ahead and fills the ring,
so ``queue`` and therefore ``end_to_end`` grow with the ring size; ``service``
(dequeue to emit: everything the engine does for the frame) is added as the
latency that does not depend on it. FPS is frames divided by the time from the
first frame's dequeue to the last batch's emit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from ..clock import monotonic_ns
from ..errors import ConfigError, ModelError, RtposeError
from ..results import PoseBatch
from ..sinks.base import Sink
from .replay import ReplaySource
from .summary import summarize
from .sysinfo import OtherLoad

#: The stages reported, in pipeline order; "service" = preprocess + ... + emit.
STAGES = ("queue", "preprocess", "inference", "decode", "predict", "emit", "service", "end_to_end")
SERVICE_PARTS = ("preprocess", "inference", "decode", "predict", "emit")


class CopySink(Sink):
    """Copies each batch's poses into a preallocated array (what any consumer does) and
    notes the first dequeue and last write times (for FPS)."""

    name = "copy"

    def __init__(self, clock=monotonic_ns):
        self.clock = clock
        self.frames = 0
        self.t_first_ns: int | None = None
        self.t_last_ns = 0
        self._pose: np.ndarray | None = None

    def write(self, batch: PoseBatch) -> None:
        n = batch.n
        if self._pose is None or self._pose.shape != batch.pose.shape:
            self._pose = np.empty_like(batch.pose)
        np.copyto(self._pose[:n], batch.pose[:n])
        if self.t_first_ns is None and n:
            self.t_first_ns = int(batch.t_dequeued_ns[0])
        self.frames += n
        self.t_last_ns = self.clock()

    @property
    def fps(self) -> float:
        if self.t_first_ns is None or self.t_last_ns <= self.t_first_ns:
            return float("nan")
        return self.frames / ((self.t_last_ns - self.t_first_ns) * 1e-9)


@dataclass(frozen=True)
class SweepConfig:
    sizes: tuple[tuple[int, int], ...] = ((320, 240), (640, 480))
    batches: tuple[int, ...] = (1, 4, 16)
    providers: tuple[str, ...] = ("cpu",)
    frames: int = 300
    warmup_frames: int = 32
    threads: int | None = None
    ring_slots: int = 4

    def __post_init__(self):
        if not self.sizes or not self.batches or not self.providers:
            raise ConfigError("the sweep needs at least one size, batch and provider")
        for w, h in self.sizes:
            if w < 32 or h < 32:
                raise ConfigError(f"frame size {w}x{h} is too small; use at least 32x32")
        if any(b < 1 for b in self.batches):
            raise ConfigError(f"batch sizes must be >= 1, got {self.batches}")
        if self.frames < 1 or self.warmup_frames < 0:
            raise ConfigError("--frames must be >= 1 (and warm-up frames >= 0)")

    @property
    def combinations(self) -> list[tuple[str, int, int, int]]:
        return [(p, w, h, b) for p in self.providers for (w, h) in self.sizes for b in self.batches]


@dataclass
class CombinationResult:
    """One (provider, size, batch) measurement; ``samples_ms`` is kept for plots, not written to JSON."""

    provider: str
    width: int
    height: int
    batch: int
    status: str = "ok"  # "ok" | "skipped" | "failed"
    reason: str = ""
    provider_used: str = ""
    frames: int = 0
    dropped: int = 0
    fps: float = float("nan")
    fps_wall: float = float("nan")
    duration_s: float = float("nan")
    other_cpu_cores: float = float("nan")  # cores other processes kept busy meanwhile (sysinfo.OtherLoad)
    stages: dict[str, dict[str, float]] = field(default_factory=dict)
    samples_ms: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("samples_ms")
        d["size"] = self.size
        return d


def stage_samples(stats) -> dict[str, np.ndarray]:
    """Per-frame samples (ms) of every reported stage from a LatencyStats, 'service' derived."""
    stored = min(stats.count, stats.capacity)
    out = {name: stats.samples_ms[name][:stored].copy() for name in stats.samples_ms}
    out["service"] = sum(out[name] for name in SERVICE_PARTS) if stored else np.zeros(0)
    return out


def run_pipeline_once(model, width: int, height: int, batch: int, frames: int, *, ring_slots: int = 4,
                      on_status=None):
    """Run the offline pipeline on ``frames`` replayed frames; returns (pipeline, summary, sink)."""
    from ..pipeline import Pipeline, PipelineConfig

    sink = CopySink()
    source = ReplaySource(width, height, frames)
    config = PipelineConfig(live=False, batch_size=batch, ring_slots=ring_slots, max_wait_ms=50.0)
    pipeline = Pipeline([source], model, sinks=[sink], config=config)
    summary = pipeline.run(on_status=on_status)
    return pipeline, summary, sink


def measure_combination(model, width: int, height: int, batch: int, cfg: SweepConfig,
                        on_status=None) -> CombinationResult:
    """Warm up, then measure one combination with an already loaded model."""
    result = CombinationResult(provider="", width=width, height=height, batch=batch)
    if cfg.warmup_frames:
        run_pipeline_once(model, width, height, batch, max(cfg.warmup_frames, 2 * batch), ring_slots=cfg.ring_slots)
    with OtherLoad() as load:
        pipeline, summary, sink = run_pipeline_once(model, width, height, batch, cfg.frames,
                                                    ring_slots=cfg.ring_slots, on_status=on_status)
    result.other_cpu_cores = load.cores
    samples = stage_samples(pipeline.stats)
    result.provider_used = summary.provider
    result.frames = summary.processed
    result.dropped = summary.dropped
    result.duration_s = summary.duration_s
    result.fps = sink.fps
    result.fps_wall = summary.fps
    result.stages = {name: summarize(samples[name]) for name in STAGES}
    result.samples_ms = samples
    return result


ProgressFn = Callable[[int, int, CombinationResult], None]


def run_sweep(model_spec, cfg: SweepConfig, *, on_start: ProgressFn | None = None,
              on_done: ProgressFn | None = None, on_status=None, loader=None) -> list[CombinationResult]:
    """Measure every combination of ``cfg``; a provider that is not available is reported as skipped.

    ``loader(model_spec, providers=[name], threads=...)`` loads a model (default
    :func:`rtpose.model.load_model`). ``on_start``/``on_done`` get (index, total, result).
    """
    if loader is None:
        from ..model import load_model as loader
    results: list[CombinationResult] = []
    combos = cfg.combinations
    total = len(combos)
    models: dict[str, object] = {}
    failures: dict[str, str] = {}
    for i, (provider, w, h, b) in enumerate(combos):
        pending = CombinationResult(provider=provider, width=w, height=h, batch=b)
        if on_start:
            on_start(i, total, pending)
        if provider not in models and provider not in failures:
            try:
                models[provider] = loader(model_spec, providers=[provider], threads=cfg.threads)
            except ModelError as exc:
                failures[provider] = str(exc)
        if provider in failures:
            pending.status, pending.reason = "skipped", failures[provider]
            result = pending
        else:
            try:
                result = measure_combination(models[provider], w, h, b, cfg, on_status=on_status)
                result.provider = provider
            except RtposeError as exc:  # e.g. a fixed-batch model: report and go on with the rest
                pending.status, pending.reason = "failed", str(exc)
                result = pending
        results.append(result)
        if on_done:
            on_done(i, total, result)
    return results


def parse_sizes(text: str) -> tuple[tuple[int, int], ...]:
    """``"320x240,640x480"`` -> ((320, 240), (640, 480)); ConfigError naming the bad part."""
    out = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        w, sep, h = part.lower().partition("x")
        if not sep or not w.isdigit() or not h.isdigit():
            raise ConfigError(f"frame size {part!r} must look like WIDTHxHEIGHT, e.g. 640x480")
        out.append((int(w), int(h)))
    if not out:
        raise ConfigError(f"no frame sizes in {text!r}; give e.g. --sizes 320x240,640x480")
    return tuple(out)


def parse_ints(text: str, what: str) -> tuple[int, ...]:
    try:
        out = tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise ConfigError(f"{what} {text!r} must be comma-separated integers, e.g. 1,4,16") from None
    if not out:
        raise ConfigError(f"no values in {what} {text!r}")
    return out


def parse_names(text: str) -> tuple[str, ...]:
    out = tuple(p.strip().lower() for p in text.split(",") if p.strip())
    if not out:
        raise ConfigError(f"no providers in {text!r}; give e.g. cpu or cpu,cuda")
    return out
