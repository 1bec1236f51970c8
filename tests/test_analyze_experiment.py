"""Issue 13: `rtpose analyze` on whole experiments - folders and globs, a per-video status file, a corrupt
or truncated video among good ones, skipping finished videos, frame ranges and the likelihood cutoff.
Clips are cut from the real openfield video (tests/offline_clips.py) and analysed by the bundled model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from offline_clips import truncated_copy, write_clip
from rtpose.cli import main
from rtpose.errors import ConfigError
from rtpose.offline.engine import FrameRange
from rtpose.offline.inputs import expand_inputs, plan_jobs
from rtpose.offline.status import file_sha256
from rtpose.recording import read_dlc_table


@pytest.fixture(scope="module")
def clip40(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("clips") / "good.avi", 40)


# -- inputs ---------------------------------------------------------------------------------------


def test_folders_and_globs_expand_to_their_videos_in_name_order(tmp_path):
    for name in ("b.mp4", "a.avi", "notes.txt", "sub/c.avi", "x.h5"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert expand_inputs([str(tmp_path)]) == [tmp_path / "a.avi", tmp_path / "b.mp4"]
    assert expand_inputs([str(tmp_path / "*" / "*.avi")]) == [tmp_path / "sub" / "c.avi"]
    with pytest.raises(ConfigError, match="is not a file or folder"):
        expand_inputs([str(tmp_path / "missing.mp4")])
    with pytest.raises(ConfigError, match="matches no file"):
        expand_inputs([str(tmp_path / "*.mkv")])
    with pytest.raises(ConfigError, match="holds no video files"):
        (tmp_path / "empty").mkdir()
        expand_inputs([str(tmp_path / "empty")])
    with pytest.raises(ConfigError, match="is given twice"):
        plan_jobs([str(tmp_path), str(tmp_path / "a.avi")])


@pytest.mark.parametrize("text, expected", [("10:30", (10, 30)), ("5:", (5, None)), (":7", (0, 7))])
def test_frame_range_parses_like_a_slice(text, expected):
    r = FrameRange.parse(text)
    assert (r.start, r.stop) == expected


@pytest.mark.parametrize("text", ["30:10", "a:b", "5", "-1:4"])
def test_bad_frame_ranges_say_the_form(text):
    with pytest.raises(ConfigError, match="START"):
        FrameRange.parse(text)


# -- a folder of good and bad videos --------------------------------------------------------------


def test_a_corrupt_and_a_truncated_video_are_named_and_the_good_one_completes_then_is_skipped(
        tmp_path, clip40, capsys, monkeypatch):
    folder = tmp_path / "exp"
    folder.mkdir()
    (folder / "good.avi").write_bytes(clip40.read_bytes())
    truncated_copy(write_clip(tmp_path / "long.avi", 60), folder / "cut.avi")
    (folder / "broken.mp4").write_bytes(np.random.default_rng(1).integers(0, 256, 5000, np.uint8).tobytes())
    monkeypatch.chdir(tmp_path)

    assert main(["analyze", "exp", "--quiet", "--threads", "1"]) == 2
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert "   exp/good.avi: complete" in lines
    assert any(line.startswith("   exp/cut.avi: PARTIAL: only ") and "of the 60 frames" in line for line in lines)
    assert any(line.startswith("   exp/broken.mp4: failed: video:exp/broken.mp4: cannot open as a video")
               for line in lines)
    assert err.splitlines()[-1].startswith("rtpose analyze: error: video:exp/broken.mp4: cannot open as a video")
    assert "Traceback" not in err
    good = read_dlc_table(folder / "good.rtpose.h5")
    assert list(good.index) == list(range(40)) and not good.isna().any().any()
    assert (folder / "cut.rtpose.partial.h5").exists() and not (folder / "cut.rtpose.h5").exists()

    status = json.loads((folder / "good.rtpose.status.json").read_text())
    from rtpose.models import default_model_path

    assert status["status"] == "complete" and status["frames_written"] == status["frames_expected"] == 40
    assert status["model_sha256"] == file_sha256(default_model_path())
    assert {"rtpose", "onnxruntime", "numpy", "opencv", "python"} <= set(status["versions"])
    assert status["runs"][0]["frames"] == 40 and status["runs"][0]["fps"] > 0
    broken = json.loads((folder / "broken.rtpose.status.json").read_text())
    assert broken["status"] == "failed" and "cannot open as a video" in broken["message"]
    cut = json.loads((folder / "cut.rtpose.status.json").read_text())
    assert cut["status"] == "partial" and cut["frames_written"] < 60

    mtime = (folder / "good.rtpose.h5").stat().st_mtime_ns
    assert main(["analyze", "exp", "--quiet", "--threads", "1"]) == 2
    out = capsys.readouterr().out.splitlines()
    assert "   exp/good.avi: already analysed completely with the same model and settings: skipped" in out
    assert f"   exp/cut.avi: continuing after the {cut['frames_written']} frames already analysed" in out
    assert (folder / "good.rtpose.h5").stat().st_mtime_ns == mtime
    assert len(read_dlc_table(folder / "cut.rtpose.partial.h5")) == cut["frames_written"]  # nothing doubled


def test_results_of_other_settings_are_never_replaced(tmp_path, clip40, capsys):
    assert main(["analyze", str(clip40), "--out-dir", str(tmp_path), "--quiet", "--frame-range", ":8"]) == 0
    capsys.readouterr()
    assert main(["analyze", str(clip40), "--out-dir", str(tmp_path), "--quiet", "--frame-range", ":8",
                 "--resize", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "made with another model or other settings" in err and "--overwrite" in err


def test_frame_range_keeps_frame_numbers_and_pcutoff_never_touches_the_raw_table(tmp_path, clip40, capsys):
    full, part = tmp_path / "full", tmp_path / "part"
    assert main(["analyze", str(clip40), "--out-dir", str(full), "--quiet", "--threads", "1"]) == 0
    assert main(["analyze", str(clip40), "--out-dir", str(part), "--quiet", "--threads", "1",
                 "--frame-range", "10:30", "--pcutoff", "0.9"]) == 0
    whole = read_dlc_table(full / "good.rtpose.h5")
    raw = read_dlc_table(part / "good.rtpose.h5")
    assert list(raw.index) == list(range(10, 30))
    np.testing.assert_array_equal(raw.to_numpy(), whole.loc[10:29].to_numpy())
    cut = read_dlc_table(part / "good.rtpose_cutoff.h5")
    values, cut_values = raw.to_numpy().reshape(20, -1, 3), cut.to_numpy().reshape(20, -1, 3)
    low = values[:, :, 2] < 0.9
    assert low.any() and (~low).any()  # the real video has confident and unconfident keypoints
    assert np.isnan(cut_values[low][:, :2]).all() and np.array_equal(cut_values[~low], values[~low])
    np.testing.assert_array_equal(cut_values[:, :, 2], values[:, :, 2])
    assert not raw.isna().any().any()
    status = json.loads((part / "good.rtpose.status.json").read_text())
    assert status["pcutoff"]["value"] == 0.9 and status["settings"]["frame_range"] == [10, 30]


def test_cluster_without_dask_says_what_to_install(clip40, monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "distributed", None)
    assert main(["analyze", str(clip40), "--cluster", "local:2"]) == 2
    assert "pip install 'rtpose[cluster]'" in capsys.readouterr().err


def test_progress_line_shows_the_video_and_all_videos_with_fps_and_eta():
    from rtpose.offline.progress import Progress

    p = Progress([100, None, 300])
    p.t_start_s = 10.0
    p.set_done(0, 100)
    p.frames_this_command = 150
    line = p.line(2, "c.mp4", done=50, captured=60, processed=50, fps=25.0, elapsed_s=2.0, now_s=13.0)
    assert line.startswith("[###                 ]  16% 50/300")
    assert "captured     60  processed     50    25.0 FPS  ETA 10s" in line
    assert line.endswith("| video 3/3, all: 150/400 frames   50.0 FPS ETA 5s")
    assert "ETA ?" in Progress([None]).line(0, "x", done=5, captured=5, processed=5, fps=0.0, elapsed_s=1.0,
                                             now_s=1.0)


def test_the_reading_thread_alone_gets_a_lower_cpu_priority():
    import os
    import threading

    from rtpose.drivers.sources.synthetic import SyntheticSource
    from rtpose.offline.reader import BackgroundReader

    reader = BackgroundReader(SyntheticSource(width=32, height=32), nice=5)
    info = reader.open()
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    seen = {}

    def read():
        before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        reader.read_into(np.zeros((info.height, info.width, 3), np.uint8))
        seen["delta"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) - before

    thread = threading.Thread(target=read)
    thread.start()
    thread.join()
    reader.close()
    assert seen["delta"] == min(5, 19 - mine)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine  # only the reading thread
    # read on the main thread (a script, a test): its priority stays, or every thread it starts later would
    # inherit the lower one
    on_main = BackgroundReader(SyntheticSource(width=32, height=32), nice=5)
    on_main.open()
    on_main.read_into(np.zeros((info.height, info.width, 3), np.uint8))
    on_main.close()
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine


def test_a_frame_range_beyond_the_video_is_that_video_s_error(tmp_path, clip40, capsys):
    assert main(["analyze", str(clip40), "--out-dir", str(tmp_path), "--quiet", "--frame-range", "100:"]) == 2
    assert capsys.readouterr().err.strip().endswith(
        "--frame-range starts at frame 100 but the video ends after 40 frames; give a range within the video")
    assert json.loads((tmp_path / "good.rtpose.status.json").read_text())["status"] == "failed"
