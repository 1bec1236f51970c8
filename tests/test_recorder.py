"""RecorderSink: DeepLabCut layout, chunked writes on its own thread, readable at every chunk, clear errors."""

import numpy as np
import pandas as pd
import pytest

from rtpose.errors import RecordingError
from rtpose.recording import RecorderSink, read_dlc_table
from rtpose.recording.dlc_table import H5_KEY
from rtpose.results import Event, PoseBatch, StreamInfo

BODYPARTS = ("snout", "leftear", "rightear", "tailbase")


class FakeClock:
    def __init__(self):
        self.t = 0

    def __call__(self):
        return self.t


def _batch(start: int, n: int, stream: int = 0) -> PoseBatch:
    b = PoseBatch(8, len(BODYPARTS))
    b.n = n
    for i in range(n):
        f = start + i
        b.stream[i] = stream
        b.frame_index[i] = f
        b.t_capture_ns[i] = 1_000 * f
        b.t_predicted_ns[i] = 1_000 * f + 500
        b.pose[i] = np.arange(12).reshape(4, 3) + f
        b.predicted[i] = -b.pose[i]
    return b


def _info(stream_id="cam"):
    return StreamInfo(stream_id, 64, 48, 30.0, BODYPARTS)


def test_writes_deeplabcut_tables_and_sidecars(tmp_path):
    clock = FakeClock()
    rec = RecorderSink(tmp_path / "run.h5", scorer="rtpose_test", chunk_frames=4, clock=clock)
    rec.open([_info()])
    b = _batch(0, 3)
    b.events.append(Event("drop", 5, 2, name="cam", detail="1 frames"))
    rec.write(b)
    rec.write(_batch(3, 3))  # crosses a chunk boundary
    rec.close()
    assert rec.frames_written == 6
    df = read_dlc_table(tmp_path / "run.h5")
    assert df.columns.names == ["scorer", "bodyparts", "coords"]
    assert list(df.columns.get_level_values("bodyparts").unique()) == list(BODYPARTS)
    assert list(df.index) == list(range(6))
    np.testing.assert_array_equal(df.to_numpy().reshape(6, 4, 3)[5], np.arange(12).reshape(4, 3) + 5)
    # DeepLabCut reads the h5 without naming the key: it must hold exactly one table
    pd.testing.assert_frame_equal(pd.read_hdf(tmp_path / "run.h5"), df)
    # no PyTables index on the rows (rebuilding it per chunk grew memory with the recording); queries still work
    with pd.HDFStore(tmp_path / "run.h5", mode="r") as store:
        assert not store.get_storer(H5_KEY).table.colindexed["index"]
        assert list(store.select(H5_KEY, where="index >= 4").index) == [4, 5]
    csv = read_dlc_table(tmp_path / "run.csv")
    np.testing.assert_allclose(csv.to_numpy(), df.to_numpy())
    pred = read_dlc_table(tmp_path / "run_predicted.csv")
    np.testing.assert_allclose(pred.to_numpy(), -df.to_numpy())
    timing = pd.read_csv(tmp_path / "run_timing.csv")
    assert list(timing["frame"]) == list(range(6)) and timing["t_capture_ns"][4] == 4000
    events = pd.read_csv(tmp_path / "run_events.csv")
    assert events["kind"].tolist() == ["drop"] and events["detail"][0] == "1 frames"


def test_time_based_flush_makes_rows_readable_before_close(tmp_path):
    clock = FakeClock()
    rec = RecorderSink(tmp_path / "live.h5", chunk_frames=1000, flush_interval_s=1.0, clock=clock)
    rec.open([_info()])
    rec.write(_batch(0, 2))
    clock.t = 2_000_000_000  # two seconds later: the chunk is handed to the writer
    rec.write(_batch(2, 1))
    assert rec.wait_until_written(3, timeout_s=30)  # the chunk went to disk although it is not full
    assert len(pd.read_hdf(tmp_path / "live.h5", key=H5_KEY)) == 3
    rec.write(_batch(3, 1))  # within the interval: stays in memory until close
    assert rec.frames_written == 3
    rec.close()
    assert rec.frames_written == 4


def test_image_labels_as_index(tmp_path):
    rec = RecorderSink(tmp_path / "imgs.h5", index_labels=["a/img1.png", "a/img2.png"])
    rec.open([_info()])
    rec.write(_batch(0, 2))
    rec.close()
    assert list(read_dlc_table(tmp_path / "imgs.h5").index) == ["a/img1.png", "a/img2.png"]


def test_one_set_of_files_per_stream(tmp_path):
    rec = RecorderSink(tmp_path / "multi.h5", chunk_frames=2)
    rec.open([_info("a"), _info("b")])
    rec.write(_batch(0, 2, stream=0))
    rec.write(_batch(0, 3, stream=1))
    rec.close()
    assert len(read_dlc_table(tmp_path / "multi_cam0.h5")) == 2
    assert len(read_dlc_table(tmp_path / "multi_cam1.h5")) == 3


def test_unwritable_location_is_a_recording_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rec = RecorderSink(blocker / "sub" / "run.h5")
    with pytest.raises(RecordingError, match="cannot create recording"):
        rec.open([_info()])


def test_writer_failure_is_reported_with_frames_written(tmp_path, monkeypatch):
    rec = RecorderSink(tmp_path / "r.h5", chunk_frames=2)
    rec.open([_info()])
    rec.write(_batch(0, 2))
    assert rec.wait_until_written(2, timeout_s=30)
    import rtpose.recording.recorder as recorder_mod

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(recorder_mod.pd.DataFrame, "to_csv", boom)
    rec.write(_batch(2, 2))
    with pytest.raises(RecordingError, match="disk full.*every file holds the same first 2 frames"):
        rec.close()
    assert len(read_dlc_table(tmp_path / "r.h5")) >= 2  # what was flushed stays readable


def test_multi_animal_recording_has_deeplabcuts_four_levels_and_track_ids(tmp_path):
    """A multi-animal stream: DeepLabCut's (scorer, individuals, bodyparts, coords) columns with the unique
    parts under 'single', NaN for empty slots, the track id of each slot in the timing table; read back whole."""
    from rtpose.multianimal.layout import AnimalLayout
    from rtpose.recording.reader import read_recording

    layout = AnimalLayout(("mouse1", "mouse2"), ("snout", "tailbase"), ("lever",))
    info = StreamInfo("cam", 64, 48, 30.0, layout.flat_names(), layout=layout)
    b = PoseBatch(4, layout.n_flat, n_animals=2)
    b.n = 3
    rng = np.random.default_rng(3)
    b.frame_index[:3] = [0, 1, 2]
    b.pose[:3] = rng.uniform(0, 60, (3, layout.n_flat, 3))
    b.pose[1, layout.index(1, 0):layout.index(1, 1) + 1] = np.nan  # frame 1: slot mouse2 empty
    b.predicted[:3] = b.pose[:3] + 1
    b.track_id[:3] = [[4, 7], [4, -1], [4, 9]]  # a new animal took slot mouse2 on frame 2
    b.events.append(Event("trigger", 5, 2, name="near", detail="on", animal=1))
    rec = RecorderSink(tmp_path / "ma.h5", chunk_frames=2)
    rec.open([info])
    rec.write(b)
    rec.close()

    df = read_dlc_table(tmp_path / "ma.h5")
    assert df.columns.names == ["scorer", "individuals", "bodyparts", "coords"]
    assert list(df.columns[:3]) == [("rtpose", "mouse1", "snout", c) for c in ("x", "y", "likelihood")]
    assert list(df.columns[-3:]) == [("rtpose", "single", "lever", c) for c in ("x", "y", "likelihood")]
    pd.testing.assert_frame_equal(read_dlc_table(tmp_path / "ma.csv"), df, check_exact=False, rtol=1e-12)
    got = read_recording(tmp_path / "ma.h5")
    assert got.layout == layout and got.bodyparts == layout.flat_names()
    np.testing.assert_array_equal(got.pose, b.pose[:3])  # NaN where NaN, everything else exact
    np.testing.assert_array_equal(got.predicted, b.predicted[:3])
    assert got.timing[["track_mouse1", "track_mouse2"]].to_numpy().tolist() == [[4, 7], [4, -1], [4, 9]]
    assert got.track_id.tolist() == [[4, 7], [4, -1], [4, 9]]
    assert got.events[["name", "animal"]].values.tolist() == [["near", 1]]
