"""rtpose export --int8: static QDQ quantisation calibrated on real frames, kept only if it passes the accuracy gate
against FP32 on labelled frames (here: the synthetic mouse, labelled with its ground truth)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the INT8 export needs onnx: pip install 'rtpose[export]'")
pytest.importorskip("onnxruntime.quantization", reason="onnxruntime with its quantisation tools is needed")

from rtpose.cli import main as cli_main  # noqa: E402
from rtpose.drivers.sources.synthetic import SyntheticSource  # noqa: E402
from rtpose.errors import ExportError  # noqa: E402
from rtpose.exporters.int8 import gate, output_heads, quantize_int8, read_frames, read_labels  # noqa: E402
from rtpose.model import OnnxPoseModel  # noqa: E402

BODYPARTS = ("head", "body", "tail")


def _labelled_folder(root, n, seed, *, with_csv=True):
    """``n`` synthetic frames as PNGs, and a DeepLabCut CollectedData CSV of their ground truth."""
    import cv2

    src = SyntheticSource(320, 240, seed=seed)
    folder = root / f"labeled-{seed}"
    folder.mkdir()
    frame = np.zeros((240, 320, 3), np.uint8)
    rows = []
    for i in range(n):
        f = 7 * i
        src.render(f, frame)
        cv2.imwrite(str(folder / f"img{f:04d}.png"), frame)
        rows.append([f"labeled-data/x/img{f:04d}.png", *src.truth(f).reshape(-1).round(3).tolist()])
    if with_csv:
        with open(folder / "CollectedData_test.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["scorer"] + ["test"] * 6)
            w.writerow(["bodyparts"] + [bp for bp in BODYPARTS for _ in "xy"])
            w.writerow(["coords"] + ["x", "y"] * 3)
            w.writerows(rows)
    return folder


@pytest.fixture(scope="module")
def no_offsets_model(tmp_path_factory):
    """The analytic model without offsets: poses are score-map cell centres, which INT8 keeps exactly."""
    from analytic_model import build_analytic_model

    return build_analytic_model(tmp_path_factory.mktemp("m") / "cells.onnx", with_locref=False)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("int8")
    return _labelled_folder(root, 12, seed=1, with_csv=False), _labelled_folder(root, 10, seed=2)


def test_int8_model_passes_the_gate_and_says_so_in_its_metadata(no_offsets_model, data, tmp_path):
    calib, labelled = data
    report = quantize_int8(no_offsets_model, tmp_path / "a-int8.onnx", calibrate=[calib], labels=labelled)
    assert report.gate.passed and report.gate.frames == 10 and report.gate.keypoints == 30
    assert report.gate.mean_shift_px <= 0.3 and report.gate.pck_int8 >= report.gate.pck_fp32
    meta = OnnxPoseModel(report.out).metadata
    assert meta.extra["precision"] == "int8" and meta.extra["gate.passed"] == "true"
    assert meta.extra["int8.calibration"].startswith("12 images")
    assert meta.bodyparts == BODYPARTS and meta.extra["batch_invariant"] == "true"
    ops = {n.op_type for n in onnx.load(str(report.out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # QDQ format
    assert "gate:     mean pose shift" in report.summary()


def test_int8_model_failing_the_gate_is_refused_with_the_figures(analytic_model, data, tmp_path):
    """The analytic model's offsets are centroids computed by convolutions: quantised to 8 bits they move the
    poses by about a pixel, far beyond the gate."""
    calib, labelled = data
    out = tmp_path / "refused.onnx"
    with pytest.raises(ExportError, match=r"refused by the accuracy gate: mean pose shift .* px .*PCK@5 INT8") as e:
        quantize_int8(analytic_model, out, calibrate=[calib], labels=labelled)
    assert "FAILED" in str(e.value) and "Nothing was written" in str(e.value)
    assert not out.exists()
    # benchmarks time INT8 whatever its accuracy: refuse=False writes it, and its metadata says it failed
    report = quantize_int8(analytic_model, out, calibrate=[calib], labels=labelled, refuse=False)
    assert not report.gate.passed and out.exists()
    assert OnnxPoseModel(out, providers=["cpu"]).metadata.extra["gate.passed"] == "false"


def test_gate_arithmetic():
    labels = np.array([[[10.0, 10.0], [np.nan, np.nan]], [[0.0, 0.0], [50.0, 50.0]]])
    fp32 = np.array([[[11.0, 10.0, 0.9], [5.0, 5.0, 0.1]], [[0.0, 4.0, 0.9], [50.0, 56.0, 0.9]]])
    int8 = fp32.copy()
    int8[0, 0, 0] += 0.4  # moves 0.4 px, still within 5 px of its label
    int8[1, 0, 1] += 2.0  # now 6 px from its label: PCK drops
    g = gate(fp32, int8, labels)
    assert g.keypoints == 3 and g.mean_shift_px == pytest.approx(0.6) and g.max_shift_px == pytest.approx(2.0)
    assert g.pck_fp32 == pytest.approx(2 / 3) and g.pck_int8 == pytest.approx(1 / 3) and not g.passed


def test_inputs_and_heads(analytic_model, data, tmp_path):
    calib, labelled = data
    frames, note = read_frames([calib], limit=5)
    assert len(frames) == 5 and frames[0].shape == (240, 320, 3) and note.startswith("5 images")
    imgs, labels, names = read_labels(labelled / "CollectedData_test.csv", BODYPARTS)
    assert len(imgs) == 10 and labels.shape == (10, 3, 2) and names[0] == "img0000.png"
    with pytest.raises(ExportError, match="no labels for the model's bodyparts"):
        read_labels(labelled, ("snout",))
    with pytest.raises(ExportError, match="no CollectedData"):
        read_labels(calib, BODYPARTS)
    heads = output_heads(onnx.load(str(analytic_model)))
    assert heads and all(isinstance(h, str) for h in heads)


def test_export_command_int8_needs_calibration_and_labels(no_offsets_model, data, tmp_path, capsys):
    calib, labelled = data
    assert cli_main(["export", str(no_offsets_model), "--int8"]) == 2
    assert "--calibrate" in capsys.readouterr().err
    out = tmp_path / "cli-int8.onnx"
    assert cli_main(["export", str(no_offsets_model), "--int8", "--calibrate", str(calib), "--labels", str(labelled),
                     "--out", str(out)]) == 0
    assert "INT8, QDQ" in capsys.readouterr().out and out.exists()
