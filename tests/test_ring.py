"""FrameRing: policies, frame accounting and no torn reads under concurrent stress (no sleeps)."""

import os
import threading

import numpy as np
import pytest

from rtpose.errors import ConfigError
from rtpose.ring import FrameRing, RingClosed

SHAPE = (24, 32, 3)


def _fill(frame: np.ndarray, seq: int) -> None:
    """Write a frame whose every byte is derived from seq, in two halves (a reader in between would see a mix)."""
    half = frame.shape[0] // 2
    frame[:half] = seq % 251
    os.sched_yield()  # invite the reader to run mid-write; not a synchronisation
    frame[half:] = seq % 251


def _consistent(frame: np.ndarray, seq: int) -> bool:
    return bool((frame == seq % 251).all())


def _start_writer(ring: FrameRing, n_frames: int) -> threading.Thread:
    """A capture-like thread writing frames 0..n_frames-1 (each filled from its index), then closing."""

    def writer():
        for i in range(n_frames):
            s = ring.write_slot()
            _fill(ring.frames[s], i)
            ring.publish(s, i, i)
        ring.close_writer()

    t = threading.Thread(target=writer)
    t.start()
    return t


def test_newest_returns_latest_and_counts_skipped_as_dropped():
    ring = FrameRing(SHAPE, slots=3, policy="newest")
    for i in range(5):
        slot = ring.write_slot()
        _fill(ring.frames[slot], i)
        ring.publish(slot, i, 1000 + i)
    slot = ring.try_acquire_newest()
    assert ring.frame_index[slot] == 4 and ring.t_capture_ns[slot] == 1004
    assert _consistent(ring.frames[slot], 4)
    ring.release()
    assert ring.try_acquire_newest() == -1  # nothing new
    assert (ring.captured, ring.processed, ring.dropped) == (5, 1, 4)


def test_newest_writer_never_chooses_the_held_or_latest_slot():
    ring = FrameRing(SHAPE, slots=3, policy="newest")
    slot = ring.write_slot()
    ring.publish(slot, 0, 0)
    held = ring.try_acquire_newest()
    for i in range(1, 20):
        s = ring.write_slot()
        assert s != held and s != ring._latest
        ring.publish(s, i, i)
    ring.release()
    assert ring.try_acquire_newest() >= 0 and ring.seq[ring._reading] == 19


def test_close_reader_counts_unseen_frames():
    ring = FrameRing(SHAPE, slots=4, policy="newest")
    for i in range(3):
        s = ring.write_slot()
        ring.publish(s, i, i)
    ring.close_reader()
    assert (ring.captured, ring.processed, ring.dropped) == (3, 0, 3)


@pytest.mark.parametrize("slots", [3, 5])
def test_newest_concurrent_stress_no_torn_reads_and_exact_accounting(slots):
    n_frames = 20000
    ring = FrameRing(SHAPE, slots=slots, policy="newest")
    torn = []
    seen = []
    t = _start_writer(ring, n_frames)
    while True:
        if not ring.wait_for_data(1.0):
            if ring.writer_closed and not ring.has_unread():
                break
            continue
        slot = ring.try_acquire_newest()
        if slot < 0:
            continue
        seq = int(ring.seq[slot])
        copy = ring.frames[slot].copy()
        os.sched_yield()
        if not (_consistent(copy, seq) and _consistent(ring.frames[slot], seq)):
            torn.append(seq)
        seen.append(seq)
        ring.release()
    t.join()
    ring.close_reader()
    assert not t.is_alive() and ring.writer_closed  # the writer wrote everything and finished
    assert torn == []
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    assert ring.captured == n_frames
    assert ring.captured == ring.processed + ring.dropped
    assert ring.processed == len(seen)


def test_lossless_concurrent_every_frame_in_order():
    n_frames = 5000
    ring = FrameRing(SHAPE, slots=3, policy="lossless")
    t = _start_writer(ring, n_frames)
    got = []
    while True:
        first, count = ring.try_acquire(2)
        if count == 0:
            if ring.writer_closed and not ring.has_unread():
                break
            ring.wait_for_data(1.0)
            continue
        for i in range(count):
            slot = ring.slot_of(first + i)
            assert _consistent(ring.frames[slot], first + i)
            got.append(int(ring.frame_index[slot]))
        ring.release(count)
    t.join()
    ring.close_reader()
    assert got == list(range(n_frames))
    assert (ring.captured, ring.processed, ring.dropped) == (n_frames, n_frames, 0)


def test_lossless_writer_blocked_on_full_ring_is_released_by_close_reader():
    ring = FrameRing(SHAPE, slots=2, policy="lossless")
    for i in range(2):
        ring.publish(ring.write_slot(), i, i)
    blocked = threading.Event()
    outcome = []

    def writer():
        blocked.set()
        try:
            ring.write_slot()
            outcome.append("got slot")
        except RingClosed:
            outcome.append("closed")

    t = threading.Thread(target=writer)
    t.start()
    blocked.wait()
    ring.close_reader()
    t.join(10)
    assert outcome == ["closed"]
    assert ring.dropped == 2


def test_bad_configuration_is_a_config_error():
    with pytest.raises(ConfigError):
        FrameRing(SHAPE, slots=2, policy="newest")
    with pytest.raises(ConfigError):
        FrameRing(SHAPE, policy="fastest")
