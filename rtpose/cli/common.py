"""Options and helpers shared by the subcommands that run a model."""

from __future__ import annotations

import argparse
import math
import signal
import sys
from typing import Callable

from ..framing import CropBox, DynamicCrop, Framing
from ..adaptive_threads import AdaptiveThreadsModel, ThreadRule
from ..model import DEFAULT_SPINNING, OnnxPoseModel, default_threads, load_model
from ..pipeline import Pipeline, RunSummary, Status
from .report import format_summary, status_line


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1 (``--threads``, ``--batch``, ``--frames``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not allowed; give a whole number of at least 1")
    return value


def thread_count(text: str) -> int | str:
    """argparse type for ``--threads``: a whole number >= 1, or ``auto``."""
    return "auto" if text.strip().lower() == "auto" else positive_int(text)


def non_negative_ms(text: str) -> float:
    """argparse type: a finite number of milliseconds >= 0 (``--output-delay-ms``, ``--max-wait-ms``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of milliseconds") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text} is not allowed; give a finite number of milliseconds >= 0, e.g. 10")
    return value


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None,
                        help="rtpose .onnx file or DeepLabCut exported-model folder (default: the bundled openfield model)")
    parser.add_argument("--providers", default="auto",
                        help="comma-separated execution providers, best first: tensorrt,cuda,cpu (default: auto)")
    parser.add_argument("--threads", type=thread_count, default=None,
                        help="CPU inference threads: a number, or auto (as many as the cores other programs leave "
                             "free, re-measured every 0.5 s: docs/performance.md). Default: all usable cores")
    parser.add_argument("--spinning", choices=("on", "off"), default="on" if DEFAULT_SPINNING else "off",
                        help="let idle inference threads busy-wait for work (ONNX Runtime's allow_spinning). "
                             "Default off: slightly slower on an idle machine, much steadier when other "
                             "programs use the CPU (docs/performance.md)")
    parser.add_argument("--trt-fp16", action="store_true",
                        help="TensorRT: let it run layers in float16 (for CUDA, export with --fp16 instead)")
    parser.add_argument("--cuda-graph", choices=("auto", "on", "off"), default="auto",
                        help="GPU: capture each run as a CUDA graph and replay it (fixed frame size and batch; "
                             "default auto: on where shapes are fixed)")
    parser.add_argument("--graph-decode", choices=("auto", "off"), default="auto",
                        help="for a model exported with --decode-in-graph: off decodes the maps on the CPU instead "
                             "(default auto: poses straight from the model)")


def add_framing_arguments(parser: argparse.ArgumentParser, *, live: bool) -> None:
    """--resize and --crop (and, for live runs, --dynamic-crop): DeepLabCut-Live's resize/cropping/dynamic."""
    parser.add_argument("--resize", type=float, default=1.0, metavar="F",
                        help="scale frames by F before the network (cv2.INTER_LINEAR), e.g. 0.5; poses are "
                             "reported in full-frame pixels (DeepLabCut-Live's resize)")
    parser.add_argument("--crop", default=None, metavar="X1,X2,Y1,Y2",
                        help="only look at columns X1..X2-1, rows Y1..Y2-1 of every frame; poses are reported in "
                             "full-frame pixels (DeepLabCut-Live's cropping)")
    if live:
        parser.add_argument("--dynamic-crop", default=None, metavar="THRESHOLD,MARGIN",
                            help="crop each frame to the box around the previous frame's keypoints with likelihood "
                                 ">= THRESHOLD, plus MARGIN pixels; the whole frame (or --crop) while none is that "
                                 "confident (DeepLabCut-Live's dynamic=(True, THRESHOLD, MARGIN)), e.g. 0.5,10")


def framing_from_args(args: argparse.Namespace) -> Framing | None:
    dynamic = getattr(args, "dynamic_crop", None)
    framing = Framing(crop=CropBox.parse(args.crop) if args.crop else None, resize=float(args.resize),
                      dynamic=DynamicCrop.parse(dynamic) if dynamic else None)
    return None if framing.is_identity else framing


def model_from_args(args: argparse.Namespace, *, threads: int | None = None) -> OnnxPoseModel:
    """The model the options name; ``threads`` overrides ``--threads``. With ``--threads auto`` on the CPU
    provider: an :class:`~rtpose.adaptive_threads.AdaptiveThreadsModel` (one session per thread count)."""
    providers = None if args.providers == "auto" else [p.strip() for p in args.providers.split(",") if p.strip()]
    spinning = args.spinning == "on"
    graph = getattr(args, "cuda_graph", "auto")
    options = dict(providers=providers, spinning=spinning, trt_fp16=getattr(args, "trt_fp16", False),
                   cuda_graph=None if graph == "auto" else graph == "on",
                   graph_decode=False if getattr(args, "graph_decode", "auto") == "off" else None)
    wanted = threads or args.threads
    if wanted != "auto":
        return load_model(args.model, threads=wanted, **options)
    cores = default_threads()
    first = load_model(args.model, threads=cores, **options)
    if first.provider != "CPUExecutionProvider" or cores == 1 or first.metadata.topdown_model:
        return first  # nothing to adapt: the GPU runs the network, or there is one core (top-down: not yet)
    return AdaptiveThreadsModel(lambda n: first if n == cores else load_model(first.path, threads=n, **options),
                                ThreadRule(cores))


#: Exit statuses shared by the subcommands (README and docs/reliability.md list them).
EXIT_OK = 0
EXIT_MISMATCH = 1  # frame accounting does not add up
EXIT_ERROR = 2  # an RtposeError: the message says what to do
EXIT_PARTIAL = 3  # analyze: an input could only be read in part (its result is marked partial)
EXIT_INTERRUPTED = 130  # stopped by a signal (Ctrl-C, SIGTERM, SIGHUP)

#: Signals that stop a run cleanly (files flushed, summary printed).
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class StopSignals:
    """While active, SIGINT, SIGTERM and SIGHUP stop the attached pipeline cleanly and set
    :attr:`requested`, so a command running several pipelines (``analyze``) starts no further one."""

    def __init__(self):
        self.requested: int | None = None
        self._pipeline: Pipeline | None = None
        self._previous: dict = {}

    def attach(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline
        if self.requested is not None:
            pipeline.stop()

    def _handle(self, signum, frame) -> None:
        self.requested = signum
        if self._pipeline is not None:
            self._pipeline.stop()

    def __enter__(self) -> "StopSignals":
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)


def run_with_reporting(pipeline: Pipeline, *, total_frames: int | None = None, quiet: bool = False,
                       stop: StopSignals | None = None,
                       finish: Callable[[RunSummary, BaseException | None], None] | None = None,
                       on_status: Callable[[Status], None] | None = None) -> RunSummary:
    """Run with a status line; stop signals end it cleanly; always print the summary.
    ``stop``: the StopSignals of a command running several pipelines (else one just for this run).
    ``finish(summary, error)`` runs once the run ended (``error``: what it raised, or None), before the
    summary is printed. ``on_status``: prints the status line instead of the default one."""
    if stop is None:
        with StopSignals() as own:
            return run_with_reporting(pipeline, total_frames=total_frames, quiet=quiet, stop=own, finish=finish,
                                      on_status=on_status)
    stop.attach(pipeline)
    live = pipeline.config.live
    error: BaseException | None = None
    if on_status is None:
        on_status = lambda st: status_line(st, total_frames, live=live)  # noqa: E731
    try:
        pipeline.run(on_status=None if quiet else on_status)
    except BaseException as exc:
        error = exc
        raise
    finally:
        if pipeline.summary is not None:
            if finish is not None:
                finish(pipeline.summary, error)
            print(format_summary(pipeline.summary, pipeline.stats.format_table()), file=sys.stdout, flush=True)
    return pipeline.summary


def run_settings(model: OnnxPoseModel, framing: Framing | None, **more) -> dict:
    """How a run is set up, for the recording (``<stem>_settings.json``)."""
    framing = framing or Framing()
    return {
        "model": str(model.path), "provider": model.provider,
        "threads": "auto" if isinstance(model, AdaptiveThreadsModel) else model.threads, "spinning": model.spinning,
        "execution": model.execution() if hasattr(model, "execution") else None,
        "resize": framing.resize, "crop": list(framing.crop.as_tuple()) if framing.crop else None,
        "dynamic_crop": ({"threshold": framing.dynamic.threshold, "margin_px": framing.dynamic.margin_px}
                         if framing.dynamic else None),
        **more,
    }
