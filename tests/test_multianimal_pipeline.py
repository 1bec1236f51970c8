"""Several animals through the real pipeline: the analytic multi-animal model on the synthetic source's
mice (known identities, crossings, occlusions) -> DeepLabCut's assembly -> identity tracking -> Kalman ->
rules -> recording, as `rtpose run` does it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytic_animals import build_analytic_animals_model
from rtpose.cli import main
from rtpose.drivers.sources.synthetic import SyntheticSource
from rtpose.model import load_model
from rtpose.multianimal.metrics import clear_mot
from rtpose.pipeline import Pipeline, PipelineConfig
from rtpose.recording import RecorderSink
from rtpose.recording.reader import read_recording

#: A correspondence between a slot and an animal: mean keypoint distance below this (the mice are ~90 px long).
MATCH_PX = 20.0


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("animal-models")
    return {n: build_analytic_animals_model(folder / f"mice{n}.onnx", n) for n in (2, 3)}


def _run(model_path, n_animals: int, frames: int, out, batch: int = 1, seed: int = 0):
    src = SyntheticSource(640, 480, animals=n_animals, seed=seed, n_frames=frames)
    pipeline = Pipeline([src], load_model(model_path), sinks=[RecorderSink(out)],
                        config=PipelineConfig(live=False, batch_size=batch))
    summary = pipeline.run()
    return src, summary, read_recording(out)


def _score(src, rec, frames):
    truth = src.animal_truth_many(range(frames))  # (F, N, 3, 2)
    visible = src.visible_many(range(frames))  # (F, N, 3)
    gt = np.where(visible[..., None], truth, np.nan)
    hyp = rec.layout.animals(rec.pose)
    return clear_mot(gt, hyp, rec.track_id, MATCH_PX, gt_present=visible.any(-1)), truth, hyp


def test_two_mice_keep_their_identities_and_poses(models, tmp_path):
    frames = 240
    src, summary, rec = _run(models[2], 2, frames, tmp_path / "two.h5")
    assert rec.layout.individuals == ("mouse1", "mouse2") and rec.bodyparts[0] == "mouse1.head"
    mot, truth, hyp = _score(src, rec, frames)
    overlap = np.flatnonzero((~src.visible_many(range(frames))).any(axis=(1, 2)))
    assert overlap[0] < 60 and (overlap >= 150).any()  # the mice meet twice (frames ~32-48 and ~150-166)
    # Through the first meeting each mouse keeps its slot and track id; at the second the analytic model
    # misses one mouse beside the other for a few frames and they swap and swap back (a regression check
    # of this deterministic run: 2 identity switches, docs/multianimal-tracking.md)
    assert all(f >= 150 for f in mot.switch_frames) and mot.id_switches <= 2, mot.switch_frames
    assert (rec.track_id[:150] == rec.track_id[0]).all() and (rec.track_id[0] >= 0).all()
    assert mot.matches >= 0.9 * mot.objects, mot  # every mouse found on nearly every frame (occlusions aside)
    assert mot.motp_px < 0.5, mot
    assert summary.animals["frames"] == frames and 1.8 <= summary.animals["animals_per_frame"] <= 2.0


def test_three_crossing_mice_are_tracked_through_their_meetings(models, tmp_path):
    """Paths made to cross (the bodies overlap side by side, one drawn over the other): the tracker
    carries identities through most meetings; the switches are counted (CLEAR-MOT) and bounded."""
    frames = 450  # 15 s: every pair meets at least once
    src, summary, rec = _run(models[3], 3, frames, tmp_path / "three.h5", batch=4)
    mot, _, _ = _score(src, rec, frames)
    overlaps = (~src.visible_many(range(frames))).any(axis=(1, 2)).sum()
    assert overlaps > 100  # the sequence really has occlusions: a third of its frames
    # where the analytic model misses animals beside each other identities are lost and found again:
    # 16 switches in this deterministic run (a regression bound, not a goal; the tracker alone on
    # simulated detections: docs/multianimal-tracking.md)
    assert mot.id_switches <= 16, (mot.switch_frames, mot)
    assert mot.matches >= 0.85 * mot.objects and mot.motp_px < 1.0, mot


def test_batches_give_exactly_the_poses_of_single_frames(models, tmp_path):
    _, _, one = _run(models[2], 2, 40, tmp_path / "b1.h5", batch=1)
    _, _, four = _run(models[2], 2, 40, tmp_path / "b4.h5", batch=4)
    np.testing.assert_array_equal(one.pose, four.pose)
    np.testing.assert_array_equal(one.track_id, four.track_id)


def test_rtpose_run_with_a_rule_per_animal(models, tmp_path, capsys):
    """`rtpose run` on two synthetic mice with a zone rule for any animal: each firing names the slot of
    the mouse whose head is in the zone, in the events table the recording keeps."""
    rules = tmp_path / "rules.yaml"
    rules.write_text("""
version: 1
defaults: {pose: measured, min_likelihood: 0.2}  # the analytic maps peak at ~0.3 once smoothed
rules:
  - name: left_half
    enter: {zone: {bodypart: head, rectangle: [[0, 0], [320, 480]]}}
    stay: {zone: {bodypart: head, rectangle: [[0, 0], [330, 480]]}}
    actions: [event]
""")
    out = tmp_path / "run.h5"
    code = main(["run", "--model", str(models[2]), "--source", "synthetic:640x480,animals=2,frames=200",
                 "--lossless", "--rules", str(rules), "--record", str(out), "--quiet"])
    assert code == 0
    rec = read_recording(out)
    events = pd.read_csv(tmp_path / "run_events.csv")
    fired = events[(events["kind"] == "trigger") & (events["detail"] == "on")]
    assert len(fired) >= 2 and set(fired["animal"]) <= {0, 1}
    heads = rec.layout.animals(rec.pose)[:, :, 0, 0]  # (F, A) x of each slot's head
    for frame, slot in zip(fired["frame"], fired["animal"]):
        row = int(np.flatnonzero(rec.frame == frame)[0])
        assert heads[row, slot] < 320  # the slot that fired has its head in the zone


def test_rtpose_analyze_writes_deeplabcuts_multi_animal_table(models, tmp_path, capsys):
    """Offline: a video of two mice analysed into DeepLabCut's multi-animal .h5 (individuals level)."""
    import cv2

    src = SyntheticSource(640, 480, animals=2, seed=2, n_frames=30)
    video = tmp_path / "two_mice.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"FFV1"), 30.0, (640, 480))  # lossless
    frame = np.zeros((480, 640, 3), np.uint8)
    for i in range(30):
        src.render(i, frame)
        writer.write(frame)
    writer.release()
    assert main(["analyze", str(video), "--model", str(models[2]), "--out-dir", str(tmp_path / "out"),
                 "--quiet"]) == 0
    table = pd.read_hdf(tmp_path / "out" / "two_mice.rtpose.h5")
    assert table.columns.names == ["scorer", "individuals", "bodyparts", "coords"] and len(table) == 30
    assert list(table.columns.get_level_values("individuals").unique()) == ["mouse1", "mouse2"]
    rec = read_recording(tmp_path / "out" / "two_mice.rtpose.h5")
    truth = src.animal_truth_many(range(30))
    found = rec.layout.animals(rec.pose)[..., :2]
    best = np.minimum(np.nanmean(np.hypot(*(found - truth).transpose(3, 0, 1, 2)), axis=(0, 2)),
                      np.nanmean(np.hypot(*(found - truth[:, ::-1]).transpose(3, 0, 1, 2)), axis=(0, 2)))
    assert (best < 1.0).all(), best  # each slot is one mouse, to within a pixel on average
