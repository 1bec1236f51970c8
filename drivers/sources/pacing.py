"""Release frames at a fixed rate, like a camera: a small helper shared by the
video and synthetic sources.

Frame ``i`` is due ``i / fps`` seconds after :meth:`Pacer.start` (or, without
an explicit start, after the first :meth:`Pacer.wait_for`: a replayed video
starts when capture starts reading it, not when it was opened, so the set-up
time between open and the first read does not arrive as a burst of "late" frames). Waiting is a
single ``sleep`` until the due time, never a busy loop (a busy loop holds the
GIL and starves every other thread). A consumer that falls behind gets the late
frames at once, and the schedule stays anchored to the start, so it catches up
instead of drifting. ``clock`` (nanoseconds) and ``sleep`` (seconds) are
injectable so tests run on a fake clock and never really sleep.
"""

from __future__ import annotations

import time
from typing import Callable

from rtpose.clock import Clock, monotonic_ns

Sleep = Callable[[float], None]


class Pacer:
    """Wall-clock schedule for frames ``0, 1, 2, ...`` at ``fps``."""

    def __init__(self, fps: float, *, clock: Clock = monotonic_ns, sleep: Sleep = time.sleep):
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.period_ns = 1e9 / fps
        self._clock = clock
        self._sleep = sleep
        self._t0_ns: int | None = None

    def start(self) -> None:
        """Frame 0 is due now."""
        self._t0_ns = self._clock()

    def due_ns(self, frame_index: int) -> int:
        if self._t0_ns is None:
            raise RuntimeError("the pacer has not started")
        return self._t0_ns + round(frame_index * self.period_ns)

    def wait_for(self, frame_index: int) -> None:
        """Sleep until frame ``frame_index`` is due (returns at once if it already is)."""
        if self._t0_ns is None:
            self._t0_ns = self._clock() - round(frame_index * self.period_ns)  # this frame is due now
        wait_ns = self.due_ns(frame_index) - self._clock()
        if wait_ns > 0:
            self._sleep(wait_ns / 1e9)
