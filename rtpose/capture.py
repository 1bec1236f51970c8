"""The capture thread: reads frames from a source into a :class:`FrameRing`.

Each frame is read straight into a ring slot (no copy, no allocation) and
stamped with ``t_capture_ns`` from the injected clock right after the source
returns it, and with its frame index (and, from cameras that have them, the
camera's own frame number and timestamp: ``source.device_frame_id`` and
``source.device_timestamp_ns``). Errors from the source are kept and
re-raised to whoever calls :meth:`CaptureThread.check` (the pipeline), so a
camera failure stops the run with its message instead of vanishing in a thread.
"""

from __future__ import annotations

import threading
from typing import Callable

import numpy as np

from .clock import Clock, monotonic_ns
from .ring import FrameRing, RingClosed


class CaptureThread:
    """Runs ``source.read_into(ring slot)`` in a loop on its own thread."""

    def __init__(self, source, ring: FrameRing, *, max_frames: int | None = None, clock: Clock = monotonic_ns,
                 name: str = "rtpose-capture", tap: Callable[[np.ndarray, int, int], object] | None = None,
                 first_index: int = 0):
        """``tap(frame, frame_index, t_capture_ns)`` sees every frame before it is published (e.g. the
        raw-video recorder); it must copy what it keeps and never block. ``first_index``: the frame
        index of the source's first frame (a video read from frame N on: ``rtpose analyze`` resuming or
        given a frame range); ``max_frames`` counts frames read, not indices."""
        self.source = source
        self.tap = tap
        self.ring = ring
        self.max_frames = max_frames
        self.clock = clock
        self.error: BaseException | None = None
        self.frames_read = 0
        self.first_index = first_index
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> "CaptureThread":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        interrupt = getattr(self.source, "interrupt", None)
        if interrupt is not None:  # a camera waiting for a hardware trigger returns instead of blocking join()
            interrupt()

    def join(self, timeout_s: float | None = None) -> None:
        """Wait for the thread to end; a thread never started (the run failed first) has nothing to wait for."""
        if self._thread.ident is not None:
            self._thread.join(timeout_s)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def check(self) -> None:
        """Re-raise an error the capture thread met (in the caller's thread)."""
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        ring, source = self.ring, self.source
        index = 0
        try:
            while not self._stop.is_set():
                if self.max_frames is not None and index >= self.max_frames:
                    break
                slot = ring.write_slot()
                if not source.read_into(ring.frames[slot]):
                    break
                t_capture_ns = self.clock()
                if self.tap is not None:
                    self.tap(ring.frames[slot], self.first_index + index, t_capture_ns)
                ring.publish(slot, self.first_index + index, t_capture_ns, getattr(source, "device_frame_id", -1),
                             getattr(source, "device_timestamp_ns", -1))
                index += 1
                self.frames_read = index
        except RingClosed:
            pass
        except Exception as exc:  # kept (with its traceback) and re-raised by check()
            self.error = exc
        finally:
            ring.close_writer()
