"""Frame sources: the real openfield video, cameras (real failure path + a fake
capture), image files, the synthetic mouse and its ground truth, the spec factory.

Pacing runs on a fake clock whose ``sleep`` only advances the clock: no test sleeps.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from rtpose.data import demo_video_path
from rtpose.drivers.sources import (
    SPEC_FORMS,
    CameraSource,
    ImageFilesSource,
    SyntheticSource,
    VideoFileSource,
    open_source,
)
from rtpose.drivers.sources.pacing import Pacer
from rtpose.drivers.sources.synthetic import BODY_SPOT_GREY, BODYPARTS, HEAD_BGR, TAIL_BGR
from rtpose.errors import ConfigError, SourceError

#: sha256 of DeepLabCut's examples/openfield-Pranav-2018-10-30/videos/m3v1mp4.mp4, which is bundled unchanged.
DEMO_VIDEO_SHA256 = "e2394b4221821cdb7206910a6efcec9db338cb497d1f880bd5a0ef2fd087ce59"


class FakeClock:
    """Monotonic nanosecond clock; ``sleep`` advances it instead of waiting."""

    def __init__(self, start_ns: int = 1_000_000_000):
        self.now_ns = start_ns
        self.sleeps: list[float] = []

    def __call__(self) -> int:
        return self.now_ns

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append(seconds)
        self.now_ns += round(seconds * 1e9)

    def advance_ms(self, ms: float) -> None:
        self.now_ns += round(ms * 1e6)


def no_sleep(seconds: float) -> None:
    raise AssertionError(f"an unpaced source slept {seconds} s")


class FakeCapture:
    """Stands in for ``cv2.VideoCapture``: serves given frames, then fails (or ends)."""

    def __init__(self, frames, *, opened=True, fps=30.0, count=None, size=None):
        self.frames = list(frames)
        self.opened = opened
        self.props = {
            cv2.CAP_PROP_FPS: fps,
            cv2.CAP_PROP_FRAME_COUNT: float(len(self.frames) if count is None else count),
        }
        w, h = size if size else ((self.frames[0].shape[1], self.frames[0].shape[0]) if self.frames else (0, 0))
        self.props[cv2.CAP_PROP_FRAME_WIDTH] = float(w)
        self.props[cv2.CAP_PROP_FRAME_HEIGHT] = float(h)
        self.set_calls: dict[int, float] = {}
        self.pos = 0
        self.grabbed = None
        self.released = False

    def isOpened(self):
        return self.opened

    def get(self, prop):
        return self.props.get(prop, 0.0)

    def set(self, prop, value):
        self.set_calls[prop] = value
        return True

    def grab(self):
        if self.pos >= len(self.frames):
            return False
        self.grabbed = self.frames[self.pos]
        self.pos += 1
        return True

    def retrieve(self, image=None):
        frame = self.grabbed
        if image is not None and image.shape == frame.shape:  # like OpenCV: in place when it fits
            image[...] = frame
            return True, image
        return True, frame.copy()

    def read(self, image=None):
        if not self.grab():
            return False, None
        return self.retrieve(image)

    def release(self):
        self.released = True


def frames_of(n, h=48, w=64):
    return [np.full((h, w, 3), 10 * (i + 1), np.uint8) for i in range(n)]


def write_video(path: Path, n: int, fps: float = 25.0, size=(64, 48)) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    assert writer.isOpened()
    for i in range(n):
        writer.write(np.full((size[1], size[0], 3), 20 + 40 * i, np.uint8))
    writer.release()
    return path


# -- pacing ---------------------------------------------------------------------------------


def test_pacer_schedules_from_start_and_catches_up_without_drift():
    clock = FakeClock()
    pacer = Pacer(40.0, clock=clock, sleep=clock.sleep)  # 25 ms period
    pacer.start()
    t0 = clock.now_ns
    pacer.wait_for(0)
    assert clock.sleeps == []
    pacer.wait_for(1)
    assert clock.now_ns == t0 + 25_000_000
    clock.advance_ms(60)  # consumer late: frames 2 and 3 are already due
    pacer.wait_for(2)
    pacer.wait_for(3)
    assert len(clock.sleeps) == 1
    pacer.wait_for(4)
    assert clock.now_ns == t0 + 100_000_000  # back on the schedule anchored at start
    with pytest.raises(ValueError):
        Pacer(0.0)


# -- video files ----------------------------------------------------------------------------


def test_demo_video_is_bundled_and_identical_to_deeplabcuts():
    import hashlib

    path = demo_video_path()
    assert path.name == "m3v1mp4.mp4" and path.is_file()
    assert (path.parent / "README.md").read_text().count("Mathis") == 1
    assert hashlib.sha256(path.read_bytes()).hexdigest() == DEMO_VIDEO_SHA256


def test_openfield_video_info_and_first_frames_match_opencv():
    path = demo_video_path()
    src = VideoFileSource(path, paced=False, sleep=no_sleep)
    with src:
        info = src.info
        assert (info.width, info.height) == (640, 480)
        assert info.fps == pytest.approx(30.0, abs=0.01)
        assert info.n_frames == 2330
        assert info.live is False
        assert src.name == f"video:{path}"
        buf = np.zeros(src.frame_shape, np.uint8)
        ref = cv2.VideoCapture(str(path))
        try:
            for _ in range(5):
                assert src.read_into(buf) is True
                ok, expected = ref.read()
                assert ok
                np.testing.assert_array_equal(buf, expected)
        finally:
            ref.release()
        assert 20 < buf.mean() < 235  # a real picture, not a blank frame
    with pytest.raises(SourceError, match="not open"):
        _ = src.info


def test_video_decodes_in_place_and_into_non_contiguous_views():
    with VideoFileSource(demo_video_path(), paced=False) as src:
        batch = np.zeros((2, *src.frame_shape), np.uint8)
        assert src.read_into(batch[1])  # a contiguous slot of a batch buffer
        assert batch[1].any() and not batch[0].any()
        wide = np.zeros((480, 640, 4), np.uint8)
        view = wide[:, :, :3]  # OpenCV cannot decode into this layout itself
        assert src.read_into(view)
        assert view.any() and not wide[:, :, 3].any()


def test_paced_video_releases_frames_at_file_fps_on_a_fake_clock():
    clock = FakeClock()
    src = VideoFileSource(demo_video_path(), paced=True, clock=clock, sleep=clock.sleep)
    with src:
        assert src.info.live is True
        t0 = clock.now_ns
        buf = np.empty(src.frame_shape, np.uint8)
        released = []
        for _ in range(4):
            assert src.read_into(buf)
            released.append(clock.now_ns - t0)
        period_ns = 1e9 / src.info.fps
        assert released == [round(i * period_ns) for i in range(4)]
        clock.advance_ms(200)  # a slow consumer: the next frames are overdue, no sleep
        n_sleeps = len(clock.sleeps)
        assert src.read_into(buf)
        assert len(clock.sleeps) == n_sleeps


def test_video_end_of_stream_returns_false(tmp_path):
    path = write_video(tmp_path / "five.avi", 5, fps=25.0)
    with VideoFileSource(path, paced=False, sleep=no_sleep) as src:
        assert src.info.n_frames == 5 and src.info.fps == pytest.approx(25.0)
        buf = np.empty(src.frame_shape, np.uint8)
        means = []
        for _ in range(5):
            assert src.read_into(buf) is True
            means.append(buf.mean())
        assert means == sorted(means) and means[0] < means[-1]  # frames in order
        assert src.read_into(buf) is False
        assert src.read_into(buf) is False


def test_video_missing_file(tmp_path):
    src = VideoFileSource(tmp_path / "nope.mp4")
    with pytest.raises(SourceError, match="not found") as err:
        src.open()
    assert err.value.source == f"video:{tmp_path / 'nope.mp4'}"


def test_video_corrupt_file(tmp_path):
    bad = tmp_path / "garbage.mp4"
    bad.write_bytes(bytes(range(256)) * 64)
    with pytest.raises(SourceError, match="cannot open as a video") as err:
        VideoFileSource(bad).open()
    assert str(bad) in str(err.value) and "ffmpeg" in str(err.value)


def test_video_truncated_file(tmp_path):
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(demo_video_path().read_bytes()[:300_000])  # the index (moov) is at the end
    with pytest.raises(SourceError, match="video:.*cut.mp4"):
        VideoFileSource(cut).open()


def test_video_wrong_buffer_shape():
    with VideoFileSource(demo_video_path(), paced=False) as src:
        with pytest.raises(SourceError, match="buffer is"):
            src.read_into(np.empty((240, 320, 3), np.uint8))
        with pytest.raises(SourceError, match="buffer is"):
            src.read_into(np.empty((480, 640, 3), np.float32))


def test_video_frame_size_change_mid_stream(tmp_path):
    path = tmp_path / "x.mp4"
    path.write_bytes(b"placeholder: the fake capture serves the frames")
    frames = frames_of(2) + [np.zeros((96, 128, 3), np.uint8)]
    src = VideoFileSource(path, paced=False, capture_factory=lambda p: FakeCapture(frames))
    with src:
        buf = np.empty(src.frame_shape, np.uint8)
        assert src.read_into(buf) and src.read_into(buf)
        with pytest.raises(SourceError, match="frame 2 is 128x96 but the video started at 64x48"):
            src.read_into(buf)


def test_video_without_frame_rate_or_frames(tmp_path):
    path = tmp_path / "x.mp4"
    path.write_bytes(b"placeholder")
    with pytest.raises(SourceError, match="frame rate"):
        VideoFileSource(path, capture_factory=lambda p: FakeCapture(frames_of(2), fps=0.0)).open()
    cap = FakeCapture([], size=(64, 48))
    with pytest.raises(SourceError, match="no frame could be decoded"):
        VideoFileSource(path, capture_factory=lambda p: cap).open()
    assert cap.released


# -- cameras --------------------------------------------------------------------------------


def test_camera_that_does_not_exist():
    with pytest.raises(SourceError) as err:
        CameraSource(99).open()
    msg = str(err.value)
    assert err.value.source == "camera:99"
    assert msg.startswith("camera:99:") and "v4l2-ctl --list-devices" in msg and "cable" in msg


def test_fake_camera_delivers_then_unplugs():
    frames = frames_of(4)  # the first is consumed by the probe at open
    cap = FakeCapture(frames, fps=60.0)
    cam = CameraSource(2, capture_factory=lambda i: cap)
    with cam:
        info = cam.info
        assert (info.width, info.height, info.fps, info.n_frames, info.live) == (64, 48, 60.0, None, True)
        buf = np.empty(cam.frame_shape, np.uint8)
        for expected in frames[1:]:
            assert cam.read_into(buf) is True
            np.testing.assert_array_equal(buf, expected)
        with pytest.raises(SourceError, match="stopped delivering frames after 3 frames") as err:
            cam.read_into(buf)
        assert err.value.source == "camera:2" and "v4l2-ctl" in str(err.value)
    assert cap.released


def test_fake_camera_mode_requests_and_failures():
    cap = FakeCapture(frames_of(3), fps=0.0)
    with CameraSource(0, 64, 48, fps=90.0, capture_factory=lambda i: cap) as cam:
        assert cap.set_calls[cv2.CAP_PROP_FRAME_WIDTH] == 64
        assert cap.set_calls[cv2.CAP_PROP_FPS] == 90.0
        assert cam.fps == 90.0  # camera reports no rate: the requested one is used
    with pytest.raises(SourceError, match="asked for 640x480 but the camera delivers 64x48"):
        CameraSource(0, 640, 480, capture_factory=lambda i: FakeCapture(frames_of(2))).open()
    with pytest.raises(SourceError, match="delivered no frame"):
        CameraSource(1, capture_factory=lambda i: FakeCapture([], size=(64, 48))).open()
    with pytest.raises(SourceError, match="camera:1: cannot open camera 1"):
        CameraSource(1, capture_factory=lambda i: FakeCapture(frames_of(1), opened=False)).open()
    frames = frames_of(2) + [np.zeros((96, 128, 3), np.uint8)]
    with CameraSource(0, capture_factory=lambda i: FakeCapture(frames)) as cam:
        buf = np.empty(cam.frame_shape, np.uint8)
        assert cam.read_into(buf)
        with pytest.raises(SourceError, match="switched to 128x96"):
            cam.read_into(buf)


# -- image files ----------------------------------------------------------------------------


def _write_png(path: Path, value: int, size=(64, 48)) -> Path:
    img = np.zeros((size[1], size[0], 3), np.uint8)
    img[..., 2] = value  # red channel carries the identity
    assert cv2.imwrite(str(path), img)
    return path


def test_images_in_given_order(tmp_path):
    paths = [_write_png(tmp_path / f"img{i}.png", v) for i, v in enumerate((30, 10, 20))]
    order = [paths[2], paths[0], paths[1]]  # deliberately not sorted by name
    src = ImageFilesSource(order)
    with src:
        info = src.info
        assert (info.width, info.height, info.n_frames, info.live) == (64, 48, 3, False)
        buf = np.empty(src.frame_shape, np.uint8)
        seen = []
        while src.read_into(buf):
            seen.append((src.current_path, int(buf[0, 0, 2])))
        assert seen == [(paths[2], 20), (paths[0], 30), (paths[1], 10)]


def test_images_grey_file_is_read_as_bgr(tmp_path):
    grey = tmp_path / "grey.png"
    cv2.imwrite(str(grey), np.full((48, 64), 77, np.uint8))
    with ImageFilesSource([grey]) as src:
        buf = np.empty(src.frame_shape, np.uint8)
        assert src.read_into(buf) and (buf == 77).all()


def test_images_real_labeled_frames(openfield_dir):
    pngs = sorted((openfield_dir / "labeled").glob("*.png"))[:2]
    with ImageFilesSource(pngs) as src:
        assert src.frame_shape == (480, 640, 3)
        buf = np.empty(src.frame_shape, np.uint8)
        assert src.read_into(buf)
        np.testing.assert_array_equal(buf, cv2.imread(str(pngs[0])))


def test_images_errors(tmp_path):
    a = _write_png(tmp_path / "a.png", 1)
    odd = _write_png(tmp_path / "odd.png", 2, size=(32, 48))
    c = _write_png(tmp_path / "c.png", 3)
    with ImageFilesSource([a, odd, c]) as src:
        buf = np.empty(src.frame_shape, np.uint8)
        assert src.read_into(buf)
        with pytest.raises(SourceError, match=r"odd\.png is 32x48 but .*a\.png is 64x48"):
            src.read_into(buf)
    with pytest.raises(SourceError, match="not found: .*missing.png"):
        ImageFilesSource([a, tmp_path / "missing.png"]).open()
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png at all")
    with pytest.raises(SourceError, match="broken.png cannot be read as an image"):
        ImageFilesSource([broken]).open()
    with pytest.raises(SourceError, match="no image files"):
        ImageFilesSource([])


# -- synthetic ------------------------------------------------------------------------------


def _read(src: SyntheticSource, n: int) -> np.ndarray:
    out = np.empty((n, *src.frame_shape), np.uint8)
    for i in range(n):
        assert src.read_into(out[i])
    return out


def test_synthetic_same_seed_same_frames_other_seed_other_frames():
    with SyntheticSource(seed=7) as a, SyntheticSource(seed=7) as b, SyntheticSource(seed=8) as c:
        fa, fb, fc = _read(a, 5), _read(b, 5), _read(c, 5)
    np.testing.assert_array_equal(fa, fb)
    assert not np.array_equal(fa, fc)
    assert not np.array_equal(fa[0], fa[4])  # it moves


def test_synthetic_render_is_random_access_and_matches_reading():
    src = SyntheticSource(320, 240, fps=60.0, seed=3)
    with src:
        frames = _read(src, 4)
    again = np.empty((240, 320, 3), np.uint8)
    for i in (3, 0, 2):
        src.render(i, again)
        np.testing.assert_array_equal(again, frames[i])


@pytest.mark.parametrize("size", [(640, 480), (320, 240)])
def test_synthetic_truth_is_what_is_drawn(size):
    src = SyntheticSource(*size, seed=11)
    buf = np.empty((size[1], size[0], 3), np.uint8)
    for i in (0, 37, 150, 401):
        src.render(i, buf)
        truth = src.truth(i)
        assert truth.shape == (3, 2) and truth.dtype == np.float64
        head, body, tail = np.round(truth).astype(int)
        assert tuple(buf[head[1], head[0]]) == HEAD_BGR
        assert tuple(buf[body[1], body[0]]) == (BODY_SPOT_GREY,) * 3
        assert tuple(buf[tail[1], tail[0]]) == TAIL_BGR
        # Sub-pixel: the colour-weighted centroid of each disk is its truth (to 0.15 px:
        # anti-aliased edges of 3.5-7 px disks are not perfectly symmetric).
        b, g, r = (buf[..., c].astype(np.float64) for c in range(3))
        for weight, expected in (
            (np.clip(r - (g + b) / 2 - 60, 0, None), truth[0]),
            (np.clip(b - (r + g) / 2 - 60, 0, None), truth[2]),
            (np.clip(255 + g - r - b - 215, 0, None), truth[1]),
        ):
            ys, xs = np.indices(weight.shape)
            centroid = np.array([(weight * xs).sum(), (weight * ys).sum()]) / weight.sum()
            np.testing.assert_allclose(centroid, expected, atol=0.15)


def test_synthetic_path_stays_in_frame_moves_smoothly_and_heads_forward():
    for seed in range(4):
        src = SyntheticSource(640, 480, fps=30.0, seed=seed)
        tr = src.truth_many(np.arange(30 * 120))  # two minutes
        g = src.path.geometry
        body = tr[:, 1]
        assert (body[:, 0] - g.semi_major >= 0).all() and (body[:, 0] + g.semi_major <= 639).all()
        assert (body[:, 1] - g.semi_major >= 0).all() and (body[:, 1] + g.semi_major <= 479).all()
        step = np.linalg.norm(np.diff(body, axis=0), axis=1)
        assert step.max() < 15 and step.min() > 0.2  # px per frame: smooth, never stops
        velocity = body[2:] - body[:-2]
        facing = tr[1:-1, 0] - tr[1:-1, 1]  # body → head
        cos = (velocity * facing).sum(1) / np.linalg.norm(velocity, axis=1) / np.linalg.norm(facing, axis=1)
        assert cos.min() > 0.98  # heading follows the velocity
        np.testing.assert_allclose(np.linalg.norm(tr[:, 0] - tr[:, 1], axis=1), g.head_offset, atol=0.1)
        # the body visits all four quadrants of the frame
        quads = {(x > 320, y > 240) for x, y in body}
        assert len(quads) == 4


def test_synthetic_truth_finds_frames_with_the_body_in_a_zone():
    src = SyntheticSource(seed=5)
    tr = src.truth_many(np.arange(3000))
    x0, y0, x1, y1 = 400, 100, 560, 250
    inside = np.flatnonzero((tr[:, 1, 0] >= x0) & (tr[:, 1, 0] < x1) & (tr[:, 1, 1] >= y0) & (tr[:, 1, 1] < y1))
    assert inside.size > 0 and inside.size < 3000
    i = int(inside[0])
    np.testing.assert_array_equal(src.truth(i), tr[i])
    buf = np.empty((480, 640, 3), np.uint8)
    src.render(i, buf)
    zone = buf[y0:y1, x0:x1]
    assert (zone == BODY_SPOT_GREY).all(axis=-1).any()  # the spot is drawn inside the zone


def test_synthetic_info_end_of_stream_and_buffer_checks():
    src = SyntheticSource(160, 120, fps=90.0, n_frames=3, seed=1)
    with src:
        assert src.info.__dict__ == dict(width=160, height=120, fps=90.0, n_frames=3, live=False)
        assert BODYPARTS == ("head", "body", "tail")
        buf = np.empty((120, 160, 3), np.uint8)
        assert [src.read_into(buf) for _ in range(5)] == [True, True, True, False, False]
        with pytest.raises(SourceError, match="buffer is"):
            src.read_into(np.empty((480, 640, 3), np.uint8))
    with SyntheticSource() as endless:
        assert endless.info.n_frames is None
    with pytest.raises(SourceError, match="at least 32x32"):
        SyntheticSource(16, 16)


def test_synthetic_non_contiguous_buffer_gets_the_same_frame():
    src = SyntheticSource(seed=2)
    ref = np.empty((480, 640, 3), np.uint8)
    src.render(9, ref)
    wide = np.zeros((480, 640, 4), np.uint8)
    src.render(9, wide[:, :, :3])
    np.testing.assert_array_equal(wide[:, :, :3], ref)


def test_synthetic_noise_is_seeded_per_frame():
    clean, noisy_a, noisy_b = (np.empty((240, 320, 3), np.uint8) for _ in range(3))
    SyntheticSource(320, 240, seed=4).render(6, clean)
    SyntheticSource(320, 240, seed=4, noise_std=5.0).render(6, noisy_a)
    SyntheticSource(320, 240, seed=4, noise_std=5.0).render(6, noisy_b)
    np.testing.assert_array_equal(noisy_a, noisy_b)
    diff = noisy_a.astype(np.float64) - clean
    assert 4.0 < diff.std() < 6.0 and abs(diff.mean()) < 0.2


def test_synthetic_paced_on_fake_clock():
    clock = FakeClock()
    with SyntheticSource(160, 120, fps=50.0, paced=True, clock=clock, sleep=clock.sleep) as src:
        assert src.info.live is True
        t0 = clock.now_ns
        _read(src, 3)
        assert clock.now_ns - t0 == 40_000_000  # frames at 0, 20, 40 ms
    with SyntheticSource(160, 120, sleep=no_sleep) as fast:
        _read(fast, 3)


def test_pacing_starts_at_the_first_read_not_at_open():
    """Set-up time between open and the first read (model warm-up) must not release a burst of frames."""
    clock = FakeClock()
    with SyntheticSource(160, 120, fps=50.0, paced=True, clock=clock, sleep=clock.sleep) as src:
        clock.advance_ms(1000)
        _read(src, 1)
        assert clock.sleeps == []  # frame 0 is due at the first read
        _read(src, 1)
        assert clock.sleeps == [pytest.approx(0.02)]  # frame 1 one period later, not at once


# -- the spec factory -----------------------------------------------------------------------


def test_open_source_specs(tmp_path):
    video = open_source(f"video:{demo_video_path()}")
    assert isinstance(video, VideoFileSource) and video.paced is True
    assert open_source(f"video:{demo_video_path()}", paced=False).paced is False
    bare = open_source(str(demo_video_path()))
    assert isinstance(bare, VideoFileSource) and bare.path == demo_video_path()
    png = _write_png(tmp_path / "one.png", 5)
    assert isinstance(open_source(str(png)), ImageFilesSource)

    cam = open_source("camera:3")
    assert isinstance(cam, CameraSource) and cam.index == 3 and cam.width is None
    cam = open_source("camera:0,width=640,height=480,fps=60")
    assert (cam.index, cam.width, cam.height, cam.requested_fps) == (0, 640, 480, 60.0)

    syn = open_source("synthetic")
    assert isinstance(syn, SyntheticSource)
    assert (syn.width, syn.height, syn.frame_rate, syn.n_frames, syn.paced) == (640, 480, 30.0, None, False)
    syn = open_source("synthetic:320x240@60,seed=3,frames=10", paced=True)
    assert (syn.width, syn.height, syn.frame_rate, syn.seed, syn.n_frames, syn.paced) == (320, 240, 60.0, 3, 10, True)
    syn = open_source("synthetic:seed=9,noise=2.5")
    assert (syn.width, syn.seed, syn.noise_std) == (640, 9, 2.5)
    assert open_source("synthetic:800x600").frame_rate == 30.0


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "webcam",
        "camera:",
        "camera:x",
        "camera:-1",
        "camera:0,width=640",
        "camera:0,zoom=2",
        "video:",
        "synthetic:abc",
        "synthetic:320x240@",
        "synthetic:320x240,foo=1",
        "synthetic:320x240,seed=x",
        "synthetic:8x8",
        "synthetic,frames=-1",
        "no_such_file.mp4",
    ],
)
def test_open_source_bad_specs_list_the_accepted_forms(spec):
    with pytest.raises(ConfigError) as err:
        open_source(spec)
    msg = str(err.value)
    assert "Accepted forms" in msg
    for form in SPEC_FORMS:
        assert form in msg


def test_open_source_directory_is_not_a_video(tmp_path):
    with pytest.raises(ConfigError, match="directory"):
        open_source(str(tmp_path))


def test_open_source_missing_video_fails_at_open(tmp_path):
    src = open_source(f"video:{tmp_path / 'gone.mp4'}")
    with pytest.raises(SourceError, match="not found"):
        src.open()


def test_stream_ids_have_the_documented_forms(tmp_path):
    """The ``streams[i].id`` forms docs/protocol.md lists."""
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")  # a bare path must exist to be taken for a video file
    assert open_source("camera:2").name == "camera:2"
    assert open_source(f"video:{video}").name == f"video:{video}"
    assert open_source(str(video)).name == f"video:{video}"
    assert open_source("synthetic").name == "synthetic:640x480@30,seed=0"
    assert open_source("synthetic:320x240@12.5,seed=3,frames=9").name == "synthetic:320x240@12.5,seed=3"
    assert ImageFilesSource(["a.png"]).name == "images:a.png"
    assert ImageFilesSource(["a.png", "b.png", "c.png"]).name == "images:a.png (+2 more)"
