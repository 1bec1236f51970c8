"""``rtpose run``: the live pipeline on a camera, a video replayed as a camera, or the synthetic source."""

from __future__ import annotations

import argparse

from ..pipeline import Pipeline, PipelineConfig
from ..errors import ConfigError
from ..framing import Framing
from .common import (add_framing_arguments, add_model_arguments, framing_from_args, model_from_args, non_negative_ms,
                     positive_int, run_settings, run_with_reporting)
from .outputs import add_output_arguments, build_outputs


def register(sub) -> None:
    p = sub.add_parser("run", help="run the live pipeline", description=__doc__)
    p.add_argument("--source", required=True, action="append",
                   help="video:PATH | camera:N | synthetic[:WxH@FPS] | basler:N|serial=S|emulator[,OPTIONS] | "
                        "genicam:PRODUCER.cti[,serial=S][,OPTIONS] (camera options: docs/hardware.md); "
                        "repeat for several cameras")
    add_model_arguments(p)
    add_framing_arguments(p, live=True)
    p.add_argument("--frames", type=positive_int, default=None, help="stop after N frames per source")
    p.add_argument("--no-pace", action="store_true", help="read video files as fast as possible instead of at their FPS")
    p.add_argument("--lossless", action="store_true",
                   help="process every frame in order instead of always the newest (for recording; Basler and "
                        "GenICam cameras then grab one by one, grab=all). Frames the pipeline cannot keep up with "
                        "pile up, and once the camera's buffers are full they are lost there and counted")
    p.add_argument("--batch", type=positive_int, default=1, help="max frames per inference (>= number of sources)")
    p.add_argument("--max-wait-ms", type=non_negative_ms, default=2.0,
                   help="with several cameras: how long to wait for the others' frames to batch them together")
    p.add_argument("--output-delay-ms", type=non_negative_ms, default=0.0,
                   help="predict poses this far beyond 'now' (the actuator's delay)")
    p.add_argument("--target-latency-ms", type=non_negative_ms, default=None, metavar="MS",
                   help="measure the model on the source at start-up (a few seconds) and use the most accurate "
                        "resize, precision (FP16/INT8 exports of the same network beside an .onnx model) and "
                        "thread count whose p99 latency meets MS; printed and recorded")
    p.add_argument("--quiet", action="store_true", help="no live status line")
    p.add_argument("--preview", action="store_true",
                   help="show the frames with the poses drawn in a window, on a thread of its own: a slow window "
                        "makes the preview skip poses, never the inference (needs a display and a GUI OpenCV)")
    add_output_arguments(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from ..drivers.sources import open_source

    if args.preview:
        from ..sinks.preview import check_display

        check_display()  # before anything opens: no display, or a headless OpenCV, is said now
    framing = framing_from_args(args)
    sources = [open_source(spec, paced=not args.no_pace, lossless=args.lossless) for spec in args.source]
    chosen = None
    if args.target_latency_ms is not None:
        model, framing, chosen = _tune(args, sources[0], framing)
    else:
        model = model_from_args(args)
    settings = run_settings(model, framing, target_latency=chosen.to_json() if chosen else None)
    stages, sinks = build_outputs(args, model.metadata, scorer=f"rtpose_{model.path.stem}", n_streams=len(sources),
                                  settings=settings)
    if args.preview:
        from ..sinks.preview import PreviewSink
        from ..viz.overlay import parse_skeleton

        meta = model.metadata
        skeleton = parse_skeleton(meta.skeleton, meta.bodyparts)
        sinks.append(PreviewSink(skeleton=meta.layout.animal_edges(skeleton) if meta.layout else skeleton))
    config = PipelineConfig(live=not args.lossless, batch_size=max(args.batch, len(sources)), max_frames=args.frames,
                            max_wait_ms=args.max_wait_ms, output_delay_ms=args.output_delay_ms,
                            record_video=args.record_video, overwrite=args.overwrite, framing=framing)
    summary = run_with_reporting(Pipeline(sources, model, sinks=sinks, stages=stages, config=config), quiet=args.quiet)
    return 0 if summary.captured == summary.processed + summary.dropped else 1


#: Frames read from the source at start-up to measure the candidate settings on.
TUNING_FRAMES = 30


def _tune(args: argparse.Namespace, source, framing: Framing | None):
    """--target-latency-ms: read frames from the source, measure, choose; returns (model, framing, choice)."""
    import dataclasses
    import sys
    from pathlib import Path

    import numpy as np

    from ..autotune import Candidate, Variant, candidates, find_twins, measure
    from ..model import default_threads

    if args.target_latency_ms <= 0:
        raise ConfigError(f"--target-latency-ms {args.target_latency_ms}: give a positive latency in ms")
    if args.resize != 1.0 or args.threads is not None:
        raise ConfigError("--target-latency-ms chooses --resize and --threads itself; leave those out "
                          "(or leave out --target-latency-ms)")
    info = source.open()
    try:
        frames = np.zeros((TUNING_FRAMES, info.height, info.width, 3), np.uint8)
        n = 0
        while n < TUNING_FRAMES and source.read_into(frames[n]):
            n += 1
    finally:
        source.close()
    if n == 0:
        raise ConfigError(f"{source.name} gave no frames to measure --target-latency-ms on")
    variants = (Variant(""),)
    if args.model is not None and str(args.model).lower().endswith(".onnx"):
        found = find_twins(args.model)  # FP16/INT8 exports of the same network beside it
        if len(found) > 1:
            variants = tuple(found)
            print("also measuring the other exports of this network beside it: " + ", ".join(
                f"{Path(v.path).name} ({v.precision})" for v in found[1:]), file=sys.stderr, flush=True)
    models: dict[tuple[str, int], object] = {}

    def model_for(cand: Candidate):
        key = (cand.variant.path, cand.threads)
        if key not in models:
            named = argparse.Namespace(**{**vars(args), "model": cand.variant.path or args.model})
            models[key] = model_from_args(named, threads=cand.threads)
        return models[key]

    first = model_for(Candidate(1.0, default_threads(), variants[0]))
    if first.metadata.multianimal:
        raise ConfigError("--target-latency-ms measures single-animal models only for now; give --resize and "
                          "--threads yourself for a multi-animal model")
    cands = candidates(default_threads(), width=info.width, height=info.height, stride=first.metadata.stride,
                       variants=variants)
    print(f"measuring {len(cands)} settings on {n} frames of {source.name} for --target-latency-ms "
          f"{args.target_latency_ms:g} ...", file=sys.stderr, flush=True)
    choice = measure(model_for, frames[:n], framing, cands, args.target_latency_ms,
                     on_result=lambda m: print(f"   {m.candidate.describe():22s} p50 {m.p50_ms:7.2f} ms  "
                                               f"p99 {m.p99_ms:7.2f} ms", file=sys.stderr, flush=True))
    print(choice.describe(), flush=True)
    best = choice.chosen.candidate
    framing = dataclasses.replace(framing or Framing(), resize=best.resize)
    return model_for(best), (None if framing.is_identity else framing), choice
