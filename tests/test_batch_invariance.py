"""Batch invariance: a frame's pose never depends on the other frames of its batch.

DeepLabCut's TF MobileNetV2 exports freeze their batch norms in training mode
(statistics of the processed tensor). Converted as they are, frames batched
together change each other's poses (measured on a real export: up to 609 px). The
exporter rewrites those nodes per frame and checks every export for batch
invariance; the runtime runs an undeclared model one frame at a time.

The graphs are DeepLabCut-format look-alikes with training-mode batch norm
(tests/dlc_graphs.py, ``mobilenet-trainbn``); tests/test_dlc_real.py runs the
same properties on graphs made by DeepLabCut's own builders. The frames are real
640x480 frames of the bundled openfield video.
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.export
_WHY = "TensorFlow/tf2onnx not installed: install the export extra (pip install 'rtpose[export]') to run exporter tests"
tf = pytest.importorskip("tensorflow", reason=_WHY)
pytest.importorskip("tf2onnx", reason=_WHY)
onnx = pytest.importorskip("onnx", reason=_WHY)

import cv2  # noqa: E402

from dlc_graphs import DEFAULT_BODYPARTS, LOCREF_NODE, build_dlc_graph_def, make_dlc_export_folder  # noqa: E402
from rtpose.cli import main as cli_main  # noqa: E402
from rtpose.data import demo_video_path  # noqa: E402
from rtpose.errors import ExportError  # noqa: E402
from rtpose.exporters import api, batch_mixing, export_model, tf_frozen  # noqa: E402
from rtpose.exporters.parity import argmax_pose  # noqa: E402
from rtpose.exporters.report import BATCH_TOLERANCE  # noqa: E402
from rtpose.metadata import ModelMetadata  # noqa: E402
from rtpose.model import OnnxPoseModel  # noqa: E402
from rtpose.recording.dlc_table import read_dlc_table  # noqa: E402

N_FRAMES = 40


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_dlc_export_folder(tmp_path_factory.mktemp("trainbn"), "mobilenet-trainbn", seed=3)


@pytest.fixture(scope="module")
def exported(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("exported") / "trainbn.onnx"
    return export_model(folder, out)


@pytest.fixture(scope="module")
def real_frames(tmp_path_factory):
    """N_FRAMES real 640x480 frames of the openfield video, spread over it, as PNG files (lossless)."""
    cap = cv2.VideoCapture(str(demo_video_path()))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    where = tmp_path_factory.mktemp("frames") / "openfield"
    where.mkdir()
    paths, bgr = [], []
    for i, index in enumerate(np.linspace(0, total - 1, N_FRAMES).astype(int)):
        cap.set(cv2.CAP_PROP_POS_FRAMES, int(index))
        ok, frame = cap.read()
        assert ok, f"cannot read frame {index} of the bundled video"
        path = where / f"img{i:03d}.png"
        cv2.imwrite(str(path), frame)
        paths.append(str(path))
        bgr.append(frame)
    cap.release()
    return paths, np.stack(bgr)


def _analyze(model, paths, batch, out_dir, capsys=None):
    assert cli_main(["analyze", *paths, "--model", str(model), "--batch", str(batch), "--out-dir", str(out_dir),
                     "--quiet"]) == 0
    table = read_dlc_table(out_dir / "openfield.rtpose.h5")
    assert len(table) == len(paths)
    return table.to_numpy().reshape(len(paths), -1, 3)  # (frames, K, x/y/likelihood)


def _old_style_export(folder, out, monkeypatch, *, declared: bool):
    """What rtpose exported before the fix: tf2onnx's own batch-wide conversion of the batch norms."""
    monkeypatch.setattr(batch_mixing, "tf2onnx_handlers", lambda counter=None: {})
    pb = next(folder.glob("snapshot-*.pb"))
    graph_def = tf_frozen.read_graph_def(pb)
    io = tf_frozen.find_io(graph_def, pb, location_refinement=True)
    model, rewritten = tf_frozen.convert(graph_def, io, opset=api.DEFAULT_OPSET, num_bodyparts=4, source=str(pb))
    monkeypatch.undo()
    assert rewritten == ()
    api._set_io_dims(model, None, None, 4, True)
    extra = {"batch_invariant": "true"} if declared else {}
    api._write(model, ModelMetadata(bodyparts=DEFAULT_BODYPARTS, stride=8.0, extra=extra), out, str(folder))
    return out


def test_the_look_alike_has_deeplabcuts_training_mode_batch_norms(folder):
    pb = next(folder.glob("snapshot-*.pb"))
    graph_def = tf_frozen.read_graph_def(pb)
    found = batch_mixing.find(graph_def)
    assert len(found) == sum(n.op == "FusedBatchNormV3" for n in graph_def.node) >= 20
    assert {f.op for f in found} == {"FusedBatchNormV3"}
    inference_mode, _ = build_dlc_graph_def("mobilenet", seed=3)
    assert batch_mixing.find(inference_mode) == []


def test_export_rewrites_every_training_mode_batch_norm_and_declares_batch_invariance(folder, exported):
    pb = next(folder.glob("snapshot-*.pb"))
    n_bn = len(batch_mixing.find(tf_frozen.read_graph_def(pb)))
    assert len(exported.per_frame_rewrites) == n_bn
    meta = exported.metadata
    assert meta.batch_invariant and meta.extra["per_frame_rewrites"] == str(n_bn)
    figures = exported.batch_invariance
    assert figures.ok and "480x640" in figures.frame_sizes
    assert figures.scoremap_max_abs <= BATCH_TOLERANCE.scoremap
    assert meta.extra["batch_invariance.reference"] == "onnx-one-frame-at-a-time"
    summary = exported.summary()
    assert f"{n_bn} training-mode batch norm(s) rewritten to per-frame statistics" in summary
    assert "check batch vs onnx-one-frame-at-a-time" in summary and "-> OK" in summary


def test_info_shows_batch_invariance(exported, capsys):
    assert cli_main(["info", str(exported.out)]) == 0
    out = capsys.readouterr().out
    assert "batch_invariant: true" in out and "per_frame_rewrites: " in out
    assert "batch_invariance.pose_max_px" in out


def test_without_the_rewrite_the_export_is_refused(folder, tmp_path, monkeypatch):
    monkeypatch.setattr(batch_mixing, "tf2onnx_handlers", lambda counter=None: {})
    out = tmp_path / "old.onnx"
    with pytest.raises(ExportError, match=r"not batch-invariant: a frame's outputs change with the other frames "
                                          r"in its batch \(score maps differ by .*Nothing was written"):
        export_model(folder, out)
    assert not out.exists()


def test_analyze_batch_1_8_32_give_identical_poses_equal_to_tensorflow_one_frame_at_a_time(
        folder, exported, real_frames, tmp_path):
    paths, bgr = real_frames
    poses = {b: _analyze(exported.out, paths, b, tmp_path / f"b{b}") for b in (1, 8, 32)}
    for b in (8, 32):
        np.testing.assert_array_equal(poses[b], poses[1], err_msg=f"--batch {b} differs from --batch 1")
    # The reference DeepLabCut gives: the frozen graph in TensorFlow, one RGB frame at a time.
    graph_def = tf_frozen.read_graph_def(next(folder.glob("snapshot-*.pb")))
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as sess:
        maps = [sess.run(["Sigmoid:0", f"{LOCREF_NODE}:0"],
                         {"Placeholder:0": cv2.cvtColor(f, cv2.COLOR_BGR2RGB)[None].astype(np.float32)}) for f in bgr]
    sc = np.concatenate([m[0] for m in maps])
    lr = np.concatenate([m[1] for m in maps])
    ref_xy, _ = argmax_pose(sc, lr, 8.0, 7.2801)
    ref_like = sc.reshape(len(bgr), -1, 4).max(axis=1)
    assert np.abs(poses[8][..., :2] - ref_xy).max() < 0.05
    assert np.abs(poses[8][..., 2] - ref_like).max() < 1e-3


def test_the_old_conversion_fails_the_same_comparison(folder, real_frames, tmp_path, monkeypatch):
    """The comparison above has teeth: the pre-fix conversion, batched, moves poses by pixels."""
    old = _old_style_export(folder, tmp_path / "old.onnx", monkeypatch, declared=True)
    paths, _ = real_frames
    one = _analyze(old, paths, 1, tmp_path / "b1")
    eight = _analyze(old, paths, 8, tmp_path / "b8")
    assert np.abs(eight[..., :2] - one[..., :2]).max() > 1.0


def test_a_model_that_does_not_declare_batch_invariance_runs_one_frame_at_a_time(folder, real_frames, tmp_path,
                                                                                  monkeypatch, capsys, caplog):
    old = _old_style_export(folder, tmp_path / "undeclared.onnx", monkeypatch, declared=False)
    assert not OnnxPoseModel(old, providers=["cpu"]).metadata.batch_invariant
    paths, _ = real_frames
    one = _analyze(old, paths, 1, tmp_path / "b1")
    caplog.clear()
    eight = _analyze(old, paths, 8, tmp_path / "b8")
    np.testing.assert_array_equal(eight, one)
    assert any("does not declare itself batch-invariant" in r.getMessage() and "re-export it with `rtpose export`"
               in r.getMessage() for r in caplog.records)


def test_recheck_declares_a_batch_invariant_earlier_export_and_refuses_one_that_mixes_frames(
        folder, tmp_path, monkeypatch, capsys):
    """`rtpose export old.onnx`: an earlier rtpose export brought up to date without its source."""
    mixing = _old_style_export(folder, tmp_path / "mixing.onnx", monkeypatch, declared=False)
    assert cli_main(["export", str(mixing), "--out", str(tmp_path / "never.onnx")]) == 2
    err = capsys.readouterr().err
    assert "not batch-invariant" in err and "Export the model again from its source" in err
    assert not (tmp_path / "never.onnx").exists()

    inference_mode = make_dlc_export_folder(tmp_path, "mobilenet", seed=3)
    good = export_model(inference_mode, tmp_path / "good.onnx").out
    model = onnx.load(str(good))
    earlier = {p.key: p.value for p in model.metadata_props if "batch" not in p.key and "revision" not in p.key}
    del model.metadata_props[:]
    for key, value in earlier.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(tmp_path / "earlier.onnx"))
    assert not ModelMetadata.from_props(earlier).batch_invariant
    assert cli_main(["export", str(tmp_path / "earlier.onnx"), "--out", str(tmp_path / "rechecked.onnx")]) == 0
    assert "check batch vs onnx-one-frame-at-a-time" in capsys.readouterr().out
    rechecked = OnnxPoseModel(tmp_path / "rechecked.onnx", providers=["cpu"]).metadata
    assert rechecked.batch_invariant and rechecked.extra["exporter_revision"] == str(api.EXPORTER_REVISION)
    assert rechecked.extra["parity.pose_max_px"] == earlier["rtpose.extra.parity.pose_max_px"]
