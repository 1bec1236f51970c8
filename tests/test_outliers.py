"""rtpose outliers: frames where the model is unsure or jumps, written in DeepLabCut's labeled-data layout.

The layout is checked against DeepLabCut's own CollectedData file of the openfield project
(tests/data/openfield/labeled/CollectedData_Pranav.csv) and against what DeepLabCut's readers
expect: ``pd.read_hdf(path)`` with the single key ``df_with_missing``, the three-level row index
``("labeled-data", <video>, <image>)`` its ``guarantee_multiindex_rows`` makes, the column levels
``scorer, bodyparts, coords`` with ``x, y`` only, float64."""

import re

import cv2
import numpy as np
import pandas as pd
import pytest

from rtpose.cli import main
from rtpose.labelling import image_name, pick_outliers, read_collected_data
from rtpose.recording import pose_frame

BODYPARTS = ("snout", "leftear", "rightear", "tailbase")
N_FRAMES = 64


def _smooth_poses(n=N_FRAMES):
    t = np.arange(n)
    pose = np.zeros((n, len(BODYPARTS), 3))
    for k in range(len(BODYPARTS)):
        pose[:, k, 0] = 200 + 60 * np.sin(t / 15) + 10 * k
        pose[:, k, 1] = 240 + 40 * np.cos(t / 15) + 5 * k
    pose[..., 2] = 0.95
    return pose


def test_unsure_and_jumping_frames_are_picked_and_spread_out():
    pose = _smooth_poses(300)
    pose[40, 1, 2] = 0.05  # a very unsure ear
    pose[41, 1, 2] = 0.3  # its neighbour, less unsure: the spread keeps only one of the two
    pose[150, 3, :2] += (80, 0)  # the tail base jumps away for one frame, confidently
    pose[250, 0, 2] = 0.5
    picks = pick_outliers(pose, np.arange(300), 3, BODYPARTS)
    by_frame = {p.frame: p for p in picks}
    assert sorted(by_frame) == [40, 150, 250]
    assert by_frame[40].reason == "unsure" and by_frame[40].bodyparts == ("leftear",)
    assert by_frame[150].reason == "jump" and by_frame[150].bodyparts == ("tailbase",)
    assert by_frame[150].jump_ratio > 5
    assert by_frame[40].score > by_frame[250].score
    # more picks than outliers: neighbours of the picks are near duplicates, left out unless asked for
    assert {p.frame for p in pick_outliers(pose, np.arange(300), 10, BODYPARTS)} == {40, 150, 250}
    assert ({p.frame for p in pick_outliers(pose, np.arange(300), 10, BODYPARTS, min_gap=1)}
            == {40, 41, 150, 151, 250})  # 151: the jump back
    # a quiet, confident session has nothing to label
    assert pick_outliers(_smooth_poses(300), np.arange(300), 5, BODYPARTS) == []


def _video_and_poses(tmp_path):
    video = tmp_path / "m9s1.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (640, 480))
    frames = []
    for i in range(N_FRAMES):
        frame = np.full((480, 640, 3), 40, np.uint8)
        cv2.putText(frame, str(i), (50, 200), cv2.FONT_HERSHEY_SIMPLEX, 4, (255, 255, 255), 8)
        writer.write(frame)
        frames.append(frame)
    writer.release()
    pose = _smooth_poses()
    pose[10, 0, 2] = 0.1
    pose[30, 2, 2] = 0.2
    pose[50, 3, 2] = 0.4
    poses = tmp_path / "m9s1.rtpose.h5"
    pose_frame(pose, "rtpose_model", BODYPARTS).to_hdf(poses, key="df_with_missing", format="table")
    return video, poses, pose


def _reference(openfield_dir):
    """DeepLabCut's own CollectedData of the openfield project, rows as DeepLabCut's readers index them."""
    return read_collected_data(openfield_dir / "labeled" / "CollectedData_Pranav.csv")


def test_the_written_folder_has_deeplabcuts_layout(tmp_path, openfield_dir, capsys):
    video, poses, pose = _video_and_poses(tmp_path)
    project = tmp_path / "project"
    assert main(["outliers", str(poses), str(video), "--n", "3", "--out", str(project), "--scorer", "Pranav"]) == 0
    folder = project / "labeled-data" / "m9s1"
    h5, csv = folder / "CollectedData_Pranav.h5", folder / "CollectedData_Pranav.csv"
    ours = pd.read_hdf(h5)  # as DeepLabCut reads it: no key (the file holds exactly one)
    with pd.HDFStore(h5, mode="r") as store:
        assert store.keys() == ["/df_with_missing"]
    ref = _reference(openfield_dir)

    # columns: DeepLabCut's levels, names and order; x and y only
    assert ours.columns.names == ref.columns.names == ["scorer", "bodyparts", "coords"]
    assert list(ours.columns) == list(ref.columns)
    assert all(dtype == np.float64 for dtype in ours.dtypes)
    # rows: the three-level index of DeepLabCut's reference, with this video's folder and its image names
    assert ours.index.nlevels == ref.index.nlevels == 3
    assert set(ref.index.get_level_values(0)) == set(ours.index.get_level_values(0)) == {"labeled-data"}
    assert set(ours.index.get_level_values(1)) == {"m9s1"}
    names = list(ours.index.get_level_values(2))
    assert all(re.fullmatch(r"img\d{2}\.png", n) for n in names)  # 64 frames: 2 digits, as extract_frames
    assert all(re.fullmatch(r"img\d{4}\.png", n) for n in ref.index.get_level_values(2))  # 4 digits there
    assert names == sorted(names) == ["img10.png", "img30.png", "img50.png"]
    for name in names:  # each image is the video frame of that index, as a PNG beside the table
        image = cv2.imread(str(folder / name))
        assert image.shape == (480, 640, 3)
    # values: the predictions of those frames
    for name, row in zip(names, ours.to_numpy()):
        assert np.array_equal(row, pose[int(name[3:5]), :, :2].ravel())
    # the CSV is the same table, readable like DeepLabCut's own (both its layouts)
    assert csv.read_text().splitlines()[0].startswith("scorer,,,Pranav")
    pd.testing.assert_frame_equal(read_collected_data(csv), ours)
    out = capsys.readouterr().out
    assert "wrote 3 frames" in out and "img10.png" in out


def test_existing_labels_are_kept_and_new_frames_added(tmp_path, capsys):
    video, poses, _ = _video_and_poses(tmp_path)
    project = tmp_path / "project"
    args = ["outliers", str(poses), str(video), "--out", str(project), "--scorer", "me"]
    assert main(args + ["--n", "1"]) == 0
    h5 = project / "labeled-data" / "m9s1" / "CollectedData_me.h5"
    first = pd.read_hdf(h5)
    corrected = first.copy()
    corrected.iloc[0, :2] = (11.0, 22.0)  # a human moved the snout
    corrected.to_hdf(h5, key="df_with_missing", mode="w")
    assert main(args + ["--n", "3"]) == 0
    after = pd.read_hdf(h5)
    assert len(after) == 3
    assert tuple(after.loc[first.index[0]].iloc[:2]) == (11.0, 22.0)
    assert "already labelled, kept" in capsys.readouterr().out
    # another scorer's labels in the folder are refused, not mixed
    other = ["outliers", str(poses), str(video), "--out", str(project), "--scorer", "me"]
    pd.read_hdf(h5).rename(columns={"me": "someone"}, level=0).to_hdf(h5, key="df_with_missing", mode="w")
    assert main(other) == 2
    assert "labels of scorer 'someone'" in capsys.readouterr().err


def test_a_deeplabcut_config_gives_scorer_bodypart_order_and_a_hint(tmp_path, capsys):
    video, poses, pose = _video_and_poses(tmp_path)
    project = tmp_path / "proj"
    project.mkdir()
    order = ["tailbase", "snout", "leftear", "rightear"]
    (project / "config.yaml").write_text("scorer: Pranav\nmultianimalproject: false\nbodyparts:\n"
                                         + "".join(f"- {b}\n" for b in order) + "video_sets: {}\n")
    assert main(["outliers", str(poses), str(video), "--config", str(project / "config.yaml"), "--n", "2"]) == 0
    table = pd.read_hdf(project / "labeled-data" / "m9s1" / "CollectedData_Pranav.h5")
    assert list(dict.fromkeys(table.columns.get_level_values("bodyparts"))) == order
    row = table.index.get_loc(("labeled-data", "m9s1", "img10.png"))
    assert np.array_equal(table.to_numpy()[row, :2], pose[10, 3, :2])  # the config's first part: tailbase
    assert "deeplabcut.add_new_videos" in capsys.readouterr().out
    (project / "config.yaml").write_text("scorer: Pranav\nbodyparts: [nose, tail]\n")
    assert main(["outliers", str(poses), str(video), "--config", str(project / "config.yaml")]) == 2
    assert "use the model trained on this project" in capsys.readouterr().err


@pytest.mark.parametrize("frames, index, name", [(2330, 7, "img0007.png"), (64, 7, "img07.png"),
                                                 (100, 99, "img99.png"), (10, 3, "img3.png")])
def test_image_names_follow_extract_frames(frames, index, name):
    assert image_name(index, frames) == name
