"""``rtpose render``: a labelled copy of a video, with the poses drawn on every frame.

Body parts in fixed colours (a filled dot when the likelihood is at least
--pcutoff, a hollow ring below it), a fading trail, skeleton edges when the
model declares them (or --skeleton), and the frame index and time stamped on
every frame. Every frame of the video is written, with or without a pose.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import positive_int


def register(sub) -> None:
    p = sub.add_parser("render", help="draw the poses on a video (labelled video)", description=__doc__)
    p.add_argument("video", metavar="VIDEO", help="the video the poses are of")
    p.add_argument("poses", metavar="POSES.h5", help="poses (rtpose analyze / run --record, or DeepLabCut's .h5/.csv)")
    p.add_argument("--out", default=None, metavar="OUT.mp4",
                   help="the labelled video, .mp4 or .avi (default: beside POSES, <stem>_labelled.mp4)")
    p.add_argument("--pcutoff", type=float, default=0.6,
                   help="likelihood below which a point is drawn as a hollow ring and left out of the trail (default 0.6)")
    p.add_argument("--trail", type=int, default=15, metavar="FRAMES", help="trail length in frames (0: none; default 15)")
    p.add_argument("--skeleton", default=None, metavar="A-B,B-C",
                   help="body-part pairs to join (default: the model's own skeleton, when it declares one)")
    p.add_argument("--model", default=None,
                   help="the .onnx model whose skeleton to draw (default: the one the recording's settings name)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.set_defaults(func=main)


def model_skeleton(path: str | Path) -> list:
    """The skeleton an rtpose .onnx model declares (extra.skeleton), read from its metadata only."""
    from ..metadata import ModelMetadata
    from ..model import import_onnxruntime

    ort = import_onnxruntime()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return ModelMetadata.from_props(session.get_modelmeta().custom_metadata_map, source=str(path)).skeleton


def skeleton_spec(args: argparse.Namespace, settings: dict | None):
    if args.skeleton is not None:
        return args.skeleton
    model = args.model or (settings or {}).get("model")
    if model and Path(model).suffix == ".onnx" and Path(model).is_file():
        return model_skeleton(model)
    return None


def main(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..recording.reader import read_recording
    from ..recording.recorder import refuse_existing
    from ..viz.overlay import PoseOverlay, parse_skeleton
    from ..viz.render import render_video

    if not 0 <= args.pcutoff <= 1:
        raise ConfigError(f"--pcutoff {args.pcutoff}: give a likelihood within 0..1")
    if args.trail < 0:
        raise ConfigError(f"--trail {args.trail}: give a number of frames >= 0")
    rec = read_recording(args.poses)
    if rec.layout is None:
        skeleton = parse_skeleton(skeleton_spec(args, rec.settings), rec.bodyparts)
    else:  # a multi-animal recording: the skeleton names an animal's parts and is drawn on every animal
        skeleton = rec.layout.animal_edges(parse_skeleton(skeleton_spec(args, rec.settings), rec.layout.bodyparts))
    out = Path(args.out) if args.out else rec.paths.h5.with_name(rec.paths.h5.stem + "_labelled.mp4")
    refuse_existing([out], args.overwrite)

    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty():
            sys.stderr.write(f"\r   {done}/{total} frames")
            sys.stderr.flush()

    stats = render_video(args.video, out, rec.frame, rec.pose,
                         lambda w, h: PoseOverlay(rec.bodyparts, w, h, skeleton=skeleton, pcutoff=args.pcutoff,
                                                  trail=args.trail, layout=rec.layout), on_progress=progress)
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    print(f"wrote {out}: {stats.frames} frames ({stats.with_pose} with a pose) in {stats.seconds:.1f} s = "
          f"{stats.fps:.0f} FPS, {stats.realtime_factor:.1f}x real time at the video's {stats.video_fps:g} FPS"
          + (f"; skeleton {len(skeleton)} edges" if skeleton else ""))
    return 0
