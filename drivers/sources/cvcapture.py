"""Read frames from a ``cv2.VideoCapture`` into a caller's buffer, in place when possible.

OpenCV decodes straight into a C-contiguous ``(H, W, 3)`` uint8 buffer of the
frame's size (``read(image=out)`` returns ``out`` itself). It rejects other
layouts (e.g. a channel view of a wider array), so those go through one
scratch buffer allocated on first need, then one copy. A decoded frame of a
different size is reported through the returned shape and not copied.
"""

from __future__ import annotations

import cv2
import numpy as np


class CaptureReader:
    """Wraps a capture; ``read_into``/``retrieve_into`` return ``(ok, decoded_shape)``."""

    def __init__(self, cap: cv2.VideoCapture):
        self.cap = cap
        self._scratch: np.ndarray | None = None

    def read_into(self, out: np.ndarray) -> tuple[bool, tuple[int, ...] | None]:
        """Grab and decode the next frame into ``out``."""
        return self._fill(out, self.cap.read)

    def retrieve_into(self, out: np.ndarray) -> tuple[bool, tuple[int, ...] | None]:
        """Decode the frame already grabbed with ``cap.grab()`` into ``out``."""
        return self._fill(out, self.cap.retrieve)

    def _fill(self, out: np.ndarray, decode) -> tuple[bool, tuple[int, ...] | None]:
        target = out
        if not out.flags.c_contiguous:
            if self._scratch is None or self._scratch.shape != out.shape:
                self._scratch = np.empty(out.shape, np.uint8)
            target = self._scratch
        ok, img = decode(target)
        if not ok or img is None:
            return False, None
        if img is not out and img.shape == out.shape:
            np.copyto(out, img)  # decoded into the scratch buffer, or OpenCV reallocated anyway
        return True, img.shape

    def release(self) -> None:
        self.cap.release()
