"""``rtpose run``: the live pipeline on a camera, a video replayed as a camera, or the synthetic source."""

from __future__ import annotations

import argparse

from ..pipeline import Pipeline, PipelineConfig
from .common import add_framing_arguments, add_model_arguments, framing_from_args, model_from_args, run_with_reporting
from .outputs import add_output_arguments, build_outputs


def register(sub) -> None:
    p = sub.add_parser("run", help="run the live pipeline", description=__doc__)
    p.add_argument("--source", required=True, action="append",
                   help="video:PATH | camera:N | synthetic[:WxH@FPS]; repeat for several cameras")
    add_model_arguments(p)
    add_framing_arguments(p, live=True)
    p.add_argument("--frames", type=int, default=None, help="stop after N frames per source")
    p.add_argument("--no-pace", action="store_true", help="read video files as fast as possible instead of at their FPS")
    p.add_argument("--batch", type=int, default=1, help="max frames per inference (>= number of sources)")
    p.add_argument("--max-wait-ms", type=float, default=2.0,
                   help="with several cameras: how long to wait for the others' frames to batch them together")
    p.add_argument("--output-delay-ms", type=float, default=0.0,
                   help="predict poses this far beyond 'now' (the actuator's delay)")
    p.add_argument("--quiet", action="store_true", help="no live status line")
    add_output_arguments(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from ..drivers.sources import open_source

    framing = framing_from_args(args)
    model = model_from_args(args)
    sources = [open_source(spec, paced=not args.no_pace) for spec in args.source]
    stages, sinks = build_outputs(args, model.metadata, scorer=f"rtpose_{model.path.stem}")
    config = PipelineConfig(live=True, batch_size=max(args.batch, len(sources)), max_frames=args.frames,
                            max_wait_ms=args.max_wait_ms,
                            output_delay_ms=args.output_delay_ms, record_video=args.record_video,
                            framing=framing)
    summary = run_with_reporting(Pipeline(sources, model, sinks=sinks, stages=stages, config=config), quiet=args.quiet)
    return 0 if summary.captured == summary.processed + summary.dropped else 1
