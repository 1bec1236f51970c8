"""Crash-safe pose recording on its own thread.

:class:`RecorderSink` copies each batch's rows into a preallocated chunk on the
inference thread (no I/O there) and hands full chunks (or chunks older than
``flush_interval_s``) to a writer thread, which appends them to:

- ``<stem>.h5`` — DeepLabCut's table (key ``df_with_missing``), measured poses;
  the first chunk is written to a temporary file renamed into place (so the
  ``.h5`` never exists half-created), later chunks are appended and the file
  closed per chunk, so it is complete and readable after every chunk even if
  the process is killed later;
- ``<stem>.csv`` — the same table as DeepLabCut's CSV;
- ``<stem>_predicted.csv`` — Kalman-predicted poses in the same layout;
- ``<stem>_timing.csv`` — frame index, stream, every stage timestamp (ns),
  the crop box the model saw (``crop_x1, crop_x2, crop_y1, crop_y2``, full-frame
  pixels; the whole frame without ``--crop``/``--dynamic-crop``) and the
  camera's own frame counter and hardware timestamp (``camera_frame``,
  ``camera_timestamp_ns``; -1 for sources without them, see docs/hardware.md);
  With a multi-animal model the tables have DeepLabCut's four multi-animal
  column levels (scorer, individuals, bodyparts, coords) and the timing table
  ends with one ``track_<individual>`` column per animal slot: the tracker's id
  of the animal in that slot on that frame (-1: empty).
- ``<stem>_events.csv`` — drops, triggers and device events.
- ``<stem>_settings.json`` — how the run was set up (model, threads, spinning,
  resize/crop/dynamic crop, the ``--target-latency-ms`` choice), when given.

With several streams, each gets its own files with ``_cam<i>`` in the stem.
:meth:`RecorderSink.close` flushes the partial chunk and waits for the writer;
``summary()["frames_written"]`` says how many frames are on disk.

A chunk goes to every file or to none: the CSV rows of a chunk are each
written with one ``write`` of whole lines, and when any file of the chunk
cannot be written (a full disk, a removed folder) the files already extended
are cut back to their previous length, so all files of a recording always
hold the same rows and no torn last line. Before each chunk the free space is
checked against what the chunk needs; a full disk stops the recording with a
:class:`RecordingError` that says how many frames every file holds.

Existing files are never replaced unless ``overwrite=True`` (``--overwrite``).
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import queue
import shutil
import threading
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..clock import Clock, monotonic_ns
from ..errors import RecordingError
from ..results import PoseBatch, StreamInfo
from ..sinks.base import Sink
from .dlc_table import H5_KEY, pose_frame

TIMING_COLUMNS = ("frame", "stream", "t_capture_ns", "t_dequeued_ns", "t_infer_start_ns", "t_infer_end_ns",
                  "t_decoded_ns", "t_predicted_ns", "t_frame_ns", "t_target_ns",
                  "crop_x1", "crop_x2", "crop_y1", "crop_y2", "camera_frame", "camera_timestamp_ns")
#: Timing columns after TIMING_COLUMNS for a multi-animal stream: the track id in each animal slot.
TRACK_COLUMN_PREFIX = "track_"


def _n_animals(info: StreamInfo) -> int:
    return info.layout.n_animals if info.layout is not None else 0


def timing_columns(info: StreamInfo) -> tuple[str, ...]:
    """The ``_timing.csv`` header of a stream: TIMING_COLUMNS, then ``track_<individual>`` per animal slot."""
    extra = tuple(TRACK_COLUMN_PREFIX + ind for ind in info.layout.individuals) if info.layout is not None else ()
    return TIMING_COLUMNS + extra


EVENT_COLUMNS = ("t_ns", "frame", "stream", "kind", "name", "detail")
#: The events column a multi-animal stream adds: the animal slot an event is about (-1: none).
ANIMAL_EVENT_COLUMN = "animal"


def event_columns(info: StreamInfo) -> tuple[str, ...]:
    """The ``_events.csv`` header of a stream: EVENT_COLUMNS, plus ``animal`` for a multi-animal stream."""
    return EVENT_COLUMNS + ((ANIMAL_EVENT_COLUMN,) if info.layout is not None else ())


def event_row(e, with_animal: bool) -> tuple:
    """One ``_events.csv`` row of an :class:`~rtpose.results.Event` (see :func:`event_columns`)."""
    row = (e.t_ns, e.frame_index, e.stream, e.kind, e.name, e.detail)
    return row + (e.animal,) if with_animal else row


@dataclass(frozen=True)
class RecordingPaths:
    h5: Path
    csv: Path
    predicted_csv: Path
    timing_csv: Path
    events_csv: Path
    settings_json: Path

    @classmethod
    def for_output(cls, out: str | Path, suffix: str = "") -> "RecordingPaths":
        """``out`` may be ``name.h5``, ``name.csv`` or a bare stem."""
        out = Path(out)
        stem = out.with_suffix("") if out.suffix in (".h5", ".csv") else out
        base = stem.parent / (stem.name + suffix)
        return cls(base.with_name(base.name + ".h5"), base.with_name(base.name + ".csv"),
                   base.with_name(base.name + "_predicted.csv"), base.with_name(base.name + "_timing.csv"),
                   base.with_name(base.name + "_events.csv"), base.with_name(base.name + "_settings.json"))

    def all(self) -> tuple[Path, ...]:
        return (self.h5, self.csv, self.predicted_csv, self.timing_csv, self.events_csv, self.settings_json)

    @property
    def h5_tmp(self) -> Path:
        """Where the first chunk of the ``.h5`` is written before it is renamed into place."""
        return self.h5.with_name(self.h5.name + ".partial-write")


def refuse_existing(paths: Sequence[Path], overwrite: bool) -> None:
    """Raise RecordingError when an output exists and ``overwrite`` is False (the one check used by
    recordings, ``rtpose run`` and ``rtpose analyze``)."""
    if overwrite:
        return
    existing = [p for p in paths if p.exists()]
    if existing:
        more = f" (and {len(existing) - 1} more of its files)" if len(existing) > 1 else ""
        raise RecordingError(f"{existing[0]} already exists{more}; rtpose never replaces results unless asked: "
                             "choose another output name, or pass --overwrite to replace them")


#: Bytes of headroom kept free beyond a chunk's own size (HDF5 metadata, B-tree nodes).
SPACE_MARGIN_BYTES = 256 * 1024
#: With less free space than this, .h5 chunks are appended on a copy renamed into place (see _append_h5).
H5_COPY_BELOW_FREE_BYTES = 256 * 1024 * 1024


class _Rollback:
    """Appends whole byte strings to files and can cut every one back to where it started."""

    def __init__(self):
        self._undo: list[tuple[Path, int]] = []

    def append(self, path: Path, data: bytes) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            self._undo.append((path, os.fstat(fd).st_size))
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)

    def undo(self) -> None:
        for path, size in reversed(self._undo):
            try:
                os.truncate(path, size)
            except OSError:
                pass  # the original error is what gets reported
        self._undo.clear()


def _writer_error(out: Path, error: BaseException, frames_written: int) -> RecordingError:
    if isinstance(error, RecordingError):
        return error
    err = RecordingError(f"recording to {out} failed ({type(error).__name__}: {error}); every file holds the same "
                         f"first {frames_written} frames")
    err.__cause__ = error
    return err


class _Chunk:
    """Preallocated rows of one stream waiting to be written."""

    def __init__(self, rows: int, k: int, n_animals: int = 0):
        self.n = 0
        self.frame = np.zeros(rows, np.int64)
        self.pose = np.zeros((rows, k, 3), np.float64)
        self.predicted = np.zeros((rows, k, 3), np.float64)
        self.timing = np.zeros((rows, len(TIMING_COLUMNS) + n_animals), np.int64)
        self.events: list = []


class _StreamFiles:
    def __init__(self, paths: RecordingPaths, info: StreamInfo, scorer: str, index_labels: Sequence[str] | None):
        self.paths = paths
        self.info = info
        self.scorer = scorer
        self.index_labels = list(index_labels) if index_labels is not None else None
        self.frames_written = 0


class RecorderSink(Sink):
    name = "recorder"

    def __init__(self, out: str | Path, *, scorer: str = "rtpose", chunk_frames: int = 256,
                 flush_interval_s: float = 1.0, index_labels: Sequence[str] | None = None,
                 overwrite: bool = False, clock: Clock = monotonic_ns, settings: dict | None = None,
                 append_rows: int | None = None, stream: int | None = None):
        """``index_labels``: row labels instead of frame numbers (e.g. image paths), stream 0 only.
        ``settings``: how the run was set up, written to ``<stem>_settings.json`` (JSON-able values).
        ``append_rows``: continue an interrupted single-stream recording whose files all hold this many
        rows (:func:`rtpose.recording.resume.recover` makes them so) instead of starting new files.
        ``stream``: record only this stream of the run, as a one-stream recording (its rows and events, stream
        column 0): ``rtpose analyze --videos-at-once`` gives each video of one run its own recorder."""
        self.out = Path(out)
        self.stream = stream
        self.scorer = scorer
        self.chunk_frames = chunk_frames
        self.flush_interval_ns = int(flush_interval_s * 1e9)
        self.index_labels = index_labels
        self.overwrite = overwrite
        self.clock = clock
        self.settings = settings
        self.append_rows = append_rows
        self._files: list[_StreamFiles] = []
        self._current: list[_Chunk] = []
        self._free: "queue.SimpleQueue[_Chunk]" = queue.SimpleQueue()
        self._todo: "queue.Queue[tuple[int, _Chunk] | None]" = queue.Queue()
        self._chunk_started_ns: list[int] = []
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._written = threading.Condition()
        self.chunks_allocated = 0

    # -------------------------------------------------------------- Sink API
    def planned_paths(self, n_streams: int) -> list[RecordingPaths]:
        """The files a recording of ``n_streams`` streams writes."""
        return [RecordingPaths.for_output(self.out, f"_cam{i}" if n_streams > 1 else "") for i in range(n_streams)]

    def check_outputs(self, n_streams: int) -> None:
        """Refuse (RecordingError) before anything runs if a file would be replaced without ``overwrite``."""
        refuse_existing([p for paths in self.planned_paths(n_streams) for p in paths.all()], self.overwrite)

    def open(self, streams: Sequence[StreamInfo]) -> None:
        if self.stream is not None:
            if not 0 <= self.stream < len(streams):
                raise RecordingError(f"{self.out}: stream {self.stream} asked for, but the run has {len(streams)}")
            streams = [streams[self.stream]]
        if self.append_rows is not None:
            self._open_appending(streams)
            return
        self.check_outputs(len(streams))
        for i, (info, paths) in enumerate(zip(streams, self.planned_paths(len(streams)))):
            try:
                paths.h5.parent.mkdir(parents=True, exist_ok=True)
                for p in (*paths.all(), paths.h5_tmp):
                    p.unlink(missing_ok=True)
                self._write_headers(paths, info)
            except OSError as exc:
                blocker = next((p for p in paths.h5.parents if p.exists() and not p.is_dir()), None)
                if blocker is not None:
                    raise RecordingError(f"cannot create recording {paths.h5}: {blocker} is a file, not a folder; "
                                         "record into a folder (it is created if missing)") from exc
                raise RecordingError(f"cannot create recording {paths.h5} ({exc.strerror or exc}); "
                                     "check that the folder can be created and is writable, or record elsewhere") from exc
            self._files.append(_StreamFiles(paths, info, self.scorer, self.index_labels if i == 0 else None))
            self._current.append(self._new_chunk(info))
            self._chunk_started_ns.append(self.clock())
        self._thread = threading.Thread(target=self._writer, name="rtpose-recorder", daemon=True)
        self._thread.start()

    def _open_appending(self, streams: Sequence[StreamInfo]) -> None:
        if len(streams) != 1:
            raise RecordingError("only a single-stream recording can be continued; record several cameras anew")
        paths = self.planned_paths(1)[0]
        files = _StreamFiles(paths, streams[0], self.scorer, self.index_labels)
        files.frames_written = self.append_rows
        self._files.append(files)
        self._current.append(self._new_chunk(streams[0]))
        self._chunk_started_ns.append(self.clock())
        self._thread = threading.Thread(target=self._writer, name="rtpose-recorder", daemon=True)
        self._thread.start()

    def write(self, batch: PoseBatch) -> None:
        if self._error is not None:
            raise _writer_error(self.out, self._error, self.frames_written)
        now = self.clock()
        only = self.stream
        for i in range(batch.n):
            s = int(batch.stream[i])
            if only is not None:
                if s != only:
                    continue
                s = 0
            chunk = self._current[s]
            r = chunk.n
            chunk.frame[r] = batch.frame_index[i]
            chunk.pose[r] = batch.pose[i]
            chunk.predicted[r] = batch.predicted[i]
            t = chunk.timing[r]
            t[0] = batch.frame_index[i]
            t[1] = s
            t[2] = batch.t_capture_ns[i]
            t[3] = batch.t_dequeued_ns[i]
            t[4] = batch.t_infer_start_ns[i]
            t[5] = batch.t_infer_end_ns[i]
            t[6] = batch.t_decoded_ns[i]
            t[7] = batch.t_predicted_ns[i]
            t[8] = batch.t_frame_ns[i]
            t[9] = batch.t_target_ns[i]
            t[10:14] = batch.crop_box[i]
            t[14] = batch.device_frame_id[i]
            t[15] = batch.device_timestamp_ns[i]
            if batch.n_animals:
                t[16:] = batch.track_id[i]
            chunk.n = r + 1
            if chunk.n == self.chunk_frames:
                self._hand_over(s, now)
        for ev in batch.events:
            if only is None:
                self._current[ev.stream if ev.stream < len(self._current) else 0].events.append(ev)
            elif ev.stream == only:
                self._current[0].events.append(replace(ev, stream=0) if ev.stream else ev)
        for s in range(len(self._current)):
            if (self._current[s].n or self._current[s].events) and now - self._chunk_started_ns[s] >= self.flush_interval_ns:
                self._hand_over(s, now)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._thread is None:
            return
        for s, chunk in enumerate(self._current):
            if chunk.n or chunk.events:
                self._todo.put((s, chunk))
        self._todo.put(None)
        self._thread.join()
        if self._error is not None:
            raise _writer_error(self.out, self._error, self.frames_written)

    def summary(self) -> dict[str, object]:
        return {"frames_written": self.frames_written, "files": [str(f.paths.h5) for f in self._files]}

    def wait_until_written(self, frames: int, timeout_s: float | None = None) -> bool:
        """Block until at least ``frames`` rows are on disk (or the writer failed). For tests and tools."""
        with self._written:
            return self._written.wait_for(lambda: self.frames_written >= frames or self._error is not None, timeout_s)

    @property
    def frames_written(self) -> int:
        return sum(f.frames_written for f in self._files)

    @property
    def paths(self) -> list[RecordingPaths]:
        return [f.paths for f in self._files]

    # -------------------------------------------------------------- internals
    def _new_chunk(self, info: StreamInfo) -> _Chunk:
        try:
            chunk = self._free.get_nowait()
            chunk.n = 0
            chunk.events = []
            return chunk
        except queue.Empty:
            self.chunks_allocated += 1  # only at start or when the disk falls behind
            return _Chunk(self.chunk_frames, len(info.bodyparts), _n_animals(info))

    def _hand_over(self, stream: int, now: int) -> None:
        self._todo.put((stream, self._current[stream]))
        self._current[stream] = self._new_chunk(self._files[stream].info)
        self._chunk_started_ns[stream] = now

    def _write_headers(self, paths: RecordingPaths, info: StreamInfo) -> None:
        empty = pose_frame(np.zeros((0, len(info.bodyparts), 3)), self.scorer, info.bodyparts, layout=info.layout)
        empty.to_csv(paths.csv)
        empty.to_csv(paths.predicted_csv)
        with open(paths.timing_csv, "w", newline="") as f:
            csv.writer(f).writerow(timing_columns(info))
        with open(paths.events_csv, "w", newline="") as f:
            csv.writer(f).writerow(event_columns(info))
        if self.settings is not None:
            paths.settings_json.write_text(json.dumps(self.settings, indent=2, sort_keys=True) + "\n")

    def _writer(self) -> None:
        while True:
            item = self._todo.get()
            if item is None:
                return
            if self._error is not None:
                continue  # keep draining so close() never hangs
            stream, chunk = item
            try:
                self._append(self._files[stream], chunk)
            except BaseException as exc:  # reported by the next write() and by close()
                self._error = exc
            finally:
                self._free.put(chunk)
                with self._written:
                    self._written.notify_all()

    def _append(self, files: _StreamFiles, chunk: _Chunk) -> None:
        """Write one chunk to every file of the stream, or (on any error) to none."""
        n = chunk.n
        paths = files.paths
        measured = None
        texts: list[tuple[Path, bytes]] = []
        if n:
            if files.index_labels is not None:
                index = [files.index_labels[i] if i < len(files.index_labels) else i for i in chunk.frame[:n]]
            else:
                index = chunk.frame[:n].copy()
            layout = files.info.layout
            measured = pose_frame(chunk.pose[:n], files.scorer, files.info.bodyparts, index, layout)
            predicted = pose_frame(chunk.predicted[:n], files.scorer, files.info.bodyparts, index, layout)
            texts.append((paths.csv, measured.to_csv(header=False).encode()))
            texts.append((paths.predicted_csv, predicted.to_csv(header=False).encode()))
            texts.append((paths.timing_csv, _csv_bytes(chunk.timing[:n].tolist())))
        if chunk.events:
            with_animal = files.info.layout is not None
            texts.append((paths.events_csv, _csv_bytes([event_row(e, with_animal) for e in chunk.events])))
        need = sum(len(t) for _, t in texts) + (2 * measured.memory_usage(deep=True).sum() if n else 0)
        self._check_space(files, paths.h5.parent, int(need) + SPACE_MARGIN_BYTES, n)
        rollback = _Rollback()
        try:
            for path, text in texts:
                rollback.append(path, text)
            if n:
                self._append_h5(files, measured)
        except BaseException as exc:
            rollback.undo()
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise self._disk_full(files, paths.h5.parent, n) from exc
            raise
        files.frames_written += n

    def _append_h5(self, files: _StreamFiles, measured: pd.DataFrame) -> None:
        """Append to the .h5 so that a failure cannot damage the rows already in it: the first chunk and,
        when the disk is nearly full, every chunk go to a copy that is renamed into place when whole
        (HDF5 cannot undo a half-done append; a CSV can be cut back, an .h5 cannot)."""
        paths = files.paths
        on_copy = files.frames_written == 0 or _free_bytes(paths.h5.parent) < H5_COPY_BELOW_FREE_BYTES
        target = paths.h5_tmp if on_copy else paths.h5
        store = None
        try:
            if on_copy and files.frames_written:
                shutil.copyfile(paths.h5, target)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", pd.errors.PerformanceWarning)  # mixed-type index for image paths
                store = pd.HDFStore(target, mode="a")
                # index=False: no PyTables index on the row labels (only where-queries use it; DeepLabCut
                # and read_hdf read the table the same). Rebuilding it on every append made malloc keep
                # memory growing with the recording's length (docs/soak.md).
                store.append(H5_KEY, measured, format="table", index=False,
                             min_itemsize={"index": 256} if files.index_labels else None)
                store.close()
            if on_copy:
                os.replace(target, paths.h5)
        except BaseException as exc:
            handle = getattr(store, "_handle", None)
            if handle is not None and handle.isopen:
                try:
                    handle.close()  # a failed flush leaves PyTables' handle open
                except Exception:
                    pass
            if on_copy:
                paths.h5_tmp.unlink(missing_ok=True)
            if _is_disk_full(exc):  # PyTables wraps the OS error in its own exception
                raise OSError(errno.ENOSPC, "no space left on device") from exc
            raise

    def _check_space(self, files: _StreamFiles, folder: Path, need: int, n: int) -> None:
        free = _free_bytes(folder)
        if free < need:
            raise self._disk_full(files, folder, n, f"{_size(free)} free, the next {n} rows need about {_size(need)}")

    def _disk_full(self, files: _StreamFiles, folder: Path, n: int, detail: str = "") -> RecordingError:
        return RecordingError(
            f"the disk holding {folder} is full ({detail or 'no space left on device'}); "
            f"recording stopped: every file of {files.paths.h5.name} holds the same first {files.frames_written} frames. "
            "Free some space or record to another disk"
        )


def _free_bytes(folder: Path) -> int:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return 1 << 62  # unknown: the writes themselves will report what is wrong with the folder


def _csv_bytes(rows: list) -> bytes:
    buf = io.StringIO(newline="")
    csv.writer(buf).writerows(rows)
    return buf.getvalue().encode()


def _is_disk_full(exc: BaseException) -> bool:
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _size(nbytes: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if nbytes < 1024 or unit == "GiB":
            return f"{nbytes:.0f} {unit}" if unit == "bytes" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return f"{nbytes} bytes"
