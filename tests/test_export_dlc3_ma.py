"""DeepLabCut 3 multi-animal (PAF) exports -> ONNX: agreement with DeepLabCut's own inference, metadata, refusals.

The model is DeepLabCut 3's own ``resnet_50`` + ``DLCRNetHead`` for a real two-mouse DeepLabCut 3.0.2 project
(tests/dlc3_ma_models.py: seeded initialisation + stored trained head layers); the references are
DeepLabCut's own PyTorch inference (its ``PartAffinityFieldPredictor``) on 640x480 frames
(tests/data/dlc3_ma/build_fixtures.py).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import dlc3_ma_models as M
from rtpose.errors import ExportError, ModelError
from rtpose.metadata import ModelMetadata
from rtpose.multianimal.layout import AnimalLayout
from rtpose.multianimal.params import AssemblyParams

_WHY = ("torch/DeepLabCut 3 not installed: install the export-torch extra (pip install 'rtpose[export-torch]') "
        "to run the DeepLabCut 3 exporter tests")
#: ONNX vs DeepLabCut's PyTorch maps (the exporter's own FP32 tolerances, exporters/report.py).
SCORE_TOL, RAW_TOL = 1e-3, 1e-2
#: A DeepLabCut keypoint is reproduced from the ONNX maps when its likelihood (the smoothed score at its
#: cell) and its position (cell * stride + stride / 2 + locref * stdev) match this well. Measured on these
#: 640x480 frames: ONNX vs DeepLabCut's float32 PyTorch 4.2e-4 on score maps and 1.5e-3 on locref (x 7.28
#: = 0.011 px): the float32 conditioning of this seeded 5-stage head; ONNX is as far from a float64 run.
LIKELIHOOD_TOL, XY_TOL_PX = 1e-3, 0.05


@pytest.fixture(scope="module")
def torch_stack():
    torch = pytest.importorskip("torch", reason=_WHY)
    pytest.importorskip("deeplabcut.pose_estimation_pytorch.models", reason=_WHY)
    pytest.importorskip("onnx", reason=_WHY)
    pytest.importorskip("onnxruntime", reason="onnxruntime not installed: pip install 'rtpose[cpu]'")
    return torch


@pytest.fixture(scope="module")
def reference():
    return dict(np.load(M.DATA / f"{M.NET}.reference.npz"))


@pytest.fixture(scope="module")
def exported(torch_stack, tmp_path_factory, reference):
    """(export folder, .onnx, ExportReport) of the seeded fixture, exported once."""
    from rtpose.exporters import export_model

    base = tmp_path_factory.mktemp("dlc3_ma")
    folder, sha = M.build_export(base)
    assert sha == str(reference["weights_sha256"]), (
        "the seeded DeepLabCut network differs from the one the references were made with (another torch or "
        "DeepLabCut?); rerun tests/data/dlc3_ma/build_fixtures.py")
    onnx_path = base / "twomice.onnx"
    return folder, onnx_path, export_model(folder, onnx_path)


def _run_onnx(onnx_path, frames_bgr):
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    outs = [sess.run(["scoremap", "locref", "paf"], {"image": f[None, :, :, ::-1].astype(np.float32)})
            for f in frames_bgr]
    return tuple(np.concatenate([o[i] for o in outs]) for i in range(3))


@pytest.mark.slow
@pytest.mark.export_torch
def test_export_reproduces_deeplabcut_maps_and_poses(exported, reference):
    _, onnx_path, report = exported
    meta = report.metadata
    assert meta.multianimal and meta.bodyparts == M.BODYPARTS and meta.stride == 4.0
    assert meta.layout == AnimalLayout(M.INDIVIDUALS, M.BODYPARTS, ())
    assert meta.paf_output == "paf" and meta.location_refinement and not meta.clip_scores
    asm = meta.assembly
    assert asm.graph == ((0, 1), (0, 2), (1, 2)) and asm.num_animals == 2 and asm.stride == 4.0
    assert asm.smoothed_in_graph and asm.apply_sigmoid and (asm.nms_radius, asm.sigma) == (5, 1.0)
    assert asm.extra["dlc_edges_to_keep"] == [0, 1, 2]
    # the exporter's own check: ONNX vs DeepLabCut's PyTorch forward + predictor maps, 640x480 included
    assert report.parity.ok and report.parity.reference == "pytorch" and report.parity.paf_max_abs is not None
    assert "480x640" in report.parity.frame_sizes
    assert report.batch_invariance.ok and report.batch_invariance.paf_max_abs is not None

    frames = M.reference_frames()
    sc, lr, paf = _run_onnx(onnx_path, frames)
    keep = reference["maps_frames"]
    assert sc.shape == (len(frames), 121, 161, 3) and lr.shape[-1] == 6 and paf.shape[-1] == 6
    assert np.abs(sc[keep] - reference["scoremap"]).max() < SCORE_TOL
    assert np.abs(lr[keep] - reference["locref"]).max() < RAW_TOL
    assert np.abs(paf[keep] - reference["paf"]).max() < RAW_TOL

    # end to end: every keypoint DeepLabCut's predictor assembled is a cell of the ONNX maps with its
    # likelihood as the smoothed score and its position as cell * stride + stride / 2 + locref * stdev
    poses = reference["poses"]  # (N, A, K, 5): x, y, likelihood, identity, affinity; -1 where empty
    found = 0
    stride, stdev = meta.stride, meta.locref_stdev
    h, w = sc.shape[1:3]
    cols, rows = np.meshgrid(np.arange(w), np.arange(h))
    for n, a, k in zip(*np.nonzero(poses[..., 2] > 0)):
        x, y, lik = poses[n, a, k, :3]
        px = cols * stride + stride / 2 + lr[n, :, :, 2 * k] * stdev
        py = rows * stride + stride / 2 + lr[n, :, :, 2 * k + 1] * stdev
        match = (np.abs(sc[n, :, :, k] - lik) < LIKELIHOOD_TOL) & (np.hypot(px - x, py - y) < XY_TOL_PX)
        assert match.any(), f"frame {n} animal {a} {M.BODYPARTS[k]}: DLC's ({x:.2f}, {y:.2f}, {lik:.4f}) not in ONNX maps"
        found += 1
    assert found == int((poses[..., 2] > 0).sum()) >= 24  # both mice, all parts, on the four synthetic frames
    # the synthetic mice are found where they are (the heads were trained on such frames)
    for n, i in enumerate(M.REFERENCE_SYNTHETIC):
        truth = M.synthetic_frame(i)[1]
        err = min(np.linalg.norm(poses[n, :, :, :2] - truth[list(p)], axis=-1).mean() for p in ((0, 1), (1, 0)))
        assert err < 25.0, f"synthetic frame {i}: DeepLabCut's animals are {err:.1f} px from the truth on average"


@pytest.mark.slow
@pytest.mark.export_torch
def test_runtime_reads_the_file_and_refuses_to_run_it_typed(exported, capsys):
    from rtpose.cli import main as cli_main
    from rtpose.model import OnnxPoseModel

    _, onnx_path, _ = exported
    model = OnnxPoseModel(onnx_path, providers=["cpu"])
    assert model.metadata.layout.individuals == M.INDIVIDUALS
    with pytest.raises(ModelError, match="multi-animal model .*does not decode multi-animal maps yet"):
        model.prepare(1, 480, 640)
    assert cli_main(["info", str(onnx_path)]) == 0
    out = capsys.readouterr().out
    assert "multi-animal: 2 individuals (mouse1, mouse2)" in out
    assert "graph (3 limbs): head-body, head-tail, body-tail" in out and "paf: tensor(float)" in out


@pytest.mark.export_torch
def test_multianimal_options_not_available_yet_are_refused(torch_stack, tmp_path):
    from rtpose.exporters import export_model

    folder, _ = M.build_export(tmp_path)
    for kwargs in ({"fp16": True}, {"decode_in_graph": True}):
        with pytest.raises(ExportError, match="multi-animal DeepLabCut 3 model exports in float32"):
            export_model(folder, tmp_path / "x.onnx", **kwargs)
    assert not list(tmp_path.glob("*.onnx"))


def _pt_with(torch, tmp_path, name, edit):
    cfg = M.config()
    edit(cfg)
    path = tmp_path / f"{name}.pt"
    torch.save({"config": cfg, "pose": {}}, path)
    return path


@pytest.mark.export_torch
def test_unsupported_multianimal_models_are_refused_by_type(torch_stack, tmp_path):
    from rtpose.exporters import export_model

    def top_down(cfg):
        cfg["method"] = "td"
        cfg["detector"] = {"model": {"type": "FasterRCNN"}}

    def unique(cfg):
        cfg["metadata"]["unique_bodyparts"] = ["corner"]
        cfg["model"]["heads"]["unique_bodypart"] = {"type": "HeatmapHead"}

    def identity(cfg):
        cfg["model"]["heads"]["identity"] = {"type": "HeatmapHead"}

    def dekr(cfg):
        cfg["model"]["heads"]["bodypart"]["type"] = "DEKRHead"
        cfg["model"]["heads"]["bodypart"]["predictor"]["type"] = "DEKRPredictor"

    def bad_graph(cfg):
        cfg["model"]["heads"]["bodypart"]["predictor"]["edges_to_keep"] = [0, 7]

    cases = {
        "td": (top_down, r"top-down DeepLabCut 3 model"),
        "unique": (unique, r"multi-animal DeepLabCut 3 model \(resnet_50, 2 individuals.*unique body parts \(corner\)"),
        "identity": (identity, r"PAF head only \(no identity"),
        "dekr": (dekr, r"DEKRHead with DEKRPredictor.*part-affinity fields"),
        "graph": (bad_graph, r"PAF graph .* do not fit its 3 body parts"),
    }
    for name, (edit, message) in cases.items():
        with pytest.raises(ExportError, match=message):
            export_model(_pt_with(torch_stack, tmp_path, name, edit), tmp_path / f"{name}.onnx")
    assert not list(tmp_path.glob("*.onnx"))


def _ma_metadata(**over):
    layout = AnimalLayout(M.INDIVIDUALS, M.BODYPARTS, ())
    asm = AssemblyParams(num_animals=2, graph=((0, 1), (0, 2), (1, 2)), stride=4.0,
                         extra={"dlc_graph": [[0, 1], [0, 2], [1, 2]], "dlc_edges_to_keep": [0, 1, 2]})
    kw = dict(bodyparts=M.BODYPARTS, stride=4.0, layout=layout, paf_output="paf", assembly=asm,
              extra={"source_kind": "dlc3"})
    kw.update(over)
    return ModelMetadata(**kw)


def test_multianimal_metadata_round_trips_and_single_animal_files_are_unchanged():
    meta = _ma_metadata()
    props = meta.to_props()
    assert json.loads(props["rtpose.multianimal.layout"]) == {
        "individuals": ["mouse1", "mouse2"], "bodyparts": ["head", "body", "tail"], "unique_bodyparts": []}
    assert AssemblyParams.from_json(props["rtpose.multianimal.assembly"]) == meta.assembly
    assert props["rtpose.paf_output"] == "paf"
    back = ModelMetadata.from_props(props)
    assert back == meta and back.multianimal
    single = ModelMetadata(bodyparts=M.BODYPARTS, stride=8.0)
    assert not single.multianimal
    assert not [k for k in single.to_props() if "multianimal" in k or "paf" in k]
    assert ModelMetadata.from_props(single.to_props()) == single


def test_inconsistent_multianimal_metadata_is_refused():
    with pytest.raises(ModelError, match="layout, its assembly parameters and its PAF output together"):
        _ma_metadata(paf_output=None)
    with pytest.raises(ModelError, match="differ from the layout's"):
        _ma_metadata(bodyparts=("snout", "body", "tail"))
    props = _ma_metadata().to_props()
    props["rtpose.multianimal.layout"] = json.dumps({"individuals": ["a", "a"], "bodyparts": ["head", "body", "tail"]})
    with pytest.raises(ModelError, match="malformed rtpose metadata"):
        ModelMetadata.from_props(props)
    props["rtpose.multianimal.layout"] = "{not json"
    with pytest.raises(ModelError, match="malformed rtpose metadata"):
        ModelMetadata.from_props(props)
