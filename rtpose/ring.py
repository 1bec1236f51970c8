"""Single-producer single-consumer frame ring with preallocated slots.

One capture thread writes, one inference thread reads. Frames live in one
preallocated ``(slots, H, W, 3)`` uint8 array; per-slot metadata (sequence
number, frame index, ``t_capture_ns``) live in preallocated arrays. Nothing is
allocated per frame.

Two policies:

``newest`` (live cameras)
    The writer never blocks. It writes into a slot that is neither the newest
    published one nor the one the reader holds, then publishes it. The reader
    always gets the most recent complete frame; frames it never saw are counted
    as dropped. Needs at least 3 slots.

``lossless`` (offline analysis)
    A classic SPSC queue: the writer waits for space, the reader gets every
    frame in order. Nothing is dropped.

The data path is lock-free: the writer and reader coordinate through integer
fields that only one side writes (``_latest``/``_published`` by the writer,
``_reading``/``_consumed`` by the reader), relying on the atomicity of
attribute stores in CPython. ``threading.Event`` objects are used only to
*wake* a waiting side, never to guard data.

Invariant (tested under concurrent stress): after :meth:`FrameRing.close_reader`
accounting, ``captured == processed + dropped`` exactly, and no slot is read
while it is being written (the slot's sequence number is re-checked after use).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from .errors import ConfigError

POLICIES = ("newest", "lossless")


class RingClosed(Exception):
    """Raised to a waiting reader/writer when the ring is closed and has nothing left."""


@dataclass
class RingStats:
    captured: int
    processed: int
    dropped: int


class FrameRing:
    """Preallocated SPSC frame ring. See the module docstring for the policies."""

    def __init__(self, frame_shape: tuple[int, ...], *, slots: int = 4, policy: str = "newest", dtype=np.uint8,
                 wakeup: threading.Event | None = None):
        """``wakeup`` is set whenever a frame is published; rings read by one
        batcher share one event so it can wait for any of them."""
        if policy not in POLICIES:
            raise ConfigError(f"ring policy {policy!r} is not one of {POLICIES}")
        min_slots = 3 if policy == "newest" else 2
        if slots < min_slots:
            raise ConfigError(f"a {policy!r} ring needs at least {min_slots} slots, got {slots}")
        self.policy = policy
        self.slots = slots
        self.frames = np.zeros((slots, *frame_shape), dtype)
        self.seq = np.full(slots, -1, np.int64)  # sequence number of the frame in each slot
        self.frame_index = np.zeros(slots, np.int64)
        self.t_capture_ns = np.zeros(slots, np.int64)
        self.device_frame_id = np.full(slots, -1, np.int64)  # the camera's own frame number (-1: none)
        self.device_timestamp_ns = np.full(slots, -1, np.int64)  # the camera's hardware timestamp (-1: none)
        # writer-owned
        self._published = 0  # number of frames published (== next sequence number)
        self._latest = -1  # slot of the newest published frame (newest policy)
        self._next_slot = 0
        self._writer_closed = False
        # reader-owned
        self._reading = -1  # slot the reader holds (newest policy)
        self._consumed = 0  # frames handed to the reader
        self._last_seq = -1  # sequence of the last frame the reader got
        self._dropped = 0
        self._read_pos = 0  # lossless: sequence number of the next frame to read
        self._reader_closed = False
        # wake-ups only
        self.wakeup = wakeup if wakeup is not None else threading.Event()
        self._space_ready = threading.Event()

    # ------------------------------------------------------------------ writer
    def write_slot(self) -> int:
        """Return the slot the writer should fill next (lossless: waits for space).

        Raises :class:`RingClosed` if the reader went away (lossless).
        """
        if self.policy == "newest":
            slot = self._next_slot
            for _ in range(self.slots):
                if slot != self._reading and slot != self._latest:
                    break
                slot = (slot + 1) % self.slots
            self._next_slot = slot
            return slot
        while True:
            if self._reader_closed:
                raise RingClosed("the reader closed the ring")
            if self._published - self._read_pos < self.slots:
                break
            self._space_ready.clear()
            if self._published - self._read_pos < self.slots:
                break
            self._space_ready.wait(0.5)  # woken by release(); the timeout only re-checks close
        return self._published % self.slots

    def publish(self, slot: int, frame_index: int, t_capture_ns: int, device_frame_id: int = -1,
                device_timestamp_ns: int = -1) -> int:
        """Make the frame written into ``slot`` visible to the reader. Returns its sequence number.
        ``device_frame_id``/``device_timestamp_ns``: the camera's own frame number and timestamp (-1: none)."""
        seq = self._published
        self.frame_index[slot] = frame_index
        self.t_capture_ns[slot] = t_capture_ns
        self.device_frame_id[slot] = device_frame_id
        self.device_timestamp_ns[slot] = device_timestamp_ns
        self.seq[slot] = seq
        if self.policy == "newest":
            self._latest = slot
            self._next_slot = (slot + 1) % self.slots
        self._published = seq + 1
        self.wakeup.set()
        return seq

    def close_writer(self) -> None:
        """No more frames will come; wakes a waiting reader."""
        self._writer_closed = True
        self.wakeup.set()

    # ------------------------------------------------------------------ reader
    @property
    def captured(self) -> int:
        return self._published

    @property
    def processed(self) -> int:
        return self._consumed

    @property
    def dropped(self) -> int:
        return self._dropped

    @property
    def writer_closed(self) -> bool:
        return self._writer_closed

    def stats(self) -> RingStats:
        return RingStats(self._published, self._consumed, self._dropped)

    def wait_for_data(self, timeout_s: float | None) -> bool:
        """Block until a frame the reader has not seen is published (or timeout/close)."""
        if self.has_unread():
            return True
        self.wakeup.clear()
        if self.has_unread():
            return True
        if self._writer_closed:
            return False
        self.wakeup.wait(timeout_s)
        return self.has_unread()

    def has_unread(self) -> bool:
        if self.policy == "newest":
            return self._published - 1 > self._last_seq
        return self._published > self._read_pos

    def try_acquire_newest(self) -> int:
        """Newest policy: hold the most recent unread frame's slot, or return -1.

        Frames published since the previous acquire and skipped are counted as
        dropped. Call :meth:`release` when done with the slot.
        """
        assert self.policy == "newest", "try_acquire_newest is for the newest policy"
        while True:
            slot = self._latest
            if slot < 0:
                return -1
            self._reading = slot  # from now on the writer will not choose this slot
            if self._latest != slot:
                continue  # the writer published another frame meanwhile; slot may be in use
            seq = int(self.seq[slot])
            if seq <= self._last_seq:
                self._reading = -1
                return -1
            self._dropped += seq - self._last_seq - 1
            self._last_seq = seq
            self._consumed += 1
            return slot

    def try_acquire(self, max_frames: int) -> tuple[int, int]:
        """Lossless policy: hold up to ``max_frames`` oldest unread frames.

        Returns ``(first_seq, count)``; the slots are ``(first_seq + i) % slots``.
        Call :meth:`release` with ``count`` when done.
        """
        assert self.policy == "lossless", "try_acquire is for the lossless policy"
        count = min(max_frames, self._published - self._read_pos)
        return self._read_pos, max(count, 0)

    def slot_of(self, seq: int) -> int:
        return seq % self.slots

    def release(self, count: int = 1) -> None:
        """Give held slots back to the writer."""
        if self.policy == "newest":
            self._reading = -1
            return
        self._read_pos += count
        self._consumed += count
        self._space_ready.set()

    @contextmanager
    def newest(self, timeout_s: float | None = None) -> Iterator[int]:
        """``with ring.newest(0.1) as slot:`` — slot is -1 if nothing new arrived."""
        if not self.wait_for_data(timeout_s):
            yield -1
            return
        slot = self.try_acquire_newest()
        try:
            yield slot
        finally:
            if slot >= 0:
                self.release()

    def close_reader(self) -> None:
        """The reader stops: frames published but never consumed count as dropped."""
        if self.policy == "newest":
            unseen = self._published - 1 - self._last_seq
            self._last_seq = self._published - 1
        else:
            unseen = self._published - self._read_pos
            self._read_pos = self._published
        self._dropped += max(unseen, 0)
        self._reader_closed = True  # a lossless writer waiting for space must not hang
        self._space_ready.set()
