"""A frame source that replays a few pre-rendered frames, for benchmarks.

Drawing a synthetic frame costs about a millisecond of CPU on the capture
thread, which on a small machine competes with inference and would make the
benchmark measure the drawing. :class:`ReplaySource` renders ``distinct``
frames of the synthetic mouse once, at open, and then serves them in a cycle
(one ``memcpy`` per frame), either as fast as read (offline) or paced at
``fps`` like a camera (live). ``truth(i)`` is the synthetic ground truth of
the frame served as frame ``i``.
"""

from __future__ import annotations

import time

import numpy as np

from rtpose.clock import Clock, monotonic_ns
from rtpose.drivers.sources.base import FrameSource, SourceInfo
from rtpose.drivers.sources.pacing import Pacer
from rtpose.drivers.sources.synthetic import SyntheticSource


class ReplaySource(FrameSource):
    """``n_frames`` frames (None: endless) cycling through ``distinct`` synthetic ones."""

    def __init__(self, width: int, height: int, n_frames: int | None, *, distinct: int = 32, fps: float = 30.0,
                 paced: bool = False, seed: int = 0, clock: Clock = monotonic_ns, sleep=time.sleep):
        super().__init__(f"replay:{width}x{height}@{fps:g}")
        if distinct < 1:
            raise ValueError(f"distinct must be >= 1, got {distinct}")
        self._synthetic = SyntheticSource(width, height, fps, seed=seed)
        self.width, self.height = int(width), int(height)
        self.n_frames = n_frames
        self.distinct = int(distinct)
        self._fps = float(fps)
        self.paced = paced
        self._clock, self._sleep = clock, sleep
        self._frames: np.ndarray | None = None
        self._pacer: Pacer | None = None
        self._next = 0

    def truth(self, frame_index: int) -> np.ndarray:
        """``(3, 2)`` ground-truth head, body, tail of the frame served as ``frame_index``."""
        return self._synthetic.truth(frame_index % self.distinct)

    def _do_open(self) -> SourceInfo:
        if self._frames is None:
            self._frames = np.empty((self.distinct, self.height, self.width, 3), np.uint8)
            for i in range(self.distinct):
                self._synthetic.render(i, self._frames[i])
        self._next = 0
        if self.paced:
            self._pacer = Pacer(self._fps, clock=self._clock, sleep=self._sleep)
            self._pacer.start()
        return SourceInfo(width=self.width, height=self.height, fps=self._fps, n_frames=self.n_frames,
                          live=self.paced)

    def _do_read_into(self, out: np.ndarray) -> bool:
        if self.n_frames is not None and self._next >= self.n_frames:
            return False
        if self._pacer is not None:
            self._pacer.wait_for(self._next)
        np.copyto(out, self._frames[self._next % self.distinct])
        self._next += 1
        return True

    def _do_close(self) -> None:
        self._pacer = None
