"""A list of image files as a (not live) frame source, for ``rtpose analyze a.png b.png ...``.

Images are delivered in the order given and must all have the size of the
first; a file of another size, a missing or an unreadable file raises
:class:`SourceError` naming it. Grey and RGBA images are read as 3-channel BGR.
``cv2.imread`` allocates each decoded image; it is copied once into the
caller's buffer (offline use, so that one copy per image is acceptable).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from rtpose.errors import SourceError

from .base import FrameSource, SourceInfo


def _read_bgr(path: Path, source: str) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise SourceError(source, f"{path} cannot be read as an image (corrupt or unsupported format); re-save it as PNG or JPEG")
    return img


class ImageFilesSource(FrameSource):
    """Frames from image files, in the order given.

    Args:
        paths: the image files (at least one).
        fps: nominal frame rate reported in ``info`` (images have none; sinks use it for timestamps).
    """

    def __init__(self, paths: Sequence[str | os.PathLike], *, fps: float = 30.0):
        self.paths = [Path(p) for p in paths]
        first = str(self.paths[0]) if self.paths else ""
        more = f" (+{len(self.paths) - 1} more)" if len(self.paths) > 1 else ""
        super().__init__(f"images:{first}{more}")
        if not self.paths:
            raise SourceError(self.name, "no image files given; pass at least one image path")
        if not fps > 0:
            raise SourceError(self.name, f"fps must be positive, got {fps}")
        self._fps = float(fps)
        self._next = 0

    def _do_open(self) -> SourceInfo:
        missing = [str(p) for p in self.paths if not p.is_file()]
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise SourceError(self.name, f"image file(s) not found: {shown}; check the paths")
        height, width = _read_bgr(self.paths[0], self.name).shape[:2]
        self._next = 0
        return SourceInfo(width=width, height=height, fps=self._fps, n_frames=len(self.paths), live=False)

    def _do_read_into(self, out: np.ndarray) -> bool:
        if self._next >= len(self.paths):
            return False
        path = self.paths[self._next]
        img = _read_bgr(path, self.name)
        if img.shape != out.shape:
            raise SourceError(
                self.name,
                f"{path} is {img.shape[1]}x{img.shape[0]} but {self.paths[0]} is {out.shape[1]}x{out.shape[0]}; "
                "all images must have one size (resize them, or analyze them in separate runs)",
            )
        np.copyto(out, img)
        self._next += 1
        return True

    @property
    def current_path(self) -> Path | None:
        """The file of the frame last read (None before the first read)."""
        return self.paths[self._next - 1] if self._next > 0 else None
