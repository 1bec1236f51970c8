"""``rtpose plot``: figures of recorded poses.

One sheet: the trajectory coloured by time over a frame of the video, an
occupancy heat map, speed over time, and the likelihood of every body part over
time and as histograms. The position is one body part (--bodypart) or, by
default, the centre: the mean of all body parts, in frames where every one has
likelihood >= --pcutoff.
Time comes from the recording's frame times (``<stem>_timing.csv``), or
frame / --fps without them. Needs matplotlib (``pip install 'rtpose[plot]'``).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("plot", help="figures of recorded poses (trajectory, occupancy, speed, likelihood)",
                       description=__doc__)
    p.add_argument("poses", metavar="POSES.h5", help="poses (rtpose analyze / run --record, or DeepLabCut's .h5/.csv)")
    p.add_argument("--video", default=None, help="the video the poses are of: its first frame is the background")
    p.add_argument("--out", default=None, metavar="OUT.png", help="default: beside POSES, <stem>_plot.png")
    p.add_argument("--svg", action="store_true", help="also write OUT.svg")
    p.add_argument("--bodypart", default=None, help="the body part whose position to show (default: the centre)")
    p.add_argument("--pcutoff", type=float, default=0.6, help="likelihood a point needs to count (default 0.6)")
    p.add_argument("--fps", type=float, default=None,
                   help="frame rate for poses without recorded frame times (default: the video's, else 30)")
    p.add_argument("--overwrite", action="store_true", help="replace existing figures")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    import cv2

    from ..errors import ConfigError, SourceError
    from ..recording.reader import read_recording
    from ..recording.recorder import refuse_existing
    from ..viz.figures import plot_session

    rec = read_recording(args.poses)
    if args.bodypart is not None and args.bodypart not in rec.bodyparts:
        raise ConfigError(f"--bodypart {args.bodypart}: the poses have {', '.join(rec.bodyparts)}")
    if not 0 <= args.pcutoff <= 1:
        raise ConfigError(f"--pcutoff {args.pcutoff}: give a likelihood within 0..1")
    background, size, fps = None, None, args.fps
    if args.video:
        capture = cv2.VideoCapture(str(args.video))
        if not capture.isOpened():
            raise SourceError(f"video:{args.video}", "cannot open it; check the path")
        ok, background = capture.read()
        size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        fps = fps or capture.get(cv2.CAP_PROP_FPS) or None
        capture.release()
        background = background if ok else None
    out = Path(args.out) if args.out else rec.paths.h5.with_name(rec.paths.h5.stem + "_plot.png")
    formats = ("png", "svg") if args.svg else ("png",)
    refuse_existing([out.with_suffix("." + f) for f in formats], args.overwrite)
    paths = plot_session(rec.pose, rec.bodyparts, rec.times_s(fps), out, background_bgr=background, size=size,
                         pcutoff=args.pcutoff, bodypart=args.bodypart, title=rec.paths.h5.stem, formats=formats)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0
