"""``rtpose analyze``: offline, lossless, batched pose estimation of whole experiments.

Give video files, folders of videos, globs (quoted: 'data/*/*.mp4') and/or
image files; the model is loaded once for all of them. Each video gives
``<out-dir>/<name>.rtpose.h5`` and ``.rtpose.csv`` in DeepLabCut's layout (one
row per frame, indexed by frame number) and ``<name>.rtpose.status.json``
(model hash, versions, frame counts, timing, completion). Image files are
analysed together, in the order given, into ``<out-dir>/<folder>.rtpose.h5``
with the image paths as the row index.

Results are written under ``<name>.rtpose.partial.*`` and renamed to
``<name>.rtpose.*`` only when every frame the container announces was
analysed, so an incomplete result is never taken for a complete one.
A rerun skips videos already analysed completely with the same model and
settings and continues interrupted ones after their last saved frame (no
duplicate or missing rows); results made with another model or other
settings are never replaced unless ``--overwrite`` is given. An input that
fails (a corrupt file) is named in the final summary; the others still run.

Exit status: 0 every input complete (or skipped); 3 some video was partial
(fewer frames decodable than its container announces); 2 an input failed or
another error; 130 stopped by a signal (Ctrl-C, SIGTERM, SIGHUP: the whole
run stops; rerun the same command to continue).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

from ..errors import RtposeError
from ..model import default_threads
from ..offline.engine import (DECODERS, AnalyzeOptions, Analyzer, FrameRange, expected_frames, plan_groups,
                              probe_frame_count, probe_frame_size)
from ..offline.inputs import check_out_dir, plan_jobs
from ..offline.progress import Progress, print_line
from .common import (EXIT_INTERRUPTED, EXIT_PARTIAL, StopSignals, add_framing_arguments, add_model_arguments,
                     framing_from_args, model_from_args, non_negative_ms, positive_int, run_with_reporting)


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not allowed; give a likelihood between 0 and 1, e.g. 0.6")
    return value


def _readers(text: str) -> int | None:
    return None if text == "auto" else positive_int(text)


def register(sub) -> None:
    p = sub.add_parser("analyze", help="analyse videos, folders of videos or images offline (lossless, batched)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", metavar="PATH", help="video files, folders of videos, globs, image files")
    add_model_arguments(p)
    add_framing_arguments(p, live=False)
    p.add_argument("--out-dir", default=None, help="where to write results (default: next to each input)")
    p.add_argument("--batch", type=positive_int, default=None,
                   help="frames per inference batch (default: the provider's measured best, 1 on CPU and 8 on "
                        "GPUs; docs/offline.md)")
    p.add_argument("--readers", type=_readers, default=None, metavar="N|auto",
                   help="threads decoding each video, each its own part of it (frames identical and in order; "
                        "default auto: 1 when the model's threads fill the cores, else the free cores up to 4; "
                        "1 per worker with --cluster; docs/offline.md)")
    p.add_argument("--decode", choices=DECODERS, default="cpu",
                   help="who decodes the videos: cpu (OpenCV/FFmpeg, default) or nvdec (the NVIDIA GPU's video "
                        "decoder through PyNvVideoCodec, extra `nvdec`: frees the CPU; pixels may differ from cpu's "
                        "by a few levels; docs/offline.md)")
    p.add_argument("--videos-at-once", type=positive_int, default=1, metavar="N",
                   help="analyse up to N videos of one frame size together in this process: their frames share "
                        "the model's batches, each keeps its own results (default 1: one after another; "
                        "docs/offline.md)")
    p.add_argument("--max-wait-ms", type=non_negative_ms, default=50.0,
                   help="how long to wait for a batch to fill before running a partial one (default 50)")
    p.add_argument("--frame-range", default=None, metavar="START:STOP",
                   help="analyse frames START..STOP-1 of each video (either may be left out, e.g. 1000:); rows "
                        "keep the video's frame numbers")
    p.add_argument("--pcutoff", type=_probability, default=None, metavar="P",
                   help="also write <name>.rtpose_cutoff.h5/.csv with x and y of keypoints whose likelihood is "
                        "below P set to NaN (DeepLabCut's pcutoff); the raw .h5/.csv are never changed")
    p.add_argument("--cluster", default=None, metavar="ADDRESS|local:N",
                   help="fan the videos out over Dask distributed: local:N worker processes on this machine, or "
                        "the address of a running scheduler (needs the `cluster` extra; docs/offline.md)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing results (default: skip complete ones, continue partial ones made with "
                        "the same model and settings, refuse others)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=main)


def options_from_args(args: argparse.Namespace) -> AnalyzeOptions:
    return AnalyzeOptions(framing=framing_from_args(args), batch=args.batch, max_wait_ms=args.max_wait_ms,
                          frames=FrameRange.parse(args.frame_range) if args.frame_range else FrameRange(),
                          pcutoff=args.pcutoff, overwrite=args.overwrite, readers=args.readers,
                          videos_at_once=args.videos_at_once, decode=args.decode)


def main(args: argparse.Namespace) -> int:
    jobs = plan_jobs(args.paths, args.out_dir)
    check_out_dir(args.out_dir)
    options = options_from_args(args)
    if args.cluster:
        return _main_cluster(args, jobs, options)
    analyzer = Analyzer(model_from_args(args), options)
    decisions = [analyzer.decide(job) for job in jobs]  # refusals come before any frame is analysed
    totals = [None if d.action == "skip" else
              (expected_frames(probe_frame_count(j.files[0]), options.frames) if j.kind == "video" else len(j.files))
              for j, d in zip(jobs, decisions)]
    progress = Progress(totals)
    if options.batch is None:
        print(f"== batch {analyzer.batch} (the default for {analyzer.model.provider}; --batch to change)", flush=True)
    if options.decode == "nvdec":
        print("== videos decoded by the GPU's video decoder (NVDEC)", flush=True)
    elif options.readers is None:
        print(f"== {analyzer.readers} reader{'s' if analyzer.readers > 1 else ''} per video (automatic for "
              f"{default_threads()} cores; --readers to change)", flush=True)
    t0 = time.perf_counter()
    progress.t_start_s = t0
    groups = plan_groups(jobs, decisions, options.videos_at_once, probe_frame_size)
    with StopSignals() as stop:
        for group in groups:
            if stop.requested:
                break
            i = group[0]
            for k in group:
                if decisions[k].note:
                    print(f"   {jobs[k].label}: {decisions[k].note}", flush=True)
            base = sum(j.result.get("processed", 0) for j in jobs[:i])
            label = jobs[i].label if len(group) == 1 else f"{len(group)} videos at once ({jobs[i].label}, ...)"

            def on_status(st, frames_before, i=i, label=label, base=base, group=group):
                if len(group) == 1:
                    progress.set_done(i, frames_before + st.processed)
                progress.frames_this_command = base + st.processed
                now = time.perf_counter()
                print_line(progress.line(i, label, done=frames_before + st.processed, captured=st.captured,
                                         processed=st.processed, fps=st.fps, elapsed_s=st.elapsed_s, now_s=now,
                                         jobs=len(group)))

            def run_pipeline(pipeline, **kwargs):
                return run_with_reporting(pipeline, quiet=args.quiet, stop=stop, **kwargs)

            analyzer.run_group([(jobs[k], decisions[k]) for k in group], run_pipeline=run_pipeline,
                               on_status=on_status)
            for k in group:
                if decisions[k].action != "skip":
                    progress.set_done(k, jobs[k].result.get("frames_written") or 0)
                    print(f"   {jobs[k].label}: {jobs[k].status}", flush=True)
    analysed = sum(job.result.get("processed", 0) for job in jobs)
    elapsed = time.perf_counter() - t0
    return _report(jobs, stopped=stop.requested is not None,
                   overall=f"{analysed} frames in {elapsed:.1f} s = {analysed / elapsed if elapsed else 0:.1f} FPS "
                           "analysed by this run (model loaded once; skipped and earlier frames not counted)")


def _main_cluster(args: argparse.Namespace, jobs, options: AnalyzeOptions) -> int:
    from ..offline.cluster import ModelSpec, import_distributed, run_on_cluster

    import_distributed()  # says what to install before anything else happens
    if options.readers is None:  # the workers already decode several videos at once
        options = replace(options, readers=1)
    providers = None if args.providers == "auto" else tuple(p.strip() for p in args.providers.split(",") if p.strip())
    model_path = str(Path(args.model).resolve()) if args.model else None  # workers may run in other folders
    spec = ModelSpec(model_path, providers, args.threads, args.spinning == "on")
    # The model is loaded here too: it must load before work is fanned out, and its hash decides which
    # results are skipped and which refused (before anything runs), exactly as on a single machine.
    analyzer = Analyzer(model_from_args(args, threads=1), options)
    todo = []
    for job, decision in zip(jobs, [analyzer.decide(job) for job in jobs]):
        if decision.action == "skip":
            analyzer.run(job, decision, run_pipeline=None)
            print(f"   {job.label}: {job.status}", flush=True)
        else:
            todo.append(job)
    t0 = time.perf_counter()
    finished = [0]

    def report(i: int, result: dict) -> None:
        job = todo[i]
        job.status = result["status"]
        job.result = result
        finished[0] += 1
        elapsed = time.perf_counter() - t0
        note = f" ({result['note']})" if result.get("note") else ""
        print(f"   [{finished[0]}/{len(todo)} done, {elapsed:.0f} s] {job.label}: {job.status}{note}", flush=True)

    with StopSignals() as stop:
        if todo:
            print(f"== {len(todo)} input(s) on Dask cluster {args.cluster}", flush=True)
            run_on_cluster(args.cluster, todo, spec, options, stop_requested=lambda: stop.requested is not None,
                           report=report)
    analysed = sum(j.result.get("processed") or 0 for j in jobs)
    elapsed = time.perf_counter() - t0
    return _report(jobs, stopped=stop.requested is not None,
                   overall=f"{analysed} frames in {elapsed:.1f} s = {analysed / elapsed if elapsed else 0:.1f} FPS "
                           "analysed by this run on the cluster (skipped and earlier frames not counted)")


def _report(jobs, *, stopped: bool, overall: str) -> int:
    """The per-input summary and the exit status; an input's error is raised (exit 2) after the summary."""
    if len(jobs) > 1 or any(j.status != "complete" for j in jobs):
        print("== per input:")
        for job in jobs:
            print(f"   {job.label}: {job.status}")
    print(f"== overall: {overall}", flush=True)
    if stopped:
        return EXIT_INTERRUPTED
    failed = [j for j in jobs if j.result.get("error") is not None]
    if len(failed) == 1:  # its own message (a cluster worker's error arrives as text)
        error = failed[0].result["error"]
        raise error if isinstance(error, BaseException) else RtposeError(error)
    if failed:
        first = failed[0]
        raise RtposeError(f"{len(failed)} of {len(jobs)} inputs failed (see the summary above); the first, "
                          f"{first.label}: {first.result['error']}")
    if any(j.status.startswith("PARTIAL") for j in jobs):
        return EXIT_PARTIAL
    return 0

