"""rtpose render and the drawing it shares with the live preview."""

import cv2
import numpy as np
import pytest

from rtpose.cli import main
from rtpose.errors import ConfigError
from rtpose.recording import pose_frame
from rtpose.viz.colors import bodypart_bgr
from rtpose.viz.overlay import SKELETON_BGR, PoseOverlay, parse_skeleton

BODYPARTS = ("snout", "leftear", "rightear", "tailbase")


def _close(pixel, bgr, tol=40):
    return bool(np.all(np.abs(pixel.astype(int) - np.array(bgr)) <= tol))


def test_points_skeleton_trail_and_stamp_are_drawn():
    overlay = PoseOverlay(BODYPARTS, 320, 240, skeleton=parse_skeleton("snout-tailbase", BODYPARTS), pcutoff=0.6,
                          trail=5, legend=False)
    pose = np.array([[60.0, 120, 0.9], [100, 60, 0.3], [np.nan, np.nan, 0.0], [260, 120, 0.95]])
    for i in range(5):  # the snout walks right, 10 px a frame
        image = np.zeros((240, 320, 3), np.uint8)
        moved = pose.copy()
        moved[0, 0] = 20 + 10 * i
        overlay.draw(image, moved, frame_index=i, t_s=i / 30)
    assert _close(image[120, 60], bodypart_bgr(0), 0)  # confident: a filled dot in its colour
    assert not image[60, 100].any()  # unsure: hollow (its centre untouched) ...
    r = overlay.radius + 1
    assert any(_close(image[60 + dy, 100 + dx], bodypart_bgr(1), 70) for dx, dy in ((r, 0), (-r, 0), (0, r), (0, -r)))
    assert _close(image[120, 160], SKELETON_BGR, 30)  # the skeleton edge between snout and tail base
    trail = image[120, 25]  # where the snout was four frames ago: a fainter trail
    assert trail.any() and not _close(trail, bodypart_bgr(0), 0)
    assert image[2:12, 2:60].any()  # the stamp (white text on black)
    blank = np.zeros((240, 320, 3), np.uint8)
    PoseOverlay(BODYPARTS, 320, 240, legend=False).draw(blank, None, frame_index=7, t_s=None)
    assert blank[:12].any() and not blank[40:].any()  # a frame without a pose still gets its stamp


def test_multi_animal_poses_are_coloured_by_animal_and_the_legend_names_them():
    from rtpose.multianimal.layout import AnimalLayout

    layout = AnimalLayout(("mouse1", "mouse2"), ("snout", "tailbase"), ("lever",))
    skeleton = layout.animal_edges(parse_skeleton("snout-tailbase", layout.bodyparts))
    assert skeleton == ((0, 1), (2, 3))
    overlay = PoseOverlay(layout.flat_names(), 320, 240, skeleton=skeleton, trail=0, legend=True, layout=layout)
    pose = np.array([[40.0, 60, 0.9], [120, 60, 0.9], [40, 130, 0.9], [120, 130, 0.9], [280, 100, 0.9]])
    image = np.zeros((240, 320, 3), np.uint8)
    overlay.draw(image, pose, frame_index=0, t_s=None)
    assert _close(image[60, 40], bodypart_bgr(0), 0) and _close(image[60, 120], bodypart_bgr(0), 0)  # mouse1
    assert _close(image[130, 40], bodypart_bgr(1), 0) and _close(image[130, 120], bodypart_bgr(1), 0)  # mouse2
    assert _close(image[100, 280], bodypart_bgr(2), 0)  # the unique part: a colour of its own
    assert _close(image[60, 80], SKELETON_BGR, 30) and not image[95, 80].any()  # no edge between animals
    assert [name for name, _ in overlay._legend_items] == ["mouse1", "mouse2", "lever"]


def test_skeleton_specs():
    assert parse_skeleton(None, BODYPARTS) == ()
    assert parse_skeleton("snout-leftear, snout-rightear", BODYPARTS) == ((0, 1), (0, 2))
    assert parse_skeleton([["leftear", "tailbase"]], BODYPARTS) == ((1, 3),)
    assert parse_skeleton('[["rightear", "tailbase"]]', BODYPARTS) == ((2, 3),)
    with pytest.raises(ConfigError, match="unknown bodypart 'nose'"):
        parse_skeleton("nose-tailbase", BODYPARTS)


def _video(path, n, size=(320, 240)):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, size)
    for i in range(n):
        writer.write(np.full((size[1], size[0], 3), 60 + i, np.uint8))
    writer.release()


def _count(path):
    capture = cv2.VideoCapture(str(path))
    n = 0
    while capture.grab():
        n += 1
    capture.release()
    return n


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_render_writes_every_frame(tmp_path, capsys, suffix):
    n = 45
    video = tmp_path / "clip.avi"
    _video(video, n)
    pose = np.zeros((n, 4, 3))
    pose[:, :, 0] = np.linspace(40, 280, n)[:, None]
    pose[:, :, 1] = [[60, 100, 140, 180]]
    pose[:, :, 2] = 0.9
    keep = np.arange(n) != 20  # frame 20 has no pose (a live run dropped it)
    poses = tmp_path / "clip.h5"
    pose_frame(pose[keep], "rtpose", BODYPARTS, np.arange(n)[keep]).to_hdf(poses, key="df_with_missing",
                                                                          format="table")
    out = tmp_path / f"labelled{suffix}"
    assert main(["render", str(video), str(poses), "--out", str(out), "--skeleton", "snout-tailbase"]) == 0
    assert _count(out) == n
    printed = capsys.readouterr().out
    assert f"{n} frames ({n - 1} with a pose)" in printed and "x real time" in printed
    capture = cv2.VideoCapture(str(out))
    for i in range(11):
        ok, frame = capture.read()
    capture.release()
    x = int(round(pose[10, 0, 0]))
    assert _close(frame[60, x], bodypart_bgr(0), 60)  # frame 10's snout, in its colour (lossy codecs)
    assert main(["render", str(video), str(poses), "--out", str(out)]) == 2  # never replaced unasked
    assert "already exists" in capsys.readouterr().err


def test_a_live_sessions_recording_renders_with_the_models_own_skeleton(analytic_model, tmp_path, capsys):
    """run --record --record-video, then render the raw video with the poses: the skeleton comes from the
    model the recording's settings name (its metadata's extra.skeleton)."""
    import onnx

    model = onnx.load(str(analytic_model))
    onnx.helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props},
                                        "rtpose.extra.skeleton": '[["head", "body"], ["body", "tail"]]'})
    with_skeleton = tmp_path / "skeleton.onnx"
    onnx.save(model, str(with_skeleton))
    assert main(["run", "--source", "synthetic:320x240@30,frames=40", "--model", str(with_skeleton), "--quiet",
                 "--record", str(tmp_path / "rec.h5"), "--record-video", str(tmp_path / "rec.avi")]) == 0
    capsys.readouterr()
    assert main(["render", str(tmp_path / "rec.avi"), str(tmp_path / "rec.h5")]) == 0
    out = capsys.readouterr().out
    assert "skeleton 2 edges" in out
    assert _count(tmp_path / "rec_labelled.mp4") == _count(tmp_path / "rec.avi") == 40
