"""Crash-safe pose recording on its own thread.

:class:`RecorderSink` copies each batch's rows into a preallocated chunk on the
inference thread (no I/O there) and hands full chunks (or chunks older than
``flush_interval_s``) to a writer thread, which appends them to:

- ``<stem>.h5`` — DeepLabCut's table (key ``df_with_missing``), measured poses;
  the HDF5 file is opened, appended and closed per chunk, so it is complete and
  readable after every chunk even if the process is killed later;
- ``<stem>.csv`` — the same table as DeepLabCut's CSV;
- ``<stem>_predicted.csv`` — Kalman-predicted poses in the same layout;
- ``<stem>_timing.csv`` — frame index, stream and every stage timestamp (ns);
- ``<stem>_events.csv`` — drops, triggers and device events.

With several streams, each gets its own files with ``_cam<i>`` in the stem.
:meth:`RecorderSink.close` flushes the partial chunk and waits for the writer;
``summary()["frames_written"]`` says how many frames are on disk.
"""

from __future__ import annotations

import csv
import queue
import threading
import warnings
from dataclasses import dataclass
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
                  "t_decoded_ns", "t_predicted_ns", "t_frame_ns", "t_target_ns")
EVENT_COLUMNS = ("t_ns", "frame", "stream", "kind", "name", "detail")


@dataclass(frozen=True)
class RecordingPaths:
    h5: Path
    csv: Path
    predicted_csv: Path
    timing_csv: Path
    events_csv: Path

    @classmethod
    def for_output(cls, out: str | Path, suffix: str = "") -> "RecordingPaths":
        """``out`` may be ``name.h5``, ``name.csv`` or a bare stem."""
        out = Path(out)
        stem = out.with_suffix("") if out.suffix in (".h5", ".csv") else out
        base = stem.parent / (stem.name + suffix)
        return cls(base.with_name(base.name + ".h5"), base.with_name(base.name + ".csv"),
                   base.with_name(base.name + "_predicted.csv"), base.with_name(base.name + "_timing.csv"),
                   base.with_name(base.name + "_events.csv"))

    def all(self) -> tuple[Path, ...]:
        return (self.h5, self.csv, self.predicted_csv, self.timing_csv, self.events_csv)


class _Chunk:
    """Preallocated rows of one stream waiting to be written."""

    def __init__(self, rows: int, k: int):
        self.n = 0
        self.frame = np.zeros(rows, np.int64)
        self.pose = np.zeros((rows, k, 3), np.float64)
        self.predicted = np.zeros((rows, k, 3), np.float64)
        self.timing = np.zeros((rows, len(TIMING_COLUMNS)), np.int64)
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
                 overwrite: bool = True, clock: Clock = monotonic_ns):
        """``index_labels``: row labels instead of frame numbers (e.g. image paths), stream 0 only."""
        self.out = Path(out)
        self.scorer = scorer
        self.chunk_frames = chunk_frames
        self.flush_interval_ns = int(flush_interval_s * 1e9)
        self.index_labels = index_labels
        self.overwrite = overwrite
        self.clock = clock
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
    def open(self, streams: Sequence[StreamInfo]) -> None:
        multi = len(streams) > 1
        for i, info in enumerate(streams):
            paths = RecordingPaths.for_output(self.out, f"_cam{i}" if multi else "")
            try:
                paths.h5.parent.mkdir(parents=True, exist_ok=True)
                for p in paths.all():
                    if p.exists():
                        if not self.overwrite:
                            raise RecordingError(f"{p} exists; choose another --record path or delete it")
                        p.unlink()
                self._write_headers(paths, info)
            except OSError as exc:
                raise RecordingError(f"cannot create recording {paths.h5} ({exc}); check the folder exists and is writable") from exc
            self._files.append(_StreamFiles(paths, info, self.scorer, self.index_labels if i == 0 else None))
            self._current.append(self._new_chunk(len(info.bodyparts)))
            self._chunk_started_ns.append(self.clock())
        self._thread = threading.Thread(target=self._writer, name="rtpose-recorder", daemon=True)
        self._thread.start()

    def write(self, batch: PoseBatch) -> None:
        if self._error is not None:
            raise RecordingError(f"recording to {self.out} failed: {self._error}") from self._error
        now = self.clock()
        for i in range(batch.n):
            s = int(batch.stream[i])
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
            chunk.n = r + 1
            if chunk.n == self.chunk_frames:
                self._hand_over(s, now)
        for ev in batch.events:
            self._current[ev.stream if ev.stream < len(self._current) else 0].events.append(ev)
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
            raise RecordingError(f"recording to {self.out} failed: {self._error}; "
                                 f"{self.frames_written} frames were written") from self._error

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
    def _new_chunk(self, k: int) -> _Chunk:
        try:
            chunk = self._free.get_nowait()
            chunk.n = 0
            chunk.events = []
            return chunk
        except queue.Empty:
            self.chunks_allocated += 1  # only at start or when the disk falls behind
            return _Chunk(self.chunk_frames, k)

    def _hand_over(self, stream: int, now: int) -> None:
        self._todo.put((stream, self._current[stream]))
        self._current[stream] = self._new_chunk(len(self._files[stream].info.bodyparts))
        self._chunk_started_ns[stream] = now

    def _write_headers(self, paths: RecordingPaths, info: StreamInfo) -> None:
        empty = pose_frame(np.zeros((0, len(info.bodyparts), 3)), self.scorer, info.bodyparts)
        empty.to_csv(paths.csv)
        empty.to_csv(paths.predicted_csv)
        with open(paths.timing_csv, "w", newline="") as f:
            csv.writer(f).writerow(TIMING_COLUMNS)
        with open(paths.events_csv, "w", newline="") as f:
            csv.writer(f).writerow(EVENT_COLUMNS)

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
        n = chunk.n
        bodyparts = files.info.bodyparts
        if n:
            if files.index_labels is not None:
                index = [files.index_labels[i] if i < len(files.index_labels) else i for i in chunk.frame[:n]]
            else:
                index = chunk.frame[:n].copy()
            measured = pose_frame(chunk.pose[:n], files.scorer, bodyparts, index)
            predicted = pose_frame(chunk.predicted[:n], files.scorer, bodyparts, index)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", pd.errors.PerformanceWarning)  # mixed-type index for image paths
                with pd.HDFStore(files.paths.h5, mode="a") as store:
                    # index=False: no PyTables index on the row labels (only where-queries use it; DeepLabCut
                    # and read_hdf read the table the same). Rebuilding it on every append made malloc keep
                    # memory growing with the recording's length (docs/soak.md).
                    store.append(H5_KEY, measured, format="table", index=False,
                                 min_itemsize={"index": 256} if files.index_labels else None)
            measured.to_csv(files.paths.csv, mode="a", header=False)
            predicted.to_csv(files.paths.predicted_csv, mode="a", header=False)
            with open(files.paths.timing_csv, "a", newline="") as f:
                csv.writer(f).writerows(chunk.timing[:n].tolist())
            files.frames_written += n
        if chunk.events:
            with open(files.paths.events_csv, "a", newline="") as f:
                csv.writer(f).writerows([(e.t_ns, e.frame_index, e.stream, e.kind, e.name, e.detail) for e in chunk.events])
