"""Groups ready frames from one or more rings into one model batch.

Live (``newest`` rings): take the newest unseen frame of every stream; if some
streams have nothing new yet, wait up to ``max_wait_ms`` for them, then go
with what is there (a batch never holds two frames of one stream).

Offline (``lossless`` rings): take up to ``batch_size`` frames in order,
waiting up to ``max_wait_ms`` for a batch to fill before running a partial one.

Each frame is copied (cropped, resized and colour-converted by the
:class:`~rtpose.preprocess.FrameLoader`) straight from its ring slot into the
model's preallocated input row, and the slot is released at once, so the
capture thread gets it back before inference starts.
"""

from __future__ import annotations

import threading
from typing import Sequence

from .clock import Clock, monotonic_ns
from .errors import ConfigError
from .results import PoseBatch
from .ring import FrameRing


class Batcher:
    def __init__(self, rings: Sequence[FrameRing], *, batch_size: int, max_wait_ms: float = 0.0,
                 clock: Clock = monotonic_ns, poll_s: float = 0.05):
        if not rings:
            raise ConfigError("the batcher needs at least one frame ring")
        policies = {r.policy for r in rings}
        if len(policies) != 1:
            raise ConfigError(f"all rings must share one policy, got {sorted(policies)}")
        self.policy = policies.pop()
        if self.policy == "newest" and batch_size < len(rings):
            raise ConfigError(f"live batching of {len(rings)} streams needs --batch >= {len(rings)}")
        self.rings = list(rings)
        self.batch_size = batch_size
        self.max_wait_ns = int(max_wait_ms * 1e6)
        self.clock = clock
        self.poll_s = poll_s  # how often a waiting reader re-checks "all sources ended"
        self._next_ring = 0
        self.wakeup = self.rings[0].wakeup
        if any(r.wakeup is not self.wakeup for r in self.rings):
            raise ConfigError("rings read by one batcher must share one wakeup event (FrameRing(..., wakeup=event))")

    @property
    def finished(self) -> bool:
        """True when every source has ended and every frame has been taken."""
        return all(r.writer_closed and not r.has_unread() for r in self.rings)

    def _wait(self, timeout_s: float) -> None:
        self.wakeup.clear()
        if any(r.has_unread() for r in self.rings) or self.finished:
            return
        self.wakeup.wait(timeout_s)

    def next_batch(self, loader, batch: PoseBatch, stop: threading.Event | None = None) -> int:
        """Fill the model's input rows (through ``loader``, a :class:`~rtpose.preprocess.FrameLoader`)
        and the batch's frame metadata; return the row count.

        Returns 0 when all sources ended (or ``stop`` was set) and nothing is left.
        """
        batch.clear()
        deadline = None
        while True:
            if self.policy == "newest":
                self._take_newest(loader, batch)
            else:
                self._take_lossless(loader, batch)
            full = batch.n >= (len(self.rings) if self.policy == "newest" else self.batch_size)
            if full or self.finished or (stop is not None and stop.is_set()):
                return batch.n
            now = self.clock()
            if batch.n > 0:
                if deadline is None:
                    deadline = now + self.max_wait_ns
                if now >= deadline:
                    return batch.n
                self._wait(min(self.poll_s, (deadline - now) * 1e-9))
            else:
                self._wait(self.poll_s)

    def _add_row(self, loader, batch: PoseBatch, stream: int, ring: FrameRing, slot: int) -> None:
        row = batch.n
        batch.t_dequeued_ns[row] = self.clock()
        loader.load(row, stream, ring.frames[slot], batch.crop_box[row])
        batch.stream[row] = stream
        batch.frame_index[row] = ring.frame_index[slot]
        batch.t_capture_ns[row] = ring.t_capture_ns[slot]
        batch.device_frame_id[row] = ring.device_frame_id[slot]
        batch.device_timestamp_ns[row] = ring.device_timestamp_ns[slot]
        batch.n = row + 1

    def _take_newest(self, loader, batch: PoseBatch) -> None:
        taken = {int(s) for s in batch.stream[: batch.n]}
        for stream, ring in enumerate(self.rings):
            if stream in taken:
                continue
            slot = ring.try_acquire_newest()
            if slot < 0:
                continue
            try:
                self._add_row(loader, batch, stream, ring, slot)
            finally:
                ring.release()

    def _take_lossless(self, loader, batch: PoseBatch) -> None:
        for _ in range(len(self.rings)):
            if batch.n >= self.batch_size:
                return
            stream = self._next_ring
            self._next_ring = (self._next_ring + 1) % len(self.rings)
            ring = self.rings[stream]
            first, count = ring.try_acquire(self.batch_size - batch.n)
            try:
                for i in range(count):
                    self._add_row(loader, batch, stream, ring, ring.slot_of(first + i))
            finally:
                if count:
                    ring.release(count)
