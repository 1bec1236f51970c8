"""``rtpose demo``: the live pipeline on the bundled model and the bundled openfield video.

The video is replayed at its own 30 FPS as if it were a camera. Prints a live
status line and a summary (frames, FPS, per-stage latency percentiles), records
the poses (DeepLabCut .h5/.csv) and draws a figure.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2

from ..pipeline import Pipeline, PipelineConfig
from ..recording import RecorderSink
from .common import add_model_arguments, model_from_args, positive_int, run_with_reporting
from .outputs import add_lsl_argument, lsl_sink


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the bundled model live on the bundled video", description=__doc__)
    add_model_arguments(p)
    p.add_argument("--video", default=None, help="another video to replay (default: the bundled openfield video)")
    p.add_argument("--frames", type=positive_int, default=None, help="stop after N frames (default: the whole video, ~78 s)")
    p.add_argument("--out-dir", default="rtpose-demo", help="where to write the recording and figure")
    add_lsl_argument(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from ..data import demo_video_path
    from ..drivers.sources.video import VideoFileSource
    from ..plotting import plot_run

    video = Path(args.video) if args.video else demo_video_path()
    model = model_from_args(args)
    out_dir = Path(args.out_dir)
    print(f"rtpose demo: model {model.path.name} ({', '.join(model.metadata.bodyparts)}) on {model.provider}; "
          f"replaying {video.name} at its own frame rate. Ctrl-C stops early.")
    lsl = lsl_sink(args)  # before the recorder: it fails early when pylsl is missing
    recorder = RecorderSink(out_dir / f"{video.stem}.rtpose.h5", scorer=f"rtpose_{model.path.stem}",
                            overwrite=True)  # the demo folder is scratch: each demo replaces the last
    sinks = [recorder] if lsl is None else [lsl, recorder]
    pipeline = Pipeline([VideoFileSource(video, paced=True)], model, sinks=sinks,
                        config=PipelineConfig(live=True, max_frames=args.frames))
    summary = run_with_reporting(pipeline)
    paths = recorder.paths[0]
    print(f"   poses: {paths.h5} and {paths.csv} ({recorder.frames_written} frames)")
    if recorder.frames_written:
        capture = cv2.VideoCapture(str(video))
        ok, frame = capture.read()
        capture.release()
        png = plot_run(paths, frame if ok else None, out_dir / "demo.png")
        print(f"   figure: {png}")
    return 0 if summary.captured == summary.processed + summary.dropped else 1
