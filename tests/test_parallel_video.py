"""Issue 12: one video decoded by several reader threads (ParallelVideoSource, `rtpose analyze --readers N`).

Every frame must be bit-identical to a sequential decode (VideoFileSource), in order, with the same count, for
the real openfield video (H.264 with B-frames, keyframes 182-249 frames apart) and for videos written here by
OpenCV's VideoWriter with FFmpeg's default group of 12 pictures; truncated files end with what decodes, and a
reader's error reaches the consumer after every frame before it."""

from __future__ import annotations

import hashlib
import json
import os
import threading

import cv2
import numpy as np
import pytest

from offline_clips import real_frames, truncated_copy
from rtpose.cli import main
from rtpose.data import demo_video_path
from rtpose.drivers.sources.parallel_video import ParallelVideoSource, VideoIndex, plan_segments
from rtpose.drivers.sources.video import VideoFileSource
from rtpose.errors import ConfigError, SourceError
from rtpose.drivers.sources.parallel_video import default_readers
from rtpose.offline.engine import inference_threads
from rtpose.offline.reader import BackgroundReader
from rtpose.recording import read_dlc_table

#: FFmpeg's default group of pictures (gop_size 12), which OpenCV's VideoWriter keeps for these codecs.
GOP = 12
OPENFIELD_KEYFRAMES = (0, 182, 366, 548, 797, 985, 1173, 1383, 1588, 1794, 2016, 2219)


def write_gop_video(path, n: int = 150, fourcc: str = "mp4v", size=(96, 64)):
    """``n`` moving-pattern frames, every one different, written by OpenCV's VideoWriter."""
    writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*fourcc), 30.0, size)
    assert writer.isOpened(), f"OpenCV cannot write {fourcc}"
    yy, xx = np.mgrid[: size[1], : size[0]]
    for i in range(n):
        frame = np.zeros((size[1], size[0], 3), np.uint8)
        frame[..., 0] = (xx * 2 + i) % 256
        frame[..., 1] = (yy * 3 + 2 * i) % 256
        frame[..., 2] = 120
        cv2.circle(frame, (10 + (3 * i) % 76, 32), 8, (255, 255, 255), -1)
        writer.write(frame)
    writer.release()
    return path


def frame_hashes(src, start: int = 0, limit: int | None = None) -> list[bytes]:
    """Per-frame hashes of what ``src`` delivers (from ``start``, at most ``limit`` frames); closes it."""
    hashes = []
    with src:
        if start:
            assert src.skip(start) == start
        buf = np.empty(src.frame_shape, np.uint8)
        while (limit is None or len(hashes) < limit) and src.read_into(buf):
            hashes.append(hashlib.blake2b(buf.tobytes(), digest_size=16).digest())
    return hashes


@pytest.fixture(scope="module")
def gop_videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gop")
    return {"mp4v.avi": write_gop_video(folder / "g.avi"), "mp4v.mp4": write_gop_video(folder / "g.mp4"),
            "vp9.webm": write_gop_video(folder / "g.webm", fourcc="VP90"),
            "mpeg2.ts": write_gop_video(folder / "g.ts", fourcc="MPG2")}  # timestamps from 43 frames on


# -- the index and the plan (pure) -----------------------------------------------------------------


def test_the_index_finds_the_known_keyframes_without_decoding(gop_videos):
    for path in gop_videos.values():
        index = VideoIndex.scan(path)
        assert index.n_frames == 150 and index.keyframes == tuple(range(0, 150, GOP))
    index = VideoIndex.scan(demo_video_path())
    assert index.n_frames == 2330 and index.keyframes == OPENFIELD_KEYFRAMES


def test_an_index_that_cannot_place_frames_is_refused():
    assert VideoIndex.from_packets([0, 2, 1, 3], [0]).keyframes == (0,)  # decoding order is sorted out
    assert VideoIndex.from_packets([], []) is None
    assert VideoIndex.from_packets([0, 1, 1, 2], [0]) is None  # a repeated timestamp
    assert VideoIndex.from_packets([0, 1, 2], [1]) is None  # frame 0 is no keyframe
    assert VideoIndex.from_packets([-9223372036854775808, 1], [1]) is None  # no timestamp


def test_segments_start_16_frames_after_keyframes_and_are_never_shorter_than_the_minimum():
    keys = (0, 12, 24, 36, 48, 60)
    assert plan_segments(keys, 0, 70, 12) == [(0, 28), (28, 40), (40, 52), (52, None)]
    assert plan_segments(keys, 0, 70, 20) == [(0, 28), (28, None)]  # 52 would leave 18 < 20 frames
    assert plan_segments(keys, 30, 70, 12) == [(30, 52), (52, None)]  # the start need not be a keyframe
    assert plan_segments(keys, 0, 70, 12, backoff=0) == [(0, 12), (12, 24), (24, 36), (36, 48), (48, None)]
    assert plan_segments((0,), 0, 1000, 12) == [(0, None)]  # one group of pictures: one segment
    assert plan_segments(OPENFIELD_KEYFRAMES, 0, 2330)[:3] == [(0, 198), (198, 382), (382, 564)]
    assert plan_segments(OPENFIELD_KEYFRAMES, 2300, 2330) == [(2300, None)]


def test_automatic_readers_leave_the_model_its_cores():
    assert default_readers(2, 2) == 1  # this development machine: the model's 2 threads fill both cores
    assert default_readers(3, 2) == 1
    assert default_readers(4, 2) == 2
    assert default_readers(16, 1) == 4  # a GPU machine: capped
    assert default_readers(1, 1) == 1

    class Gpu:
        provider, threads = "CUDAExecutionProvider", 16

    class Cpu:
        provider, threads = "CPUExecutionProvider", 3

    assert inference_threads(Gpu()) == 1 and inference_threads(Cpu()) == 3


# -- frames identical to a sequential decode ---------------------------------------------------------


@pytest.mark.parametrize("readers", [1, 2, 3])
def test_generated_videos_give_the_sequential_frames_with_any_number_of_readers(gop_videos, readers):
    for name, path in gop_videos.items():
        expected = frame_hashes(VideoFileSource(path, paced=False))
        assert len(expected) == 150 and len(set(expected)) == 150, name
        for start in (0, 30, 149):  # from the start, from mid-group, the last frame
            src = ParallelVideoSource(path, readers, min_segment_frames=GOP)
            assert frame_hashes(src, start) == expected[start:], (name, start)
            assert src.readers == (readers if start < 149 else 1) and src.seek_fallbacks == 0


@pytest.fixture(scope="module")
def openfield_hashes():
    """Sequential hashes of the openfield video's frames 0-399 and 1000-1249."""
    path = demo_video_path()
    return frame_hashes(VideoFileSource(path, paced=False), limit=400), \
        frame_hashes(VideoFileSource(path, paced=False), start=1000, limit=250)


@pytest.mark.parametrize("readers", [2, 3])
def test_the_openfield_video_gives_the_sequential_frames(openfield_hashes, readers):
    """H.264 with B-frames: 400 frames over 3 segments from 0, and 250 from a resume point mid-group
    (read-ahead kept small: the readers would otherwise decode far past the frames compared)."""
    path = demo_video_path()
    small = readers * 64 * 640 * 480 * 3
    src = ParallelVideoSource(path, readers, read_ahead_bytes=small)
    assert frame_hashes(src, limit=400) == openfield_hashes[0]
    assert src.readers == readers and src.seek_fallbacks == 0
    src = ParallelVideoSource(path, readers, read_ahead_bytes=small)
    assert frame_hashes(src, start=1000, limit=250) == openfield_hashes[1]
    assert src._segments[:2] == [(1000, 1189), (1189, 1399)]


def test_a_truncated_video_ends_with_the_frames_a_sequential_read_gives(gop_videos, tmp_path):
    for name in ("mp4v.avi", "vp9.webm"):
        cut = truncated_copy(gop_videos[name], tmp_path / f"cut-{name}")
        expected = frame_hashes(VideoFileSource(cut, paced=False))
        assert 30 < len(expected) < 150, name
        for readers in (2, 3):
            assert frame_hashes(ParallelVideoSource(cut, readers, min_segment_frames=GOP)) == expected, name


def test_a_video_whose_timestamps_repeat_is_read_by_one_reader(tmp_path):
    """MPEG-2 in an MPEG program stream: B-frame packets without their own pts repeat a neighbour's."""
    path = write_gop_video(tmp_path / "g.mpg", fourcc="MPG2")
    assert VideoIndex.scan(path) is None
    src = ParallelVideoSource(path, 3)
    assert frame_hashes(src, 37) == frame_hashes(VideoFileSource(path, paced=False), 37)
    assert src.readers == 1


def test_seek_says_whether_opencv_landed_on_the_frame(gop_videos):
    """On MPEG-TS OpenCV 5.0's frame seek lands a group of pictures late for targets in the first group (and
    right from 16 frames after a keyframe on): seek() returns False there instead of a wrong frame, and where it
    returns True the next frame is the sequential decode's."""
    path = gop_videos["mpeg2.ts"]
    index = VideoIndex.scan(path)
    expected = frame_hashes(VideoFileSource(path, paced=False))
    for target in range(0, 60, 3):
        cap = cv2.VideoCapture(str(path))
        cap.set(cv2.CAP_PROP_POS_FRAMES, target)
        ok, frame = cap.read()
        cap.release()
        opencv_right = ok and hashlib.blake2b(frame.tobytes(), digest_size=16).digest() == expected[target]
        with VideoFileSource(path, paced=False) as src:
            landed = src.seek(target, int(index.pts[target]))
            assert landed == opencv_right, target
            if landed:
                buf = np.empty(src.frame_shape, np.uint8)
                assert src.read_into(buf) and src.next_index == target + 1
                assert hashlib.blake2b(buf.tobytes(), digest_size=16).digest() == expected[target]


def test_a_video_of_one_group_of_pictures_is_read_by_one_reader(tmp_path):
    path = write_gop_video(tmp_path / "short.avi", n=10)
    src = ParallelVideoSource(path, 3)
    assert frame_hashes(src) == frame_hashes(VideoFileSource(path, paced=False))
    assert src.readers == 1 and src.requested_readers == 3


# -- seeks are checked, errors arrive in order --------------------------------------------------------


class SeekOff:
    """A cv2.VideoCapture whose frame seeks land ``offset`` frames away (as OpenCV's do on some files)."""

    def __init__(self, path, offset):
        self.cap, self.offset = cv2.VideoCapture(path), offset

    def set(self, prop, value):
        return self.cap.set(prop, value + self.offset if prop == cv2.CAP_PROP_POS_FRAMES else value)

    def __getattr__(self, name):
        return getattr(self.cap, name)


@pytest.mark.parametrize("offset", [-5, 3])
def test_a_seek_that_lands_on_another_frame_is_caught_and_corrected(gop_videos, offset):
    """Landing early: frames are passed over to the target; landing late: re-decoded from the start."""
    path = gop_videos["mp4v.avi"]
    src = ParallelVideoSource(path, 2, min_segment_frames=GOP, capture_factory=lambda p: SeekOff(p, offset))
    assert frame_hashes(src, 30) == frame_hashes(VideoFileSource(path, paced=False), 30)
    assert (src.seek_fallbacks > 0) == (offset > 0)


class BadFrame:
    """A cv2.VideoCapture that decodes frames from pts ``at`` on at another size (a damaged stream)."""

    def __init__(self, path, at):
        self.cap, self.at = cv2.VideoCapture(path), at

    def read(self, image=None):
        return self._damaged(*self.cap.read())

    def retrieve(self, image=None):  # the frame grab() passed (the first after a seek)
        return self._damaged(*self.cap.retrieve())

    def _damaged(self, ok, frame):
        if ok and self.cap.get(cv2.CAP_PROP_PTS) >= self.at:
            return True, np.zeros((16, 16, 3), np.uint8)
        return ok, frame

    def __getattr__(self, name):
        return getattr(self.cap, name)


@pytest.mark.parametrize("readers", [1, 2, 3])
def test_a_reader_s_error_comes_after_every_frame_before_it(gop_videos, readers):
    path = gop_videos["mp4v.avi"]
    expected = frame_hashes(VideoFileSource(path, paced=False))
    src = ParallelVideoSource(path, readers, min_segment_frames=GOP, capture_factory=lambda p: BadFrame(p, 100))
    got = []
    with src:
        buf = np.empty(src.frame_shape, np.uint8)
        with pytest.raises(SourceError, match="frame 100 is 16x16 but the video started at 96x64"):
            while src.read_into(buf):
                got.append(hashlib.blake2b(buf.tobytes(), digest_size=16).digest())
    assert got == expected[:100]


def test_a_frame_out_of_place_is_an_error_not_a_wrong_frame(gop_videos):
    class Skips:  # decodes frame 40 twice over: every later frame would be one off
        def __init__(self, path):
            self.cap = cv2.VideoCapture(path)

        def read(self, image=None):
            if self.cap.get(cv2.CAP_PROP_PTS) == 39:
                self.cap.grab()
            return self.cap.read(image)

        def __getattr__(self, name):
            return getattr(self.cap, name)

    src = ParallelVideoSource(gop_videos["mp4v.avi"], 2, min_segment_frames=GOP, capture_factory=Skips)
    with pytest.raises(SourceError, match="frame 40 out of place.*--readers 1"):
        frame_hashes(src)


def test_reader_arguments_and_states(gop_videos):
    with pytest.raises(ConfigError, match="readers"):
        ParallelVideoSource(gop_videos["mp4v.avi"], 0)
    src = ParallelVideoSource(gop_videos["mp4v.avi"], 2)
    with pytest.raises(SourceError, match="not open"):
        src.skip(3)
    with src:
        src.read_into(np.empty(src.frame_shape, np.uint8))
        with pytest.raises(SourceError, match="before the first read"):
            src.skip(3)
    with pytest.raises(SourceError, match="not found"):
        ParallelVideoSource(gop_videos["mp4v.avi"].with_name("missing.avi"), 2).open()


def test_closing_mid_video_stops_every_reader(gop_videos):
    src = ParallelVideoSource(gop_videos["mp4v.avi"], 3, min_segment_frames=GOP, read_ahead_bytes=0)
    with src:
        src.read_into(np.empty(src.frame_shape, np.uint8))
        threads = list(src._threads)
    assert len(threads) == 3 and not any(t.is_alive() for t in threads)


def test_reader_threads_inherit_the_reading_thread_s_lower_priority(gop_videos):
    reader = BackgroundReader(ParallelVideoSource(gop_videos["mp4v.avi"], 2, min_segment_frames=GOP), nice=5)
    info = reader.open()
    seen = {}

    def read():
        seen["mine"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        reader.read_into(np.zeros((info.height, info.width, 3), np.uint8))
        seen["readers"] = [os.getpriority(os.PRIO_PROCESS, t.native_id) for t in reader.source._threads]

    thread = threading.Thread(target=read)
    thread.start()
    thread.join()
    reader.close()
    assert len(seen["readers"]) == 2
    assert seen["readers"] == [min(seen["mine"] + 5, 19)] * 2


# -- rtpose analyze --readers ------------------------------------------------------------------------


def test_analyze_with_two_readers_writes_exactly_the_poses_of_one(tmp_path, capsys):
    """Real openfield frames (320x240) written as MPEG-4 part 2 (keyframe every 12 frames): 2 segments."""
    frames = real_frames(300, start=300)
    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (frames.shape[2], frames.shape[1]))
    for f in frames:
        writer.write(f)
    writer.release()
    tables = {}
    for readers in ("1", "2"):
        out = tmp_path / f"r{readers}"
        assert main(["analyze", str(clip), "--out-dir", str(out), "--quiet", "--threads", "1",
                     "--readers", readers]) == 0
        stdout = capsys.readouterr().out
        assert f"decoding: readers={readers}" in stdout
        status = json.loads((out / "clip.rtpose.status.json").read_text())
        assert status["status"] == "complete" and status["readers"] == int(readers)
        assert status["runs"][-1]["readers"] == int(readers)
        settings = json.loads((out / "clip.rtpose_settings.json").read_text())
        assert settings["readers"] == int(readers)
        tables[readers] = read_dlc_table(out / "clip.rtpose.h5")
    assert len(tables["1"]) == 300 and list(tables["2"].index) == list(range(300))
    assert tables["1"].equals(tables["2"])
    # from a frame inside a group of pictures (the start of --frame-range, or of a resumed video)
    out = tmp_path / "range"
    assert main(["analyze", str(clip), "--out-dir", str(out), "--quiet", "--threads", "1", "--readers", "2",
                 "--frame-range", "30:"]) == 0
    assert "decoding: readers=2" in capsys.readouterr().out
    assert read_dlc_table(out / "clip.rtpose.h5").equals(tables["1"].iloc[30:])


def test_analyze_says_how_many_readers_it_chose(tmp_path, capsys, monkeypatch):
    clip = write_gop_video(tmp_path / "c.avi", n=20)
    monkeypatch.setattr("rtpose.offline.engine.default_threads", lambda: 8)
    monkeypatch.setattr("rtpose.cli.analyze_cmd.default_threads", lambda: 8)
    assert main(["analyze", str(clip), "--out-dir", str(tmp_path), "--quiet", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "== 4 readers per video (automatic for 8 cores; --readers to change)" in out
    assert "decoding: readers=1, asked=4" in out  # 20 frames: one group of pictures


def test_interrupt_ends_a_read_that_waits_for_a_reader(gop_videos):
    """The pipeline's stop() interrupts the capture thread's read_into while it waits for a segment."""
    release, waiting = threading.Event(), threading.Event()

    class Held:  # the reader of segment 1 (frames 28-39) waits at its first decode until released
        def __init__(self, path):
            self.cap = cv2.VideoCapture(path)

        def retrieve(self, image=None):
            if self.cap.get(cv2.CAP_PROP_PTS) == 28:
                waiting.set()
                release.wait()
            return self.cap.retrieve()

        def __getattr__(self, name):
            return getattr(self.cap, name)

    src = BackgroundReader(ParallelVideoSource(gop_videos["mp4v.avi"], 2, min_segment_frames=GOP,
                                               capture_factory=Held))
    src.open()
    buf = np.empty(src.frame_shape, np.uint8)
    for _ in range(28):  # segment 0
        assert src.read_into(buf)
    result = {}
    consumer = threading.Thread(target=lambda: result.setdefault("read", src.read_into(buf)))
    consumer.start()
    assert waiting.wait(30)
    src.interrupt()
    consumer.join(30)
    assert result == {"read": False}
    threads = list(src.source._threads)
    assert len(threads) == 2
    release.set()
    src.close()
    assert not any(t.is_alive() for t in threads)
