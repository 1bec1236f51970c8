"""Issue 12: `rtpose analyze --videos-at-once N`, several videos in one run of one process. Each video is a
stream of the run, their frames share the model's batches, and each keeps its own results, status and
outcome: a video that fails ends only its own recording. Clips are cut from the real openfield video
(tests/offline_clips.py) and analysed by the bundled model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from offline_clips import truncated_copy, write_clip
from rtpose.cli import main
from rtpose.errors import SourceError
from rtpose.offline.engine import Analyzer, plan_groups
from rtpose.offline.inputs import Job
from rtpose.offline.reader import BackgroundReader
from rtpose.offline.status import Decision
from rtpose.recording import read_dlc_table


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("together")
    return [write_clip(folder / "a.avi", 30, start=0), write_clip(folder / "b.avi", 45, start=600),
            write_clip(folder / "c.avi", 20, start=1200)]


def _tables(out: Path) -> dict[str, pd.DataFrame]:
    return {name: read_dlc_table(out / f"{name}.rtpose.h5") for name in "abc"}


def test_videos_at_once_write_the_tables_of_one_after_another(tmp_path, clips, capsys):
    alone, together = tmp_path / "alone", tmp_path / "together"
    args = ["--quiet", "--threads", "1", "--batch", "1"]
    assert main(["analyze", *map(str, clips), "--out-dir", str(alone), *args]) == 0
    assert main(["analyze", *map(str, clips), "--out-dir", str(together), "--videos-at-once", "3", *args]) == 0
    out = capsys.readouterr().out
    assert "== 1 reader per video" in out  # the videos are the parallelism: one reader each by default
    for clip, n in zip(clips, (30, 45, 20)):  # the run's summary names every video's recorder, not the last one's
        assert f"recorder {clip}: frames_written={n}" in out
    first, second = _tables(alone), _tables(together)
    for name, n in zip("abc", (30, 45, 20)):
        assert list(second[name].index) == list(range(n))
        # one frame per batch either way: the same network input, bit for bit
        np.testing.assert_array_equal(second[name].to_numpy(), first[name].to_numpy())
        timing = pd.read_csv(together / f"{name}.rtpose_timing.csv")
        assert list(timing["frame"]) == list(range(n)) and set(timing["stream"]) == {0}
        status = json.loads((together / f"{name}.rtpose.status.json").read_text())
        assert status["status"] == "complete" and status["frames_written"] == n
        assert status["runs"][-1]["videos_at_once"] == 3 and status["runs"][-1]["frames"] == n


def test_videos_at_once_share_batches_and_agree_with_the_single_runs(tmp_path, clips):
    alone, together = tmp_path / "alone", tmp_path / "together"
    args = ["--quiet", "--threads", "1", "--batch", "4"]
    assert main(["analyze", *map(str, clips[:2]), "--out-dir", str(alone), *args]) == 0
    assert main(["analyze", *map(str, clips[:2]), "--out-dir", str(together), "--videos-at-once", "2",
                 *args]) == 0
    for name in "ab":
        a = read_dlc_table(alone / f"{name}.rtpose.h5").to_numpy().reshape(-1, 3)
        b = read_dlc_table(together / f"{name}.rtpose.h5").to_numpy().reshape(-1, 3)
        # other frames in the batch: the bundled model is batch-invariant (checked at export) to float rounding
        np.testing.assert_allclose(b[:, :2], a[:, :2], atol=1e-3)
        np.testing.assert_allclose(b[:, 2], a[:, 2], atol=1e-5)
    # frames of both videos went through the network together: rows of one batch share t_infer_start_ns
    starts = [set(pd.read_csv(together / f"{name}.rtpose_timing.csv")["t_infer_start_ns"]) for name in "ab"]
    assert starts[0] & starts[1]


def _job(path: Path) -> Job:
    return Job(kind="video", files=[path], stem=path.with_suffix(""))


def test_groups_hold_new_videos_of_one_size_and_continued_ones_run_alone(tmp_path):
    sizes = {"a": (240, 320), "b": (240, 320), "c": (240, 320), "d": (480, 640), "e": (240, 320), "f": None}
    jobs = [_job(tmp_path / f"{n}.avi") for n in "abcdef"]
    fresh, resume = Decision("fresh"), Decision("resume", resume_rows=10)
    decisions = [fresh, fresh, fresh, fresh, fresh, fresh]
    size = lambda p: sizes[p.stem]  # noqa: E731
    assert plan_groups(jobs, decisions, 2, size) == [[0, 1], [2], [3], [4], [5]]
    assert plan_groups(jobs, decisions, 8, size) == [[0, 1, 2], [3], [4], [5]]
    assert plan_groups(jobs, decisions, 1, size) == [[i] for i in range(6)]
    decisions[1] = resume
    decisions[2] = Decision("skip", note="done")
    assert plan_groups(jobs, decisions, 8, size) == [[0], [1], [2], [3], [4], [5]]


class _FailsAfter:
    """A real video source whose decoder fails after ``n`` frames (a damaged file)."""

    def __init__(self, source, n: int):
        self.source, self.n, self.read = source, n, 0

    def __getattr__(self, name):
        return getattr(self.source, name)

    def read_into(self, out):
        if self.read == self.n:
            raise SourceError(self.source.name, "decoder error in the middle of the file (test)")
        self.read += 1
        return self.source.read_into(out)


def test_a_video_failing_mid_way_ends_only_its_own_recording(tmp_path, clips, capsys, monkeypatch):
    original = Analyzer._open_source

    def open_source(self, job):
        source, labels = original(self, job)
        return (_FailsAfter(source, 12) if job.files[0].stem == "b" else source), labels

    monkeypatch.setattr(Analyzer, "_open_source", open_source)
    cut = truncated_copy(write_clip(tmp_path / "long.avi", 60), tmp_path / "in" / "cut.avi")
    inputs = [*map(str, clips), str(cut)]
    assert main(["analyze", *inputs, "--out-dir", str(tmp_path), "--quiet", "--threads", "1",
                 "--videos-at-once", "4"]) == 2
    out, err = capsys.readouterr()
    assert "   " + str(clips[0]) + ": complete" in out and "   " + str(clips[2]) + ": complete" in out
    assert any(line.startswith(f"   {clips[1]}: failed after 12 of 45 frames (result marked partial): ")
               and "decoder error in the middle of the file" in line for line in out.splitlines())
    assert any(line.startswith(f"   {cut}: PARTIAL: only ") for line in out.splitlines())
    assert "decoder error in the middle of the file" in err.splitlines()[-1]
    assert len(read_dlc_table(tmp_path / "a.rtpose.h5")) == 30 and len(read_dlc_table(tmp_path / "c.rtpose.h5")) == 20
    assert len(read_dlc_table(tmp_path / "b.rtpose.partial.h5")) == 12  # every frame read before the error kept
    status = json.loads((tmp_path / "b.rtpose.status.json").read_text())
    assert status["status"] == "failed" and status["frames_written"] == 12

    monkeypatch.setattr(Analyzer, "_open_source", original)  # the file is fine again: the rerun continues it
    assert main(["analyze", *inputs, "--out-dir", str(tmp_path), "--quiet", "--threads", "1",
                 "--videos-at-once", "4"]) == 3  # the truncated video stays partial
    out = capsys.readouterr().out
    assert f"   {clips[1]}: continuing after the 12 frames already analysed" in out
    assert list(read_dlc_table(tmp_path / "b.rtpose.h5").index) == list(range(45))


def test_own_errors_end_the_stream_and_keep_the_error():
    from rtpose.drivers.sources.synthetic import SyntheticSource

    source = SyntheticSource(width=32, height=32)
    reader = BackgroundReader(_FailsAfter(source, 2), nice=0, own_errors=True)
    info = reader.open()
    frame = np.zeros((info.height, info.width, 3), np.uint8)
    assert reader.read_into(frame) and reader.read_into(frame)
    assert reader.read_into(frame) is False
    assert isinstance(reader.failure, SourceError)
    reader.close()
    plain = BackgroundReader(_FailsAfter(SyntheticSource(width=32, height=32), 0), nice=0)
    plain.open()
    with pytest.raises(SourceError):
        plain.read_into(frame)
    plain.close()


def test_progress_line_of_videos_run_together():
    from rtpose.offline.progress import Progress

    p = Progress([100, 50, None, 300])
    p.t_start_s = 0.0
    p.frames_this_command = 60
    line = p.line(0, "2 videos at once", done=60, captured=70, processed=60, fps=30.0, elapsed_s=2.0, now_s=2.0,
                  jobs=2)
    assert line.startswith("[########            ]  40% 60/150")  # the two videos' frames together
    assert "ETA 3s" in line and line.endswith("| videos 1-2/4, all: 60/450 frames   30.0 FPS ETA 13s")
    assert "ETA ?" in p.line(1, "x", done=5, captured=5, processed=5, fps=5.0, elapsed_s=1.0, now_s=1.0, jobs=2)
