"""--decode-in-graph from a source model, composed with --fp16 and --input uint8-bgr: the exporter appends the
decode last, checks it bit for bit against rtpose's decoder, and the engine takes the poses from the graph."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.export
_WHY = "TensorFlow/tf2onnx not installed: install the export extra (pip install 'rtpose[export]') to run exporter tests"
tf = pytest.importorskip("tensorflow", reason=_WHY)
pytest.importorskip("tf2onnx", reason=_WHY)
onnx = pytest.importorskip("onnx", reason=_WHY)

from keras_nets import blob_frames, tiny_pose_net  # noqa: E402
from rtpose.cli import main as cli_main  # noqa: E402
from rtpose.decode import Decoder  # noqa: E402
from rtpose.errors import ExportError  # noqa: E402
from rtpose.exporters import export_keras_model, export_model  # noqa: E402
from rtpose.exporters.decode_in_graph import same_bits  # noqa: E402
from rtpose.model import OnnxPoseModel  # noqa: E402

BODYPARTS = ("snout", "tail")
K = len(BODYPARTS)


@pytest.fixture(scope="module")
def keras_model():
    return tiny_pose_net(K, seed=4, name="tiny_decode")


def _frames_bgr(n=3, h=96, w=128):
    return blob_frames(6, (30, 50, 60, 90), (10, 220, 60), n, h, w)


@pytest.mark.parametrize("fp16,uint8", [(False, False), (True, True)])
def test_decode_in_graph_composes_with_fp16_and_uint8(keras_model, tmp_path, fp16, uint8):
    report = export_keras_model(keras_model, tmp_path / "m.onnx", bodyparts=BODYPARTS, stride=8, fp16=fp16,
                                uint8_bgr=uint8, decode_in_graph=True)
    meta = report.metadata
    assert meta.pose_output == "poses" and report.decode_check.startswith("bit-identical to rtpose.decode")
    assert "check decode in graph (output poses)" in report.summary()
    assert meta.input_color == ("BGR" if uint8 else "RGB") and meta.extra["precision"] == ("fp16" if fp16 else "fp32")
    frames = _frames_bgr()
    graph = OnnxPoseModel(report.out, providers=["cpu"], threads=1)
    maps = OnnxPoseModel(report.out, providers=["cpu"], threads=1, graph_decode=False)
    assert graph.decodes_in_graph and not maps.decodes_in_graph
    poses = graph.infer_poses(frames).copy()
    scmap, locref = maps.infer(frames)
    expected = np.empty_like(poses)
    Decoder(8, meta.locref_stdev, K, len(frames)).decode(scmap, locref, expected)
    assert same_bits(poses, expected).all()


def test_decode_in_graph_from_the_command_line(keras_model, tmp_path, capsys):
    src = tmp_path / "net.keras"
    keras_model.save(src)
    code = cli_main(["export", str(src), "--bodyparts", ",".join(BODYPARTS), "--stride", "8", "--input", "uint8-bgr",
                     "--decode-in-graph"])
    assert code == 0 and "bit-identical" in capsys.readouterr().out
    out = tmp_path / "net-uint8-decode.onnx"  # the default name says what is inside
    assert OnnxPoseModel(out).decodes_in_graph
    with pytest.raises(ExportError, match="only gets the decode added"):
        export_model(out, tmp_path / "x.onnx", fp16=True, decode_in_graph=True)
    assert cli_main(["export", str(src), "--int8", "--calibrate", "x.mp4", "--labels", "y.csv",
                     "--decode-in-graph"]) == 2
