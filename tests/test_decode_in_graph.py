"""Decode inside the ONNX graph (exporters/decode_in_graph.py): bit-identical to the Numba decoder on
onnxruntime's CPU provider, on random maps (ties, NaN, infinities, clipping) and on the bundled model's
maps of real video frames; composes with the uint8 BGR input; the engine takes poses straight from it."""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="needs onnx (pip install 'rtpose[export]' or the test extra)")
ort = pytest.importorskip("onnxruntime", reason="needs onnxruntime (pip install 'rtpose[cpu]')")

from rtpose import models  # noqa: E402
from rtpose.decode import Decoder, decode_reference  # noqa: E402
from rtpose.errors import ExportError  # noqa: E402
from rtpose.exporters import decode_in_graph as dig  # noqa: E402
from rtpose.metadata import ModelMetadata  # noqa: E402
from rtpose.model import OnnxPoseModel  # noqa: E402

LEVELS = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL, "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL}


def decode_only_model(k: int, *, stride: float, stdev: float, clip: bool, locref: bool, opset: int) -> bytes:
    """A graph whose inputs are the maps and whose output is the in-graph decode."""
    from onnx import TensorProto, helper

    nodes, inits = dig.decode_nodes("scoremap", "locref" if locref else None, num_bodyparts=k, stride=stride,
                                    locref_stdev=stdev, clip_scores=clip, opset=opset)
    inputs = [helper.make_tensor_value_info("scoremap", TensorProto.FLOAT, ["b", "h", "w", k])]
    if locref:
        inputs.append(helper.make_tensor_value_info("locref", TensorProto.FLOAT, ["b", "h", "w", 2 * k]))
    graph = helper.make_graph(nodes, "decode", inputs,
                              [helper.make_tensor_value_info("poses", TensorProto.DOUBLE, ["b", k, 3])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def run_graph(model_bytes: bytes, scmap, locref, level="all"):
    opts = ort.SessionOptions()
    opts.graph_optimization_level = LEVELS[level]
    sess = ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])
    feed = {"scoremap": scmap}
    if locref is not None:
        feed["locref"] = locref
    return sess.run(["poses"], feed)[0]


def numba(scmap, locref, stride, stdev, clip):
    b, _, _, k = scmap.shape
    out = np.empty((b, k, 3), np.float64)
    return Decoder(stride, stdev, k, b, clip_scores=clip).decode(scmap, locref, out)


def tricky_maps(rng, b, h, w, k, kind):
    if kind == "uniform":
        s = rng.random((b, h, w, k), dtype=np.float32)
    elif kind == "ties":  # few distinct values: many equal maxima, first in row-major order must win
        s = (rng.integers(0, 3, (b, h, w, k)) / 2).astype(np.float32)
    elif kind == "nan":
        s = rng.random((b, h, w, k), dtype=np.float32)
        s.reshape(b, -1, k)[:, rng.integers(0, h * w, 3), :] = np.nan  # the first NaN wins (np.argmax)
        s[0, 0, 0, 0] = 2.0  # a larger value before it does not
    elif kind == "inf":
        s = rng.random((b, h, w, k), dtype=np.float32)
        s[:, h // 2, :, 0] = np.inf
        s[:, :, :, -1] = -np.inf  # a map of -inf only: the first cell
    elif kind == "logits":  # raw maps outside [0, 1] (DeepLabCut 3 with clip_scores)
        s = rng.normal(0, 3, (b, h, w, k)).astype(np.float32)
    elif kind == "constant":
        s = np.full((b, h, w, k), 0.25, np.float32)
    else:  # pragma: no cover
        raise ValueError(kind)
    l = rng.normal(0, 1.5, (b, h, w, 2 * k)).astype(np.float32)
    return np.ascontiguousarray(s), l


@pytest.mark.parametrize("opset", [13, 17, 18])
@pytest.mark.parametrize("kind", ["uniform", "ties", "nan", "inf", "logits", "constant"])
def test_random_maps_bit_identical_to_numba(opset, kind):
    rng = np.random.default_rng(zlib.crc32(f"{opset}-{kind}".encode()))
    for (b, h, w, k), stride, stdev in (((3, 60, 80, 4), 8.0, 7.2801), ((2, 7, 13, 5), 16.0, 0.731),
                                        ((1, 1, 1, 1), 4.0, 1.0), ((4, 31, 17, 3), 8.0, 7.2801)):
        scmap, locref = tricky_maps(rng, b, h, w, k, kind)
        for clip in (False, True):
            expected = numba(scmap, locref, stride, stdev, clip)
            model = decode_only_model(k, stride=stride, stdev=stdev, clip=clip, locref=True, opset=opset)
            for level in LEVELS:
                got = run_graph(model, scmap, locref, level)
                assert got.dtype == np.float64 and got.shape == (b, k, 3)
                assert dig.same_bits(got, expected).all(), (kind, (b, h, w, k), clip, level)
            np.testing.assert_array_equal(  # and the NumPy definition agrees on cells and values
                np.isnan(got), np.isnan(decode_reference(scmap, locref, stride, stdev, clip_scores=clip)))


def test_without_location_refinement():
    rng = np.random.default_rng(5)
    scmap, _ = tricky_maps(rng, 2, 9, 11, 3, "ties")
    model = decode_only_model(3, stride=8.0, stdev=7.2801, clip=False, locref=False, opset=17)
    assert dig.same_bits(run_graph(model, scmap, None), numba(scmap, None, 8.0, 7.2801, False)).all()


def test_same_bits_helper_can_fail():
    a = np.array([1.0, np.nan, 0.0])
    assert dig.same_bits(a, a.copy()).all()
    assert not dig.same_bits(a, np.array([1.0 + 1e-16 * 2, np.nan, 0.0]))[0]
    assert not dig.same_bits(np.array([0.0]), np.array([-0.0]))[0]


# --------------------------------------------------------------------------- the bundled model, real frames
@pytest.fixture(scope="module")
def bundled():
    return onnx.load(str(models.default_model_path()))


@pytest.fixture(scope="module")
def bundled_meta(bundled):
    return ModelMetadata.from_props({p.key: p.value for p in bundled.metadata_props}, source="bundled")


@pytest.fixture(scope="module")
def video_frames():
    import cv2

    from rtpose.data import demo_video_path

    cap = cv2.VideoCapture(str(demo_video_path()))
    frames = []
    for i in range(40):
        ok, frame = cap.read()
        if not ok:
            break
        if i % 10 == 0:
            frames.append(frame)
    cap.release()
    assert len(frames) == 4, "the bundled video rtpose/data/m3v1mp4.mp4 is missing or unreadable"
    return np.stack(frames)  # (4, 480, 640, 3) BGR uint8


def test_bundled_model_real_frames_bit_identical(bundled, bundled_meta, video_frames):
    model, meta = dig.add_checked(bundled, bundled_meta, source="bundled")
    assert meta.pose_output == dig.POSE_OUTPUT and "bit-identical" in meta.extra["decode_in_graph_check"]
    rgb = np.ascontiguousarray(video_frames[..., ::-1]).astype(np.float32)
    check = dig.check_decode(model.SerializeToString(), meta, [rgb, rgb[:1]])
    assert check.ok and check.points == 5 * 4 and check.mismatches == 0


def test_check_catches_a_wrong_decode(bundled, bundled_meta):
    """The exactness check is not vacuous: a decode built with another locref_stdev is refused."""
    model, meta = dig.add_decode(bundled, bundled_meta, source="bundled")
    wrong = dataclasses.replace(meta, locref_stdev=meta.locref_stdev * 1.0001)
    check = dig.check_decode(model.SerializeToString(), wrong, dig.model_batches(model, meta))
    assert not check.ok and check.mismatches > 0


def test_composes_with_the_uint8_bgr_input(bundled, bundled_meta, video_frames, tmp_path):
    from rtpose.exporters import uint8_input
    from rtpose.exporters.api import _write

    u8 = uint8_input.to_uint8_bgr(bundled, input_color="RGB", input_range="0-255")
    u8_meta = dataclasses.replace(bundled_meta, input_color="BGR")
    model, meta = dig.add_checked(u8, u8_meta, source="bundled-uint8", batches=[video_frames])
    path = tmp_path / "u8-decode.onnx"
    _write(model, meta, path, "bundled-uint8")
    engine = OnnxPoseModel(path, providers=["cpu"], threads=1)
    assert engine.decodes_in_graph and engine.input_buffer.dtype == np.uint8
    poses = engine.infer_poses(video_frames).copy()
    maps = OnnxPoseModel(path, providers=["cpu"], threads=1, graph_decode=False)
    scmap, locref = maps.infer(video_frames)
    expected = numba(np.ascontiguousarray(scmap), np.ascontiguousarray(locref), meta.stride, meta.locref_stdev, False)
    assert dig.same_bits(poses, expected).all()


def test_export_cli_adds_the_decode_to_an_existing_onnx(tmp_path, capsys):
    from rtpose.cli import main

    out = tmp_path / "openfield-decode.onnx"
    assert main(["export", str(models.default_model_path()), "--decode-in-graph", "--out", str(out)]) == 0
    assert "check decode in graph (output poses): bit-identical" in capsys.readouterr().out
    meta = ModelMetadata.from_props({p.key: p.value for p in onnx.load(str(out)).metadata_props})
    assert meta.pose_output == "poses" and meta.extra["decode_in_graph"] == dig.DECODE_NOTE
    assert meta.extra["batch_invariant"] == "true"  # everything else kept
    with pytest.raises(ExportError, match="already decodes inside the graph"):
        dig.add_to_file(out, tmp_path / "again.onnx")
    with pytest.raises(ExportError, match="give another --out"):
        dig.add_to_file(models.default_model_path(), models.default_model_path())


def test_engine_and_pipeline_take_poses_from_the_graph(tmp_path, monkeypatch, video_frames):
    from rtpose import pipeline as pipeline_mod
    from rtpose.pipeline import Pipeline, PipelineConfig

    path, _ = dig.add_to_file(models.default_model_path(), tmp_path / "decode.onnx")
    plain = OnnxPoseModel(models.default_model_path(), providers=["cpu"], threads=1)
    graph = OnnxPoseModel(path, providers=["cpu"], threads=1)
    assert graph.decodes_in_graph and not plain.decodes_in_graph and "decode in graph" in graph.settings

    from rtpose.drivers.sources.base import FrameSource, SourceInfo
    from rtpose.sinks.base import Sink

    class Frames(FrameSource):  # a lossless source: the 4 real frames
        def __init__(self):
            super().__init__("frames")
            self.i = 0

        def _do_open(self):
            self.i = 0
            return SourceInfo(width=640, height=480, fps=30.0, n_frames=len(video_frames), live=False)

        def _do_read_into(self, out):
            if self.i >= len(video_frames):
                return False
            out[:] = video_frames[self.i]
            self.i += 1
            return True

    poses = {}

    class Keep(Sink):
        def write(self, batch):
            for i in range(batch.n):
                poses.setdefault(model_name, []).append(batch.pose[i].copy())

    for model_name, model in (("plain", plain), ("graph", graph)):
        if model_name == "graph":  # the pipeline's own decoder must not even be built
            monkeypatch.setattr(pipeline_mod, "Decoder", None)
        Pipeline([Frames()], model, sinks=[Keep()], config=PipelineConfig(live=False, batch_size=2)).run()
    assert len(poses["graph"]) == len(poses["plain"]) == 4
    assert dig.same_bits(np.stack(poses["graph"]), np.stack(poses["plain"])).all()
