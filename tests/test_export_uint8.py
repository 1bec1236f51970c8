"""Export with a uint8 BGR input: channel order and cast move into the graph, the host only copies frames, poses
are those of the float model, the metadata says so, and float models keep working."""

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
from rtpose.decode import decode_reference  # noqa: E402
from rtpose.errors import ExportError  # noqa: E402
from rtpose.exporters import export_keras_model, export_model  # noqa: E402
from rtpose.model import OnnxPoseModel  # noqa: E402

BODYPARTS = ("snout", "tail")
K = len(BODYPARTS)


@pytest.fixture(scope="module")
def keras_model():
    return tiny_pose_net(K, seed=3, name="tiny_u8")


def _frames_bgr(n=3, h=96, w=128):
    return blob_frames(5, (40, 60, 50, 80), (20, 200, 90), n, h, w)


def test_uint8_bgr_model_gives_the_float_models_poses_and_only_copies_frames(keras_model, tmp_path):
    flt = export_keras_model(keras_model, tmp_path / "f.onnx", bodyparts=BODYPARTS, stride=8)
    u8 = export_keras_model(keras_model, tmp_path / "u8.onnx", bodyparts=BODYPARTS, stride=8, uint8_bgr=True)
    assert u8.parity_uint8 is not None and u8.parity_uint8.ok and "uint8 BGR input" in u8.summary()
    meta = u8.metadata
    assert (meta.input_color, meta.input_range) == ("BGR", "0-255")
    assert meta.extra["input_conversion"].startswith("uint8 BGR input")
    assert "parity_uint8.pose_max_px" in meta.extra and flt.metadata.input_color == "RGB"
    graph_input = onnx.load(str(u8.out)).graph.input[0]
    assert graph_input.name == "image" and graph_input.type.tensor_type.elem_type == onnx.TensorProto.UINT8

    frames = _frames_bgr()
    m_f, m_u8 = OnnxPoseModel(flt.out), OnnxPoseModel(u8.out)
    out_f, out_u8 = m_f.infer(frames), m_u8.infer(frames)
    assert m_u8.input_buffer.dtype == np.uint8
    np.testing.assert_array_equal(m_u8.input_buffer[: len(frames)], frames)  # the frame itself: no conversion
    np.testing.assert_allclose(out_u8[0], out_f[0], atol=1e-6)
    np.testing.assert_allclose(out_u8[1], out_f[1], atol=1e-5)
    poses_f = decode_reference(out_f[0], out_f[1], 8, 7.2801)
    poses_u8 = decode_reference(out_u8[0], out_u8[1], 8, 7.2801)
    np.testing.assert_allclose(poses_u8, poses_f, atol=1e-3)
    # and against TensorFlow itself, on RGB floats
    score_tf, locref_tf = (t.numpy() for t in keras_model(frames[..., ::-1].astype(np.float32), training=False))
    np.testing.assert_allclose(out_u8[0], score_tf, atol=1e-4)


def test_uint8_input_from_the_command_line_and_refused_for_an_onnx_file(keras_model, tmp_path, capsys):
    src = tmp_path / "net.keras"
    keras_model.save(src)
    code = cli_main(["export", str(src), "--bodyparts", ",".join(BODYPARTS), "--stride", "8",
                     "--input", "uint8-bgr", "--out", str(tmp_path / "net-u8.onnx")])
    assert code == 0 and "check uint8 BGR input" in capsys.readouterr().out
    assert OnnxPoseModel(tmp_path / "net-u8.onnx").metadata.input_color == "BGR"
    with pytest.raises(ExportError, match="export the DeepLabCut folder, SavedModel or Keras file again"):
        export_model(tmp_path / "net-u8.onnx", tmp_path / "again.onnx", uint8_bgr=True)


def test_deeplabcut_folder_with_a_uint8_input_matches_its_float_export(tmp_path):
    from dlc_graphs import make_dlc_export_folder

    folder = make_dlc_export_folder(tmp_path, "mobilenet", seed=4)
    flt = export_model(folder, tmp_path / "f.onnx")
    u8 = export_model(folder, uint8_bgr=True)
    assert u8.out.name.endswith("-uint8.onnx") and u8.parity_uint8.ok and u8.parity_uint8.reference == "tensorflow"
    frames = _frames_bgr(2, 64, 96)
    got_f, got_u8 = OnnxPoseModel(flt.out).infer(frames), OnnxPoseModel(u8.out).infer(frames)
    np.testing.assert_allclose(got_u8[0], got_f[0], atol=1e-5)
