"""``rtpose analyze``: offline, lossless, batched pose estimation of videos and images.

Each video gives ``<out-dir>/<name>.rtpose.h5`` and ``.rtpose.csv`` in
DeepLabCut's layout (one row per frame). Image files are analysed together, in
the order given, into ``<out-dir>/<folder>.rtpose.h5`` with the image paths as
the row index.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError
from ..pipeline import Pipeline, PipelineConfig
from ..recording import RecorderSink
from .common import (add_framing_arguments, add_model_arguments, framing_from_args, model_from_args, run_settings,
                     run_with_reporting)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


def register(sub) -> None:
    p = sub.add_parser("analyze", help="analyse videos or images offline (lossless, batched)", description=__doc__)
    p.add_argument("paths", nargs="+", metavar="PATH", help="video files and/or image files")
    add_model_arguments(p)
    add_framing_arguments(p, live=False)
    p.add_argument("--out-dir", default=None, help="where to write results (default: next to each input)")
    p.add_argument("--batch", type=int, default=8, help="frames per inference batch (default 8)")
    p.add_argument("--max-wait-ms", type=float, default=50.0,
                   help="how long to wait for a batch to fill before running a partial one (default 50)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=main)


def plan_jobs(paths: list[str]) -> list[tuple[str, list[Path]]]:
    """Group inputs: each video is a job; all images together are one job (in the given order)."""
    jobs: list[tuple[str, list[Path]]] = []
    images: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.is_file():
            raise ConfigError(f"{path} is not a file; give video or image files (a folder of images: use a shell glob)")
        if path.suffix.lower() in IMAGE_SUFFIXES:
            images.append(path)
        else:
            jobs.append(("video", [path]))
    if images:
        jobs.append(("images", images))
    return jobs


def output_stem(kind: str, files: list[Path], out_dir: str | None) -> Path:
    first = files[0]
    name = first.stem if kind == "video" else (first.parent.name or "images")
    folder = Path(out_dir) if out_dir else first.parent
    return folder / f"{name}.rtpose"


def main(args: argparse.Namespace) -> int:
    from ..drivers.sources.images import ImageFilesSource
    from ..drivers.sources.video import VideoFileSource

    if args.batch < 1:
        raise ConfigError("--batch must be at least 1")
    jobs = plan_jobs(args.paths)
    framing = framing_from_args(args)
    model = model_from_args(args)
    scorer = f"rtpose_{model.path.stem}"
    status = 0
    for kind, files in jobs:
        stem = output_stem(kind, files, args.out_dir)
        if kind == "video":
            source = VideoFileSource(files[0], paced=False)
            labels = None
        else:
            source = ImageFilesSource(files)
            labels = [str(f) for f in files]
        total = source.open().n_frames  # opened here to size the progress bar; errors name the file
        recorder = RecorderSink(Path(f"{stem}.h5"), scorer=scorer, chunk_frames=512, index_labels=labels,
                                settings=run_settings(model, framing, batch=args.batch))
        config = PipelineConfig(live=False, batch_size=args.batch, max_wait_ms=args.max_wait_ms, ring_slots=2 * args.batch + 1,
                                framing=framing)
        pipeline = Pipeline([source], model, sinks=[recorder], config=config)
        summary = run_with_reporting(pipeline, total_frames=total, quiet=args.quiet)
        print(f"   wrote {recorder.frames_written} rows to {recorder.paths[0].h5} and {recorder.paths[0].csv}")
        if summary.interrupted:
            return 130
        if summary.dropped:
            status = 1
    return status

