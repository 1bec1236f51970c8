"""Options and helpers shared by the subcommands that run a model."""

from __future__ import annotations

import argparse
import signal
import sys

from ..framing import CropBox, DynamicCrop, Framing
from ..model import DEFAULT_SPINNING, OnnxPoseModel, load_model
from ..pipeline import Pipeline, RunSummary
from .report import format_summary, status_line


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None,
                        help="rtpose .onnx file or DeepLabCut exported-model folder (default: the bundled openfield model)")
    parser.add_argument("--providers", default="auto",
                        help="comma-separated execution providers, best first: tensorrt,cuda,cpu (default: auto)")
    parser.add_argument("--threads", type=int, default=None, help="CPU inference threads (default: all usable cores)")
    parser.add_argument("--spinning", choices=("on", "off"), default="on" if DEFAULT_SPINNING else "off",
                        help="let idle inference threads busy-wait for work (ONNX Runtime's allow_spinning). "
                             "Default off: slightly slower on an idle machine, much steadier when other "
                             "programs use the CPU (docs/performance.md)")


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
    """The model the options name; ``threads`` overrides ``--threads``."""
    providers = None if args.providers == "auto" else [p.strip() for p in args.providers.split(",") if p.strip()]
    return load_model(args.model, providers=providers, threads=threads or args.threads,
                      spinning=args.spinning == "on")


def run_with_reporting(pipeline: Pipeline, *, total_frames: int | None = None, quiet: bool = False) -> RunSummary:
    """Run with a status line; SIGTERM and Ctrl-C stop cleanly; always print the summary."""
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: pipeline.stop())
    try:
        pipeline.run(on_status=None if quiet else (lambda st: status_line(st, total_frames)))
    finally:
        signal.signal(signal.SIGTERM, previous)
        if pipeline.summary is not None:
            print(format_summary(pipeline.summary, pipeline.stats.format_table()), file=sys.stdout, flush=True)
    return pipeline.summary


def run_settings(model: OnnxPoseModel, framing: Framing | None, **more) -> dict:
    """How a run is set up, for the recording (``<stem>_settings.json``)."""
    framing = framing or Framing()
    return {
        "model": str(model.path), "provider": model.provider, "threads": model.threads, "spinning": model.spinning,
        "resize": framing.resize, "crop": list(framing.crop.as_tuple()) if framing.crop else None,
        "dynamic_crop": ({"threshold": framing.dynamic.threshold, "margin_px": framing.dynamic.margin_px}
                         if framing.dynamic else None),
        **more,
    }
