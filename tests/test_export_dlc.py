"""DeepLabCut exported-model folders -> ONNX: parity with TensorFlow, metadata, variants.

The folders are built by tests/dlc_graphs.py the way DeepLabCut's TF code builds
its graphs (ResNet and MobileNetV2 backbones, deconvolution head). Parity is
checked here independently of the exporter's own check: TF and onnxruntime are
run on a batch and a frame size the exporter never saw.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

pytestmark = pytest.mark.export
_WHY = "TensorFlow/tf2onnx not installed: install the export extra (pip install 'rtpose[export]') to run exporter tests"
tf = pytest.importorskip("tensorflow", reason=_WHY)
pytest.importorskip("tf2onnx", reason=_WHY)
onnx = pytest.importorskip("onnx", reason=_WHY)
ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed: pip install 'rtpose[cpu]'")

import rtpose  # noqa: E402
from dlc_graphs import DEFAULT_BODYPARTS, LOCREF_NODE, build_dlc_graph_def, make_dlc_export_folder  # noqa: E402
from rtpose.cli import COMMANDS, main as cli_main  # noqa: E402
from rtpose.exporters import FP16_TOLERANCE, FP32_TOLERANCE, export_model  # noqa: E402
from rtpose.exporters.parity import argmax_pose  # noqa: E402
from rtpose.metadata import ModelMetadata  # noqa: E402


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    base = tmp_path_factory.mktemp("dlc")
    return {b: make_dlc_export_folder(base, b, seed=1) for b in ("resnet", "mobilenet")}


def _frames(batch=3, h=184, w=264, seed=7):
    """Frames unlike the exporter's own check frames: another size (not a multiple of 16), batch 3."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    frames = []
    for _ in range(batch):
        cy, cx = rng.uniform(40, h - 40), rng.uniform(40, w - 40)
        img = 150 + 30 * np.sin(xx / 9.0) - 100 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 400.0)
        frames.append(np.stack([img, img * 0.9, img * 0.8], -1) + rng.normal(0, 3, (h, w, 3)))
    return np.clip(np.stack(frames), 0, 255).astype(np.float32)


def _tf_maps(folder, x):
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(next(folder.glob("snapshot-*.pb")).read_bytes())
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as sess:
        return sess.run(["Sigmoid:0", f"{LOCREF_NODE}:0"], {"Placeholder:0": x})


def _ort_maps(path, x, level):
    opts = ort.SessionOptions()
    opts.graph_optimization_level = level
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return sess.run(["scoremap", "locref"], {"image": x})


def _metadata(path):
    model = onnx.load(str(path))
    return model, ModelMetadata.from_props({p.key: p.value for p in model.metadata_props}, source=str(path))


def _assert_parity(ref, got, tol, stride=8.0, stdev=7.2801):
    assert ref[0].shape == got[0].shape and ref[1].shape == got[1].shape
    assert np.abs(ref[0] - got[0]).max() <= tol.scoremap
    assert np.abs(ref[1] - got[1]).max() <= tol.locref
    ref_xy, _ = argmax_pose(ref[0], ref[1], stride, stdev)
    got_xy, _ = argmax_pose(got[0], got[1], stride, stdev)
    assert np.linalg.norm(ref_xy - got_xy, axis=-1).max() <= tol.pose_px


def test_test_graphs_are_built_like_deeplabcut_exports(folders):
    import yaml

    expected = {
        "resnet": {"Conv2D", "FusedBatchNormV3", "Relu", "Pad", "MaxPool", "SpaceToBatchND", "BatchToSpaceND",
                   "AddV2", "Conv2DBackpropInput", "BiasAdd", "Sigmoid", "Sub"},
        "mobilenet": {"Conv2D", "DepthwiseConv2dNative", "FusedBatchNormV3", "Relu6", "AddV2",
                      "Conv2DBackpropInput", "BiasAdd", "Sigmoid", "Sub"},
    }
    for backbone, folder in folders.items():
        cfg = yaml.safe_load((folder / "pose_cfg.yaml").read_text())
        assert cfg["all_joints_names"] == list(DEFAULT_BODYPARTS) and cfg["stride"] == 8.0
        assert cfg["location_refinement"] is True and cfg["locref_stdev"] == pytest.approx(7.2801)
        graph_def = tf.compat.v1.GraphDef()
        graph_def.ParseFromString((folder / "snapshot-1000.pb").read_bytes())
        ops = {n.op for n in graph_def.node}
        assert expected[backbone] <= ops, expected[backbone] - ops
        # DeepLabCut-Live takes the first node as input, the last two as (offsets, score maps).
        names = [n.name for n in graph_def.node]
        assert names[0] == "Placeholder" and names[-2:] == [LOCREF_NODE, "Sigmoid"]
        if backbone == "resnet":  # the kernel-1 stride-2 SAME shortcut pool and a dilated conv
            pools = [n for n in graph_def.node if n.op == "MaxPool" and list(n.attr["ksize"].list.i) == [1, 1, 1, 1]]
            assert pools and all(n.attr["padding"].s == b"SAME" for n in pools)
            assert any(list(n.attr["dilations"].list.i) == [1, 2, 2, 1] for n in graph_def.node if n.op == "Conv2D")


def test_builder_is_deterministic(folders):
    same, _ = build_dlc_graph_def("mobilenet", seed=1)  # the fixture's folder was built with seed 1
    other, _ = build_dlc_graph_def("mobilenet", seed=2)
    assert same.SerializeToString(deterministic=True) == (folders["mobilenet"] / "snapshot-1000.pb").read_bytes()
    assert other.SerializeToString(deterministic=True) != same.SerializeToString(deterministic=True)


@pytest.mark.parametrize("backbone", ["resnet", "mobilenet"])
def test_cli_export_matches_tensorflow_at_every_ort_level(backbone, folders, tmp_path, capsys):
    assert "export" in COMMANDS
    folder = folders[backbone]
    out = tmp_path / f"{backbone}.onnx"
    assert cli_main(["export", str(folder), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "variant:  dlc-maps" in printed and "check FP32 vs tensorflow" in printed and "-> OK" in printed

    model, meta = _metadata(out)
    assert meta.bodyparts == DEFAULT_BODYPARTS and meta.stride == 8.0 and meta.locref_stdev == pytest.approx(7.2801)
    assert (meta.scoremap_output, meta.locref_output, meta.input_name) == ("scoremap", "locref", "image")
    assert meta.location_refinement and meta.preprocessing_in_graph
    assert (meta.input_color, meta.input_range) == ("RGB", "0-255")
    cfg_pb = (folder / "pose_cfg.yaml").read_bytes() + (folder / "snapshot-1000.pb").read_bytes()
    extra = meta.extra
    assert extra["source_sha256"] == hashlib.sha256(cfg_pb).hexdigest()
    assert (extra["source_kind"], extra["source_variant"]) == ("dlc", "dlc-maps")
    assert extra["exporter_version"] == rtpose.__version__ and extra["tensorflow_version"] == tf.__version__
    assert extra["tf2onnx_version"] and extra["opset"] == "17" and extra["fp16"] == "false"
    assert float(extra["parity.scoremap_max_abs"]) <= FP32_TOLERANCE.scoremap
    assert float(extra["parity.locref_max_abs"]) <= FP32_TOLERANCE.locref
    assert float(extra["parity.pose_max_px"]) <= FP32_TOLERANCE.pose_px
    assert extra["parity.ort_levels"] == "disable_all,basic,extended,all"

    dims = [[d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in list(model.graph.input) + list(model.graph.output)]
    assert dims == [["batch", "height", "width", 3], ["batch", "map_height", "map_width", 4],
                    ["batch", "map_height", "map_width", 8]]
    for node in model.graph.node:  # no SAME padding left that onnxruntime mishandles
        attrs = {a.name: a for a in node.attribute}
        if node.op_type == "MaxPool" and list(attrs["kernel_shape"].ints) == [1, 1]:
            assert attrs["auto_pad"].s == b"VALID"
        if node.op_type == "Conv" and any(d > 1 for d in attrs.get("dilations", onnx.AttributeProto()).ints):
            assert "auto_pad" not in attrs or attrs["auto_pad"].s in (b"NOTSET", b"VALID")

    x = _frames()
    ref = _tf_maps(folder, x)
    assert ref[0].shape == (3, 24, 34, 4)  # ceil(184 / 16) * 2, ceil(264 / 16) * 2: TF 'SAME' sizes
    for level in (ort.GraphOptimizationLevel.ORT_DISABLE_ALL, ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                  ort.GraphOptimizationLevel.ORT_ENABLE_ALL):
        _assert_parity(ref, _ort_maps(out, x, level), FP32_TOLERANCE)


def test_fp16_export_is_checked_against_fp32(folders, tmp_path):
    folder = folders["mobilenet"]
    report = export_model(folder, tmp_path / "half.onnx", fp16=True, opset=18)
    assert report.fp16 and report.parity.ok and report.parity_fp16.ok
    assert report.parity_fp16.reference == "onnx-fp32" and report.parity.reference == "tensorflow"
    assert report.parity_fp16.scoremap_max_abs > report.parity.scoremap_max_abs  # float16 rounding shows
    model, meta = _metadata(report.out)
    assert meta.extra["fp16"] == "true" and meta.extra["opset"] == "18"
    assert float(meta.extra["parity_fp16.pose_max_px"]) == pytest.approx(report.parity_fp16.pose_max_px, rel=1e-2)
    weights = [i for i in model.graph.initializer if i.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)]
    assert weights and all(i.data_type == onnx.TensorProto.FLOAT16 for i in weights if len(i.dims) == 4)
    io_types = {v.type.tensor_type.elem_type for v in list(model.graph.input) + list(model.graph.output)}
    assert io_types == {onnx.TensorProto.FLOAT}
    x = _frames(batch=2)
    _assert_parity(_tf_maps(folder, x), _ort_maps(report.out, x, ort.GraphOptimizationLevel.ORT_DISABLE_ALL),
                   FP16_TOLERANCE)


def _rename_nodes(folder, renames):
    graph_def = tf.compat.v1.GraphDef()
    pb = folder / "snapshot-1000.pb"
    graph_def.ParseFromString(pb.read_bytes())
    for node in graph_def.node:
        node.name = renames.get(node.name, node.name)
        for i, inp in enumerate(node.input):
            base, sep, port = inp.partition(":")
            if base in renames:
                node.input[i] = renames[base] + sep + port
    pb.write_bytes(graph_def.SerializeToString())


@pytest.mark.parametrize("concat, variant, expect", [
    ("pose", "dlc-concat-pose", "TFGPUinference"),
    ("maps", "dlc-concat-maps", "exported its inputs"),
    ("split", "dlc-concat-split", "split into channels"),
])
def test_concatenated_output_variants_are_detected_and_split(concat, variant, expect, tmp_path):
    import cv2

    folder = make_dlc_export_folder(tmp_path, "mobilenet", seed=2, concat_output="pose" if concat == "pose" else "maps")
    x = _frames(batch=2, h=160, w=208)
    ref = _tf_maps(folder, x)  # before any renaming
    if concat == "split":  # a graph whose maps are only reachable through the concatenation
        _rename_nodes(folder, {"Sigmoid": "probs", LOCREF_NODE: "offsets"})
    check = []
    for i, frame in enumerate(x):  # --check images: RGB arrays saved as BGR PNGs
        path = tmp_path / f"frame{i}.png"
        cv2.imwrite(str(path), cv2.cvtColor(np.round(frame).astype(np.uint8), cv2.COLOR_RGB2BGR))
        check.append(path)
    report = export_model(folder, tmp_path / "m.onnx", check_images=check)
    assert report.variant == variant and expect in report.variant_note
    assert report.parity.frames == 2 and report.parity.frame_sizes == ("160x208", "160x208")
    _, meta = _metadata(report.out)
    assert meta.extra["source_variant"] == variant and meta.locref_output == "locref"
    _assert_parity(ref, _ort_maps(report.out, x, ort.GraphOptimizationLevel.ORT_DISABLE_ALL), FP32_TOLERANCE)


def test_scoremap_only_model_without_location_refinement(tmp_path):
    folder = make_dlc_export_folder(tmp_path, "mobilenet", bodyparts=("nose", "tail"), stride=4, seed=5,
                                    location_refinement=False)
    report = export_model(folder)
    assert report.out == folder.with_name(folder.name + ".onnx")
    assert report.variant == "dlc-scoremap-only" and report.parity.locref_max_abs is None
    model, meta = _metadata(report.out)
    assert not meta.location_refinement and meta.locref_output is None and meta.stride == 4.0
    assert [o.name for o in model.graph.output] == ["scoremap"]
