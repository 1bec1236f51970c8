"""``rtpose analyze``: offline, lossless, batched pose estimation of videos and images.

Each video gives ``<out-dir>/<name>.rtpose.h5`` and ``.rtpose.csv`` in
DeepLabCut's layout (one row per frame). Image files are analysed together, in
the order given, into ``<out-dir>/<folder>.rtpose.h5`` with the image paths as
the row index.

Results are written under ``<name>.rtpose.partial.*`` and renamed to
``<name>.rtpose.*`` only when every frame the container announces was
analysed, so an incomplete result (a truncated video, a stopped run, a crash)
is never taken for a complete one. Existing results are never replaced unless
``--overwrite`` is given; two inputs that would share an output name are
refused before anything runs.

Exit status: 0 every input complete; 3 some video was partial (fewer frames
decodable than its container announces); 130 stopped by a signal (Ctrl-C,
SIGTERM, SIGHUP: the whole run stops, not just the current file); 2 an error.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..pipeline import Pipeline, PipelineConfig
from ..recording import RecorderSink, RecordingPaths
from ..recording.recorder import refuse_existing
from .common import (EXIT_INTERRUPTED, EXIT_PARTIAL, StopSignals, add_framing_arguments, add_model_arguments,
                     framing_from_args, model_from_args, non_negative_ms, positive_int, run_settings,
                     run_with_reporting)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
PARTIAL = ".partial"


def register(sub) -> None:
    p = sub.add_parser("analyze", help="analyse videos or images offline (lossless, batched)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", metavar="PATH", help="video files and/or image files")
    add_model_arguments(p)
    add_framing_arguments(p, live=False)
    p.add_argument("--out-dir", default=None, help="where to write results (default: next to each input)")
    p.add_argument("--batch", type=positive_int, default=8, help="frames per inference batch (default 8)")
    p.add_argument("--max-wait-ms", type=non_negative_ms, default=50.0,
                   help="how long to wait for a batch to fill before running a partial one (default 50)")
    p.add_argument("--overwrite", action="store_true", help="replace existing results (default: refuse)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=main)


@dataclass
class Job:
    kind: str  # "video" or "images"
    files: list[Path]
    stem: Path  # <out-dir>/<name>.rtpose
    status: str = "not started"

    @property
    def final(self) -> RecordingPaths:
        return RecordingPaths.for_output(self.stem)

    @property
    def partial(self) -> RecordingPaths:
        return RecordingPaths.for_output(self.stem.with_name(self.stem.name + PARTIAL))

    @property
    def label(self) -> str:
        return str(self.files[0]) if self.kind == "video" else f"{len(self.files)} images"


def plan_jobs(paths: list[str], out_dir: str | None = None) -> list[Job]:
    """Group inputs: each video is a job; all images together are one job (in the given order).
    Refuses (ConfigError) inputs that are not files and inputs whose outputs would collide."""
    jobs: list[Job] = []
    images: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.is_file():
            raise ConfigError(f"{path} is not a file; give video or image files (a folder of images: use a shell glob)")
        if path.suffix.lower() in IMAGE_SUFFIXES:
            images.append(path)
        else:
            jobs.append(Job("video", [path], output_stem("video", [path], out_dir)))
    if images:
        jobs.append(Job("images", images, output_stem("images", images, out_dir)))
    seen: dict[Path, Job] = {}
    for job in jobs:
        key = Path(os.path.normcase(os.path.abspath(job.stem)))
        if key in seen:
            raise ConfigError(
                f"{seen[key].label} and {job.label} would both be written to {job.stem}.h5; "
                "analyse them in separate runs with different --out-dir folders (or rename one)"
            )
        seen[key] = job
    return jobs


def output_stem(kind: str, files: list[Path], out_dir: str | None) -> Path:
    first = files[0]
    name = first.stem if kind == "video" else (first.parent.name or "images")
    folder = Path(out_dir) if out_dir else first.parent
    return folder / f"{name}.rtpose"


def check_outputs(jobs: list[Job], out_dir: str | None, overwrite: bool) -> None:
    """Everything that would stop the run half-way, checked before the first frame."""
    if out_dir is not None and Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise ConfigError(f"--out-dir {out_dir} is a file, not a folder; give a folder (it is created if missing)")
    refuse_existing([p for job in jobs for paths in (job.final, job.partial) for p in paths.all()], overwrite)


def _promote(job: Job) -> None:
    """Rename a complete result from its .partial name to its final name (the .h5 last)."""
    for src, dst in reversed(list(zip(job.partial.all(), job.final.all()))):
        if src.exists():
            os.replace(src, dst)


def _conclude(job: Job, summary, error: BaseException | None, total: int | None) -> None:
    """Decide the job's status from its run; give a complete result its final name."""
    written = summary.sinks.get("recorder", {}).get("frames_written", 0)
    if error is not None:
        job.status = f"failed after {written} of {total or '?'} frames (result marked partial)"
    elif summary.interrupted:
        job.status = f"stopped: {written} of {total or '?'} frames analysed (result marked partial)"
    elif total is not None and summary.captured < total:
        job.status = (f"PARTIAL: only {summary.captured} of the {total} frames its container announces could be "
                      "decoded (truncated or damaged file; result marked partial)")
    else:
        job.status = "complete"
        _promote(job)
    paths = job.final if job.status == "complete" else job.partial
    summary.sinks["recorder"] = {"frames_written": written, "files": f"{paths.h5}, {paths.csv}"}


def main(args: argparse.Namespace) -> int:
    from ..drivers.sources.images import ImageFilesSource
    from ..drivers.sources.video import VideoFileSource

    jobs = plan_jobs(args.paths, args.out_dir)
    check_outputs(jobs, args.out_dir, args.overwrite)
    framing = framing_from_args(args)
    model = model_from_args(args)
    scorer = f"rtpose_{model.path.stem}"
    with StopSignals() as stop:
        for job in jobs:
            if stop.requested:
                break
            if job.kind == "video":
                source = VideoFileSource(job.files[0], paced=False)
                labels = None
            else:
                source = ImageFilesSource(job.files)
                labels = [str(f) for f in job.files]
            total = source.open().n_frames  # opened here to size the progress bar; errors name the file
            recorder = RecorderSink(job.partial.h5, scorer=scorer, chunk_frames=512, index_labels=labels,
                                    overwrite=args.overwrite, settings=run_settings(model, framing, batch=args.batch))
            config = PipelineConfig(live=False, batch_size=args.batch, max_wait_ms=args.max_wait_ms,
                                    ring_slots=2 * args.batch + 1, framing=framing)
            job.status = "failed"
            run_with_reporting(Pipeline([source], model, sinks=[recorder], config=config), total_frames=total,
                               quiet=args.quiet, stop=stop, finish=lambda summary, error: _conclude(job, summary, error, total))
            print(f"   {job.label}: {job.status}", flush=True)
    if len(jobs) > 1 or any(j.status != "complete" for j in jobs):
        print("== per input:")
        for job in jobs:
            print(f"   {job.label}: {job.status}")
    if stop.requested:
        return EXIT_INTERRUPTED
    if any(j.status.startswith("PARTIAL") for j in jobs):
        return EXIT_PARTIAL
    return 0
