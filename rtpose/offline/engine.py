"""One loaded model, many videos: the per-job run of ``rtpose analyze`` (single machine or cluster worker).

:class:`Analyzer` holds the model, the options and the identity of the
settings (model hash + what changes poses). :meth:`Analyzer.run` analyses one
job with the lossless pipeline: a capture thread decodes the video into a
frame ring while the model runs the previous batch, and the recorder writes on
its own thread. It never raises for a problem of the job's input or outputs:
the job's ``status`` and ``result`` say what happened (``complete``,
``PARTIAL``, ``stopped``, ``failed: ...``), and its ``.status.json`` records it.

The reading thread runs at a lower CPU priority (:mod:`.reader`), so that decoding
fills the cores' idle gaps instead of preempting the inference threads.

Readers: ``--readers N`` decodes each video with N threads
(:class:`~rtpose.drivers.sources.parallel_video.ParallelVideoSource`, frames
identical and in order); by default :func:`~rtpose.drivers.sources.parallel_video.default_readers` picks N from the
cores the model leaves free.

Several videos at once: ``--videos-at-once N`` analyses up to N videos of one frame size in one pipeline
run (:meth:`Analyzer.run_group`, groups from :func:`plan_groups`): each video is a stream, their frames
fill the model's batches together (a GPU gets full batches from several decoders), and each video keeps
its own recorder, status file and outcome.

Batch size: ``--batch`` or, by default, the provider's recorded best
(:data:`DEFAULT_BATCH`, measured with ``latency_tests/analyze_throughput.py``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import ConfigError, RtposeError, SourceError
from ..framing import Framing
from ..model import default_threads
from ..pipeline import Pipeline, PipelineConfig, RunSummary, Status
from ..recording import RecorderSink
from ..recording.dlc_table import H5_KEY, read_dlc_table
from .inputs import Job
from ..drivers.sources.parallel_video import default_readers
from .reader import BackgroundReader
from .status import Decision, decide, file_sha256, library_versions, settings_key, utc_now, write_status

#: Frames per inference batch by execution provider, when ``--batch`` is not given. CPU: 1 - on the
#: bundled model (2 threads) batch 1 ran 101 FPS and batch 8 88 FPS (idle machine; ONNX Runtime's CPU
#: kernels gain nothing from batching once the threads are busy, and a bigger batch only adds cache
#: misses); re-measured with latency_tests/analyze_throughput.py (docs/offline.md). GPUs need batches to
#: fill the device: 8.
DEFAULT_BATCH = {"CPUExecutionProvider": 1}
GPU_BATCH = 8
#: Ring slots between the decoding thread and the model: enough to ride out a slow frame (a keyframe,
#: another program taking the CPU) without the model waiting.
MIN_RING_SLOTS = 16


def default_batch(provider: str) -> int:
    return DEFAULT_BATCH.get(provider, GPU_BATCH)


def inference_threads(model) -> int:
    """CPU threads the model keeps busy: its intra-op threads on the CPU provider, one thread driving a GPU."""
    if getattr(model, "provider", "CPUExecutionProvider") != "CPUExecutionProvider":
        return 1
    return int(getattr(model, "threads", 0) or default_threads())


@dataclass(frozen=True)
class FrameRange:
    """Frames ``start`` .. ``stop - 1`` of each video (``stop`` None: to the end)."""

    start: int = 0
    stop: int | None = None

    @classmethod
    def parse(cls, text: str) -> "FrameRange":
        """``START:STOP``, ``START:`` or ``:STOP`` (STOP excluded, like Python slices)."""
        parts = text.split(":")
        try:
            if len(parts) != 2:
                raise ValueError
            start = int(parts[0]) if parts[0].strip() else 0
            stop = int(parts[1]) if parts[1].strip() else None
        except ValueError:
            raise ConfigError(f"--frame-range {text!r}: give START:STOP (STOP excluded), START: or :STOP, "
                              "e.g. 100:2000") from None
        if start < 0 or (stop is not None and stop <= start):
            raise ConfigError(f"--frame-range {text!r}: START must be >= 0 and STOP greater than START")
        return cls(start, stop)

    def as_list(self) -> list:
        return [self.start, self.stop]


@dataclass(frozen=True)
class AnalyzeOptions:
    framing: Framing | None = None
    batch: int | None = None  # None: DEFAULT_BATCH for the provider
    max_wait_ms: float = 50.0
    frames: FrameRange = field(default_factory=FrameRange)
    pcutoff: float | None = None  # likelihood cutoff for the <name>.rtpose_cutoff.* copies
    overwrite: bool = False
    chunk_frames: int = 512
    readers: int | None = None  # decoding threads per video; None: default_readers() (1 with videos_at_once > 1)
    videos_at_once: int = 1  # videos of one frame size analysed in one run, sharing the model's batches
    decode: str = "cpu"  # "cpu": OpenCV/FFmpeg; "nvdec": the GPU's video decoder (drivers/sources/nvdec.py)


#: Video decoders ``rtpose analyze --decode`` offers.
DECODERS = ("cpu", "nvdec")


def probe_frame_count(path: Path) -> int | None:
    """The frame count a video's container announces (None: unknown or unreadable), for progress totals."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
    finally:
        cap.release()
    return count if count > 0 else None


def expected_frames(count: int | None, frames: FrameRange) -> int | None:
    """Frames a job should give: the range within the container's count (None: unknown)."""
    end = frames.stop if count is None else (count if frames.stop is None else min(count, frames.stop))
    return None if end is None else max(end - frames.start, 0)


def apply_cutoff(table_h5: Path, out_stem: Path, pcutoff: float) -> tuple[Path, Path]:
    """Write ``<stem>_cutoff.h5/.csv``: the table with x and y of keypoints whose likelihood is below
    ``pcutoff`` set to NaN (likelihoods kept). The raw table is never changed."""
    table = read_dlc_table(table_h5)
    values = table.to_numpy().reshape(len(table), -1, 3).copy()
    values[values[:, :, 2] < pcutoff, :2] = np.nan
    out = table.copy()
    out[:] = values.reshape(len(table), -1)
    h5 = out_stem.with_name(out_stem.name + "_cutoff.h5")
    csv = out_stem.with_name(out_stem.name + "_cutoff.csv")
    tmp = h5.with_name(h5.name + ".tmp")
    out.to_hdf(tmp, key=H5_KEY, format="table", mode="w")
    os.replace(tmp, h5)
    out.to_csv(csv)
    return h5, csv


class Analyzer:
    """Analyses jobs one after another with one loaded model."""

    def __init__(self, model, options: AnalyzeOptions):
        self.model = model
        self.options = options
        self.model_sha256 = file_sha256(model.path)
        self.versions = library_versions()
        self.scorer = f"rtpose_{model.path.stem}"
        self.batch = options.batch or default_batch(model.provider)
        if options.decode not in DECODERS:
            raise ConfigError(f"decode {options.decode!r}: use one of {', '.join(DECODERS)}")
        if options.decode == "nvdec" and (options.readers or 1) > 1:
            raise ConfigError("--decode nvdec decodes each video with the GPU's decoder, which reads ahead on its "
                              "own thread: leave out --readers (or give --readers 1)")
        self.readers = 1 if options.decode == "nvdec" else options.readers or (
            1 if options.videos_at_once > 1 else default_readers(default_threads(), inference_threads(model)))
        framing = options.framing or Framing()
        #: what changes the poses: a result made with other values is never continued or skipped
        self.settings = {
            "model_sha256": self.model_sha256, "scorer": self.scorer, "resize": framing.resize,
            "crop": list(framing.crop.as_tuple()) if framing.crop else None,
            "frame_range": options.frames.as_list(),
        }
        if options.decode != "cpu":  # another decoder's pixels can differ by a few levels (absent for cpu:
            self.settings["decode"] = options.decode  # results made before the option existed stay continuable)
        self.key = settings_key(self.settings)

    def decide(self, job: Job) -> Decision:
        return decide(job, self.key, first_frame=self.options.frames.start, overwrite=self.options.overwrite)

    # ------------------------------------------------------------------ one job, or several at once
    def run(self, job: Job, decision: Decision, *, run_pipeline: Callable[..., RunSummary],
            on_status: Callable[[Status, int], None] | None = None) -> None:
        """Analyse ``job`` as ``decision`` says; ``run_pipeline(pipeline, finish=...)`` runs it (the CLI's
        run with reporting and stop signals). ``on_status(status, frames_before)``: progress callback."""
        self.run_group([(job, decision)], run_pipeline=run_pipeline, on_status=on_status)

    def run_group(self, items: list[tuple[Job, Decision]], *, run_pipeline: Callable[..., RunSummary],
                  on_status: Callable[[Status, int], None] | None = None) -> None:
        """Analyse several jobs in ONE pipeline run: each video is a stream of the run, their frames share
        the model's batches, and each has its own recorder (``RecorderSink(stream=i)``) and status file.
        :func:`plan_groups` makes the groups (videos of one frame size, none continued from an earlier run);
        a single item is the plain one-video run. A video that fails while being read ends only its own
        stream (``BackgroundReader(own_errors=True)``): its result is kept, marked partial, and the job
        failed; the others go on."""
        opts = self.options
        started = [s for s in (self._start(job, decision) for job, decision in items) if s is not None]
        if not started:
            return
        first, to_read = started[0].first, started[0].to_read
        if any((s.first, s.to_read) != (first, to_read) for s in started):
            raise ConfigError("videos analysed in one run must start at the same frame; plan them with plan_groups")
        alone = len(started) == 1
        readers = [BackgroundReader(s.source, own_errors=not alone) for s in started]
        for i, s in enumerate(started):
            s.recorder = RecorderSink(
                s.job.partial.h5, scorer=self.scorer, chunk_frames=opts.chunk_frames, index_labels=s.labels,
                overwrite=opts.overwrite or s.decision.previous is not None, settings=self._run_settings(),
                append_rows=s.decision.resume_rows if s.decision.action == "resume" else None,
                stream=None if alone else i)
        config = PipelineConfig(live=False, batch_size=self.batch, max_wait_ms=opts.max_wait_ms,
                                ring_slots=max(2 * self.batch + 1, MIN_RING_SLOTS), framing=opts.framing,
                                first_frame=first, max_frames=to_read)
        pipeline = Pipeline(readers, self.model, sinks=[s.recorder for s in started], config=config)
        for s in started:
            s.record["runs"][-1]["readers"] = self.readers
            s.record["runs"][-1]["decoder"] = getattr(s.source, "decoding", "cpu")
            if not alone:
                s.record["runs"][-1]["videos_at_once"] = len(started)
            s.record["status"] = "running"
            self._write(s.job, s.record)
        t0 = time.perf_counter()
        outcome: dict = {}

        def finish(summary: RunSummary, error: BaseException | None) -> None:
            outcome.update(error=error)
            seconds = max(time.perf_counter() - t0, 1e-9)
            for s, reader, counts in zip(started, readers, summary.streams):
                rows = s.recorder.frames_written
                s.job.result["processed"] = counts.processed
                s.record["runs"][-1].update(frames=counts.processed, duration_s=round(seconds, 3),
                                            fps=round(counts.processed / seconds, 2),
                                            readers=getattr(s.source, "readers", 1))
                # one video: the summary's "decoding" and "recorder"; several: one pair per video, by name
                key = "" if alone else f" {s.job.label}"
                summary.sinks["decoding" + key] = _decoding(s.source)
                self._conclude(s.job, s.record, rows, s.expected, error=error or reader.failure,
                               interrupted=summary.interrupted, summary=summary, summary_key="recorder" + key)

        status_cb = None if on_status is None else (lambda st: on_status(st, started[0].decision.resume_rows))
        try:
            run_pipeline(pipeline, total_frames=sum(s.expected or 0 for s in started) or None, finish=finish,
                         on_status=status_cb)
        except RtposeError as exc:
            for s in started:
                if not outcome:  # failed before frames could flow (set-up): finish() never ran
                    self._fail(s.job, s.record, exc, s.decision.resume_rows)
                s.job.result["error"] = exc
        for s, reader in zip(started, readers):
            if reader.failure is not None:
                s.job.result.setdefault("error", reader.failure)

    def _start(self, job: Job, decision: Decision) -> "_Started | None":
        """Open ``job``'s input and skip to its first frame; None when it needs no pipeline run (skipped,
        failed to open, or every frame already on disk), its status then said."""
        opts = self.options
        if decision.action == "skip":
            job.status = decision.note
            job.result = {"frames_written": (decision.previous or {}).get("frames_written"), "skipped": True}
            self._cutoff_of_skipped(job, decision.previous or {})
            return None
        record = self._new_record(job, decision)
        try:
            source, labels = self._open_source(job)
        except RtposeError as exc:
            self._fail(job, record, exc, 0)
            return None
        count = source.info.n_frames
        expected = expected_frames(count, opts.frames) if job.kind == "video" else count
        record["frames_expected"] = expected
        first = opts.frames.start + decision.resume_rows
        try:
            if job.kind == "video" and first:
                skipped = source.skip(first)
                if skipped < first and decision.resume_rows == 0:
                    raise SourceError(source.name, f"--frame-range starts at frame {first} but the video ends "
                                                   f"after {skipped} frames; give a range within the video")
        except RtposeError as exc:
            source.close()
            self._fail(job, record, exc, decision.resume_rows)
            return None
        to_read = None if opts.frames.stop is None else opts.frames.stop - first
        if to_read is not None and to_read <= 0:  # every frame was on disk (stopped before the rename)
            source.close()
            self._conclude(job, record, decision.resume_rows, expected, error=None, interrupted=False)
            return None
        return _Started(job, decision, record, source, labels, expected, first, to_read)

    # ------------------------------------------------------------------ helpers
    def _open_source(self, job: Job):
        from ..drivers.sources.images import ImageFilesSource
        from ..drivers.sources.parallel_video import ParallelVideoSource
        from ..drivers.sources.video import VideoFileSource

        if job.kind == "video" and self.options.decode == "nvdec":
            from ..drivers.sources.nvdec import NvdecVideoSource

            source, labels = NvdecVideoSource(job.files[0], gpu_id=int(getattr(self.model, "device_id", 0) or 0)), None
        elif job.kind == "video" and self.readers > 1:
            source, labels = ParallelVideoSource(job.files[0], self.readers), None
        elif job.kind == "video":
            source, labels = VideoFileSource(job.files[0], paced=False), None
        else:
            source, labels = ImageFilesSource(job.files), [str(f) for f in job.files]
        source.open()
        return source, labels

    def _run_settings(self) -> dict:
        from ..cli.common import run_settings

        return run_settings(self.model, self.options.framing, batch=self.batch,
                            frame_range=self.options.frames.as_list(), readers=self.readers,
                            decode=self.options.decode)

    def _new_record(self, job: Job, decision: Decision) -> dict:
        previous = decision.previous if decision.action == "resume" else None
        path = job.files[0]
        return {
            "status_version": 1, "input": str(path.resolve()) if job.kind == "video" else [str(f) for f in job.files],
            "input_bytes": path.stat().st_size if job.kind == "video" else None,
            "model": str(self.model.path), "model_sha256": self.model_sha256, "settings": self.settings,
            "settings_key": self.key, "versions": self.versions, "provider": self.model.provider,
            "threads": getattr(self.model, "threads", None), "batch": self.batch, "readers": self.readers,
            "frames_expected": None, "frames_written": decision.resume_rows, "status": "not started", "message": "",
            "outputs": None, "pcutoff": None,
            "runs": [*(previous or {}).get("runs", []),
                     {"started_utc": utc_now(), "first_frame": self.options.frames.start + decision.resume_rows,
                      "host": os.uname().nodename, "pid": os.getpid()}],
        }

    def _write(self, job: Job, record: dict) -> None:
        record["updated_utc"] = utc_now()
        try:
            job.status_json.parent.mkdir(parents=True, exist_ok=True)
            write_status(job.status_json, record)
        except OSError as exc:  # a read-only or full disk: the recording itself reports it
            job.result.setdefault("notes", []).append(f"status file not written: {exc}")

    def _fail(self, job: Job, record: dict, error: BaseException, rows: int) -> None:
        job.status = f"failed: {error}"
        job.result.update(error=error, frames_written=rows)
        record.update(status="failed", message=str(error), frames_written=rows)
        if job.partial.h5.exists() or job.partial.csv.exists() or job.status_json.exists():
            record["outputs"] = [str(job.partial.h5), str(job.partial.csv)]
        if job.status_json.parent.is_dir():
            self._write(job, record)

    def _conclude(self, job: Job, record: dict, rows: int, expected: int | None, *, error: BaseException | None,
                  interrupted: bool, summary: RunSummary | None = None, summary_key: str = "recorder") -> None:
        total = expected if expected is not None else "?"
        if error is not None:
            job.status = f"failed after {rows} of {total} frames (result marked partial): {error}"
            state = "failed"
        elif interrupted:
            job.status = f"stopped: {rows} of {total} frames analysed (result marked partial)"
            state = "stopped"
        elif expected is not None and rows < expected:
            job.status = (f"PARTIAL: only {rows} of the {expected} frames its container announces could be "
                          "decoded (truncated or damaged file; result marked partial)")
            state = "partial"
        else:
            job.status = "complete"
            state = "complete"
            _promote(job)
        paths = job.final if state == "complete" else job.partial
        record.update(status=state, message=job.status if state != "complete" else "", frames_written=rows,
                      outputs=[str(paths.h5), str(paths.csv)])
        job.result.update(frames_written=rows, frames_expected=expected, state=state)
        if state == "complete" and self.options.pcutoff is not None:
            try:
                h5, csv = apply_cutoff(paths.h5, job.stem, self.options.pcutoff)
                record["pcutoff"] = {"value": self.options.pcutoff, "outputs": [str(h5), str(csv)]}
            except (OSError, ValueError) as exc:
                job.result.setdefault("notes", []).append(f"cutoff copy not written: {exc}")
        if summary is not None:
            summary.sinks[summary_key] = {"frames_written": rows, "files": f"{paths.h5}, {paths.csv}"}
        self._write(job, record)

    def _cutoff_of_skipped(self, job: Job, previous: dict) -> None:
        """A skipped result gets the cutoff copy this run asks for, if it has not got that one."""
        cutoff = self.options.pcutoff
        if cutoff is None or (previous.get("pcutoff") or {}).get("value") == cutoff:
            return
        h5, csv = apply_cutoff(job.final.h5, job.stem, cutoff)
        previous["pcutoff"] = {"value": cutoff, "outputs": [str(h5), str(csv)]}
        self._write(job, previous)


@dataclass
class _Started:
    """A job opened for a pipeline run (Analyzer._start)."""

    job: Job
    decision: Decision
    record: dict
    source: object
    labels: list[str] | None
    expected: int | None
    first: int
    to_read: int | None
    recorder: RecorderSink | None = None


def plan_groups(jobs: list[Job], decisions: list[Decision], videos_at_once: int,
                frame_size: Callable[[Path], tuple[int, int] | None]) -> list[list[int]]:
    """Which jobs run together (indices, in input order): up to ``videos_at_once`` consecutive new video
    jobs of one frame size (``frame_size(path)``: (height, width), None when unknown) share a run; a
    continued job (resume), a skipped one, a folder of images and a video of unknown size run alone."""
    groups: list[list[int]] = []
    open_group: list[int] = []
    open_size = None
    for i, (job, decision) in enumerate(zip(jobs, decisions)):
        size = frame_size(job.files[0]) if job.kind == "video" and decision.action == "fresh" else None
        if size is None:
            groups += [open_group] if open_group else []
            groups.append([i])
            open_group, open_size = [], None
            continue
        if open_group and (size != open_size or len(open_group) >= videos_at_once):
            groups.append(open_group)
            open_group = []
        open_group.append(i)
        open_size = size
    if open_group:
        groups.append(open_group)
    return groups


def probe_frame_size(path: Path) -> tuple[int, int] | None:
    """A video's (height, width) as its container announces it (None: unreadable)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            return None
        h, w = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
    finally:
        cap.release()
    return (h, w) if h > 0 and w > 0 else None


def _decoding(source) -> dict:
    """What the run summary says about decoding: readers used (fewer than asked when the video has too few
    keyframes to share out, see parallel_video), and checked keyframe seeks that had to re-decode."""
    info = {"readers": getattr(source, "readers", 1)}
    if getattr(source, "decoding", "cpu") != "cpu":  # NVDEC: named; OpenCV/FFmpeg is the default
        info = {"decoder": source.decoding, **info}
    asked = getattr(source, "requested_readers", 1)
    if asked != info["readers"]:
        info["asked"] = asked
    if getattr(source, "seek_fallbacks", 0):
        info["seek_fallbacks"] = source.seek_fallbacks
    return info


def _promote(job: Job) -> None:
    """Rename a complete result from its .partial name to its final name (the .h5 last)."""
    for src, dst in reversed(list(zip(job.partial.all(), job.final.all()))):
        if src.exists():
            os.replace(src, dst)
