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

#: ONNX vs DeepLabCut's PyTorch maps (the exporter's own FP32 tolerances, exporters/report.py).
SCORE_TOL, RAW_TOL = 1e-3, 1e-2
#: A DeepLabCut keypoint is reproduced from the ONNX maps when its likelihood (the smoothed score at its
#: cell) and its position (cell * stride + stride / 2 + locref * stdev) match this well. Measured on the
#: noiseless synthetic 640x480 frames: ONNX vs DeepLabCut's float32 PyTorch up to 6.7e-4 on score maps and
#: 2.2e-3 on locref (x 7.28 = 0.016 px), float32 conditioning of the first GroupNorm over the flat background
#: (docs/export.md); 4e-6 / 1e-5 on the openfield frames.
LIKELIHOOD_TOL, XY_TOL_PX = 1e-3, 0.05


@pytest.fixture(scope="module")
def reference():
    return dict(np.load(M.DATA / f"{M.NET}.reference.npz"))


@pytest.fixture(scope="module")
def exported(torch_stack, tmp_path_factory, reference):
    """(export folder, .onnx, ExportReport) of the seeded fixture, exported once."""
    return M.export_checked(M, tmp_path_factory.mktemp("dlc3_ma"), "twomice.onnx", str(reference["weights_sha256"]))


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
def test_rebuilt_network_reproduces_deeplabcuts_stored_inference(torch_stack, tmp_path, reference):
    """The seeded rebuild + stored head layers, run through DeepLabCut's own predictor here
    (``torch_dlc3.predict_multianimal``, the exporter's reference), gives the maps and poses DeepLabCut
    gave in its side environment, so the maps of every reference frame can be regenerated exactly."""
    from rtpose.exporters import torch_dlc3

    folder, _ = M.build_export(tmp_path)
    model = torch_dlc3.load(next(folder.glob("*.pt")))
    net, _ = torch_dlc3.build(model)
    frames = np.ascontiguousarray(M.reference_frames()[..., ::-1]).astype(np.float32)
    sc, lr, paf, poses = torch_dlc3.predict_multianimal(model, net, frames)
    keep = reference["maps_frames"]
    for got, name in ((sc, "scoremap"), (lr, "locref"), (paf, "paf")):
        assert np.abs(got[keep] - reference[name]).max() < 1e-5, name
    ref_poses = reference["poses"]
    assert np.array_equal(poses[..., 2] > 0, ref_poses[..., 2] > 0)
    assert np.abs(poses - ref_poses).max() < 1e-3
    assert np.abs(reference["dlclive_poses"] - ref_poses).max() < 1e-3  # DeepLabCut-Live 1.1.0 agrees


@pytest.mark.slow
@pytest.mark.export_torch
def test_unique_bodypart_head_exports_and_decodes_like_deeplabcut(torch_stack, tmp_path):
    """The two-mouse project with one unique body part (a landmark): DeepLabCut adds a second head
    (HeatmapHead + HeatmapPredictor, stride 8 beside the PAF head's 4). Exported as two more outputs,
    checked like the others; rtpose's MultiAnimalDecoder given them finds DeepLabCut's animals and its
    unique part (its HeatmapPredictor's argmax poses)."""
    from rtpose.exporters import export_model
    from rtpose.model import OnnxPoseModel
    from rtpose.multianimal.decoder import MultiAnimalDecoder
    from rtpose.multianimal.live import AnimalStep
    from rtpose.results import PoseBatch

    ref = dict(np.load(M.DATA / f"{M.UNIQUE_NET}.reference.npz"))
    folder, sha = M.build_export(tmp_path, name=M.UNIQUE_NET)
    assert sha == str(ref["weights_sha256"]), "rerun tests/data/dlc3_ma/build_fixtures.py --unique"
    report = export_model(folder, tmp_path / "unique.onnx")
    meta = report.metadata
    assert meta.layout.unique_bodyparts == M.UNIQUE_BODYPARTS and meta.layout.individuals == M.INDIVIDUALS
    assert (meta.unique_scoremap_output, meta.unique_locref_output) == ("unique_scoremap", "unique_locref")
    assert meta.stride == 4.0 and meta.assembly.unique_stride == 8.0
    assert report.parity.ok and report.batch_invariance.ok
    assert ModelMetadata.from_props(meta.to_props()) == meta

    model = OnnxPoseModel(tmp_path / "unique.onnx", providers=["cpu"])  # rtpose's runtime binds all five outputs
    model.prepare(1, 480, 640)
    decoder = MultiAnimalDecoder(meta.assembly, meta.layout, 1)
    out = np.zeros((1, meta.layout.n_flat, 3))
    step = AnimalStep(meta.assembly, meta.layout, 1, 1, clock=lambda: 0)
    batch = PoseBatch(1, meta.layout.n_flat, meta.layout.n_animals)
    batch.n = 1
    poses = ref["poses"].astype(np.float64)[..., :3]  # (N, A, K, 3) of (N, A, K, 5)
    unique = ref["unique_poses"].astype(np.float64)[:, 0]  # (N, U, 3)
    dxy, dlik = [], []
    for i, frame in enumerate(M.reference_frames(marker=True)):
        model.load_frame(0, frame)
        sc, lr, paf, usc, ulr = model.run_animals(1)
        assert usc.shape[1:] == (61, 81, 1)  # the unique head's own stride (8) beside the PAF head's 4
        decoder.decode(sc, lr, paf, out, 1, unique_scores=usc, unique_locref=ulr)
        step.decode(model.run_animals(1), batch, 1)  # the pipeline's step passes the unique maps on
        np.testing.assert_array_equal(batch.pose[0], out[0])
        mine, found = meta.layout.animals(out[0]), poses[i][..., 2] > 0
        assert np.array_equal(np.isfinite(mine[..., 2]), found), f"frame {i}"
        mine_u = meta.layout.unique(out[0])
        dxy.append(np.hypot(*(np.concatenate([mine[found], mine_u])[:, :2]
                              - np.concatenate([poses[i][found], unique[i]])[:, :2]).T))
        dlik.append(np.abs(np.concatenate([mine[found][:, 2], mine_u[:, 2]])
                           - np.concatenate([poses[i][found][:, 2], unique[i][:, 2]])))
        # (no check against the landmark's truth: this briefly trained unique head on a random backbone
        # places it 26-85 px off; the test is that rtpose reproduces what DeepLabCut computes)
    dxy, dlik = np.concatenate(dxy), np.concatenate(dlik)
    assert dxy.mean() < 0.05 and dlik.max() < 1e-3, (dxy.mean(), dxy.max(), dlik.max())


@pytest.mark.slow
@pytest.mark.export_torch
def test_dlcrnet_stride16_ms5_exports_with_its_multiscale_backbone(torch_stack, tmp_path):
    """DeepLabCut's other multi-animal network: DLCRNet fuses feature banks with an antialiased resize,
    which the exporter traces as plain bilinear enlarging (exporters/torch_dlc3.py); the check against
    DeepLabCut's own forward (antialias on) at 203x298, 240x320 and 480x640 must hold."""
    from rtpose.exporters import export_model

    folder, _ = M.build_export(tmp_path, name=M.DLCRNET)
    report = export_model(folder, tmp_path / "dlcrnet.onnx")
    assert report.variant == f"dlc3-{M.DLCRNET}" and report.metadata.stride == 4.0
    assert report.parity.ok and report.parity.paf_max_abs is not None and report.batch_invariance.ok
    assert {"480x640", "203x298"} <= set(report.parity.frame_sizes)
    assert report.metadata.layout.individuals == M.INDIVIDUALS


def _decode_vs_deeplabcut(onnx_path, reference):
    """rtpose's runtime + MultiAnimalDecoder on the reference frames vs DeepLabCut's stored final poses:
    asserts the same keypoints are found; returns (|dxy| px, |dlikelihood|) of the matched keypoints."""
    from rtpose.model import OnnxPoseModel
    from rtpose.multianimal.decoder import MultiAnimalDecoder

    model = OnnxPoseModel(onnx_path, providers=["cpu"])
    meta = model.metadata
    assert meta.layout.individuals == M.INDIVIDUALS
    model.prepare(1, 480, 640)
    decoder = MultiAnimalDecoder(meta.assembly, meta.layout, 1)
    frames = M.reference_frames()
    ref = reference["poses"].astype(np.float64)  # (N, A, K, 5); -1 where DeepLabCut found nothing
    ref_found = ref[..., 2] > 0
    got = np.zeros((len(frames), meta.layout.n_flat, 3))
    dxy, dlik = [], []
    for i, frame in enumerate(frames):
        model.load_frame(0, frame)
        decoder.decode(*model.run_animals(1), got[i:i + 1], 1)
        mine = meta.layout.animals(got[i])  # (A, K, 3), NaN where missing
        found = np.isfinite(mine[..., 2])
        assert np.array_equal(found, ref_found[i]), f"frame {i}: keypoints found {found} vs DeepLabCut's {ref_found[i]}"
        dxy.append(np.hypot(*(mine[found][:, :2] - ref[i][found][:, :2]).T))
        dlik.append(np.abs(mine[found][:, 2] - ref[i][found][:, 2]))
    return np.concatenate(dxy), np.concatenate(dlik)


@pytest.mark.slow
@pytest.mark.export_torch
def test_fp16_export_finds_deeplabcuts_animals(exported, reference, tmp_path):
    """--fp16 (weights float16, checked against the float32 export, PAFs included): the same animals and
    keypoints as DeepLabCut (measured mean |dxy| 0.010 px, likelihood |d| <= 1e-3)."""
    from rtpose.exporters import export_model

    folder, _, _ = exported
    report = export_model(folder, tmp_path / "fp16.onnx", fp16=True)
    assert report.parity_fp16.ok and report.parity_fp16.paf_max_abs is not None
    assert report.metadata.extra["precision"] == "fp16" and report.metadata.multianimal
    dxy, dlik = _decode_vs_deeplabcut(tmp_path / "fp16.onnx", reference)
    assert dxy.size >= 24 and dxy.mean() < 0.05 and dxy.max() < 0.2, (dxy.mean(), dxy.max())
    assert dlik.max() < 5e-3


@pytest.mark.slow
@pytest.mark.export_torch
def test_runtime_decodes_the_export_like_deeplabcut(exported, reference, capsys):
    """End to end on the exported file: rtpose's runtime (load_frame, run_animals) and its multi-animal
    decoder (rtpose.multianimal.decoder) against DeepLabCut's own final poses on the six 640x480 frames:
    the same animals, the same keypoints (issue goal: mean |dxy| < 0.05 px per matched keypoint)."""
    from rtpose.cli import main as cli_main

    _, onnx_path, _ = exported
    dxy, dlik = _decode_vs_deeplabcut(onnx_path, reference)
    assert dxy.size >= 24 and dxy.mean() < 0.05 and dxy.max() < 0.1, (dxy.mean(), dxy.max())
    assert dlik.max() < 1e-3
    assert cli_main(["info", str(onnx_path)]) == 0
    out = capsys.readouterr().out
    assert "multi-animal: 2 individuals (mouse1, mouse2)" in out
    assert "graph (3 limbs): head-body, head-tail, body-tail" in out and "paf: tensor(float)" in out


@pytest.mark.export_torch
def test_multianimal_options_not_available_yet_are_refused(torch_stack, tmp_path):
    from rtpose.exporters import export_model

    folder, _ = M.build_export(tmp_path)
    with pytest.raises(ExportError, match="multi-animal DeepLabCut 3 model exports its maps as outputs"):
        export_model(folder, tmp_path / "x.onnx", decode_in_graph=True)
    with pytest.raises(ExportError, match="uint8-bgr is not available for DeepLabCut 3 models"):
        export_model(folder, tmp_path / "x.onnx", uint8_bgr=True)
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
        "identity": (identity, r"a HeatmapHead identity head and None"),
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


@pytest.fixture(scope="module")
def identity_export(torch_stack, tmp_path_factory):
    """(reference, .onnx, ExportReport) of the identity fixture, exported once."""
    from rtpose.exporters import export_model

    base = tmp_path_factory.mktemp("dlc3_ma_identity")
    ref = dict(np.load(M.DATA / f"{M.IDENTITY_NET}.reference.npz"))
    folder, sha = M.build_export(base, name=M.IDENTITY_NET)
    assert sha == str(ref["weights_sha256"]), "rerun tests/data/dlc3_ma/build_fixtures.py --identity"
    return ref, base / "identity.onnx", export_model(folder, base / "identity.onnx")


def _identity_slots(ref, i):
    """DeepLabCut's final predictions of frame i in identity order: (A, K, 3) with NaN rows for -1 ones, present."""
    want = ref["identity_bodyparts"][i][..., :3].astype(np.float64)
    present = ~np.all(want == -1, axis=(-1, -2))
    want[~present] = np.nan
    return want, present


@pytest.mark.slow
@pytest.mark.export_torch
def test_identity_head_exports_and_orders_animals_like_deeplabcut(identity_export, capsys):
    """The two-mouse project with DeepLabCut's identity head (``make_model.py --identity``; mouse2 tinted
    red): exported with its raw maps as output ``identity`` (checked against DeepLabCut's forward), bound
    by rtpose's runtime; the pipeline's AnimalStep puts the animals in DeepLabCut's identity order
    (its PredictKeypointIdentities + AssignIndividualIdentities) with track id = identity."""
    from rtpose.model import OnnxPoseModel
    from rtpose.multianimal.live import AnimalStep
    from rtpose.results import PoseBatch

    ref, onnx_path, report = identity_export
    meta = report.metadata
    assert meta.identity_output == "identity" and meta.assembly.with_identity
    assert meta.assembly.identity_stride == 8.0 and meta.assembly.identity_apply_sigmoid
    assert report.parity.ok and report.parity.identity_max_abs is not None and report.batch_invariance.ok
    assert "parity.identity_max_abs" in meta.extra
    assert ModelMetadata.from_props(meta.to_props()) == meta
    from rtpose.cli import main as cli_main

    assert cli_main(["info", str(onnx_path)]) == 0
    assert "identity head: output identity (stride 8, sigmoid True)" in capsys.readouterr().out

    model = OnnxPoseModel(onnx_path, providers=["cpu"])
    model.prepare(1, 480, 640)
    step = AnimalStep(meta.assembly, meta.layout, 1, 1, clock=lambda: 0)
    batch = PoseBatch(1, meta.layout.n_flat, meta.layout.n_animals)
    batch.n = 1
    dxy, id_max = [], 0.0
    for i, frame in enumerate(M.reference_frames(tint=True)):
        model.load_frame(0, frame)
        maps = model.run_animals(1)
        assert len(maps) == 4 and maps[-1].shape[1:] == (61, 81, 2)  # stride 8, one map per individual
        raw_ref = ref["identity_maps"][i].astype(np.float64)  # logits up to +-140: compared relatively,
        assert np.abs(maps[-1][0] - raw_ref).max() < 1e-3 * np.abs(raw_ref).max()  # and after the sigmoid
        id_max = max(id_max, float(np.abs(1 / (1 + np.exp(-maps[-1][0].astype(np.float64)))
                                          - 1 / (1 + np.exp(-raw_ref))).max()))
        batch.t_frame_ns[0] = i
        step.decode(maps, batch, 1)
        step.track(batch, 1, lambda *_: None)
        want = ref["identity_bodyparts"][i][..., :3].astype(np.float64)
        present = ~np.all(want == -1, axis=(-1, -2))
        got = meta.layout.animals(batch.pose[0])
        assert np.array_equal(np.isfinite(got[..., 2]).any(axis=-1), present), f"frame {i}"
        np.testing.assert_array_equal(batch.track_id[0], np.where(present, np.arange(2), -1))
        found = want[..., 2] > 0
        dxy.append(np.hypot(*(got[found][:, :2] - want[found][:, :2]).T))
    dxy = np.concatenate(dxy)
    # measured: 3.6e-3 after the sigmoid (raw 0.021 of logits up to 136), mean |dxy| 0.0017 px, max 0.0053
    assert id_max < RAW_TOL and dxy.size and dxy.mean() < 0.05, (id_max, dxy.mean(), dxy.max())


@pytest.mark.slow
@pytest.mark.export_torch
def test_pipeline_with_the_identity_model_records_deeplabcuts_identities(identity_export, tmp_path):
    """End to end: the exported identity model in rtpose's pipeline (image files -> network -> assembly ->
    identity head -> Kalman -> recording): each recorded slot is the individual DeepLabCut's identity
    head assigns, its track id that identity."""
    import cv2

    from rtpose.drivers.sources.images import ImageFilesSource
    from rtpose.model import load_model
    from rtpose.pipeline import Pipeline, PipelineConfig
    from rtpose.recording import RecorderSink
    from rtpose.recording.reader import read_recording

    ref, onnx_path, _ = identity_export
    paths = []
    for i, frame in enumerate(M.reference_frames(tint=True)[: len(M.REFERENCE_SYNTHETIC)]):
        paths.append(tmp_path / f"frame{i}.png")
        cv2.imwrite(str(paths[-1]), frame)
    pipeline = Pipeline([ImageFilesSource(paths)], load_model(onnx_path), sinks=[RecorderSink(tmp_path / "rec.h5")],
                        config=PipelineConfig(live=False, batch_size=2))
    summary = pipeline.run()
    rec = read_recording(tmp_path / "rec.h5")
    assert rec.layout.individuals == M.INDIVIDUALS and summary.animals["tracks_started"] == 0
    hyp = rec.layout.animals(rec.pose)
    dxy = []
    for i in range(len(paths)):
        want, present = _identity_slots(ref, i)
        np.testing.assert_array_equal(rec.track_id[i], np.where(present, np.arange(2), -1))
        assert np.array_equal(np.isfinite(hyp[i][..., 2]).any(axis=-1), present), f"frame {i}"
        found = np.isfinite(want[..., 2])
        dxy.append(np.hypot(*(hyp[i][found][:, :2] - want[found][:, :2]).T))
    dxy = np.concatenate(dxy)
    assert dxy.size >= 15 and dxy.mean() < 0.05, (dxy.mean(), dxy.max())
