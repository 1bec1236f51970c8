"""Recordings under faults: a full disk (a real, small tmpfs, and an injected write error) and
SIGKILL at random instants. Every file of a recording must hold the same rows, with no torn last
line, and every row flushed before a kill must stay readable in every file."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rtpose.errors import RecordingError
from rtpose.recording import RecorderSink, RecordingPaths, read_dlc_table
from drivers_helpers import tmpfs
from test_recorder import _batch, _info

# -- helpers -------------------------------------------------------------------------------------


def rows_in_every_file(out: Path) -> dict[str, int]:
    """Rows per file of a recording; raises if any file is unreadable. A missing .h5 counts 0 rows."""
    paths = RecordingPaths.for_output(out)
    return {
        "h5": len(read_dlc_table(paths.h5)) if paths.h5.exists() else 0,
        "csv": len(read_dlc_table(paths.csv)),
        "predicted": len(read_dlc_table(paths.predicted_csv)),
        "timing": len(pd.read_csv(paths.timing_csv)),
    }


def assert_consistent(out: Path, frames: int) -> None:
    """Every file holds exactly ``frames`` rows, the same ones, and each CSV ends with a whole line."""
    paths = RecordingPaths.for_output(out)
    assert rows_in_every_file(out) == {"h5": frames, "csv": frames, "predicted": frames, "timing": frames}
    for p in (paths.csv, paths.predicted_csv, paths.timing_csv, paths.events_csv):
        assert p.read_bytes().endswith(b"\n"), f"{p.name} ends with a torn line"
    if frames:
        h5, csv = read_dlc_table(paths.h5), read_dlc_table(paths.csv)
        np.testing.assert_allclose(csv.to_numpy(), h5.to_numpy())
        assert list(pd.read_csv(paths.timing_csv)["frame"]) == list(h5.index)


def record_until_error(rec: RecorderSink, max_batches: int = 100_000) -> RecordingError:
    rec.open([_info()])
    frame = 0
    try:
        for _ in range(max_batches):
            rec.write(_batch(frame, 8))
            frame += 8
            if frame % rec.chunk_frames == 0:
                rec.wait_until_written(frame)  # the writer's progress, not a timeout
    except RecordingError as exc:
        with pytest.raises(RecordingError):
            rec.close()
        return exc
    rec.close()
    pytest.fail("the disk never filled up")


# -- a full disk -----------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A real 1 MiB tmpfs."""
    with tmpfs(tmp_path / "small", "size=1m", "to fill up") as mount:
        yield mount


def test_full_disk_stops_with_every_file_at_the_same_rows(small_disk):
    out = small_disk / "s.h5"
    rec = RecorderSink(out, chunk_frames=64)
    err = record_until_error(rec)
    assert f"every file of s.h5 holds the same first {rec.frames_written} frames" in str(err)
    assert str(err).startswith(f"the disk holding {small_disk} is full (")
    assert rec.frames_written > 0
    assert_consistent(out, rec.frames_written)


def test_full_disk_found_by_the_write_itself_is_rolled_back(small_disk, monkeypatch):
    # Without the free-space check the filesystem's ENOSPC comes from a write in the middle of a chunk.
    monkeypatch.setattr(RecorderSink, "_check_space", lambda *a: None)
    out = small_disk / "s.h5"
    rec = RecorderSink(out, chunk_frames=64)
    err = record_until_error(rec)
    assert f"holds the same first {rec.frames_written} frames" in str(err)
    assert_consistent(out, rec.frames_written)


@pytest.mark.parametrize("failing_write", [1, 2, 3])
def test_a_write_error_mid_chunk_is_rolled_back_in_every_file(tmp_path, monkeypatch, failing_write):
    import rtpose.recording.recorder as recorder_mod

    out = tmp_path / "s.h5"
    rec = RecorderSink(out, chunk_frames=8)
    rec.open([_info()])
    rec.write(_batch(0, 8))
    assert rec.wait_until_written(8)
    real_write, calls = os.write, []

    def write(fd, data):  # the n-th file of the next chunk gets half its bytes in, then the disk is full
        calls.append(fd)
        if len(calls) == failing_write:
            real_write(fd, bytes(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(recorder_mod.os, "write", write)
    rec.write(_batch(8, 8))
    with pytest.raises(RecordingError, match=r"is full \(no space left on device\); recording stopped: every file "
                                             r"of s.h5 holds the same first 8 frames"):
        rec.close()
    assert_consistent(out, 8)


def test_a_recording_stopped_before_its_first_rows_reads_as_empty_tables(tmp_path):
    """What a kill between ``open`` and the first chunk leaves (the header rows alone) reads as tables with
    DeepLabCut's columns and no rows; the random-instant kills below reach this state only by chance."""
    out = tmp_path / "s.h5"
    rec = RecorderSink(out, chunk_frames=16, flush_interval_s=0.0)
    rec.open([_info()])
    try:
        paths = RecordingPaths.for_output(out)
        for csv in (paths.csv, paths.predicted_csv):
            table = read_dlc_table(csv)
            assert len(table) == 0 and table.columns.nlevels == 3 and len(table.columns) > 0
        assert rows_in_every_file(out) == {"h5": 0, "csv": 0, "predicted": 0, "timing": 0}
    finally:
        rec.close()


# -- SIGKILL at random instants ------------------------------------------------------------------

CHILD = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[2])
    from rtpose.recording import RecorderSink
    from test_recorder import _batch, _info
    rec = RecorderSink(sys.argv[1], chunk_frames=16, flush_interval_s=0.0)
    rec.open([_info()])
    print(0, flush=True)
    frame = 0
    while True:
        rec.write(_batch(frame, 8))
        frame += 8
        if frame % 16 == 0:
            rec.wait_until_written(frame)
            print(frame, flush=True)  # these rows are on disk in every file
""")

KILLS = 12


def test_sigkill_at_random_instants_never_loses_flushed_rows(tmp_path):
    rng = np.random.default_rng(20261130)
    tests_dir = str(Path(__file__).parent)
    for k in range(KILLS):
        out = tmp_path / f"k{k}" / "s.h5"
        out.parent.mkdir()
        after_lines = int(rng.integers(0, 6))  # 0: during the very first chunk write
        delay_s = float(rng.uniform(0, 0.03))
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(out), tests_dir], stdout=subprocess.PIPE, text=True)
        try:
            for _ in range(after_lines + 1):
                assert child.stdout.readline(), "the recording child ended early"
            time.sleep(delay_s)  # chooses the instant of the kill; nothing waits on it
            child.send_signal(signal.SIGKILL)
            rest = child.stdout.read()
        finally:
            child.kill()
            child.wait()
            child.stdout.close()
        flushed = max([after_lines * 16] + [int(x) for x in rest.split()])
        rows = rows_in_every_file(out)  # every file readable
        assert min(rows.values()) >= flushed, (k, rows, flushed)
        if flushed:
            h5, csv = read_dlc_table(out), read_dlc_table(out.with_suffix(".csv"))
            np.testing.assert_allclose(csv.to_numpy()[:flushed], h5.to_numpy()[:flushed])
            assert list(h5.index[:flushed]) == list(range(flushed))
