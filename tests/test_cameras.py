"""Machine-vision cameras: Basler through pypylon and its camera emulation, any GenICam camera through
harvesters and a real GenTL producer (the simulated ``viky.cti`` the ``genicam`` package ships).

pylon's emulation serves the real openfield frames (``ImageFileMode``/``ImageFilename``), so these
tests check real poses from the bundled model against ``rtpose analyze`` of the same frames. What the
emulation cannot do (a camera held by another program, an unplug, a camera frame counter with gaps)
is imitated by wrapping the real emulated camera at the source's interface (``camera_factory``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from rtpose.data import demo_video_path
from rtpose.drivers.sources import SPEC_FORMS, open_source
from rtpose.drivers.sources.genicam_features import CameraOptions, FrameCounter, PixelConverter
from rtpose.errors import CameraDisconnectedError, CameraInUseError, CameraNotFoundError, ConfigError, SourceError
from rtpose.recording import read_dlc_table

N_IMAGES = 6  # openfield frames the emulated camera serves, cycling

# pypylon and genicam are SWIG bindings: Python 3.11 warns once per import about their builtin types
pytestmark = pytest.mark.filterwarnings("ignore:builtin type [Ss]wig")


def _need(module: str, extra: str):
    try:
        return __import__(module)
    except ImportError:
        pytest.skip(f"{module} is not installed: pip install 'rtpose[{extra}]' (make test installs it)")


@pytest.fixture(scope="module")
def openfield_images(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """The first N_IMAGES frames of the bundled openfield video as PNG files (lossless), and the frames."""
    folder = tmp_path_factory.mktemp("openfield_frames")
    cap = cv2.VideoCapture(str(demo_video_path()))
    frames = []
    for i in range(N_IMAGES):
        ok, frame = cap.read()
        assert ok, "the bundled openfield video gave fewer frames than the test needs"
        cv2.imwrite(str(folder / f"frame{i:03d}.png"), frame)
        frames.append(frame)
    cap.release()
    return folder, np.stack(frames)


@pytest.fixture
def pylon_emulation(monkeypatch):
    """pypylon with two emulated cameras (serial numbers 0815-0000 and 0815-0001)."""
    _need("pypylon", "basler")
    monkeypatch.setenv("PYLON_CAMEMU", "2")
    from pypylon import pylon

    return pylon


# -- specs and shared pieces (no camera library needed) -------------------------------------------


def test_camera_specs_parse_into_options():
    from rtpose.drivers.sources.basler import BaslerSource
    from rtpose.drivers.sources.genicam import GenicamSource

    cam = open_source("basler:1,exposure_us=4000,gain_db=2.5,fps=60,roi=640x480+16+8,pixel_format=Mono8,"
                      "trigger=Line1,timeout_ms=500")
    assert isinstance(cam, BaslerSource) and cam.index == 1 and cam.serial is None and cam.name == "basler:1"
    assert cam.options == CameraOptions(exposure_us=4000.0, gain_db=2.5, fps=60.0, roi=(640, 480, 16, 8),
                                        pixel_format="Mono8", trigger="Line1", timeout_ms=500.0)
    assert cam.options.triggered
    cam = open_source("basler:serial=40012345,roi=320x240")
    assert (cam.serial, cam.options.roi, cam.options.grab, cam.name) == ("40012345", (320, 240, 0, 0), None,
                                                                        "basler:serial=40012345")
    assert open_source("basler:0", lossless=True).options.grab == "all"  # rtpose run --lossless
    assert open_source("basler:0,grab=latest", lossless=True).options.grab == "latest"  # the spec wins
    emu = open_source("basler:emulator,emulator_images=/tmp")
    assert emu.emulate and emu.name == "basler:emulator" and emu.options.emulator_images == "/tmp"
    gen = open_source("genicam:/opt/x/Producer.cti,serial=A1,fps=30,grab=all")
    assert isinstance(gen, GenicamSource) and gen.producer == Path("/opt/x/Producer.cti")
    assert (gen.serial, gen.index, gen.options.fps, gen.options.grab) == ("A1", None, 30.0, "all")
    assert gen.name == "genicam:/opt/x/Producer.cti,serial=A1"
    assert open_source("genicam:/p.cti,index=2").index == 2


@pytest.mark.parametrize("spec", [
    "basler:", "basler:x", "basler:-1", "basler:serial=", "basler:0,zoom=2", "basler:0,roi=640",
    "basler:0,grab=sometimes", "basler:0,pixel_format=Mono12", "basler:0,fps=0", "basler:0,exposure_us=-5",
    "genicam:", "genicam:/p.cti,serial=1,index=2", "genicam:/p.cti,index=-1", "genicam:/p.cti,emulator_images=/tmp",
])
def test_bad_camera_specs_say_what_is_accepted(spec):
    with pytest.raises(ConfigError) as err:
        open_source(spec)
    assert "Accepted forms" in str(err.value)
    assert all(form in str(err.value) for form in SPEC_FORMS)


def test_frame_counter_gaps_are_lost_frames_and_a_wrap_counts_none():
    counter = FrameCounter()
    assert [counter.update(i) for i in (10, 11, 14, 15, 20)] == [0, 0, 2, 0, 4]
    assert counter.lost == 6 and counter.resets == 0
    assert counter.update(1) == 0 and counter.resets == 1  # 16-bit block ID wrapped or camera reset: unknown
    assert counter.update(3) == 1 and counter.lost == 7


@pytest.mark.parametrize("pattern", ["BayerRG8", "BayerBG8", "BayerGR8", "BayerGB8"])
def test_bayer_frames_become_the_right_colours(pattern):
    """GenICam names a Bayer layout by its first row, OpenCV by its second: mosaic a real frame in
    each GenICam layout and check the conversion gets the colours back (a swapped code would not)."""
    cap = cv2.VideoCapture(str(demo_video_path()))
    ok, bgr = cap.read()
    cap.release()
    assert ok
    # a coloured frame: the openfield video is nearly grey, so tint it
    bgr = np.clip(bgr.astype(np.int16) * np.array([0.4, 0.8, 1.2]), 0, 255).astype(np.uint8)
    rows = {"BayerRG8": ("RG", "GB"), "BayerBG8": ("BG", "GR"), "BayerGR8": ("GR", "BG"), "BayerGB8": ("GB", "RG")}
    layout = {(dy, dx): rows[pattern][dy][dx] for dy in (0, 1) for dx in (0, 1)}
    channel = {"B": 0, "G": 1, "R": 2}
    mosaic = np.zeros(bgr.shape[:2], np.uint8)
    for (dy, dx), colour in layout.items():
        mosaic[dy::2, dx::2] = bgr[dy::2, dx::2, channel[colour]]
    out = np.zeros_like(bgr)
    PixelConverter(pattern, *bgr.shape[:2]).convert(mosaic, out)
    mean_error = np.abs(out.astype(int) - bgr.astype(int))[4:-4, 4:-4].mean(axis=(0, 1))
    assert (mean_error < 6).all(), mean_error


def test_pixel_conversion_fills_non_contiguous_buffers():
    rgb = np.random.default_rng(0).integers(0, 255, (6, 8, 3), np.uint8)
    wide = np.zeros((6, 8, 4), np.uint8)
    PixelConverter("RGB8", 6, 8).convert(rgb.reshape(-1), wide[:, :, :3])
    assert np.array_equal(wide[:, :, :3], rgb[:, :, ::-1])


# -- Basler, through pylon's camera emulation -----------------------------------------------------


def _read(source, n: int) -> tuple[np.ndarray, list[int], list[int]]:
    frames = np.zeros((n, *source.frame_shape), np.uint8)
    ids, stamps = [], []
    for i in range(n):
        assert source.read_into(frames[i])
        ids.append(source.device_frame_id)
        stamps.append(source.device_timestamp_ns)
    return frames, ids, stamps


def _matching_image(frame: np.ndarray, images: np.ndarray) -> int:
    """Which of ``images`` the frame is, exactly (-1: none)."""
    same = [i for i, image in enumerate(images) if np.array_equal(frame, image)]
    return same[0] if len(same) == 1 else -1


def test_basler_emulation_serves_the_real_openfield_frames_one_by_one(pylon_emulation, openfield_images):
    folder, images = openfield_images
    src = open_source(f"basler:emulator,emulator_images={folder},roi=640x480,pixel_format=BGR8,grab=all")
    with src:
        assert src.emulated and src.serial_number == "0815-0000" and src.pixel_format in ("BGR8", "BGR8Packed")
        assert src.frame_shape == (480, 640, 3)
        frames, _, _ = _read(src, N_IMAGES + 2)
    order = [_matching_image(f, images) for f in frames]
    start = order[0]
    assert order == [(start + i) % N_IMAGES for i in range(N_IMAGES + 2)], order  # every frame, in order, exact


def test_basler_colour_formats_from_the_emulation_give_the_same_bgr_frames(pylon_emulation, openfield_images):
    folder, images = openfield_images
    for pixel_format, tolerance in (("RGB8", 0), ("Mono8", 1), ("BayerRG8", None)):
        src = open_source(f"basler:emulator,emulator_images={folder},roi=640x480,pixel_format={pixel_format},"
                          "grab=all")
        with src:
            frames, _, _ = _read(src, 2)
        errors = [min(np.abs(f.astype(int) - image.astype(int)).mean() for image in images) for f in frames]
        if pixel_format == "Mono8":
            grey = [cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR) for image in images]
            errors = [min(np.abs(f.astype(int) - g.astype(int)).max() for g in grey) for f in frames]
        limit = 3.0 if tolerance is None else tolerance
        assert max(errors) <= limit, (pixel_format, errors)


def test_basler_camera_that_does_not_exist(pylon_emulation):
    with pytest.raises(CameraNotFoundError) as err:
        open_source("basler:serial=12345678").open()
    msg = str(err.value)
    assert msg.startswith("basler:serial=12345678:") and "0815-0000" in msg and "0815-0001" in msg
    assert "pylon Viewer" in msg
    with pytest.raises(CameraNotFoundError, match="there is no camera 7"):
        open_source("basler:7").open()


def test_basler_options_the_camera_refuses_are_config_errors(pylon_emulation):
    with pytest.raises(ConfigError, match="roi width 100000 is outside"):
        open_source("basler:emulator,roi=100000x480").open()
    with pytest.raises(ConfigError, match="has no 'Line7'"):
        open_source("basler:emulator,trigger=Line7").open()


def test_basler_by_serial_number_and_two_cameras_at_once(pylon_emulation):
    a = open_source("basler:serial=0815-0001,roi=320x240,pixel_format=Mono8")
    b = open_source("basler:serial=0815-0000,roi=320x240,pixel_format=Mono8")
    with a, b:
        assert (a.serial_number, b.serial_number) == ("0815-0001", "0815-0000")
        assert a.read_into(np.zeros(a.frame_shape, np.uint8)) and b.read_into(np.zeros(b.frame_shape, np.uint8))


#: Where the timestamps of :class:`_StampedResult` start: a camera powered 41 s before the run.
STAMP_T0_NS = 41_000_000_000


class _StampedResult:
    """A real grab result from the emulation, with the hardware timestamp a USB3 Vision camera puts in it
    (``TimeStamp``, ns of the camera's clock: here ``STAMP_T0_NS + frame number * period``); the emulation's
    own is always 0."""

    def __init__(self, result, period_ns: int):
        self._result = result
        self._period_ns = period_ns

    def __getattr__(self, name):
        return getattr(self._result, name)

    def GetTimeStamp(self):
        return STAMP_T0_NS + int(self._result.GetBlockID()) * self._period_ns


class _WrappedCamera:
    """A real (emulated) pylon camera with one fault pylon's emulation cannot produce on demand."""

    def __init__(self, camera, *, in_use: bool = False, unplug_after: int | None = None, fail_buffers: int = 0,
                 trigger_after_waits: int | None = None, silent: bool = False, stamp_period_ns: int | None = None):
        self.camera = camera
        self.stamp_period_ns = stamp_period_ns
        self.in_use = in_use
        self.unplug_after = unplug_after
        self.fail_buffers = fail_buffers
        self.trigger_after_waits = trigger_after_waits
        self.silent = silent
        self.retrieved = 0
        self.waits = 0
        self.removed = False

    def __getattr__(self, name):
        return getattr(self.camera, name)

    def Open(self):
        if self.in_use:  # what pylon raises for a USB camera another program has opened
            from pypylon import genicam

            raise genicam.AccessException("Device is exclusively opened by another client.", "fake", 0)
        return self.camera.Open()

    def IsCameraDeviceRemoved(self):
        return self.removed

    def RetrieveResult(self, timeout_ms, handling):
        if self.unplug_after is not None and self.retrieved >= self.unplug_after:
            self.removed = True
            from pypylon import pylon

            return pylon.GrabResult()  # an invalid (empty) result, as after an unplug
        if self.silent:  # frames stop coming, the camera still there (a trigger left on, a stalled link)
            from pypylon import pylon

            return pylon.GrabResult()
        if self.trigger_after_waits is not None and self.waits == self.trigger_after_waits:
            self.camera.TriggerSoftware.Execute()  # the emulation's real trigger, after some empty waits
        result = self.camera.RetrieveResult(timeout_ms, handling)
        if result.IsValid():
            self.retrieved += 1
            if self.stamp_period_ns is not None:
                return _StampedResult(result, self.stamp_period_ns)
        else:
            self.waits += 1
        return result

    def StartGrabbing(self, *args):
        self.camera.StartGrabbing(*args)
        if self.fail_buffers:  # a real emulation feature: the next buffers arrive incomplete
            self.camera.ForceFailedBufferCount.SetValue(self.fail_buffers)
            self.camera.ForceFailedBuffer.Execute()


def _basler(spec_tail: str = "", **wrap):
    from pypylon import pylon

    from rtpose.drivers.sources.basler import BaslerSource

    options = open_source(f"basler:emulator{spec_tail}").options
    return BaslerSource(0, options=options, emulate=True,
                        camera_factory=lambda device: _WrappedCamera(pylon.InstantCamera(device), **wrap))


def test_basler_options_reach_the_camera(pylon_emulation):
    src = open_source("basler:emulator,exposure_us=4000,gain_db=6,fps=50,roi=320x240+8+4,pixel_format=RGB8")
    with src:
        camera = src._camera
        assert camera.ExposureTime.GetValue() == 4000.0
        assert camera.Gain.GetValue() == pytest.approx(6.0, abs=0.01)  # the emulation rounds to its raw gain steps
        assert (camera.ExposureAuto.GetValue(), camera.GainAuto.GetValue()) == ("Off", "Off")
        assert (camera.Width.GetValue(), camera.Height.GetValue(), camera.OffsetX.GetValue(),
                camera.OffsetY.GetValue()) == (320, 240, 8, 4)
        assert camera.PixelFormat.GetValue() == "RGB8Packed" and src.pixel_format == "RGB8Packed"
        assert src.fps == 50.0 and camera.TriggerMode.GetValue() == "Off"
    with open_source("basler:emulator,trigger=Line1") as triggered:
        camera = triggered._camera
        assert (camera.TriggerSelector.GetValue(), camera.TriggerMode.GetValue(), camera.TriggerSource.GetValue(),
                camera.TriggerActivation.GetValue()) == ("FrameStart", "On", "Line1", "RisingEdge")


def test_basler_triggered_camera_waits_for_its_trigger_without_timing_out(pylon_emulation):
    """A free-running camera silent for timeout_ms is an error; a triggered one waits: here two empty
    waits (200 ms, far beyond timeout_ms=1) pass before the emulation's software trigger fires."""
    src = _basler(",roi=64x48,pixel_format=Mono8,trigger=Software,timeout_ms=1,grab=all", trigger_after_waits=2)
    with src:
        assert src.read_into(np.zeros(src.frame_shape, np.uint8))
        assert src._camera.waits == 2 and src.device_frame_id == 0
        # waiting for the next trigger in another thread: interrupt() (what stopping a run calls) ends it
        import threading

        returned = []
        reader = threading.Thread(target=lambda: returned.append(src.read_into(np.zeros(src.frame_shape, np.uint8))))
        src._camera.trigger_after_waits = None
        reader.start()
        src.interrupt()
        reader.join(30)
        assert returned == [False]
    silent = _basler(",roi=64x48,pixel_format=Mono8,timeout_ms=1", silent=True)
    with silent:
        with pytest.raises(SourceError, match="no frame for 100 ms after 0 frames from a free-running camera"):
            silent.read_into(np.zeros(silent.frame_shape, np.uint8))


def test_basler_without_any_camera_says_how_to_try_without_one(monkeypatch):
    _need("pypylon", "basler")
    monkeypatch.setenv("PYLON_CAMEMU", "0")
    with pytest.raises(CameraNotFoundError) as err:
        open_source("basler:0").open()
    assert "pylon found no camera" in str(err.value) and "basler:emulator" in str(err.value)


def test_basler_camera_in_use_is_a_typed_error(pylon_emulation):
    with pytest.raises(CameraInUseError) as err:
        _basler(in_use=True).open()
    assert "in use by another program" in str(err.value) and "pylon Viewer" in str(err.value)


def test_basler_frame_counter_and_frames_skipped_by_grab_latest(pylon_emulation):
    """The emulation numbers its frames (BlockID); with grab=latest pylon skips the frames nobody took,
    and every skipped frame shows as a gap in the counter and is counted as lost."""
    src = open_source("basler:emulator,roi=64x48,pixel_format=Mono8,fps=1000")
    with src:
        buf = np.zeros(src.frame_shape, np.uint8)
        ids = []
        for _ in range(20):
            assert src.read_into(buf)
            ids.append(src.device_frame_id)
            assert src.device_timestamp_ns == -1  # the emulation's TimeStamp is always 0: no timestamp
    assert all(b > a for a, b in zip(ids, ids[1:])), ids
    assert src.frames_lost == sum(b - a - 1 for a, b in zip(ids, ids[1:]))


def test_basler_hardware_timestamps_reach_the_frames_and_the_recording(pylon_emulation, analytic_model, tmp_path):
    """A camera that stamps its frames (the emulation does not: its results are given the USB3 camera's
    ns timestamps): each frame carries its stamp, and the recording's timing table keeps it beside the
    camera's frame number."""
    from rtpose.model import load_model
    from rtpose.pipeline import Pipeline, PipelineConfig
    from rtpose.recording import RecorderSink

    period_ns = 33_333_333
    src = _basler(",roi=64x48,pixel_format=Mono8,grab=all", stamp_period_ns=period_ns)
    with src:
        _, ids, stamps = _read(src, 4)
    assert stamps == [STAMP_T0_NS + i * period_ns for i in ids] and ids == [0, 1, 2, 3]

    src = _basler(",roi=320x240,pixel_format=BGR8,grab=all", stamp_period_ns=period_ns)
    pipeline = Pipeline([src], load_model(analytic_model), sinks=[RecorderSink(tmp_path / "stamped.h5")],
                        config=PipelineConfig(live=False, max_frames=5))
    pipeline.run()
    timing = pd.read_csv(tmp_path / "stamped_timing.csv")
    assert timing["camera_frame"].tolist() == [0, 1, 2, 3, 4]
    assert timing["camera_timestamp_ns"].tolist() == [STAMP_T0_NS + i * period_ns for i in range(5)]


def test_basler_incomplete_frames_from_the_emulation_are_lost_frames(pylon_emulation):
    src = _basler(",roi=64x48,pixel_format=Mono8,grab=all", fail_buffers=2)
    with src:
        _, ids, _ = _read(src, 3)
    assert src.failed_buffers == 2 and src.frames_lost == 2
    assert ids[0] == 2 and ids[1:] == [3, 4], ids  # the counter skips the two incomplete frames


def _run(args: list[str], env_camemu: str | None = "1", timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if env_camemu is not None:
        env["PYLON_CAMEMU"] = env_camemu
    return subprocess.run([sys.executable, "-m", "rtpose", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


@pytest.fixture(scope="module")
def analyzed_openfield(openfield_images, tmp_path_factory):
    """``rtpose analyze`` of the same openfield frames with the bundled model: (N_IMAGES, K, 3) poses."""
    folder, _ = openfield_images
    out = tmp_path_factory.mktemp("analyzed")
    paths = sorted(str(p) for p in folder.glob("*.png"))
    done = _run(["analyze", *paths, "--out-dir", str(out), "--quiet"], env_camemu=None)
    assert done.returncode == 0, done.stderr
    table = read_dlc_table(out / f"{folder.name}.rtpose.h5")
    return table.to_numpy().reshape(N_IMAGES, -1, 3)


def test_rtpose_run_on_the_emulated_basler_camera_gives_the_analyzed_poses(pylon_emulation, openfield_images,
                                                                          analyzed_openfield, tmp_path):
    """Done-when of the issue: `rtpose run --source basler:0` (PYLON_CAMEMU=1) on the emulated camera
    serving openfield frames gives the same poses as `rtpose analyze` of those frames, with the camera's
    frame numbers and timestamps in the recording."""
    folder, images = openfield_images
    out = tmp_path / "live.h5"
    done = _run(["run", "--source", f"basler:0,emulator_images={folder},roi=640x480,pixel_format=BGR8,fps=30",
                 "--frames", "12", "--quiet", "--record", str(out)])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "basler:0: captured 12" in done.stdout and "(OK)" in done.stdout
    poses = read_dlc_table(out).to_numpy().reshape(-1, analyzed_openfield.shape[1], 3)
    timing = pd.read_csv(tmp_path / "live_timing.csv")
    assert len(poses) == len(timing) >= 1
    assert {"camera_frame", "camera_timestamp_ns"} <= set(timing.columns)
    # the camera numbers its frames and serves image (frame number mod N_IMAGES): each recorded pose is
    # analyze's pose of exactly the frame the camera says it sent
    ids = timing["camera_frame"].to_numpy()
    assert (ids >= 0).all() and (np.diff(ids) > 0).all(), ids
    np.testing.assert_allclose(poses, analyzed_openfield[ids % N_IMAGES], atol=1e-3)
    assert (timing["camera_timestamp_ns"] == -1).all()  # pylon's emulation has no timestamps (TimeStamp 0)


def test_rtpose_run_lossless_on_the_emulated_camera_processes_every_frame_in_order(
        pylon_emulation, openfield_images, analyzed_openfield, tmp_path):
    folder, _ = openfield_images
    out = tmp_path / "all.h5"
    done = _run(["run", "--source", f"basler:0,emulator_images={folder},roi=640x480,pixel_format=BGR8",
                 "--lossless", "--frames", str(2 * N_IMAGES), "--quiet", "--record", str(out)])
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"captured {2 * N_IMAGES} = processed {2 * N_IMAGES} + dropped 0" in done.stdout
    poses = read_dlc_table(out).to_numpy().reshape(2 * N_IMAGES, -1, 3)
    first = int(np.argmin(np.abs(analyzed_openfield - poses[0]).max(axis=(1, 2))))
    expected = analyzed_openfield[[(first + i) % N_IMAGES for i in range(2 * N_IMAGES)]]
    np.testing.assert_allclose(poses, expected, atol=1e-3)


def test_a_camera_unplugged_mid_run_keeps_the_recording_and_the_summary_says_so(pylon_emulation, analytic_model,
                                                                                tmp_path):
    from rtpose.model import load_model
    from rtpose.pipeline import Pipeline, PipelineConfig
    from rtpose.recording import RecorderSink

    from rtpose.cli.report import format_summary

    src = _basler(",roi=320x240,pixel_format=BGR8,grab=all", unplug_after=8)
    recorder = RecorderSink(tmp_path / "unplug.h5")
    pipeline = Pipeline([src], load_model(analytic_model), sinks=[recorder], config=PipelineConfig(live=False))
    with pytest.raises(CameraDisconnectedError) as err:
        pipeline.run()
    assert err.value.frames == 8 and "disconnected after 8 frames" in str(err.value)
    summary = pipeline.summary
    assert summary.captured == summary.processed + summary.dropped == 8
    assert "stopped early by CameraDisconnectedError" in format_summary(summary, "")
    assert len(read_dlc_table(tmp_path / "unplug.h5")) == 8  # every processed frame is on disk, readable
    events = pd.read_csv(tmp_path / "unplug_events.csv")
    assert events["kind"].tolist()[-1] == "device" and "disconnected" in events["detail"].tolist()[-1]


def test_lost_camera_frames_are_drop_events_and_in_the_summary(pylon_emulation, analytic_model, tmp_path):
    from rtpose.cli.report import format_summary
    from rtpose.model import load_model
    from rtpose.pipeline import Pipeline, PipelineConfig
    from rtpose.recording import RecorderSink

    src = _basler(",roi=320x240,pixel_format=BGR8,grab=all", fail_buffers=3)
    recorder = RecorderSink(tmp_path / "gaps.h5")
    pipeline = Pipeline([src], load_model(analytic_model), sinks=[recorder],
                        config=PipelineConfig(live=False, max_frames=6))
    summary = pipeline.run()
    assert summary.lost_before_capture == 3 and summary.streams[0].lost_before_capture == 3
    text = format_summary(summary, "")
    assert "lost before capture 3" in text and "9 = processed 6 + dropped 0 + lost before capture 3" in text
    timing = pd.read_csv(tmp_path / "gaps_timing.csv")
    assert timing["camera_frame"].tolist() == [3, 4, 5, 6, 7, 8]
    assert (timing["camera_timestamp_ns"] == -1).all()  # the emulation has no timestamps
    events = pd.read_csv(tmp_path / "gaps_events.csv")
    drops = events[events["kind"] == "drop"]
    assert sum(int(d.split()[0]) for d in drops["detail"]) == 3
    assert all("camera's frame counter" in d for d in drops["detail"])


# -- any GenICam camera, through harvesters and the genicam package's simulated producer ----------


@pytest.fixture
def viky_producer() -> Path:
    """The simulated GenTL producer shipped in the genicam package (1.6+)."""
    genicam = _need("genicam", "genicam")
    _need("harvesters", "genicam")
    cti = Path(genicam.__file__).parent / "viky.cti"
    if not cti.is_file():
        pytest.skip(f"no simulated GenTL producer: {cti} is missing (genicam {getattr(genicam, '__version__', '?')} "
                    "does not ship viky.cti; the genicam extra asks for genicam>=1.6)")
    return cti


def test_genicam_camera_through_a_real_gentl_producer(viky_producer):
    src = open_source(f"genicam:{viky_producer},serial=1")  # viky offers three cameras: serials 0, 1, 2
    with src:
        assert src.frame_shape == (400, 400, 3) and src.pixel_format == "RGBa8"  # its colour format, converted
        assert src.fps == 20.0
        frames, ids, stamps = _read(src, 4)
    assert all(i >= 0 for i in ids) and all(b > a for a, b in zip(ids, ids[1:])), ids
    assert src.frames_lost == sum(b - a - 1 for a, b in zip(ids, ids[1:]))
    assert stamps == [-1] * 4  # viky has no timestamps (GenTL: "timestamps not supported by the device")
    assert frames.std() > 0  # real pictures, not an empty buffer
    mono = open_source(f"genicam:{viky_producer},pixel_format=Mono8,grab=all")
    with mono:
        grey, _, _ = _read(mono, 2)
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()


def test_genicam_camera_in_use_and_missing_are_typed_errors(viky_producer, tmp_path):
    with open_source(f"genicam:{viky_producer},index=2"):
        with pytest.raises(CameraInUseError, match="in use by another program"):
            open_source(f"genicam:{viky_producer},serial=2").open()  # the same camera, by its serial number
    with pytest.raises(CameraNotFoundError, match="no camera with serial number nope") as err:
        open_source(f"genicam:{viky_producer},serial=nope").open()
    assert "0 (Viky), 1 (Viky), 2 (Viky)" in str(err.value)
    with pytest.raises(CameraNotFoundError, match="there is no camera 5"):
        open_source(f"genicam:{viky_producer},index=5").open()
    with pytest.raises(ConfigError, match="the camera has no exposure_us setting"):
        open_source(f"genicam:{viky_producer},exposure_us=1000").open()
    with pytest.raises(ConfigError, match="does not exist"):
        open_source(f"genicam:{tmp_path / 'none.cti'}").open()
    bogus = tmp_path / "bogus.cti"
    bogus.write_bytes(b"not a shared library")
    with pytest.raises(ConfigError, match="cannot be loaded as a GenTL producer"):
        open_source(f"genicam:{bogus}").open()


class _UnpluggingHarvester:
    """A real harvesters.Harvester whose cameras fail after ``frames`` frames as an unplugged one does:
    fetching raises the producer's I/O error."""

    def __init__(self, frames: int):
        from harvesters.core import Harvester

        self.harvester, self.frames = Harvester(), frames

    def __getattr__(self, name):
        return getattr(self.harvester, name)

    def create(self, *args, **kwargs):
        return _UnpluggingAcquirer(self.harvester.create(*args, **kwargs), self.frames)


class _UnpluggingAcquirer:
    def __init__(self, acquirer, frames: int):
        self.acquirer, self.left = acquirer, frames

    def __getattr__(self, name):
        return getattr(self.acquirer, name)

    def __setattr__(self, name, value):
        if name in ("acquirer", "left"):
            object.__setattr__(self, name, value)
        else:
            setattr(self.acquirer, name, value)

    def try_fetch(self, **kwargs):
        if self.left == 0:
            from genicam import gentl

            raise gentl.IoException("GenTL exception: I/O error: device lost (ID: -1010)")
        buffer = self.acquirer.try_fetch(**kwargs)
        if buffer is not None:
            self.left -= 1
        return buffer


def test_genicam_camera_unplugged_mid_run(viky_producer, analytic_model, tmp_path):
    from rtpose.drivers.sources.genicam import GenicamSource
    from rtpose.model import load_model
    from rtpose.pipeline import Pipeline, PipelineConfig
    from rtpose.recording import RecorderSink

    src = GenicamSource(viky_producer, options=CameraOptions(grab="all"),
                        harvester_factory=lambda: _UnpluggingHarvester(frames=5))
    recorder = RecorderSink(tmp_path / "gone.h5")
    pipeline = Pipeline([src], load_model(analytic_model), sinks=[recorder], config=PipelineConfig(live=False))
    with pytest.raises(CameraDisconnectedError, match="stopped delivering after 5 frames"):
        pipeline.run()
    assert pipeline.summary.processed == 5 and len(read_dlc_table(tmp_path / "gone.h5")) == 5
    timing = pd.read_csv(tmp_path / "gone_timing.csv")
    assert (np.diff(timing["camera_frame"]) > 0).all()
    assert pd.read_csv(tmp_path / "gone_events.csv")["kind"].tolist()[-1] == "device"
    src.close()
    with open_source(f"genicam:{viky_producer}"):  # the producer was released: the camera opens again
        pass
