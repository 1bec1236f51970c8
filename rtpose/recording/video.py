"""Raw video recording beside the poses, without slowing capture.

The capture thread calls :meth:`VideoRecorder.offer` for every frame it reads
(also those inference later skips), which copies the frame into a free
preallocated buffer and queues it; a writer thread encodes it with OpenCV. If
the encoder falls behind and every buffer is in use, the frame is *not*
recorded and counted in ``frames_dropped`` (capture never waits for the disk).
``<stem>_frames.csv`` lists, per written video frame, the stream's frame index
and ``t_capture_ns``, so video frames and pose rows can be matched exactly.
"""

from __future__ import annotations

import csv
import queue
import threading
from pathlib import Path

import cv2
import numpy as np

from ..errors import RecordingError

#: Container suffix -> FourCC. MJPG in .avi needs no external codec; mp4v is widely readable.
CODECS = {".avi": "MJPG", ".mp4": "mp4v"}
#: Frames the capture thread can hand to the encoder before it must drop (one buffer each).
VIDEO_BUFFERS = 32


def index_path_for(path: Path) -> Path:
    return path.with_name(path.stem + "_frames.csv")


def planned_video_paths(base: str | Path, n_streams: int) -> list[Path]:
    """The files ``--record-video base`` writes for ``n_streams`` streams (videos and index CSVs)."""
    base = Path(base)
    videos = [base.with_name(f"{base.stem}_cam{i}{base.suffix}") for i in range(n_streams)] if n_streams > 1 else [base]
    return [p for v in videos for p in (v, index_path_for(v))]


class VideoRecorder:
    def __init__(self, path: str | Path, *, frame_shape: tuple[int, int, int], fps: float, buffers: int = VIDEO_BUFFERS,
                 overwrite: bool = False):
        from .recorder import refuse_existing

        self.path = Path(path)
        if self.path.suffix not in CODECS:
            raise RecordingError(f"video recording {self.path}: use a .avi (MJPG) or .mp4 (mp4v) file name")
        self.index_path = index_path_for(self.path)
        refuse_existing([self.path, self.index_path], overwrite)
        height, width, _ = frame_shape
        self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*CODECS[self.path.suffix]), fps,
                                       (width, height))
        if not self._writer.isOpened():
            raise RecordingError(f"cannot open {self.path} for writing video; check the folder and the codec")
        self._free: "queue.SimpleQueue[np.ndarray]" = queue.SimpleQueue()
        for _ in range(buffers):
            self._free.put(np.empty(frame_shape, np.uint8))
        self._todo: "queue.SimpleQueue[tuple[np.ndarray, int, int] | None]" = queue.SimpleQueue()
        self._index_file = open(self.index_path, "w", newline="")
        self._index = csv.writer(self._index_file)
        self._index.writerow(("video_frame", "frame", "t_capture_ns"))
        self.frames_written = 0
        self.frames_dropped = 0
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="rtpose-video-recorder", daemon=True)
        self._thread.start()

    def offer(self, frame: np.ndarray, frame_index: int, t_capture_ns: int) -> bool:
        """Queue a copy of ``frame`` for writing; False (and counted) when no buffer is free."""
        try:
            buf = self._free.get_nowait()
        except queue.Empty:
            self.frames_dropped += 1
            return False
        np.copyto(buf, frame)
        self._todo.put((buf, frame_index, t_capture_ns))
        return True

    def close(self) -> None:
        self._todo.put(None)
        self._thread.join()
        self._writer.release()
        self._index_file.close()
        if self._error is not None:
            raise RecordingError(f"writing video {self.path} failed after {self.frames_written} frames: {self._error}") from self._error

    def summary(self) -> dict[str, object]:
        return {"video_frames_written": self.frames_written, "video_frames_dropped": self.frames_dropped,
                "video": str(self.path)}

    def _run(self) -> None:
        while True:
            item = self._todo.get()
            if item is None:
                return
            buf, frame_index, t_capture_ns = item
            try:
                if self._error is None:
                    self._writer.write(buf)
                    self._index.writerow((self.frames_written, frame_index, t_capture_ns))
                    self.frames_written += 1
                    if self.frames_written % 30 == 0:
                        self._index_file.flush()
            except BaseException as exc:  # reported by close()
                self._error = exc
            finally:
                self._free.put(buf)
