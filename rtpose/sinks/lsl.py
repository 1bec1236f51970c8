"""Poses as a Lab Streaming Layer (LSL) stream: ``rtpose run --lsl NAME``.

One LSL outlet per camera/video stream, content type ``MoCap``, float32 channels, three per
bodypart in the model's order: ``<part>_x``, ``<part>_y``, ``<part>_likelihood`` (the measured
pose, as DeepLabCut reports it). The stream's ``desc/channels`` lists each channel's ``label``,
``unit`` (``pixels``, or ``normalized`` for the likelihood) and ``type`` (``PositionX``,
``PositionY``, ``Likelihood``); ``desc/acquisition`` names rtpose and the camera stream. The outlet
is called ``NAME`` (``NAME_<i>`` for stream i when there are several cameras), its source id is
``rtpose:NAME:<i>`` so that LabRecorder picks it up again after a restart, and its nominal rate is
the camera's frame rate.

Timestamps: each sample carries its frame's **capture** time (``t_capture_ns``), not the time it
was sent, on LSL's clock (``pylsl.local_clock()``). rtpose stamps frames with CLOCK_MONOTONIC
(:mod:`rtpose.clock`); :class:`ClockMap` measures the offset between the two clocks once when the
outlet opens (on Linux liblsl's clock *is* CLOCK_MONOTONIC and the offset is ~0) and maps every
capture time with it. LSL inlets with clock synchronisation then put the samples on their own
timeline like any other LSL stream (EEG, markers, eye tracking).

Never blocking: ``write`` (the inference thread) copies the poses into a preallocated ring and
returns; a thread pushes them to liblsl. When the ring is full (the thread fell behind by
``queue_frames`` frames) the newest frames are not queued and counted as ``dropped``.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .. import __version__
from ..clock import Clock, monotonic_ns
from ..errors import ConfigError, MissingDependencyError
from ..results import PoseBatch, StreamInfo
from .base import Sink

log = logging.getLogger("rtpose.lsl")

CONTENT_TYPE = "MoCap"
#: Per bodypart: (label suffix, unit, type).
CHANNEL_FIELDS = (("x", "pixels", "PositionX"), ("y", "pixels", "PositionY"),
                  ("likelihood", "normalized", "Likelihood"))
INSTALL_HINT = "pip install 'rtpose[lsl]' (the pylsl package; docs/hardware.md section 6)"


def import_pylsl():
    """pylsl, or MissingDependencyError saying how to get it (and liblsl)."""
    try:
        import pylsl
    except ImportError as exc:
        raise MissingDependencyError(f"--lsl needs pylsl: {INSTALL_HINT}") from exc
    except RuntimeError as exc:  # pylsl imports but finds no liblsl shared library
        raise MissingDependencyError(
            f"pylsl is installed but cannot load liblsl ({exc}). pylsl's wheels bundle liblsl only for Linux "
            "x86_64 with glibc >= 2.35, macOS and Windows x64; elsewhere install liblsl (`conda install -c "
            "conda-forge liblsl`, or a release from github.com/sccn/liblsl) and set PYLSL_LIB to its path "
            "(docs/hardware.md section 6)"
        ) from exc
    return pylsl


def channel_layout(bodyparts: Sequence[str]) -> list[tuple[str, str, str]]:
    """(label, unit, type) of every channel, in sample order."""
    return [(f"{part}_{suffix}", unit, kind) for part in bodyparts for suffix, unit, kind in CHANNEL_FIELDS]


@dataclass(frozen=True)
class ClockMap:
    """Maps rtpose's capture clock (ns) to LSL's ``local_clock()`` (s): ``lsl_s = (t_ns - anchor_ns) * 1e-9 + anchor_s``."""

    anchor_ns: int
    anchor_s: float

    def to_lsl(self, t_ns: int) -> float:
        return (int(t_ns) - self.anchor_ns) * 1e-9 + self.anchor_s

    @classmethod
    def measure(cls, clock: Clock, lsl_clock: Callable[[], float], tries: int = 9) -> "ClockMap":
        """Read ``lsl_clock`` between two readings of ``clock`` ``tries`` times; keep the tightest
        bracket (the least disturbed by preemption) and anchor at its middle."""
        best = None
        for _ in range(tries):
            before = clock()
            lsl_s = lsl_clock()
            after = clock()
            if best is None or after - before < best[0]:
                best = (after - before, before + (after - before) // 2, lsl_s)
        return cls(anchor_ns=best[1], anchor_s=float(best[2]))


class LslOutletSink(Sink):
    """Publish poses as LSL ``MoCap`` streams (see module doc).

    Args:
        stream_name: the LSL stream name (``--lsl NAME``).
        queue_frames: frames the ring holds between ``write`` and the pushing thread.
        clock: rtpose's capture clock (CLOCK_MONOTONIC ns), for the clock map.
        lsl_clock: LSL's clock (default ``pylsl.local_clock``).
        pylsl_module: the pylsl module to use (default: imported, with an install hint if missing).
    """

    name = "lsl"

    def __init__(self, stream_name: str, *, queue_frames: int = 1024, clock: Clock = monotonic_ns,
                 lsl_clock: Callable[[], float] | None = None, pylsl_module=None):
        if not stream_name or not stream_name.strip():
            raise ConfigError("--lsl needs a stream name, e.g. --lsl rtpose")
        if queue_frames < 1:
            raise ConfigError(f"queue_frames={queue_frames}; it must be at least 1")
        self.stream_name = stream_name.strip()
        self._lsl = pylsl_module or import_pylsl()  # fails before the run starts, with the hint
        self._clock = clock
        self._lsl_clock = lsl_clock or self._lsl.local_clock
        self.queue_frames = int(queue_frames)
        self.clock_map: ClockMap | None = None
        self.outlets: list = []
        self.infos: list = []
        self.sent = 0
        self.dropped = 0
        self._cond = threading.Condition()
        self._head = 0  # next row the thread pushes (total count)
        self._tail = 0  # next row write() fills (total count)
        self._stop = False
        self._thread: threading.Thread | None = None
        self._closed = False
        self._values: np.ndarray | None = None
        self._stamps: np.ndarray | None = None
        self._stream: np.ndarray | None = None
        self._slots: list[np.ndarray] = []

    # ---- Sink ---------------------------------------------------------------------------------
    def open(self, streams: Sequence[StreamInfo]) -> None:
        streams = tuple(streams)
        if not streams:
            raise ConfigError("--lsl: the run has no streams to publish")
        lsl = self._lsl
        several = len(streams) > 1
        for i, s in enumerate(streams):
            name = f"{self.stream_name}_{i}" if several else self.stream_name
            layout = channel_layout(s.bodyparts)
            rate = float(s.fps) if s.fps and s.fps > 0 else lsl.IRREGULAR_RATE
            info = lsl.StreamInfo(name, CONTENT_TYPE, len(layout), rate, lsl.cf_float32,
                                  f"rtpose:{self.stream_name}:{i}")
            channels = info.desc().append_child("channels")
            for label, unit, kind in layout:
                ch = channels.append_child("channel")
                ch.append_child_value("label", label)
                ch.append_child_value("unit", unit)
                ch.append_child_value("type", kind)
            acq = info.desc().append_child("acquisition")
            acq.append_child_value("manufacturer", "rtpose")
            acq.append_child_value("software", f"rtpose {__version__}")
            acq.append_child_value("camera", s.stream_id)
            acq.append_child_value("width", str(s.width))
            acq.append_child_value("height", str(s.height))
            acq.append_child_value("timestamps", "frame capture time on local_clock()")
            self.infos.append(info)
            self.outlets.append(lsl.StreamOutlet(info))
        k_max = max(len(s.bodyparts) for s in streams)
        self._values = np.zeros((self.queue_frames, k_max * 3), np.float32)
        self._stamps = np.zeros(self.queue_frames, np.float64)
        self._stream = np.zeros(self.queue_frames, np.int32)
        self._widths = [len(s.bodyparts) * 3 for s in streams]
        self._slots = [[self._values[j, :w].reshape(-1, 3) for w in self._widths] for j in range(self.queue_frames)]
        self.clock_map = ClockMap.measure(self._clock, self._lsl_clock)
        self._thread = threading.Thread(target=self._run, name="rtpose-lsl", daemon=True)
        self._thread.start()

    def write(self, batch: PoseBatch) -> None:
        if self._thread is None:
            raise ConfigError("LslOutletSink.write() before open() or after close()")
        n = batch.n
        if not n:
            return
        with self._cond:
            tail = self._tail
            take = min(n, self.queue_frames - (tail - self._head))
        self.dropped += n - take  # the newest rows of the batch: the ring is full
        cmap = self.clock_map
        for i in range(take):  # slots past the tail: the pushing thread does not read them yet
            slot = (tail + i) % self.queue_frames
            stream = int(batch.stream[i])
            np.copyto(self._slots[slot][stream], batch.pose[i], casting="same_kind")
            self._stamps[slot] = cmap.to_lsl(batch.t_capture_ns[i])
            self._stream[slot] = stream
        if take:
            with self._cond:
                self._tail = tail + take
                self._cond.notify()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            with self._cond:
                self._stop = True
                self._cond.notify()
            self._thread.join()
            self._thread = None
        self.outlets.clear()  # liblsl destroys an outlet with its last reference

    def summary(self) -> dict[str, object]:
        return {
            "streams": [info.name() for info in self.infos], "sent": self.sent, "dropped": self.dropped,
            "clock_offset_s": None if self.clock_map is None else
            round(self.clock_map.anchor_s - self.clock_map.anchor_ns * 1e-9, 9),
        }

    # ---- the pushing thread ---------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while self._head == self._tail and not self._stop:
                    self._cond.wait()
                head, tail = self._head, self._tail
                if head == tail:
                    return  # stopping, and everything queued was pushed
            while head < tail:
                slot = head % self.queue_frames
                end = head + 1
                stream = self._stream[slot]
                # a run of consecutive rows of one stream that does not wrap: one push_chunk
                while (end < tail and (end % self.queue_frames) != 0 and self._stream[end % self.queue_frames] == stream):
                    end += 1
                first, last = slot, slot + (end - head)
                width = self._widths[stream]
                self.outlets[stream].push_chunk(self._values[first:last, :width],
                                                self._stamps[first:last].tolist())
                self.sent += end - head
                head = end
                with self._cond:
                    self._head = head
