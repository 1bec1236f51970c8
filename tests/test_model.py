"""OnnxPoseModel: metadata, providers, preallocated I/O and clear errors for bad models/inputs."""

import numpy as np
import pytest

from analytic_model import (build_analytic_model, build_model_missing_scoremap, build_model_without_metadata,
                            build_model_wrong_channels)
from drivers_helpers import synthetic_frames
from rtpose.errors import ConfigError, ModelError, ModelInputError
from rtpose.model import OnnxPoseModel, choose_providers, load_model


def test_loads_metadata_and_runs_into_preallocated_buffers(analytic_model):
    model = OnnxPoseModel(analytic_model, providers=["cpu"])
    assert model.metadata.bodyparts == ("head", "body", "tail")
    assert model.provider == "CPUExecutionProvider"
    frames, _ = synthetic_frames(3)
    model.prepare(4, *frames.shape[1:3])
    for i in range(3):
        model.load_frame(i, frames[i])
    scmap, locref = model.run(3)
    assert scmap.shape == (3, 240 // 8, 320 // 8, 3) and locref.shape == (3, 30, 40, 3, 2)
    first_ptr = scmap.__array_interface__["data"][0]
    scmap2, _ = model.run(3)  # same buffers, no new allocation
    assert scmap2.__array_interface__["data"][0] == first_ptr
    # IOBinding results equal a plain session.run on the same input
    ref = model.session.run(["scoremap"], {"image": model.input_buffer[:3]})[0]
    np.testing.assert_array_equal(scmap, ref)


def test_bgr_frames_are_converted_to_the_models_colour_order(tmp_path):
    rgb = OnnxPoseModel(build_analytic_model(tmp_path / "rgb.onnx", input_color="RGB"))
    bgr = OnnxPoseModel(build_analytic_model(tmp_path / "bgr.onnx", input_color="BGR"))
    frames, _ = synthetic_frames(2)
    np.testing.assert_allclose(rgb.infer(frames)[0], bgr.infer(frames)[0], atol=1e-6)
    np.testing.assert_array_equal(rgb.input_buffer[0], frames[0][..., ::-1].astype(np.float32))
    np.testing.assert_array_equal(bgr.input_buffer[0], frames[0].astype(np.float32))


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        load_model(tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not an onnx file")
    with pytest.raises(ModelError, match="not a loadable ONNX model"):
        OnnxPoseModel(bad)


def test_models_without_what_rtpose_needs(tmp_path):
    with pytest.raises(ModelError, match="no rtpose metadata"):
        OnnxPoseModel(build_model_without_metadata(tmp_path / "a.onnx"))
    with pytest.raises(ModelError, match="not in the graph"):
        OnnxPoseModel(build_model_missing_scoremap(tmp_path / "b.onnx"))
    with pytest.raises(ModelError, match="score maps have shape"):  # refused at load, before any frame
        OnnxPoseModel(build_model_wrong_channels(tmp_path / "c.onnx"))


def test_wrong_inputs_are_model_input_errors(analytic_model):
    model = OnnxPoseModel(analytic_model)
    model.prepare(2, 64, 80)
    with pytest.raises(ModelInputError, match="prepared for"):
        model.load_frame(0, np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(ModelInputError, match="batch of 3"):
        model.run(3)
    with pytest.raises(ModelInputError, match="uint8 BGR"):
        model.infer(np.zeros((1, 64, 80, 3), np.float32))
    with pytest.raises(ModelInputError, match="smaller than the model stride"):
        model.prepare(1, 4, 4)


def test_fixed_batch_model_refuses_larger_batches(tmp_path, analytic_model):
    import onnx

    proto = onnx.load(str(analytic_model))
    proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    onnx.save(proto, str(tmp_path / "b1.onnx"))
    model = OnnxPoseModel(tmp_path / "b1.onnx")
    model.prepare(1, 64, 64)
    assert model.run(1)[0].shape[0] == 1
    with pytest.raises(ModelInputError, match="batches of exactly 1"):
        model.prepare(4, 64, 64)


def test_provider_choice():
    assert choose_providers(None)[-1] == "CPUExecutionProvider"
    assert choose_providers(["cpu"]) == ["CPUExecutionProvider"]
    with pytest.raises(ModelError, match="unknown provider"):
        choose_providers(["tpu"])
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        with pytest.raises(ModelError, match="not available"):
            choose_providers(["cuda"])


def test_thread_spinning_is_off_by_default_and_a_knob(analytic_model):
    def spinning(model):
        return model.session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning")

    default = OnnxPoseModel(analytic_model)
    assert spinning(default) == "0" and not default.spinning
    assert default.settings.endswith("spinning off")
    on = OnnxPoseModel(analytic_model, threads=1, spinning=True)
    assert spinning(on) == "1" and on.session.get_session_options().intra_op_num_threads == 1
    assert on.settings == "1 CPU thread, spinning on"
    with pytest.raises(ConfigError, match="whole number >= 1"):
        OnnxPoseModel(analytic_model, threads=0)
