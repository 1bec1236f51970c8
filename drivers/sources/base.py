"""The frame-source contract every camera/video driver implements.

A source fills a caller-provided ``(height, width, 3)`` uint8 BGR buffer, so
capture allocates nothing per frame. Implementations override the ``_do_*``
hooks; the public methods add state checks and uniform errors.

Cameras that number and time-stamp their own frames (Basler, GenICam) also set,
with every ``read_into``, the frame's :attr:`FrameSource.device_frame_id` and
:attr:`FrameSource.device_timestamp_ns`, and count in
:attr:`FrameSource.frames_lost` the frames their counter says were produced but
never delivered. The capture thread copies them into the ring next to the
frame; sources without them leave ``-1`` (:data:`NO_DEVICE_VALUE`) and 0.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from rtpose.errors import SourceError


#: ``device_frame_id`` / ``device_timestamp_ns`` of a frame whose source has no such number.
NO_DEVICE_VALUE = -1


@dataclass(frozen=True)
class SourceInfo:
    width: int
    height: int
    fps: float
    n_frames: int | None = None  # None for live cameras
    live: bool = True  # True: frames arrive in real time (camera, paced video)


class FrameSource(ABC):
    """Open → read_into()* → close. Also a context manager."""

    def __init__(self, name: str):
        self.name = name  # e.g. "video:/path.mp4", "camera:0", "synthetic"
        self._info: SourceInfo | None = None
        #: The camera's own number of the frame the last ``read_into`` returned (-1: the source has none).
        self.device_frame_id = NO_DEVICE_VALUE
        #: The camera's hardware timestamp of that frame in ns of the camera's clock (-1: none).
        self.device_timestamp_ns = NO_DEVICE_VALUE
        #: Frames the camera produced (by its frame counter) that never reached ``read_into``, so far.
        self.frames_lost = 0

    @property
    def info(self) -> SourceInfo:
        if self._info is None:
            raise SourceError(self.name, "source is not open; call open() first")
        return self._info

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        return (self.info.height, self.info.width, 3)

    @property
    def fps(self) -> float:
        return self.info.fps

    def open(self) -> SourceInfo:
        if self._info is None:
            self._info = self._do_open()
        return self._info

    def read_into(self, out: np.ndarray) -> bool:
        """Fill ``out`` with the next frame (BGR uint8). False at end of stream.

        Raises :class:`SourceError` if the device fails or ``out`` has the wrong shape.
        """
        if out.shape != self.frame_shape or out.dtype != np.uint8:
            raise SourceError(self.name, f"buffer is {out.shape} {out.dtype}, source gives {self.frame_shape} uint8")
        return self._do_read_into(out)

    def interrupt(self) -> None:
        """Ask a ``read_into`` blocked in another thread (a camera waiting for a trigger) to return
        False soon. Called by the capture thread's ``stop()``; sources that never block long ignore it."""

    def close(self) -> None:
        if self._info is not None:
            try:
                self._do_close()
            finally:
                self._info = None

    def __enter__(self) -> "FrameSource":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @abstractmethod
    def _do_open(self) -> SourceInfo: ...

    @abstractmethod
    def _do_read_into(self, out: np.ndarray) -> bool: ...

    def _do_close(self) -> None:
        pass
