"""The video reader of an offline run: a file source whose reading thread yields the CPU to the model.

Offline, frames wait in a ring until the model takes them, so decoding may run
whenever the model leaves a core idle; what it must not do is take a core in
the middle of one of ONNX Runtime's parallel sections, where every inference
thread then waits for the one that was preempted. :class:`BackgroundReader`
wraps a source and lowers the CPU priority (``nice``) of the thread that reads
it, on its first read: the scheduler then runs the inference threads first and
the decoder in their gaps, and, when the ring runs low and the model waits, the
decoder has the cores to itself. Measured on the bundled model, 2 cores shared
with other jobs (docs/offline.md): nice 10 gave 6 % more sustained FPS than
nice 0 (median of 5 alternating pairs, 4 of them faster). Linux gives each
thread its own nice value; elsewhere, or without permission, nothing changes.
"""

from __future__ import annotations

import os
import threading

import numpy as np

from ..drivers.sources.base import FrameSource, SourceInfo

#: ``nice`` increment of the reading thread (0: as the rest of the process). Not 19: with other programs
#: busy on the machine the decoder must still get its share when the model waits for frames.
READER_NICE = 10


def lower_thread_priority(increment: int) -> bool:
    """Raise the calling thread's nice value by ``increment`` (Linux: per thread); False if impossible."""
    if increment <= 0 or not hasattr(os, "setpriority") or not hasattr(threading, "get_native_id"):
        return False
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + increment))
    except OSError:
        return False
    return True


class BackgroundReader(FrameSource):
    """``source`` read at a lower CPU priority by whichever thread reads it (the pipeline's capture thread).

    ``own_errors``: an error while reading ends this source's stream instead of the run, and is kept in
    :attr:`failure`. Several videos analysed in one run (``--videos-at-once``) use it, so that a damaged
    video ends only its own recording (marked partial and failed, with every frame read before it), not
    the others'.
    """

    def __init__(self, source: FrameSource, nice: int = READER_NICE, *, own_errors: bool = False):
        super().__init__(source.name)
        self.source = source
        self.nice = nice
        self.own_errors = own_errors
        self.failure: Exception | None = None
        self._lowered = False

    def _do_open(self) -> SourceInfo:
        return self.source.open()

    def _do_read_into(self, out: np.ndarray) -> bool:
        if not self._lowered:
            self._lowered = True
            if threading.current_thread() is not threading.main_thread():  # never the process's main thread:
                lower_thread_priority(self.nice)  # threads it starts later (inference pools) would inherit it
        if not self.own_errors:
            return self.source.read_into(out)
        try:
            return self.source.read_into(out)
        except Exception as exc:  # this video's error, reported for its job; the run goes on
            self.failure = exc
            return False

    def interrupt(self) -> None:
        self.source.interrupt()

    def _do_close(self) -> None:
        self.source.close()
