"""Issue 13: an `rtpose analyze` killed mid-video continues where it stopped, with no duplicate or missing row.

The crash is real: a child process analysing a clip ends itself (``os._exit``, as SIGKILL would) in the
worst place, after a chunk's CSV rows are written and before its .h5 rows are. The rerun must cut the
CSV files back to the .h5's rows and continue from the next frame, giving exactly the table of an
uninterrupted run (the bundled model is batch-invariant)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from offline_clips import write_clip
from rtpose.cli import main
from rtpose.recording import RecordingPaths, read_dlc_table
from rtpose.recording.resume import recover

CRASHING_RUN = textwrap.dedent("""
    import os, sys
    from rtpose.recording import recorder
    original = recorder.RecorderSink._append_h5
    def append_h5(self, files, measured):
        if files.frames_written >= 32:
            os._exit(9)  # killed between a chunk's CSV rows and its .h5 rows
        return original(self, files, measured)
    recorder.RecorderSink._append_h5 = append_h5
    from rtpose.model import load_model
    from rtpose.offline.cluster import _run_pipeline
    from rtpose.offline.engine import AnalyzeOptions, Analyzer
    from rtpose.offline.inputs import plan_jobs
    analyzer = Analyzer(load_model(None, threads=1), AnalyzeOptions(chunk_frames=16))
    job = plan_jobs([sys.argv[1]], sys.argv[2])[0]
    analyzer.run(job, analyzer.decide(job), run_pipeline=_run_pipeline)
    os._exit(0)
""")


def _data_lines(path) -> int:
    return sum(1 for line in path.read_text().splitlines() if line.split(",")[0].isdigit())


@pytest.mark.slow
def test_a_video_killed_mid_write_continues_without_duplicate_or_missing_rows(tmp_path, capsys):
    clip = write_clip(tmp_path / "clip.avi", 90)
    assert main(["analyze", str(clip), "--out-dir", str(tmp_path / "ref"), "--quiet", "--threads", "1"]) == 0
    reference = read_dlc_table(tmp_path / "ref" / "clip.rtpose.h5")

    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-c", CRASHING_RUN, str(clip), str(out)], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 9, done.stderr
    partial = RecordingPaths.for_output(out / "clip.rtpose.partial")
    h5_rows = len(read_dlc_table(partial.h5))
    assert h5_rows >= 32 and _data_lines(partial.csv) > h5_rows  # the CSV files are a chunk ahead
    assert not (out / "clip.rtpose.h5").exists()

    capsys.readouterr()
    assert main(["analyze", str(clip), "--out-dir", str(out), "--quiet", "--threads", "1"]) == 0
    assert f"   {clip}: continuing after the {h5_rows} frames already analysed" in capsys.readouterr().out
    table = read_dlc_table(out / "clip.rtpose.h5")
    assert list(table.index) == list(range(90))
    pd.testing.assert_frame_equal(table, reference)
    assert (read_dlc_table(out / "clip.rtpose.csv").to_numpy() == read_dlc_table(tmp_path / "ref" / "clip.rtpose.csv")
            .to_numpy()).all()
    timing = pd.read_csv(out / "clip.rtpose_timing.csv")
    assert list(timing["frame"]) == list(range(90))
    predicted = read_dlc_table(out / "clip.rtpose_predicted.csv")
    assert list(predicted.index) == list(range(90))


def test_recover_cuts_every_csv_back_to_the_h5_rows(tmp_path):
    """Without a model: a recording whose CSV files hold 2 rows more than its .h5 (a crash between them)."""
    from rtpose.recording.dlc_table import H5_KEY, pose_frame

    paths = RecordingPaths.for_output(tmp_path / "r")
    poses = np.random.default_rng(0).random((5, 2, 3))
    table = pose_frame(poses, "s", ["a", "b"], list(range(100, 105)))
    table.iloc[:3].to_hdf(paths.h5, key=H5_KEY, format="table")
    table.to_csv(paths.csv)
    table.to_csv(paths.predicted_csv)
    paths.timing_csv.write_text("frame,stream\n" + "".join(f"{i},0\n" for i in range(100, 105)))
    paths.events_csv.write_text("t_ns,frame,stream,kind,name,detail\n1,101,0,drop,s,x\n2,104,0,drop,s,y\n")
    rec = recover(paths)
    assert (rec.rows, rec.first_frame, rec.last_frame) == (3, 100, 102)
    for csv in (paths.csv, paths.predicted_csv):
        assert list(read_dlc_table(csv).index) == [100, 101, 102]
    assert paths.timing_csv.read_text() == "frame,stream\n100,0\n101,0\n102,0\n"
    assert paths.events_csv.read_text().splitlines() == ["t_ns,frame,stream,kind,name,detail", "1,101,0,drop,s,x"]
