"""Video files as frame sources, replayed like a camera or read as fast as possible.

``VideoFileSource(path, paced=True)`` releases frames at the file's own frame
rate measured from ``open()`` (a stand-in for a live camera: ``info.live`` is
True); ``paced=False`` decodes as fast as the consumer reads (offline analysis).
Frames are decoded by OpenCV straight into the caller's buffer (see
:mod:`.cvcapture`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from rtpose.clock import Clock, monotonic_ns
from rtpose.errors import SourceError

from .base import FrameSource, SourceInfo
from .cvcapture import CaptureReader
from .pacing import Pacer, Sleep


class VideoFileSource(FrameSource):
    """Frames of a video file (anything OpenCV's FFmpeg backend decodes).

    Args:
        path: the video file.
        paced: True to release frames at the file's FPS (live), False for offline.
        clock, sleep: pacing clock (ns) and sleep (s); injectable for tests.
        capture_factory: builds the ``cv2.VideoCapture``; tests pass a fake.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        paced: bool = True,
        *,
        clock: Clock = monotonic_ns,
        sleep: Sleep = time.sleep,
        capture_factory: Callable[[str], cv2.VideoCapture] = cv2.VideoCapture,
    ):
        self.path = Path(path)
        super().__init__(f"video:{self.path}")
        self.paced = paced
        self._clock = clock
        self._sleep = sleep
        self._capture_factory = capture_factory
        self._reader: CaptureReader | None = None
        self._pacer: Pacer | None = None
        self._next_index = 0
        self._first_grabbed = False

    def _do_open(self) -> SourceInfo:
        if not self.path.is_file():
            raise SourceError(self.name, "file not found; check the path (relative paths start from the current directory)")
        cap = self._capture_factory(str(self.path))
        if not cap.isOpened():
            raise SourceError(
                self.name,
                "cannot open as a video (corrupt, truncated, or not a video format OpenCV/FFmpeg reads); "
                "check it with `ffprobe` or re-encode it, e.g. `ffmpeg -i in.avi -c:v libx264 out.mp4`",
            )
        try:
            width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
            height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
            fps = float(cap.get(cv2.CAP_PROP_FPS))
            count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            if width <= 0 or height <= 0:
                raise SourceError(self.name, f"the container reports frame size {width}x{height}; re-encode the file with ffmpeg")
            if not (fps > 0 and np.isfinite(fps)):
                raise SourceError(
                    self.name, f"the container reports no usable frame rate ({fps}); re-encode it with one, e.g. `ffmpeg -i in -r 30 out.mp4`"
                )
            # Decode the first frame now so an undecodable file fails at open, not mid-run.
            if not cap.grab():
                raise SourceError(self.name, "no frame could be decoded; the file is corrupt or empty (check it with `ffprobe`)")
        except BaseException:
            cap.release()
            raise
        self._reader = CaptureReader(cap)
        self._first_grabbed = True
        self._next_index = 0
        if self.paced:
            self._pacer = Pacer(fps, clock=self._clock, sleep=self._sleep)
        return SourceInfo(width=width, height=height, fps=fps, n_frames=count if count > 0 else None, live=self.paced)

    def _do_read_into(self, out: np.ndarray) -> bool:
        if self._first_grabbed:
            self._first_grabbed = False
            ok, shape = self._reader.retrieve_into(out)
        else:
            ok, shape = self._reader.read_into(out)
        if not ok:
            if self._next_index == 0:
                raise SourceError(self.name, "the first frame could not be decoded; the file is corrupt (check it with `ffprobe`)")
            return False  # end of stream (container frame counts are estimates: trust the decoder)
        if shape != out.shape:
            raise SourceError(
                self.name,
                f"frame {self._next_index} is {shape[1]}x{shape[0]} but the video started at "
                f"{out.shape[1]}x{out.shape[0]}; re-encode it to one size, e.g. `ffmpeg -i in.mp4 -vf scale=W:H out.mp4`",
            )
        if self._pacer is not None:
            self._pacer.wait_for(self._next_index)
        self._next_index += 1
        return True

    def skip(self, n: int) -> int:
        """Pass over the next ``n`` frames without decoding them into a buffer (``grab()`` only, ~3x faster
        than reading; frame-exact, unlike a container seek); returns how many there were (fewer at the end).
        For ``rtpose analyze`` starting at a frame (``--frame-range``) or resuming an interrupted video."""
        if self._reader is None:
            raise SourceError(self.name, "source is not open; call open() first")
        skipped = 0
        if n > 0 and self._first_grabbed:  # frame 0 was grabbed by open()
            self._first_grabbed = False
            skipped = 1
        while skipped < n and self._reader.cap.grab():
            skipped += 1
        self._next_index += skipped
        return skipped

    @property
    def next_index(self) -> int:
        """Frame number (from 0, in presentation order) of the frame the next ``read_into`` returns."""
        return self._next_index

    @property
    def frame_pts(self) -> int:
        """Presentation timestamp (container time base) of the frame last read or grabbed."""
        if self._reader is None:
            raise SourceError(self.name, "source is not open; call open() first")
        return int(self._reader.cap.get(cv2.CAP_PROP_PTS))

    def seek(self, frame: int, pts: int) -> bool:
        """Jump to frame ``frame`` whose presentation timestamp is ``pts`` (from a
        :class:`~.parallel_video.VideoIndex`), so that the next ``read_into`` returns it. OpenCV's
        frame seek (back to a keyframe, then decoding forward) is checked, not trusted: True only
        when the decoder landed on the frame with exactly that timestamp (frames it lands before are
        passed over); False otherwise, and the position is then unknown (reopen the source).
        Unpaced sources only."""
        if self._reader is None:
            raise SourceError(self.name, "source is not open; call open() first")
        if self._pacer is not None:
            raise SourceError(self.name, "a paced (live) video cannot jump; open it with paced=False")
        cap = self._reader.cap
        self._first_grabbed = False
        if not cap.set(cv2.CAP_PROP_POS_FRAMES, frame):
            return False
        while cap.grab():
            got = int(cap.get(cv2.CAP_PROP_PTS))
            if got == pts:
                self._first_grabbed = True
                self._next_index = frame
                return True
            if got > pts:
                return False
        return False

    def _do_close(self) -> None:
        if self._reader is not None:
            self._reader.release()
            self._reader = None
        self._pacer = None
