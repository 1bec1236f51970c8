"""DeepLabCut 3 TOP-DOWN exports (detector + pose model in one ONNX file): agreement with DeepLabCut's own
top-down inference, the file contract, refusals.

The model is DeepLabCut 3's own ``top_down_resnet_50`` with its default ``SSDLite`` detector for a real two-mouse
DeepLabCut 3.0.2 project (tests/dlc3_td_models.py: seeded initialisation + stored trained layers); the references
are DeepLabCut's own inference runners on 640x480 frames (tests/data/dlc3_td/build_fixtures.py).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

import dlc3_td_models as T
from rtpose.errors import ExportError
from rtpose.metadata import ModelMetadata
from rtpose.multianimal.layout import AnimalLayout

#: ONNX detector stage vs DeepLabCut's detector forward (the exporter's own tolerance, exporters/torch_dlc3_topdown).
BOX_TOL_PX, BOX_SCORE_TOL = 0.05, 1e-4
#: ONNX pose stage vs DeepLabCut's maps (the exporter's FP32 tolerances, exporters/report.py).
SCORE_TOL, RAW_TOL = 1e-3, 1e-2
#: DeepLabCut's final poses (frame pixels) vs rtpose's decode of the ONNX maps + the crop's offset and scale
#: (issue 15: mean |dxy| < 0.05 px per matched keypoint); likelihood: the clipped raw score.
MEAN_XY_TOL_PX, LIKELIHOOD_TOL = 0.05, 1e-3


@pytest.fixture(scope="module")
def reference():
    return dict(np.load(T.DATA / f"{T.NET}.reference.npz"))


@pytest.fixture(scope="module")
def exported(dlc3_td_export):
    """(.onnx path, ExportReport) of the fixture, exported once (conftest)."""
    return dlc3_td_export


def _sessions(onnx_path):
    import onnx
    import onnxruntime as ort

    from rtpose.exporters.torch_dlc3_topdown import stage

    model = onnx.load(str(onnx_path))
    return model, {p: ort.InferenceSession(stage(model, p).SerializeToString(), providers=["CPUExecutionProvider"])
                   for p in ("detector/", "pose/")}


@pytest.mark.slow
@pytest.mark.export_torch
def test_topdown_file_contract_and_metadata(exported):
    import onnx

    onnx_path, report = exported
    meta = report.metadata
    assert meta.topdown_model and meta.multianimal  # multi-animal (layout), top-down (lead decision, main b165033)
    assert meta.layout == AnimalLayout(T.INDIVIDUALS, T.BODYPARTS, ())
    assert meta.bodyparts == T.BODYPARTS and meta.stride == 16.0 and meta.clip_scores and meta.location_refinement
    td = meta.topdown
    assert (td.detector_type, td.detector_variant) == ("SSDLite", "ssdlite320_mobilenet_v3_large")
    assert td.max_individuals == 2
    # SSDLite keeps torchvision's own score_thresh: DeepLabCut's box_score_thresh (0.01) does not reach it
    assert td.box_score_thresh == 0.001 and td.extra["config_box_score_thresh"] == 0.01
    assert td.extra["nms_thresh"] == 0.55 and td.extra["detections_per_img"] == 300
    assert td.extra["input_size"] == "320x320 (fixed)"  # SSDLite resizes every frame to 320x320 in the graph
    assert (td.crop_width, td.crop_height, td.margin, td.with_context, td.min_bbox_score) == (256, 256, 0, True, None)
    model = onnx.load(str(onnx_path))
    assert ModelMetadata.from_props({p.key: p.value for p in model.metadata_props}) == meta
    assert [i.name for i in model.graph.input] == ["image", "crops"]
    assert [o.name for o in model.graph.output] == ["boxes", "box_scores", "scoremap", "locref"]
    names = [n.name for n in model.graph.node] + [t.name for t in model.graph.initializer]
    assert all(n.startswith(("detector/", "pose/")) for n in names)
    dims = {i.name: [d.dim_value or d.dim_param for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
    assert dims["image"][0] == 1 and dims["image"][3] == 3 and all(isinstance(d, str) for d in dims["image"][1:3])
    assert dims["crops"][1:] == [256, 256, 3] and isinstance(dims["crops"][0], str)
    # the whole file is one valid model too (onnxruntime runs both stages when given both inputs)
    import onnxruntime as ort

    whole = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    frame = T.reference_frames()[3][None, ..., ::-1].astype(np.float32)
    boxes, _, scoremap, _ = whole.run(None, {"image": frame, "crops": np.zeros((1, 256, 256, 3), np.float32)})
    assert boxes.shape[1] == 4 and scoremap.shape == (1, 16, 16, len(T.BODYPARTS))
    assert meta.extra["batch_invariant"] == "true" and float(meta.extra["detector_check.boxes_max_px"]) <= BOX_TOL_PX
    assert "check detector" in report.summary()


@pytest.mark.slow
@pytest.mark.export_torch
def test_topdown_export_reproduces_deeplabcut(exported, reference):
    """Detector stage vs DeepLabCut's raw detections; DeepLabCut's selection and crops; pose stage maps vs
    DeepLabCut's; rtpose's decode of the ONNX maps mapped back to the frame vs DeepLabCut's final poses."""
    from deeplabcut.pose_estimation_pytorch.data.image import top_down_crop

    from rtpose.decode import decode_reference
    from rtpose.exporters.torch_dlc3_topdown import match_detections

    onnx_path, report = exported
    meta = report.metadata
    _, sess = _sessions(onnx_path)
    frames = [np.ascontiguousarray(f[..., ::-1]) for f in T.reference_frames()]  # RGB uint8, as DeepLabCut reads
    first = np.concatenate([[0], np.cumsum(reference["n_raw"])])
    a = meta.topdown.max_individuals
    errors, lik_errors, all_crops, all_maps = [], [], [], ([], [])
    for i, frame in enumerate(frames):
        boxes, scores = sess["detector/"].run(["boxes", "box_scores"], {"image": frame[None].astype(np.float32)})
        ref_boxes = reference["raw_boxes"][first[i]:first[i + 1]]
        assert boxes.shape == ref_boxes.shape, f"frame {i}: {len(boxes)} boxes vs DeepLabCut's {len(ref_boxes)}"
        ref_scores = reference["raw_scores"][first[i]:first[i + 1]]
        box_diff, score_diff = match_detections(boxes, scores, ref_boxes, ref_scores)
        assert box_diff <= BOX_TOL_PX and score_diff <= BOX_SCORE_TOL, (i, box_diff, score_diff)
        # DeepLabCut's selection: the first max_individuals boxes, COCO xywh (no near-tie at the cut on these frames)
        assert scores[a - 1] - scores[a] > 10 * BOX_SCORE_TOL
        kept = boxes[:a]
        n = int(reference["n_boxes"][i])
        assert len(kept) == n
        xywh = np.concatenate([kept[:, :2], kept[:, 2:] - kept[:, :2]], axis=1)
        np.testing.assert_allclose(xywh, reference["bboxes"][i, :n], atol=2 * BOX_TOL_PX, rtol=0)
        crops, offsets, scales = [], [], []
        for box in reference["bboxes"][i, :n]:
            crop, off, sc = top_down_crop(frame, box, (meta.topdown.crop_width, meta.topdown.crop_height),
                                          margin=meta.topdown.margin, crop_with_context=meta.topdown.with_context)
            crops.append(crop.astype(np.float32))
            offsets.append(off)
            scales.append(sc)
        np.testing.assert_array_equal(np.asarray(offsets, float), reference["offsets"][i, :n])
        np.testing.assert_allclose(np.asarray(scales, float), reference["scales"][i, :n], rtol=1e-12)
        scoremap, locref = sess["pose/"].run(["scoremap", "locref"], {"crops": np.stack(crops)})
        all_crops.append(np.stack(crops))
        all_maps[0].append(scoremap)
        all_maps[1].append(locref)
        if i in reference["maps_frames"]:
            np.testing.assert_allclose(scoremap, reference[f"scoremap_{i}"], atol=SCORE_TOL, rtol=0)
            np.testing.assert_allclose(locref, reference[f"locref_{i}"], atol=RAW_TOL, rtol=0)
        poses = decode_reference(scoremap, locref, meta.stride, meta.locref_stdev, clip_scores=meta.clip_scores)
        xy = poses[..., :2] * np.asarray(scales)[:, None, :] + np.asarray(offsets)[:, None, :]
        ref = reference["poses"][i, :n]
        errors.append(np.linalg.norm(xy - ref[..., :2], axis=-1).ravel())
        lik_errors.append(np.abs(poses[..., 2] - ref[..., 2]).ravel())
    # all crops of all frames through the pose stage in one call (the runtime batches crops) == per-frame calls
    batched = sess["pose/"].run(["scoremap", "locref"], {"crops": np.concatenate(all_crops)})
    for got, want in zip(batched, (np.concatenate(all_maps[0]), np.concatenate(all_maps[1]))):
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    errors, lik_errors = np.concatenate(errors), np.concatenate(lik_errors)
    assert errors.size == int(reference["n_boxes"].sum()) * len(T.BODYPARTS) > 0
    assert errors.mean() < MEAN_XY_TOL_PX, f"mean |dxy| {errors.mean():.4f} px (max {errors.max():.4f})"
    assert lik_errors.max() < LIKELIHOOD_TOL


# --- refusals: cheap, no network is built -------------------------------------------------------------------------

def _pt(tmp_path, torch, mutate):
    cfg = copy.deepcopy(T.config())
    mutate(cfg)
    path = tmp_path / "DLC_refused.pt"
    torch.save({"config": cfg, "pose": {}, "detector": {}}, path)
    return path


@pytest.mark.export_torch
@pytest.mark.parametrize("mutate, words", [
    (lambda c: c.update(method="ctd"), "conditional top-down"),
    (lambda c: c["model"]["heads"]["bodypart"].update(type="RTMCCHead"), "RTMCCHead"),
    (lambda c: c["model"]["heads"]["bodypart"]["predictor"].update(type="SimCCPredictor"), "SimCC"),
    (lambda c: c["metadata"].update(unique_bodyparts=["marker"]), "unique body parts"),
    (lambda c: c["model"]["heads"].update(identity={"type": "HeatmapHead"}), "identity"),
    (lambda c: c["detector"]["model"].update(type="YOLO"), "YOLO detector"),
])
def test_topdown_refusals_name_the_model(torch_stack, tmp_path, mutate, words):
    from rtpose.exporters import torch_dlc3

    with pytest.raises(ExportError, match=words) as exc:
        torch_dlc3.load(_pt(tmp_path, torch_stack, mutate))
    assert "top_down_resnet_50" in str(exc.value) or "resnet_50" in str(exc.value)


@pytest.mark.export_torch
def test_topdown_without_detector_or_with_decode_in_graph_is_refused(torch_stack, tmp_path):
    from rtpose.exporters import export_model, torch_dlc3

    path = tmp_path / "DLC_nodet.pt"
    torch_stack.save({"config": T.config(), "pose": {}}, path)
    with pytest.raises(ExportError, match="without its detector"):
        torch_dlc3.load(path)
    folder, _ = T.build_export(tmp_path)
    with pytest.raises(ExportError, match="--decode-in-graph"):
        export_model(folder, tmp_path / "x.onnx", decode_in_graph=True)
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.slow
@pytest.mark.export_torch
def test_topdown_fp16_converts_the_pose_stage_only(torch_stack, tmp_path, reference):
    """--fp16: the pose stage in float16 (checked against float32), the detector (If nodes: NMS) stays float32."""
    import onnx

    from rtpose.exporters import export_model

    folder, _ = T.build_export(tmp_path)
    report = export_model(folder, tmp_path / "td16.onnx", fp16=True)
    assert report.parity_fp16 is not None and report.parity_fp16.ok
    assert report.metadata.extra["precision"] == "fp16 pose stage, fp32 detector"
    model = onnx.load(str(tmp_path / "td16.onnx"))
    f16 = onnx.TensorProto.FLOAT16
    dtypes = {p: {t.data_type for t in model.graph.initializer if t.name.startswith(p)} for p in ("detector/", "pose/")}
    assert f16 in dtypes["pose/"] and f16 not in dtypes["detector/"]
    assert [i.type.tensor_type.elem_type for i in model.graph.input] == [onnx.TensorProto.FLOAT] * 2
