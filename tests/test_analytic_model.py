"""The hand-built analytic ONNX model really finds the synthetic mouse.

Decoded with a plain NumPy argmax (DeepLabCut's convention: ``x = col*stride +
stride/2``), its score maps put every keypoint within ``stride/√2 + 1`` px of
the truth (the half-diagonal of a cell, plus the half-pixel between DeepLabCut's
cell centre and OpenCV's pixel centres); adding its offsets
(``+ locref*locref_stdev``) brings that to ``LOCREF_TOL_PX`` = 0.25 px.
Also: the small broken models other tests use load and are broken as advertised.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from analytic_model import (
    BODYPARTS,
    LOCREF_STDEV,
    build_analytic_model,
    build_model_missing_locref,
    build_model_missing_scoremap,
    build_model_with_raw_props,
    build_model_without_metadata,
    build_model_wrong_channels,
    build_zero_model,
)
from rtpose.drivers.sources.synthetic import BODYPARTS as SYNTHETIC_BODYPARTS
from rtpose.drivers.sources.synthetic import SyntheticSource
from rtpose.errors import ModelError
from rtpose.metadata import ModelMetadata

LOCREF_TOL_PX = 0.25
#: Frames spread along the path (different places, headings, sub-pixel phases).
FRAME_INDICES = (0, 17, 95, 230, 388, 511, 777, 1234)


def argmax_tol_px(stride: int) -> float:
    return stride / math.sqrt(2) + 1.0


def session(path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def metadata_of(path, source="model") -> ModelMetadata:
    model = onnx.load(str(path))
    return ModelMetadata.from_props({p.key: p.value for p in model.metadata_props}, source=source)


def synthetic_batch(width=640, height=480, seed=0, color="RGB"):
    """Frames as the model wants them: float32 NHWC 0-255, with their truth."""
    src = SyntheticSource(width, height, seed=seed)
    frames = np.empty((len(FRAME_INDICES), height, width, 3), np.uint8)
    for n, i in enumerate(FRAME_INDICES):
        src.render(i, frames[n])
    if color == "RGB":
        frames = frames[..., ::-1]
    return np.ascontiguousarray(frames, dtype=np.float32), src.truth_many(FRAME_INDICES)


def decode(scoremap, locref, stride):
    """Plain DeepLabCut decode: argmax cell per keypoint, optional offsets. Returns (B, K, 2)."""
    b, h, w, k = scoremap.shape
    flat = scoremap.reshape(b, h * w, k).argmax(axis=1)  # (B, K)
    rows, cols = np.divmod(flat, w)
    xy = np.stack([cols, rows], axis=-1) * stride + stride / 2.0
    if locref is not None:
        off = locref.reshape(b, h, w, k, 2)
        bi, ki = np.meshgrid(np.arange(b), np.arange(k), indexing="ij")
        xy = xy + off[bi, rows, cols, ki] * LOCREF_STDEV
    return xy


@pytest.fixture(scope="module")
def model8(tmp_path_factory):
    return build_analytic_model(tmp_path_factory.mktemp("models") / "analytic8.onnx")


def test_metadata_describes_the_model(model8):
    meta = metadata_of(model8)
    assert meta.bodyparts == BODYPARTS == SYNTHETIC_BODYPARTS
    assert meta.stride == 8.0 and meta.locref_stdev == LOCREF_STDEV
    assert (meta.scoremap_output, meta.locref_output, meta.input_name) == ("scoremap", "locref", "image")
    assert meta.input_color == "RGB" and meta.preprocessing_in_graph and meta.location_refinement
    model = onnx.load(str(model8))
    assert model.opset_import[0].version == 17
    s = session(model8)
    assert [i.name for i in s.get_inputs()] == ["image"]
    assert s.get_inputs()[0].shape == ["N", "H", "W", 3]  # dynamic batch and size
    assert [o.name for o in s.get_outputs()] == ["scoremap", "locref"]


def test_recovers_truth_on_synthetic_frames(model8):
    x, truth = synthetic_batch()
    scoremap, locref = session(model8).run(["scoremap", "locref"], {"image": x})
    assert scoremap.shape == (len(FRAME_INDICES), 60, 80, 3) and locref.shape == (len(FRAME_INDICES), 60, 80, 6)
    coarse = decode(scoremap, None, 8)
    fine = decode(scoremap, locref, 8)
    err_coarse = np.linalg.norm(coarse - truth, axis=-1)
    err_fine = np.linalg.norm(fine - truth, axis=-1)
    assert err_coarse.max() <= argmax_tol_px(8), err_coarse
    assert err_fine.max() <= LOCREF_TOL_PX, err_fine
    # Confident at the keypoints, not elsewhere.
    peaks = scoremap.max(axis=(1, 2))
    assert peaks.min() > 0.9
    assert np.median(scoremap) < 0.05


def test_dynamic_size_and_other_strides(tmp_path, model8):
    x, truth = synthetic_batch(320, 240, seed=3)
    scoremap, locref = session(model8).run(None, {"image": x})
    assert scoremap.shape[1:] == (30, 40, 3)
    assert np.linalg.norm(decode(scoremap, None, 8) - truth, axis=-1).max() <= argmax_tol_px(8)
    assert np.linalg.norm(decode(scoremap, locref, 8) - truth, axis=-1).max() <= LOCREF_TOL_PX

    x, truth = synthetic_batch(seed=1)
    for stride in (4, 16):
        path = build_analytic_model(tmp_path / f"s{stride}.onnx", stride=stride)
        scoremap, locref = session(path).run(["scoremap", "locref"], {"image": x})
        assert scoremap.shape[1:3] == (480 // stride, 640 // stride)
        assert np.linalg.norm(decode(scoremap, locref, stride) - truth, axis=-1).max() <= LOCREF_TOL_PX
        if stride == 16:  # with stride 4 a disk covers several whole cells: argmax ties go to the first
            assert np.linalg.norm(decode(scoremap, None, stride) - truth, axis=-1).max() <= argmax_tol_px(stride)


def test_bgr_variant_and_no_locref(tmp_path, model8):
    x_rgb, truth = synthetic_batch(seed=2)
    x_bgr = np.ascontiguousarray(x_rgb[..., ::-1])
    bgr = build_analytic_model(tmp_path / "bgr.onnx", input_color="BGR")
    assert metadata_of(bgr).input_color == "BGR"
    ref = session(model8).run(None, {"image": x_rgb})
    got = session(bgr).run(None, {"image": x_bgr})
    for a, b in zip(ref, got):
        np.testing.assert_allclose(a, b, atol=1e-5)

    plain = build_analytic_model(tmp_path / "plain.onnx", with_locref=False)
    meta = metadata_of(plain)
    assert meta.locref_output is None and not meta.location_refinement
    s = session(plain)
    assert [o.name for o in s.get_outputs()] == ["scoremap"]
    (scoremap,) = s.run(None, {"image": x_rgb})
    np.testing.assert_allclose(scoremap, ref[0], atol=1e-6)
    # Fed the wrong colour order, the model confuses head and tail: the order matters.
    (swapped,) = s.run(None, {"image": x_bgr})
    assert np.linalg.norm(decode(swapped, None, 8)[:, 0] - truth[:, 2], axis=-1).max() <= argmax_tol_px(8)


def test_builder_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        build_analytic_model(tmp_path / "x.onnx", input_color="RGBA")
    with pytest.raises(ValueError):
        build_analytic_model(tmp_path / "x.onnx", stride=0)


# -- the broken models for the loader's error tests -------------------------------------------


def test_zero_model_runs_and_describes_itself(tmp_path):
    path = build_zero_model(tmp_path / "zero.onnx", num_bodyparts=4, stride=16)
    meta = metadata_of(path)
    assert meta.bodyparts == ("bp0", "bp1", "bp2", "bp3") and meta.stride == 16.0
    scoremap, locref = session(path).run(["scoremap", "locref"], {"image": np.zeros((2, 64, 96, 3), np.float32)})
    assert scoremap.shape == (2, 4, 6, 4) and locref.shape == (2, 4, 6, 8)
    assert not scoremap.any() and not locref.any()

    fixed = build_zero_model(tmp_path / "fixed.onnx", input_hw=(480, 640), with_locref=False)
    s = session(fixed)
    assert s.get_inputs()[0].shape == ["N", 480, 640, 3]
    assert [o.name for o in s.get_outputs()] == ["scoremap"]
    with pytest.raises(Exception):  # onnxruntime refuses another size
        s.run(None, {"image": np.zeros((1, 240, 320, 3), np.float32)})


def test_broken_models_are_broken_as_advertised(tmp_path):
    with pytest.raises(ModelError, match="no rtpose metadata"):
        metadata_of(build_model_without_metadata(tmp_path / "nometa.onnx"))
    assert len(session(tmp_path / "nometa.onnx").get_outputs()) == 2  # otherwise a fine model

    path = build_model_missing_scoremap(tmp_path / "noscore.onnx")
    outputs = {o.name for o in session(path).get_outputs()}
    assert metadata_of(path).scoremap_output == "scoremap" and "scoremap" not in outputs and "heatmap" in outputs

    path = build_model_missing_locref(tmp_path / "nolocref.onnx")
    meta = metadata_of(path)
    assert meta.location_refinement and meta.locref_output == "locref"
    assert [o.name for o in session(path).get_outputs()] == ["scoremap"]

    path = build_model_wrong_channels(tmp_path / "channels.onnx", num_bodyparts=3)
    assert metadata_of(path).num_bodyparts == 3
    assert session(path).get_outputs()[0].shape[-1] == 4

    path = build_model_with_raw_props(tmp_path / "bad.onnx", {"rtpose.bodyparts": "[\"a\"]", "rtpose.stride": "eight",
                                                              "rtpose.scoremap_output": "scoremap", "rtpose.input_name": "image"})
    with pytest.raises(ModelError, match="malformed"):
        metadata_of(path)
    path = build_model_with_raw_props(tmp_path / "partial.onnx", {"rtpose.bodyparts": "[\"a\"]"})
    with pytest.raises(ModelError, match="lacks"):
        metadata_of(path)


def test_declared_batch_invariant_and_the_exporters_check_agrees(model8):
    """The builder declares batch invariance by construction; the exporter's own check confirms it."""
    from rtpose.exporters import frames, parity
    from rtpose.exporters.report import BATCH_TOLERANCE

    meta = ModelMetadata.from_props({p.key: p.value for p in onnx.load(str(model8)).metadata_props})
    assert meta.batch_invariant
    figures = parity.batch_invariance(model8.read_bytes(), frames.batch_check_batches(()),
                                      outputs=("scoremap", "locref"), stride=meta.stride,
                                      locref_stdev=meta.locref_stdev, tolerance=BATCH_TOLERANCE, source=str(model8))
    assert figures.ok and figures.scoremap_max_abs == 0.0, figures.summary()
