"""Keras models (in memory, .keras file, SavedModel) -> ONNX: output matching, parity, metadata."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.export
_WHY = "TensorFlow/tf2onnx not installed: install the export extra (pip install 'rtpose[export]') to run exporter tests"
tf = pytest.importorskip("tensorflow", reason=_WHY)
pytest.importorskip("tf2onnx", reason=_WHY)
onnx = pytest.importorskip("onnx", reason=_WHY)
ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed: pip install 'rtpose[cpu]'")

import keras  # noqa: E402

from rtpose.errors import ExportError  # noqa: E402
from rtpose.exporters import FP32_TOLERANCE, export_keras_model, export_model  # noqa: E402
from rtpose.metadata import ModelMetadata  # noqa: E402

BODYPARTS = ("snout", "leftear", "rightear")
K = len(BODYPARTS)


def _backbone(inp):
    init = keras.initializers.HeNormal(seed=0)
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inp)  # preprocessing inside the model
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False, kernel_initializer=init)(x)
    x = keras.layers.BatchNormalization(moving_mean_initializer="zeros", gamma_initializer="ones")(x)
    x = keras.layers.ReLU(6.0)(x)
    x = keras.layers.DepthwiseConv2D(3, strides=2, padding="same", depthwise_initializer=init)(x)
    x = keras.layers.Conv2D(16, 1, activation="relu", kernel_initializer=init)(x)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", kernel_initializer=init)(x)
    return x


def _head(x, n, name, activation=None):
    init = keras.initializers.RandomNormal(stddev=0.3, seed=len(name) + n)
    return keras.layers.Conv2DTranspose(n, 3, strides=2, padding="same", activation=activation, name=name,
                                        kernel_initializer=init, bias_initializer="zeros")(x)


@pytest.fixture(scope="module")
def two_output_model():
    inp = keras.Input((None, None, 3), name="image")
    x = _backbone(inp)
    # Offsets first: outputs must be matched by channel count or name, never by position.
    return keras.Model(inp, [_head(x, 2 * K, "locref"), _head(x, K, "scoremap", "sigmoid")], name="tiny_pose")


def _frames(batch=2, h=136, w=200):
    rng = np.random.default_rng(11)
    return rng.uniform(0, 255, (batch, h, w, 3)).astype(np.float32)


def _ort(path, x):
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"]).run(["scoremap", "locref"],
                                                                                         {"image": x})


def _meta(path):
    model = onnx.load(str(path))
    return ModelMetadata.from_props({p.key: p.value for p in model.metadata_props})


def _assert_close(got, score, locref):
    assert got[0].shape == score.shape and got[1].shape == locref.shape
    assert np.abs(got[0] - score).max() <= FP32_TOLERANCE.scoremap
    assert np.abs(got[1] - locref).max() <= FP32_TOLERANCE.locref


def test_in_memory_keras_model(two_output_model, tmp_path):
    report = export_keras_model(two_output_model, tmp_path / "mem.onnx", bodyparts=BODYPARTS, stride=8,
                                locref_stdev=7.2801, extra={"training_steps": "1200"})
    assert report.source_kind == "keras-model" and report.parity.ok
    assert "score maps `scoremap`" in report.variant_note and "offsets `locref`" in report.variant_note
    meta = _meta(report.out)
    assert meta.bodyparts == BODYPARTS and meta.stride == 8.0 and meta.extra["training_steps"] == "1200"
    assert meta.extra["source_kind"] == "keras-model" and len(meta.extra["source_sha256"]) == 64
    x = _frames()
    locref, score = (t.numpy() for t in two_output_model(x, training=False))
    assert score.std() > 0.05  # not a flat map: the comparison means something
    _assert_close(_ort(report.out, x), score, locref)


def test_keras_file_with_json_description(two_output_model, tmp_path):
    path = tmp_path / "net.keras"
    two_output_model.save(path)
    (tmp_path / "net.json").write_text(json.dumps({"bodyparts": list(BODYPARTS), "stride": 8, "locref_stdev": 6.5}))
    report = export_model(path)
    assert report.out == tmp_path / "net.onnx" and report.source_kind == "keras"
    meta = _meta(report.out)
    assert meta.locref_stdev == 6.5 and meta.extra["source_kind"] == "keras"
    x = _frames(batch=1)
    locref, score = (t.numpy() for t in two_output_model(x, training=False))
    _assert_close(_ort(report.out, x), score, locref)


def test_savedmodel_outputs_matched_by_channel_count(two_output_model, tmp_path):
    folder = tmp_path / "saved"
    two_output_model.export(str(folder), verbose=False)  # signature outputs: output_0 (2K), output_1 (K)
    (folder / "rtpose.yaml").write_text(f"bodyparts: {list(BODYPARTS)}\nstride: 8\n")
    report = export_model(folder, tmp_path / "sm.onnx")
    assert report.source_kind == "savedmodel"
    assert "`output_1` (3 channels)" in report.variant_note and "`output_0` (6 channels)" in report.variant_note
    x = _frames()
    locref, score = (t.numpy() for t in two_output_model(x, training=False))
    _assert_close(_ort(report.out, x), score, locref)


def test_single_concatenated_logits_output_is_split_and_sigmoided(tmp_path):
    inp = keras.Input((None, None, 3), name="image")
    x = _backbone(inp)
    maps = keras.layers.Concatenate(name="maps")([_head(x, K, "logits"), _head(x, 2 * K, "offsets")])
    model = keras.Model(inp, maps)
    report = export_keras_model(model, tmp_path / "cat.onnx", bodyparts=BODYPARTS, stride=8, apply_sigmoid=True)
    assert "split into [0, 3) score maps and [3, 9) offsets" in report.variant_note
    x = _frames(batch=1)
    both = model(x, training=False).numpy()
    _assert_close(_ort(report.out, x), 1 / (1 + np.exp(-both[..., :K])), both[..., K:])


def test_outputs_that_cannot_be_told_apart(tmp_path):
    inp = keras.Input((None, None, 3), name="image")
    x = _backbone(inp)
    model = keras.Model(inp, [_head(x, K, "a"), _head(x, K, "b")])
    with pytest.raises(ExportError, match=r"cannot tell which output is which .*scoremap_output"):
        export_keras_model(model, tmp_path / "x.onnx", bodyparts=BODYPARTS, stride=8)
    report_out = tmp_path / "named.onnx"
    report = export_keras_model(model, report_out, bodyparts=BODYPARTS, stride=8, scoremap_output="b")
    assert report.metadata.locref_output is None and not report.metadata.location_refinement
