"""The sink contract: open once, write each batch, close once.

``write`` runs on the inference thread, so it must never block on I/O: a sink
that talks to a socket, a serial port or a disk hands the work to its own
thread or uses non-blocking calls, and counts what it had to drop.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence

from ..results import PoseBatch, StreamInfo


class Sink(ABC):
    """Base class of pipeline outputs (file writer, ZeroMQ, triggers, summary...)."""

    name: str = "sink"

    def open(self, streams: Sequence[StreamInfo]) -> None:
        """Called once before the first batch with the streams of this run."""

    @abstractmethod
    def write(self, batch: PoseBatch) -> None:
        """Handle rows ``[:batch.n]``. Copy what you keep; never block."""

    def frame_tap(self, stream: int):
        """A sink that needs the camera frames (the live preview) returns ``tap(frame, frame_index,
        t_capture_ns)``: the capture thread of ``stream`` calls it for every frame it reads, after
        :meth:`open`. It must copy what it keeps and never block. Default: None (no frames)."""
        return None

    def close(self) -> None:
        """Flush and release resources. Called exactly once, also after errors."""

    def summary(self) -> dict[str, object]:
        """Counters for the end-of-run summary (e.g. messages sent/dropped)."""
        return {}

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
