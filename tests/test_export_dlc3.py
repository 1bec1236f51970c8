"""DeepLabCut 3 (PyTorch) exports -> ONNX: agreement with DeepLabCut-Live, CLI, cache, typed errors.

The models are DeepLabCut 3's own networks built from real DeepLabCut 3.0.2 configs
(tests/dlc3_models.py); the reference poses come from DeepLabCut-Live 1.1.0's PyTorch
runner on real frames of the bundled video (tests/data/dlc3/build_fixtures.py).
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.export_torch
_WHY = ("torch/DeepLabCut 3 not installed: install the export-torch extra (pip install 'rtpose[export-torch]') "
        "to run the DeepLabCut 3 exporter tests")
torch = pytest.importorskip("torch", reason=_WHY)
pytest.importorskip("deeplabcut.pose_estimation_pytorch.models", reason=_WHY)
pytest.importorskip("onnx", reason=_WHY)
pytest.importorskip("onnxruntime", reason="onnxruntime not installed: pip install 'rtpose[cpu]'")

import dlc3_models  # noqa: E402
from rtpose.cli import main as cli_main  # noqa: E402
from rtpose.decode import Decoder  # noqa: E402
from rtpose.errors import ExportError  # noqa: E402
from rtpose.exporters import export_model  # noqa: E402
from rtpose.exporters import cache  # noqa: E402
from rtpose.model import OnnxPoseModel  # noqa: E402
from rtpose.recording.dlc_table import read_dlc_table  # noqa: E402

#: The agreement goal with DeepLabCut-Live (issue 9).
MEAN_PX, LIKELIHOOD = 0.05, 1e-3
#: A keypoint's maximum is ambiguous when another cell scores within this of it.
AMBIGUOUS = 1e-4
#: Map stride of each architecture (DeepLabCut's backbone.stride / head.stride).
STRIDES = {"resnet_50": 8.0, "hrnet_w32": 2.0}


@pytest.fixture(scope="module")
def frames():
    return dlc3_models.video_frames()


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """net -> (export folder, exported .onnx, DeepLabCut-Live reference npz, export report), built on first use."""
    made = {}

    def get(net):
        if net not in made:
            base = tmp_path_factory.mktemp(net)
            folder, sha = dlc3_models.build_export(net, base)
            ref = dict(np.load(dlc3_models.DATA / f"{net}.dlclive.npz"))
            assert sha == str(ref["weights_sha256"]), (
                f"{net}: the seeded DeepLabCut network differs from the one the DeepLabCut-Live references were "
                "made with (another torch?); rerun tests/data/dlc3/build_fixtures.py")
            onnx_path = base / "model.onnx"
            made[net] = (folder, onnx_path, ref, export_model(folder, onnx_path))
        return made[net]

    return get


def _rtpose_poses(onnx_path, frames):
    """rtpose's live path, one frame at a time: load_frame + run + decode; and ambiguous-maximum flags."""
    model = OnnxPoseModel(onnx_path, providers=["cpu"])
    meta = model.metadata
    model.prepare(1, *frames.shape[1:3])
    dec = Decoder(meta.stride, meta.locref_stdev, meta.num_bodyparts, 1, clip_scores=meta.clip_scores)
    poses = np.zeros((len(frames), meta.num_bodyparts, 3))
    ambiguous = np.zeros((len(frames), meta.num_bodyparts), bool)
    for i, frame in enumerate(frames):
        model.load_frame(0, frame)
        scmap, locref = model.run(1)
        dec.decode(scmap, locref, poses[i:i + 1], 1)
        ambiguous[i] = (scmap[0] >= scmap[0].max(axis=(0, 1)) - AMBIGUOUS).sum(axis=(0, 1)) > 1
    return poses, ambiguous


def _assert_agrees(poses, ref, ambiguous=None, what=""):
    px = np.hypot(*(poses[..., :2] - ref[..., :2]).transpose(2, 0, 1))
    dlik = np.abs(poses[..., 2] - ref[..., 2])
    clear = ~ambiguous if ambiguous is not None else np.ones(px.shape, bool)
    assert px.mean() < MEAN_PX, f"{what}: mean |dxy| {px.mean():.4f} px"
    assert dlik.max() < LIKELIHOOD, f"{what}: max likelihood difference {dlik.max():.2e}"
    # no keypoint in another cell where the maximum is unambiguous (a cell is >= stride 4 px away)
    assert px[clear].max() < 1.0, f"{what}: max |dxy| {px[clear].max():.3f} px at an unambiguous maximum"
    return px


@pytest.mark.slow
@pytest.mark.parametrize("net", dlc3_models.NETS)
def test_export_agrees_with_deeplabcut_live(exports, frames, net):
    folder, onnx_path, ref, report = exports(net)
    meta = report.metadata
    assert meta.bodyparts == ("snout", "leftear", "rightear", "tailbase")
    assert meta.stride == STRIDES[net] and meta.locref_stdev == pytest.approx(7.2801)
    assert meta.clip_scores and meta.location_refinement and meta.input_color == "RGB"
    assert meta.extra["source_kind"] == "dlc3" and meta.extra["source_variant"] == f"dlc3-{net}"
    assert report.parity.ok and report.parity.reference == "pytorch"
    assert "480x640" in report.parity.frame_sizes  # checked at the real camera size too
    poses, ambiguous = _rtpose_poses(onnx_path, frames)
    _assert_agrees(poses, ref["poses"].astype(np.float64), ambiguous, f"{net} vs DeepLabCut-Live")
    # raw heatmaps: likelihoods are clipped, not squashed by a sigmoid
    assert (poses[..., 2] >= 0).all() and (poses[..., 2] <= 1).all()


@pytest.mark.slow
def test_cli_export_analyze_and_run_from_the_export_folder(exports, frames, tmp_path, monkeypatch, capsys):
    import cv2

    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "cache"))
    folder, _, ref, _ = exports("resnet_50")
    ref_poses = ref["poses"].astype(np.float64)
    pt = next(folder.glob("*.pt"))
    # `rtpose export <.pt>`, written where `--model <folder>` looks for its export (the cache): the folder's
    # first use then finds it instead of exporting the same network a third time in this test module (the
    # export on a cache miss is tested in test_export_cache.py; it is the same export_model call)
    cached = cache.cached_path(folder)
    assert cli_main(["export", str(pt), "--out", str(cached)]) == 0
    assert "dlc3-resnet_50" in capsys.readouterr().out
    # `rtpose analyze --model <folder>`: PNGs of the reference frames (lossless), batch 8
    paths = []
    for i, frame in zip(dlc3_models.FRAMES, frames):
        paths.append(str(tmp_path / "imgs" / f"frame{i:04d}.png"))
        (tmp_path / "imgs").mkdir(exist_ok=True)
        cv2.imwrite(paths[-1], frame)
    assert cli_main(["analyze", *paths, "--model", str(folder), "--out-dir", str(tmp_path / "res"), "--quiet"]) == 0
    table = read_dlc_table(tmp_path / "res" / "imgs.rtpose.h5")
    _assert_agrees(table.to_numpy().reshape(len(paths), 4, 3), ref_poses, what="rtpose analyze")
    assert list((tmp_path / "cache").iterdir()) == [cached]  # the CLI's export, found in the cache
    # `rtpose run --source video:...` with the same folder: the cached export, poses of the video's frames
    out = tmp_path / "run.h5"
    assert cli_main(["run", "--source", f"video:{dlc3_models.VIDEO}", "--frames", "8", "--no-pace", "--quiet",
                     "--model", str(folder), "--record", str(out)]) == 0
    recorded = read_dlc_table(out)
    assert list((tmp_path / "cache").iterdir()) == [cached] and len(recorded) >= 1
    # live mode keeps the newest frame: whichever frames it processed, their poses are the model's
    indices = [int(i) for i in recorded.index]
    expected, _ = _rtpose_poses(cached, dlc3_models.video_frames(indices))
    assert np.array_equal(recorded.to_numpy().reshape(len(recorded), 4, 3), expected)


def _pt_with(tmp_path, name, edit):
    cfg = dlc3_models.config("resnet_50")
    edit(cfg)
    path = tmp_path / f"{name}.pt"
    torch.save({"config": cfg, "pose": {}}, path)
    return path


def test_top_down_and_multi_animal_models_are_refused_by_type(tmp_path):
    def top_down(cfg):
        cfg["method"] = "td"
        cfg["net_type"] = "top_down_resnet_50"
        cfg["detector"] = {"model": {"type": "FasterRCNN"}}

    def multi_animal(cfg):
        cfg["metadata"]["individuals"] = ["mouse1", "mouse2"]

    # (top-down models export with their detector: tests/test_export_dlc3_td.py; this .pt has none)
    with pytest.raises(ExportError, match=r"top-down DeepLabCut 3 model \(top_down_resnet_50.*without its detector"):
        export_model(_pt_with(tmp_path, "td", top_down), tmp_path / "td.onnx")
    with pytest.raises(ExportError, match=r"multi-animal DeepLabCut 3 model \(resnet_50, 2 individuals"):
        export_model(_pt_with(tmp_path, "ma", multi_animal), tmp_path / "ma.onnx")
    with pytest.raises(ExportError, match="describes itself"):
        export_model(_pt_with(tmp_path, "sa", lambda c: None), tmp_path / "x.onnx", stride=8)
    snapshot = tmp_path / "snapshot-001.pt"
    torch.save({"model": {}}, snapshot)
    with pytest.raises(ExportError, match="not a DeepLabCut 3 model export"):
        export_model(snapshot, tmp_path / "s.onnx")
    assert not list(tmp_path.glob("*.onnx"))
