"""USB/V4L2 cameras through OpenCV's ``VideoCapture``.

``CameraSource(index, width, height, fps)`` opens camera ``index`` (``/dev/video<index>``
on Linux), asks for the given mode, and checks at open that frames really
arrive and what size they are. A camera that cannot be opened, delivers no
frame, or stops delivering (unplugged) raises :class:`SourceError` naming
``camera:N`` with what to check. Frames are captured into the caller's buffer.
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

from rtpose.errors import SourceError

from .base import FrameSource, SourceInfo
from .cvcapture import CaptureReader

#: Frame rate assumed when a camera reports none (some UVC drivers report 0).
FALLBACK_FPS = 30.0

_LIST_HINT = "check the cable and the index; list cameras with `v4l2-ctl --list-devices`"


class CameraSource(FrameSource):
    """A live camera. ``read_into`` blocks until the next frame; it never returns False.

    Args:
        index: camera index (``/dev/video<index>``).
        width, height, fps: requested mode; None keeps the camera's default.
        capture_factory: builds the ``cv2.VideoCapture`` from the index; tests pass a fake.
    """

    def __init__(
        self,
        index: int,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        *,
        capture_factory: Callable[[int], cv2.VideoCapture] = cv2.VideoCapture,
    ):
        super().__init__(f"camera:{index}")
        if (width is None) != (height is None):
            raise SourceError(self.name, "give both width and height, or neither")
        self.index = int(index)
        self.width = width
        self.height = height
        self.requested_fps = fps
        self._capture_factory = capture_factory
        self._reader: CaptureReader | None = None
        self._n_read = 0

    def _do_open(self) -> SourceInfo:
        cap = self._capture_factory(self.index)
        if not cap.isOpened():
            raise SourceError(self.name, f"cannot open camera {self.index}; {_LIST_HINT}")
        try:
            if self.width is not None:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
            if self.requested_fps is not None:
                cap.set(cv2.CAP_PROP_FPS, self.requested_fps)
            # Keep at most one frame queued in the driver: closed-loop work wants the newest frame.
            # Best effort: backends without the property ignore it.
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
            ok, probe = cap.read()  # proves frames arrive and gives the real size (properties can lie)
            if not ok or probe is None:
                raise SourceError(self.name, f"camera {self.index} opened but delivered no frame; {_LIST_HINT}")
            if probe.ndim != 3 or probe.shape[2] != 3 or probe.dtype != np.uint8:
                raise SourceError(self.name, f"camera delivers {probe.shape} {probe.dtype} frames, expected (H, W, 3) uint8 BGR")
            height, width = probe.shape[:2]
            if self.width is not None and (width, height) != (self.width, self.height):
                raise SourceError(
                    self.name,
                    f"asked for {self.width}x{self.height} but the camera delivers {width}x{height}; "
                    f"pick a supported mode (`v4l2-ctl -d /dev/video{self.index} --list-formats-ext`) or omit the size",
                )
            fps = float(cap.get(cv2.CAP_PROP_FPS))
            if not (fps > 0 and np.isfinite(fps)):
                fps = float(self.requested_fps or FALLBACK_FPS)
        except BaseException:
            cap.release()
            raise
        self._reader = CaptureReader(cap)
        self._n_read = 0
        return SourceInfo(width=width, height=height, fps=fps, n_frames=None, live=True)

    def _do_read_into(self, out: np.ndarray) -> bool:
        ok, shape = self._reader.read_into(out)
        if not ok:
            raise SourceError(
                self.name, f"camera stopped delivering frames after {self._n_read} frames (unplugged?); {_LIST_HINT}"
            )
        if shape != out.shape:
            raise SourceError(
                self.name,
                f"camera switched to {shape[1]}x{shape[0]} frames mid-run (expected {out.shape[1]}x{out.shape[0]}); "
                "fix the mode with width/height",
            )
        self._n_read += 1
        return True

    def _do_close(self) -> None:
        if self._reader is not None:
            self._reader.release()
            self._reader = None
