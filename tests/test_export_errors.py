"""Bad export sources: each a typed error naming the file and the fix; nothing half-written."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.export
_WHY = "TensorFlow/tf2onnx not installed: install the export extra (pip install 'rtpose[export]') to run exporter tests"
tf = pytest.importorskip("tensorflow", reason=_WHY)
pytest.importorskip("tf2onnx", reason=_WHY)
pytest.importorskip("onnx", reason=_WHY)
pytest.importorskip("onnxruntime", reason="onnxruntime not installed: pip install 'rtpose[cpu]'")

from dlc_graphs import make_dlc_export_folder, pose_cfg  # noqa: E402
from rtpose.cli import main as cli_main  # noqa: E402
from rtpose.errors import ExportError, MissingDependencyError  # noqa: E402
from rtpose.exporters import export_model  # noqa: E402

tf1 = tf.compat.v1


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return make_dlc_export_folder(tmp_path_factory.mktemp("good"), "mobilenet", seed=4)


def _copy(folder, dest):
    dest.mkdir()
    for f in folder.iterdir():
        (dest / f.name).write_bytes(f.read_bytes())
    return dest


def _small_graph_folder(dest, build, bodyparts=("a", "b")):
    """A folder holding a hand-made frozen graph: ``build(x)`` adds ops after the centred input."""
    graph = tf1.Graph()
    with graph.as_default():
        x = tf1.placeholder(tf1.float32, [None, None, None, 3], name="Placeholder")
        build(x - tf1.constant([[[[123.68, 116.779, 103.939]]]], name="img_mean"))
    dest.mkdir()
    (dest / "snapshot-50.pb").write_bytes(graph.as_graph_def().SerializeToString())
    (dest / "pose_cfg.yaml").write_text(yaml.safe_dump(pose_cfg(bodyparts, stride=2)))
    return dest


def _conv(x, depth, seed=0):
    w = np.random.default_rng(seed).normal(0, 0.05, (3, 3, int(x.shape[-1]), depth)).astype(np.float32)
    return tf1.nn.conv2d(x, tf1.constant(w), [1, 2, 2, 1], "SAME")


def test_missing_yaml(good, tmp_path):
    folder = _copy(good, tmp_path / "dlc")
    (folder / "pose_cfg.yaml").unlink()
    with pytest.raises(ExportError, match=r"dlc/pose_cfg\.yaml: not found.*deeplabcut\.export_model"):
        export_model(folder)


def test_yaml_without_bodyparts(good, tmp_path):
    folder = _copy(good, tmp_path / "dlc")
    cfg = yaml.safe_load((folder / "pose_cfg.yaml").read_text())
    del cfg["all_joints_names"]
    (folder / "pose_cfg.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(ExportError, match=r"pose_cfg\.yaml: lists no bodyparts; add `all_joints_names"):
        export_model(folder)


def test_corrupt_yaml(good, tmp_path):
    folder = _copy(good, tmp_path / "dlc")
    (folder / "pose_cfg.yaml").write_text("all_joints_names: [a, b\nstride: 8\n")
    with pytest.raises(ExportError, match=r"pose_cfg\.yaml: cannot be read as YAML"):
        export_model(folder)


def test_bodypart_count_must_match_the_graph(good, tmp_path):
    folder = _copy(good, tmp_path / "dlc")
    cfg = yaml.safe_load((folder / "pose_cfg.yaml").read_text())
    cfg["all_joints_names"] = ["snout", "tailbase"]
    (folder / "pose_cfg.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(ExportError, match=r"pose_cfg\.yaml: lists 2 bodyparts .* score maps have 4 channels"):
        export_model(folder, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_corrupt_pb(good, tmp_path, damage):
    folder = _copy(good, tmp_path / "dlc")
    pb = folder / "snapshot-1000.pb"
    data = pb.read_bytes()
    pb.write_bytes({"truncated": data[: len(data) // 2], "garbage": b"\xff\x00junk" * 50, "empty": b""}[damage])
    with pytest.raises(ExportError, match=r"snapshot-1000\.pb: (not a TensorFlow frozen graph|holds no graph nodes)"
                                          r".*Export the model again"):
        export_model(folder)


def test_pb_without_the_deeplabcut_nodes_lists_candidates(tmp_path):
    def build(x):
        features = tf1.nn.relu(_conv(x, 4))
        tf1.identity(tf1.sigmoid(_conv(features, 2, 1), name="heat_sigmoid"), name="heatmaps")
        tf1.nn.bias_add(_conv(features, 4, 2), tf1.zeros(4), name="offsets")

    folder = _small_graph_folder(tmp_path / "other", build)
    with pytest.raises(ExportError) as info:
        export_model(folder)
    msg = str(info.value)
    assert "snapshot-50.pb: lacks the DeepLabCut output node(s) `Sigmoid`, `pose/locref_pred/block4/BiasAdd`" in msg
    assert "`heatmaps` (Identity)" in msg and "`offsets` (BiasAdd)" in msg and "deeplabcut.export_model" in msg


def test_missing_locref_node_suggests_location_refinement_false(tmp_path):
    folder = _small_graph_folder(tmp_path / "norefine", lambda x: tf1.sigmoid(_conv(x, 2), name="Sigmoid"))
    with pytest.raises(ExportError, match=r"location_refinement: false"):
        export_model(folder)


def test_unsupported_op_is_named_with_the_fix(tmp_path):
    def build(x):
        odd = tf1.math.lgamma(tf1.abs(_conv(x, 4)) + 1.0)  # no ONNX conversion exists for Lgamma
        tf1.sigmoid(_conv(odd, 2, 1), name="Sigmoid")
        tf1.nn.bias_add(_conv(odd, 4, 2), tf1.zeros(4), name="pose/locref_pred/block4/BiasAdd")

    folder = _small_graph_folder(tmp_path / "lgamma", build)
    with pytest.raises(ExportError, match=r"snapshot-50\.pb: TensorFlow op\(s\) Lgamma .*--opset.*report"):
        export_model(folder, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_parity_failure_writes_nothing(good, tmp_path, monkeypatch):
    """A conversion that computes something else must fail the check, not ship."""
    from onnx import numpy_helper

    from rtpose.exporters import tf_frozen

    real_convert = tf_frozen.convert

    def wrong_convert(*args, **kwargs):
        model, rewritten = real_convert(*args, **kwargs)
        biggest = max(model.graph.initializer, key=lambda t: np.prod(t.dims))
        arr = numpy_helper.to_array(biggest).copy()
        arr.flat[: arr.size // 3] *= -1.0  # a plausible bug: some weights flipped
        biggest.CopyFrom(numpy_helper.from_array(arr, biggest.name))
        return model, rewritten

    monkeypatch.setattr(tf_frozen, "convert", wrong_convert)
    out = tmp_path / "bad.onnx"
    with pytest.raises(ExportError, match=r"does not reproduce TensorFlow: .* differ by .*Nothing was written"):
        export_model(good, out)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_bad_opset_and_check_images(good, tmp_path):
    with pytest.raises(ExportError, match="opset 9 is not supported; use 13-18"):
        export_model(good, opset=9)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ExportError, match=r"broken\.png: cannot be read as an image for --check"):
        export_model(good, check_images=[tmp_path / "broken.png"])


def test_missing_tensorflow_names_the_extra(good, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # import tensorflow -> ImportError
    with pytest.raises(MissingDependencyError, match=r"install with `pip install 'rtpose\[export\]'`"):
        export_model(good)


def test_cli_reports_errors_without_traceback(good, tmp_path, capsys):
    folder = _copy(good, tmp_path / "dlc")
    (folder / "pose_cfg.yaml").unlink()
    assert cli_main(["export", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rtpose export: error: ") and "pose_cfg.yaml: not found" in err and "Traceback" not in err
