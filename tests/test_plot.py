"""rtpose plot (and the demo figure that shares its panels)."""

import cv2
import numpy as np
import pandas as pd
import pytest

pytest.importorskip("matplotlib", reason="the figures need matplotlib (the plot extra: pip install 'rtpose[plot]')")

from rtpose.cli import main  # noqa: E402
from rtpose.recording import pose_frame  # noqa: E402
from rtpose.recording.recorder import RecordingPaths  # noqa: E402
from rtpose.viz.figures import dwell_s, reference_xy, speed_px_s  # noqa: E402

BODYPARTS = ("snout", "leftear", "rightear", "tailbase")


def test_position_speed_and_dwell():
    pose = np.array([[[0.0, 0, 0.9], [10, 0, 0.9]], [[3, 4, 0.9], [100, 100, 0.1]], [[0, 0, 0.1], [0, 0, 0.2]]])
    centre = reference_xy(pose, ("a", "b"), 0.6)
    assert np.allclose(centre[0], (5, 0)) and np.isnan(centre[1:]).all()  # only where every part is confident
    assert np.allclose(reference_xy(pose, ("a", "b"), 0.6, "b")[0], (10, 0))
    t = np.array([0.0, 0.5, 1.0])
    speed = speed_px_s(reference_xy(pose, ("a", "b"), 0.6, "a"), t)
    assert np.isnan(speed[0]) and speed[1] == pytest.approx(10.0) and np.isnan(speed[2])
    assert dwell_s(t).sum() == pytest.approx(1.5)


def _recording(tmp_path, n=90):
    t = np.arange(n)
    pose = np.zeros((n, 4, 3))
    pose[:, :, 0] = (160 + 80 * np.sin(t / 10))[:, None] + np.arange(4) * 5
    pose[:, :, 1] = (120 + 60 * np.cos(t / 10))[:, None]
    pose[:, :, 2] = np.linspace(0.2, 1.0, n)[:, None]
    paths = RecordingPaths.for_output(tmp_path / "session.h5")
    pose_frame(pose, "rtpose", BODYPARTS).to_hdf(paths.h5, key="df_with_missing", format="table")
    # frame times at 25 FPS: the figure's time axis must come from them, not from an assumed rate
    pd.DataFrame({"frame": t, "stream": 0, "t_frame_ns": 10**12 + t * 40_000_000}).to_csv(paths.timing_csv, index=False)
    video = tmp_path / "session.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (320, 240))
    writer.write(np.full((240, 320, 3), 90, np.uint8))
    writer.release()
    return paths, video


def test_plot_writes_png_and_svg(tmp_path, capsys):
    paths, video = _recording(tmp_path)
    assert main(["plot", str(paths.h5), "--video", str(video), "--svg"]) == 0
    png, svg = tmp_path / "session_plot.png", tmp_path / "session_plot.svg"
    image = cv2.imread(str(png))
    assert image is not None and image.shape[1] > 1000
    text = svg.read_text()
    for label in ("time (s)", "speed (px/s)", "occupancy (s per bin)", "likelihood", "3.6 s"):
        assert label in text, label  # 90 frames at the recorded 25 FPS span 3.56 s
    assert str(png) in capsys.readouterr().out
    assert main(["plot", str(paths.h5), "--bodypart", "tailbase", "--out", str(tmp_path / "tail.png")]) == 0
    assert main(["plot", str(paths.h5), "--bodypart", "nose"]) == 2
    assert "--bodypart nose" in capsys.readouterr().err
