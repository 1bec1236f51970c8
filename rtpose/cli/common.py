"""Options and helpers shared by the subcommands that run a model."""

from __future__ import annotations

import argparse
import signal
import sys

from ..model import OnnxPoseModel, load_model
from ..pipeline import Pipeline, RunSummary
from .report import format_summary, status_line


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None,
                        help="rtpose .onnx file or DeepLabCut exported-model folder (default: the bundled openfield model)")
    parser.add_argument("--providers", default="auto",
                        help="comma-separated execution providers, best first: tensorrt,cuda,cpu (default: auto)")
    parser.add_argument("--threads", type=int, default=None, help="CPU inference threads (default: all usable cores)")


def model_from_args(args: argparse.Namespace) -> OnnxPoseModel:
    providers = None if args.providers == "auto" else [p.strip() for p in args.providers.split(",") if p.strip()]
    return load_model(args.model, providers=providers, threads=args.threads)


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
