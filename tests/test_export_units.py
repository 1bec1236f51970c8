"""Exporter pieces that need no TensorFlow: padding rewrites, float16 conversion, the parity
comparison, model descriptions, synthetic frames."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.export
onnx = pytest.importorskip("onnx", reason="onnx not installed: install the export extra (pip install 'rtpose[export]')")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed: pip install 'rtpose[cpu]'")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from rtpose.errors import ExportError  # noqa: E402
from rtpose.exporters import fp16, frames, onnx_graph, parity, sources  # noqa: E402
from rtpose.exporters.report import FP32_TOLERANCE  # noqa: E402

LEVELS = {
    "disable_all": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def _run(model, x, level):
    opts = ort.SessionOptions()
    opts.graph_optimization_level = LEVELS[level]
    opts.log_severity_level = 4
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def _same_padded_model():
    """NCHW: a kernel-1 stride-2 SAME MaxPool (ResNet shortcut) and a dilated 3x3 SAME conv (atrous block),
    the two patterns tf2onnx emits for TF 'SAME' that onnxruntime runs only at some levels."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(size=(4, 4, 3, 3)).astype(np.float32), "w")
    nodes = [
        helper.make_node("MaxPool", ["x"], ["p"], kernel_shape=[1, 1], strides=[2, 2], auto_pad="SAME_UPPER",
                         name="shortcut"),
        helper.make_node("Conv", ["p", "w"], ["y"], kernel_shape=[3, 3], dilations=[2, 2], auto_pad="SAME_UPPER",
                         name="atrous"),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, None, None])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, None, None])], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _numpy_reference(x, w):
    """TF 'SAME' semantics: kernel-1 stride-2 pool picks every other pixel; a stride-1 dilated 3x3 conv
    pads (k - 1) * d = 4 pixels in total, 2 each side."""
    p = x[:, :, ::2, ::2]
    xp = np.pad(p, ((0, 0), (0, 0), (2, 2), (2, 2)))
    h, wd = p.shape[2:]
    y = np.zeros((p.shape[0], w.shape[0], h, wd), np.float64)
    for ki in range(3):
        for kj in range(3):
            y += np.einsum("oc,nchw->nohw", w[:, :, ki, kj], xp[:, :, 2 * ki:2 * ki + h, 2 * kj:2 * kj + wd])
    return y


def test_fix_padding_rewrites_same_pools_and_dilated_convs_exactly():
    model = _same_padded_model()
    w = numpy_helper.to_array(model.graph.initializer[0])
    x = np.random.default_rng(1).normal(size=(1, 4, 13, 10)).astype(np.float32)
    changed = onnx_graph.fix_padding(model)
    assert len(changed) == 2
    pool, conv = model.graph.node
    assert [a.s for a in pool.attribute if a.name == "auto_pad"] == [b"VALID"]
    assert not [a for a in conv.attribute if a.name == "auto_pad"]
    assert [list(a.ints) for a in conv.attribute if a.name == "pads"] == [[2, 2, 2, 2]]
    expected = _numpy_reference(x, w)
    assert expected.shape == (1, 4, 7, 5)  # ceil(13/2), ceil(10/2): the SAME output size
    for level in LEVELS:  # before the rewrite, ORT_DISABLE_ALL fails: "padding values must be non-negative"
        np.testing.assert_allclose(_run(model, x, level), expected, rtol=1e-4, atol=1e-4)


def test_fix_padding_leaves_strided_and_valid_nodes_alone():
    model = _same_padded_model()
    for node in model.graph.node:
        if node.op_type == "Conv":
            for a in node.attribute:
                if a.name == "dilations":
                    a.ints[:] = [1, 1]
    assert len(onnx_graph.fix_padding(model)) == 1  # only the kernel-1 pool


def _conv_model():
    rng = np.random.default_rng(2)
    w = numpy_helper.from_array(rng.normal(0, 0.3, size=(6, 3, 3, 3)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.normal(0, 0.1, size=(6,)).astype(np.float32), "b")
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Sigmoid", ["c"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3, None, None])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 6, None, None])], [w, b])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_float16_conversion_keeps_float32_io_and_stays_close():
    model = _conv_model()
    half = fp16.to_float16(model, "test")
    assert half.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert half.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert {i.data_type for i in half.graph.initializer} == {TensorProto.FLOAT16}
    assert model.graph.initializer[0].data_type == TensorProto.FLOAT  # the original is untouched
    x = np.random.default_rng(3).uniform(-1, 1, size=(2, 3, 9, 7)).astype(np.float32)
    ref = _run(model, x, "all")
    for level in LEVELS:
        got = _run(half, x, level)
        assert got.dtype == np.float32
        diff = np.abs(got - ref).max()
        assert 0 < diff < 5e-3  # float16 rounding is visible, and small


def test_float16_refuses_weights_out_of_range():
    model = _conv_model()
    model.graph.initializer[0].CopyFrom(numpy_helper.from_array(np.full((6, 3, 3, 3), 1e6, np.float32), "w"))
    with pytest.raises(ExportError, match="float16 range"):
        fp16.to_float16(model, "big.pb")


def test_split_channels_and_append_sigmoid():
    k = 2
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["maps"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2, 3, 3 * k])],
                              [helper.make_tensor_value_info("maps", TensorProto.FLOAT, [None, 2, 3, 3 * k])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx_graph.split_channels(model, "maps", k, ("scoremap", "locref"))
    onnx_graph.append_sigmoid(model, "scoremap")
    onnx.checker.check_model(model)
    x = np.random.default_rng(4).normal(size=(1, 2, 3, 3 * k)).astype(np.float32)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    score, locref = sess.run(["scoremap", "locref"], {"x": x})
    np.testing.assert_allclose(score, 1 / (1 + np.exp(-x[..., :k])), rtol=1e-6)
    np.testing.assert_array_equal(locref, x[..., k:])


def test_unsupported_ops_are_named():
    graph = helper.make_graph([helper.make_node("Lgamma", ["x"], ["y"], name="weird")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert onnx_graph.unsupported_ops(model, 17) == [("weird", "Lgamma")]
    with pytest.raises(ExportError, match=r"m\.pb: TensorFlow op\(s\) Lgamma .*--opset"):
        onnx_graph.check_supported(model, 17, "m.pb")


def test_argmax_pose_follows_deeplabcut_decode():
    stride, stdev = 8.0, 7.2801
    score = np.zeros((1, 3, 4, 2), np.float32)
    score[0, 1, 2, 0] = 0.9  # row 1, col 2
    score[0, 2, 0, 1] = 0.8
    score[0, 2, 3, 1] = 0.8  # a tie: the first maximum (row-major) wins
    locref = np.zeros((1, 3, 4, 4), np.float32)
    locref[0, 1, 2, 0:2] = (0.5, -0.25)  # (dx, dy) of bodypart 0
    xy, cell = parity.argmax_pose(score, locref, stride, stdev)
    np.testing.assert_allclose(xy[0, 0], (2 * 8 + 4 + 0.5 * stdev, 1 * 8 + 4 - 0.25 * stdev))
    np.testing.assert_allclose(xy[0, 1], (0 * 8 + 4, 2 * 8 + 4))
    assert cell.tolist() == [[1 * 4 + 2, 2 * 4 + 0]]


def test_compare_separates_near_ties_from_real_pose_differences():
    rng = np.random.default_rng(5)
    ref = rng.uniform(0, 0.5, (1, 6, 6, 2)).astype(np.float32)
    ref[0, 1, 1, 0] = 0.9
    ref[0, 4, 4, 0] = 0.8999  # near-tie for bodypart 0
    ref[0, 2, 3, 1] = 0.95
    got = ref.copy()
    got[0, 4, 4, 0] = 0.9001  # within 2x the score difference: a near-tie flip, not a pose error
    s, lr, pose, amb, n = parity.compare((ref, None), (got, None), stride=8, locref_stdev=7.28, score_tolerance=1e-3)
    assert (amb, n, pose) == (1, 2, 0.0) and s == pytest.approx(2e-4, abs=1e-6) and lr is None
    got = ref.copy()
    got[0, 5, 0, 1] = 0.99  # a clear, different peak: a real pose difference of many pixels
    s, _, pose, amb, _ = parity.compare((ref, None), (got, None), stride=8, locref_stdev=7.28, score_tolerance=1e-3)
    assert s > 0.4 and amb == 0 and pose == pytest.approx(np.hypot(3 * 8, 3 * 8))


def test_tolerance_failures_are_reported():
    from rtpose.exporters.report import ParityFigures

    fig = ParityFigures("tensorflow", 2e-3, 1e-3, float("nan"), 0, 4, 1, ("8x8",), ("all",), FP32_TOLERANCE)
    fails = fig.failures()
    assert not fig.ok and len(fails) == 2 and "score maps" in fails[0] and "poses" in fails[1]


def test_synthetic_frames_are_deterministic_and_realistic():
    a, b = frames.synthetic_frames(), frames.synthetic_frames()
    assert [f.shape for f in a] == [(240, 320, 3), (240, 320, 3), (203, 298, 3)]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
        assert x.dtype == np.float32 and 0 <= x.min() and x.max() <= 255 and x.std() > 10
    assert [bt.shape for bt in frames.batches(a)] == [(2, 240, 320, 3), (1, 203, 298, 3)]


def test_description_from_yaml_json_and_arguments(tmp_path):
    model = tmp_path / "net.keras"
    model.write_bytes(b"not read here")
    src = sources.locate(model)
    with pytest.raises(ExportError, match="net.yaml beside the model"):
        sources.describe(src)
    (tmp_path / "net.json").write_text(json.dumps({"bodyparts": ["a", "b"], "stride": 4, "apply_sigmoid": True}))
    src = sources.locate(model)
    assert src.description_file == tmp_path / "net.json" and src.files == (model, tmp_path / "net.json")
    desc = sources.describe(src, locref_stdev=5.0)
    assert (desc.bodyparts, desc.stride, desc.locref_stdev, desc.apply_sigmoid) == (("a", "b"), 4.0, 5.0, True)
    assert sources.describe(src, bodyparts=["x"]).bodyparts == ("x",)
    (tmp_path / "net.json").write_text(json.dumps({"bodyparts": ["a"], "stride": 4, "strdie": 8}))
    with pytest.raises(ExportError, match=r"net\.json: unknown keys \['strdie'\]"):
        sources.describe(sources.locate(model))
    (tmp_path / "net.json").write_text("{broken")
    with pytest.raises(ExportError, match=r"net\.json: cannot be read as JSON"):
        sources.describe(sources.locate(model))


def test_locate_rejects_what_it_cannot_export(tmp_path):
    with pytest.raises(ExportError, match="no such file or folder"):
        sources.locate(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ExportError, match="not an exportable model"):
        sources.locate(tmp_path / "notes.txt")
    with pytest.raises(ExportError, match=r"no snapshot-\*\.pb .*deeplabcut\.export_model"):
        sources.locate(tmp_path)


def test_dlc_hash_is_yaml_then_pb(tmp_path):
    import hashlib

    (tmp_path / "pose_cfg.yaml").write_text("all_joints_names: [a]\nstride: 8\n")
    (tmp_path / "snapshot-5.pb").write_bytes(b"\x01\x02")
    (tmp_path / "snapshot-10.pb").write_bytes(b"\x03")  # the highest iteration is taken
    src = sources.locate(tmp_path)
    assert src.model_file.name == "snapshot-10.pb"
    expected = hashlib.sha256((tmp_path / "pose_cfg.yaml").read_bytes() + b"\x03").hexdigest()
    assert src.sha256() == expected
    given_pb = sources.locate(tmp_path / "snapshot-5.pb")  # the .pb itself: that one, same folder
    assert (given_pb.kind, given_pb.path, given_pb.model_file.name) == ("dlc", tmp_path, "snapshot-5.pb")
