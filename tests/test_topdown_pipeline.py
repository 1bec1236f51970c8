"""Top-down multi-animal models through the real runtime and pipeline: the analytic two-stage file
(tests/analytic_topdown.py: a detector stage and a pose stage in one ONNX file) on the synthetic source's
mice -> detector per frame -> DeepLabCut's box selection and crops -> all crops through the pose stage in
one call -> decode -> identity tracking -> Kalman -> rules -> recording, as `rtpose run` / `rtpose analyze`
do it."""

from __future__ import annotations

import numpy as np
import onnx
import pandas as pd
import pytest
from onnx import helper

from analytic_model import build_analytic_model
from analytic_topdown import CROP_SIZE, build_analytic_topdown_model, topdown_metadata
from rtpose.cli import main
from rtpose.drivers.sources.synthetic import SyntheticSource
from rtpose.errors import ModelError
from rtpose.model import OnnxPoseModel, load_model
from rtpose.multianimal.metrics import clear_mot
from rtpose.multianimal.topdown_model import TopDownModel, is_topdown_file, split_stages
from rtpose.pipeline import Pipeline, PipelineConfig
from rtpose.recording import RecorderSink
from rtpose.recording.reader import read_recording

#: A slot matches an animal when their mean keypoint distance is below this (the mice are ~90 px long).
MATCH_PX = 20.0


@pytest.fixture(scope="module")
def td_model(tmp_path_factory):
    return build_analytic_topdown_model(tmp_path_factory.mktemp("topdown") / "mice_td.onnx", 2)


def _frames(src, indices):
    out = np.zeros((len(indices), src.height, src.width, 3), np.uint8)
    for row, i in enumerate(indices):
        src.render(i, out[row])
    return out


def test_the_file_splits_into_two_disjoint_stages(td_model):
    proto = onnx.load(str(td_model))
    stages = split_stages(proto, ["image", "crops"])
    det, pose = stages["image"].graph, stages["crops"].graph
    assert [i.name for i in det.input] == ["image"] and [o.name for o in det.output] == ["boxes", "box_scores"]
    assert [i.name for i in pose.input] == ["crops"] and [o.name for o in pose.output] == ["scoremap", "locref"]
    assert all(n.name.startswith("detector/") for n in det.node) and all(n.name.startswith("pose/") for n in pose.node)
    assert len(det.node) + len(pose.node) == len(proto.graph.node)
    det_weights, pose_weights = {t.name for t in det.initializer}, {t.name for t in pose.initializer}
    assert not det_weights & pose_weights and det_weights | pose_weights == {t.name for t in proto.graph.initializer}
    for stage in stages.values():
        onnx.checker.check_model(stage, full_check=True)


def test_a_node_fed_by_both_stages_is_refused(td_model):
    proto = onnx.load(str(td_model))
    proto.graph.node.append(helper.make_node("Add", ["detector/x", "pose/x_nchw"], ["mixed"], name="mixed"))
    with pytest.raises(ModelError, match="disjoint"):
        split_stages(proto, ["image", "crops"])


def test_load_model_tells_top_down_files_apart(td_model, tmp_path):
    single = build_analytic_model(tmp_path / "single.onnx")
    assert is_topdown_file(td_model) and not is_topdown_file(single)
    for junk in (b"", b"not an onnx file at all \xff\xff", td_model.read_bytes()[:1000]):  # empty, garbage, truncated
        (tmp_path / "junk.onnx").write_bytes(junk)
        assert not is_topdown_file(tmp_path / "junk.onnx")
        with pytest.raises(ModelError):
            load_model(tmp_path / "junk.onnx")
    assert isinstance(load_model(td_model), TopDownModel) and isinstance(load_model(single), OnnxPoseModel)
    with pytest.raises(ModelError, match="top-down"):
        OnnxPoseModel(td_model)
    m = load_model(td_model)
    assert m.metadata.multianimal and m.metadata.topdown_model and m.metadata.topdown.crop_width == CROP_SIZE
    assert m.metadata.layout.individuals == ("mouse1", "mouse2") and m.map_shape == (CROP_SIZE // 8, CROP_SIZE // 8)
    assert m.provider == "CPUExecutionProvider" and m.execution()["topdown"] is True


def test_metadata_round_trip_and_refusals():
    from rtpose.metadata import ModelMetadata
    from rtpose.multianimal.layout import AnimalLayout

    meta = topdown_metadata(3, min_bbox_score=0.5, margin=7)
    back = ModelMetadata.from_props(meta.to_props())
    assert back == meta and back.topdown.margin == 7 and back.assembly is None and back.paf_output is None
    with pytest.raises(ModelError, match="unique body parts"):
        ModelMetadata(bodyparts=("a",), stride=8.0, layout=AnimalLayout(("m1",), ("a",), ("lever",)),
                      unique_scoremap_output="u", unique_locref_output="ul", topdown=meta.topdown)


def test_runtime_finds_both_mice_where_they_are_apart(td_model):
    src = SyntheticSource(640, 480, animals=2, seed=0, n_frames=30)
    frames = list(range(0, 30, 3))  # the mice are apart here (they first meet at frame ~32)
    found = load_model(td_model).infer_animals(_frames(src, frames))
    for i, animals in zip(frames, found):
        truth = src.animal_truth(i)  # (2, 3, 2)
        assert animals.shape == (2, 3, 3)
        err = [min(np.abs(a[:, :2] - t).max() for t in truth) for a in animals]
        assert max(err) < 0.5, (i, animals, truth)  # each crop gives one mouse to a fraction of a pixel
        assert np.linalg.norm(animals[0, 1, :2] - animals[1, 1, :2]) > 20  # two different mice


def _run(model_path, frames: int, out, batch: int = 1, seed: int = 0):
    src = SyntheticSource(640, 480, animals=2, seed=seed, n_frames=frames)
    pipeline = Pipeline([src], load_model(model_path), sinks=[RecorderSink(out)],
                        config=PipelineConfig(live=False, batch_size=batch))
    summary = pipeline.run()
    return src, summary, read_recording(out)


def test_two_mice_through_the_pipeline_keep_identities_and_poses(td_model, tmp_path):
    frames = 200
    src, summary, rec = _run(td_model, frames, tmp_path / "td.h5", batch=4)
    assert rec.layout.individuals == ("mouse1", "mouse2") and rec.bodyparts[0] == "mouse1.head"
    truth = src.animal_truth_many(range(frames))
    visible = src.visible_many(range(frames))
    gt = np.where(visible[..., None], truth, np.nan)
    mot = clear_mot(gt, rec.layout.animals(rec.pose), rec.track_id, MATCH_PX, gt_present=visible.any(-1))
    # identities kept through the first meeting (frames ~32-46); at the second (~150-163) a crop around one
    # mouse holds the other's head too, and the analytic pose stage may take it: switches only there
    assert (rec.track_id[:150] == rec.track_id[0]).all() and (rec.track_id[0] >= 0).all()
    assert all(f >= 150 for f in mot.switch_frames) and mot.id_switches <= 2, mot.switch_frames
    assert mot.matches >= 0.9 * mot.objects and mot.motp_px < 0.5, mot
    animals = summary.animals
    assert animals["frames"] == frames and 1.8 <= animals["animals_per_frame"] <= 2.0
    for cost in ("detector", "crop", "pose", "decode", "tracking"):
        assert animals[f"{cost}_ms_per_frame"] > 0
    assert animals["crops_per_frame"] == animals["animals_per_frame"]


def test_batches_give_exactly_the_poses_of_single_frames(td_model, tmp_path):
    _, _, one = _run(td_model, 24, tmp_path / "b1.h5", batch=1)
    _, _, four = _run(td_model, 24, tmp_path / "b4.h5", batch=4)
    np.testing.assert_array_equal(one.pose, four.pose)
    np.testing.assert_array_equal(one.track_id, four.track_id)


def test_rtpose_run_and_analyze_with_a_top_down_model(td_model, tmp_path, capsys):
    """`rtpose run` on the synthetic mice, and `rtpose analyze` of a video into DeepLabCut's multi-animal .h5."""
    import cv2

    out = tmp_path / "run.h5"
    assert main(["run", "--model", str(td_model), "--source", "synthetic:640x480,animals=2,frames=30",
                 "--lossless", "--record", str(out), "--quiet", "--threads", "auto"]) == 0
    rec = read_recording(out)
    assert rec.pose.shape == (30, 6, 3) and np.isfinite(rec.pose).all()
    printed = capsys.readouterr().out
    assert "animals: 2.00 per frame; ms per frame: tracking" in printed and "detector" in printed and "pose" in printed

    src = SyntheticSource(640, 480, animals=2, seed=2, n_frames=20)
    video = tmp_path / "two_mice.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"FFV1"), 30.0, (640, 480))  # lossless
    for frame in _frames(src, range(20)):
        writer.write(frame)
    writer.release()
    assert main(["analyze", str(video), "--model", str(td_model), "--out-dir", str(tmp_path / "out"), "--quiet"]) == 0
    table = pd.read_hdf(tmp_path / "out" / "two_mice.rtpose.h5")
    assert table.columns.names == ["scorer", "individuals", "bodyparts", "coords"] and len(table) == 20
    assert list(table.columns.get_level_values("individuals").unique()) == ["mouse1", "mouse2"]
    rec = read_recording(tmp_path / "out" / "two_mice.rtpose.h5")
    truth = src.animal_truth_many(range(20))
    found = rec.layout.animals(rec.pose)[..., :2]
    best = np.minimum(np.nanmean(np.hypot(*(found - truth).transpose(3, 0, 1, 2)), axis=(0, 2)),
                      np.nanmean(np.hypot(*(found - truth[:, ::-1]).transpose(3, 0, 1, 2)), axis=(0, 2)))
    assert (best < 1.0).all(), best  # each slot is one mouse, to within a pixel on average


def test_rtpose_info_describes_both_stages(td_model, capsys):
    assert main(["info", str(td_model)]) == 0
    printed = capsys.readouterr().out
    assert "multi-animal, top-down: 2 individuals" in printed and "crops 112x112" in printed
    for name in ("image:", "crops:", "boxes:", "box_scores:", "scoremap:", "locref:"):
        assert name in printed


def test_frames_without_animals_give_empty_slots_and_no_pose_call(td_model):
    """A frame where the detector finds nothing: NaN slots; a batch without any box skips the pose stage."""
    from rtpose.multianimal.topdown_model import TopDownStep
    from rtpose.results import PoseBatch

    model = load_model(td_model)
    src = SyntheticSource(640, 480, animals=2, seed=0, n_frames=5)
    model.prepare(2, 480, 640)
    ticks = iter(range(0, 10**9, 1000))
    step = TopDownStep(model, 1, 2, lambda: next(ticks))
    batch = PoseBatch(2, 6, 2)
    blank = np.full((480, 640, 3), 200, np.uint8)
    model.load_frame(0, _frames(src, [0])[0])
    model.load_frame(1, blank)
    batch.t_frame_ns[:2] = (0, 33_000_000)
    step.infer(batch, 2)
    step.decode(batch, 2)
    assert list(model.n_boxes[:2]) == [2, 0]
    assert np.isfinite(batch.pose[0]).all() and np.isnan(batch.pose[1]).all()
    step.track(batch, 2, lambda *_: None)
    assert (batch.track_id[0] >= 0).all() and (batch.track_id[1] == batch.track_id[0]).all()  # kept while unseen
    model.load_frame(0, blank)
    step.infer(batch, 1)
    step.decode(batch, 1)
    assert model.n_boxes[0] == 0 and np.isnan(batch.pose[0]).all()
    assert step.crops == 2  # only the first frame's two crops ever went through the pose stage


def test_split_keeps_what_only_sub_graphs_read(tmp_path):
    """torchvision's detectors export `If` nodes whose branches read values of the enclosing graph by name (no
    node input says so): the producers of those values must stay in the stage."""
    import onnxruntime as ort
    from onnx import TensorProto

    f = TensorProto.FLOAT
    then_g = helper.make_graph([helper.make_node("Identity", ["detector/c"], ["then_out"])], "then", [],
                               [helper.make_tensor_value_info("then_out", f, [1])])
    else_g = helper.make_graph([helper.make_node("Identity", ["detector/total1"], ["else_out"])], "else", [],
                               [helper.make_tensor_value_info("else_out", f, [1])])
    nodes = [
        helper.make_node("Constant", [], ["detector/c"], value=helper.make_tensor("c", f, [1], [7.0]),
                         name="detector/const"),  # read only inside the `then` branch
        helper.make_node("ReduceSum", ["image"], ["detector/total"], keepdims=0, name="detector/sum"),
        helper.make_node("Reshape", ["detector/total", "detector/one"], ["detector/total1"], name="detector/r"),
        helper.make_node("Greater", ["detector/total1", "detector/zero"], ["detector/cond1"], name="detector/gt"),
        helper.make_node("Squeeze", ["detector/cond1"], ["detector/cond"], name="detector/sq"),
        helper.make_node("If", ["detector/cond"], ["boxes"], then_branch=then_g, else_branch=else_g, name="detector/if"),
        helper.make_node("Relu", ["crops"], ["scoremap"], name="pose/relu"),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("image", f, [2]), helper.make_tensor_value_info("crops", f, [3])],
        [helper.make_tensor_value_info("boxes", f, None), helper.make_tensor_value_info("scoremap", f, [3])],
        initializer=[onnx.numpy_helper.from_array(np.array([1], np.int64), "detector/one"),
                     onnx.numpy_helper.from_array(np.array([0.0], np.float32), "detector/zero")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    stages = split_stages(model, ["image", "crops"])
    assert [n.name for n in stages["image"].graph.node] == [n.name for n in nodes[:6]]
    det = ort.InferenceSession(stages["image"].SerializeToString(), providers=["CPUExecutionProvider"])
    assert det.run(["boxes"], {"image": np.array([1.0, 2.0], np.float32)})[0].tolist() == [7.0]
    assert det.run(["boxes"], {"image": np.array([-1.0, -2.0], np.float32)})[0].tolist() == [-3.0]


def _run_framed(model_path, out, framing, frames: int = 40):
    src = SyntheticSource(640, 480, animals=2, seed=0, n_frames=frames)
    Pipeline([src], load_model(model_path), sinks=[RecorderSink(out)],
             config=PipelineConfig(live=False, batch_size=2, framing=framing)).run()
    return src, read_recording(out)


def test_crop_with_a_top_down_model_reports_full_frame_poses(td_model, tmp_path):
    """--crop: the model sees a part of the frame (the detector and the crops work on it); poses come back in
    full-frame pixels, the same as the whole frame's. (--resize takes the same way back, FrameLoader.to_full_frame;
    the analytic detector finds spots of one size only, so it cannot show it.)"""
    from rtpose.framing import CropBox, Framing

    src, full = _run_framed(td_model, tmp_path / "full.h5", Framing())
    # a crop by whole cells of the analytic detector's 8-px grid: it sees the same cells, shifted
    _, cropped = _run_framed(td_model, tmp_path / "crop.h5", Framing(crop=CropBox(16, 624, 16, 464)))
    assert np.isfinite(full.pose).mean() > 0.9
    np.testing.assert_array_equal(np.isnan(cropped.pose), np.isnan(full.pose))
    np.testing.assert_array_equal(cropped.track_id, full.track_id)
    np.testing.assert_allclose(cropped.pose[..., :2], full.pose[..., :2], atol=1e-3)  # same pixels, shifted
    truth = src.animal_truth_many(range(30))  # the mice are apart until frame ~32
    found = cropped.layout.animals(cropped.pose)[:30, ..., :2]
    err = np.minimum(np.nanmean(np.hypot(*(found - truth).transpose(3, 0, 1, 2)), axis=(0, 2)),
                     np.nanmean(np.hypot(*(found - truth[:, ::-1]).transpose(3, 0, 1, 2)), axis=(0, 2)))
    assert (err < 0.5).all(), err  # each slot is one mouse, in full-frame pixels


def test_two_cameras_share_detector_batches_and_keep_their_own_identities(td_model, tmp_path):
    """Two streams of a top-down model in one run: the crops of both cameras' frames go through one pose call,
    each stream keeps its own identity slots (its own tracker), recorded per camera."""
    from rtpose.recording.recorder import RecordingPaths

    sources = [SyntheticSource(640, 480, animals=2, seed=seed, n_frames=30) for seed in (0, 5)]
    out = tmp_path / "two.h5"
    summary = Pipeline(sources, load_model(td_model), sinks=[RecorderSink(out)],
                       config=PipelineConfig(live=False, batch_size=4)).run()
    assert summary.animals["frames"] == 60 and summary.animals["crops_per_frame"] > 1.8
    for cam, src in enumerate(sources):
        rec = read_recording(RecordingPaths.for_output(out, f"_cam{cam}").h5)
        truth = src.animal_truth_many(range(30))
        found = rec.layout.animals(rec.pose)[..., :2]
        err = np.minimum(np.nanmean(np.hypot(*(found - truth).transpose(3, 0, 1, 2)), axis=(0, 2)),
                         np.nanmean(np.hypot(*(found - truth[:, ::-1]).transpose(3, 0, 1, 2)), axis=(0, 2)))
        assert (err < 0.5).all(), (cam, err)  # this camera's mice, each slot one mouse
        assert (rec.track_id == rec.track_id[0]).all() and (rec.track_id[0] >= 0).all()
