"""The live preview (rtpose run --preview): drawn on its own thread, never slowing inference.

There is no display here: a fake window stands in for OpenCV's, and blocks to play a window
that hangs (a remote X display, a busy desktop)."""

import threading

import numpy as np
import pytest

from rtpose.cli import main
from rtpose.drivers.sources.synthetic import SyntheticSource
from rtpose.model import OnnxPoseModel
from rtpose.pipeline import Pipeline, PipelineConfig
from rtpose.sinks.base import Sink
from rtpose.sinks.preview import PreviewSink, display_problem

N_FRAMES = 60
WAIT_S = 60  # a guard against a hang, never reached when the code is right


class HangingWindow:
    """Shows the first image, then blocks in show() until released."""

    def __init__(self):
        self.entered = threading.Event()
        self.release = threading.Event()
        self.images = []
        self.closed = False

    def __call__(self, title):
        self.title = title
        return self

    def show(self, image):
        self.images.append(image.copy())
        self.entered.set()
        assert self.release.wait(WAIT_S)
        return True

    def close(self):
        self.closed = True


class Inference(Sink):
    """Placed after the preview: waits until the window hangs, then notes every later frame inference
    emitted while the window was still hanging; releases it at the last frame."""

    name = "probe"

    def __init__(self, window):
        self.window = window
        self.while_hanging = 0
        self.seen = 0

    def write(self, batch):
        if self.seen == 0:
            assert self.window.entered.wait(WAIT_S)  # the preview thread is inside show() now
        self.seen += batch.n
        if not self.window.release.is_set():
            self.while_hanging += batch.n
        if self.seen == N_FRAMES:
            self.window.release.set()


def test_a_hanging_window_never_holds_up_inference(analytic_model):
    window = HangingWindow()
    preview = PreviewSink(window, pcutoff=0.5, trail=5)
    probe = Inference(window)
    source = SyntheticSource(width=320, height=240, fps=30.0, n_frames=N_FRAMES, seed=0)
    summary = Pipeline([source], OnnxPoseModel(analytic_model), sinks=[preview, probe],
                       config=PipelineConfig(live=False)).run()
    assert summary.processed == N_FRAMES
    # every frame went through inference while the window hung in show()
    assert probe.while_hanging == N_FRAMES
    stats = summary.sinks["preview"]
    assert stats["shown"] + stats["dropped"] == N_FRAMES  # each pose drawn or counted as dropped
    assert stats["dropped"] >= N_FRAMES - 2
    assert window.closed and window.title == f"rtpose preview: {source.name}"
    # the first image is frame 0 with its pose drawn on it
    raw = np.empty((240, 320, 3), np.uint8)
    SyntheticSource(width=320, height=240, fps=30.0, n_frames=1, seed=0).render(0, raw)
    first = window.images[0]
    assert first.shape == raw.shape and (first != raw).any()
    unchanged = (first == raw).all(axis=2)
    assert unchanged.mean() > 0.7  # the frame itself, with a few dots, a stamp and a legend on it


def test_no_window_is_explained():
    headless = "  GUI:                           NONE\n"
    gtk = "  GUI:                           GTK3\n"
    assert "opencv-python-headless" in display_problem({"DISPLAY": ":0"}, headless, "linux")
    assert "no display" in display_problem({}, gtk, "linux")
    assert display_problem({"DISPLAY": ":0"}, gtk, "linux") is None
    assert display_problem({}, gtk, "win32") is None


def test_run_preview_without_a_display_says_why_before_running(analytic_model, capsys):
    if display_problem() is None:
        pytest.skip("this machine can show windows (GUI OpenCV and a display); the test needs one that cannot")
    code = main(["run", "--source", "synthetic:320x240@30,frames=5", "--model", str(analytic_model), "--preview",
                 "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--preview:" in err and "rtpose render" in err
