"""Make the multi-animal DeepLabCut 3 fixtures of tests/test_export_dlc3_ma.py (not collected by pytest).

Runs in the DeepLabCut 3 side environment (DeepLabCut 3.0.2 + DeepLabCut-Live 1.1.0, PyTorch), never rtpose's::

    HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 /work/side/dlc3-torch/bin/python tests/data/dlc3_ma/build_fixtures.py \\
        PROJECT/exported-models-pytorch/DLC_twomice_NetType.RESNET_50_iteration-0_shuffle-1

    [PROJECT/exported-models-pytorch/DLC_twomice_NetType.DLCRNET_STRIDE16_MS5_iteration-0_shuffle-2]

where PROJECT was made by ``examples/dlc3_multianimal/make_model.py [--dlcrnet]``. With the second
export it only writes that export's config (``dlcrnet_stride16_ms5.config.json``). For the first, it

1. writes ``resnet_50.config.json``: the export's ``config`` (``export_model(wipe_paths=True)``);
2. writes ``resnet_50.heads.npz``: the export's weights of the trained head layers
   (``tests/dlc3_ma_models.py: TRAINED_PREFIXES``), and checks that every other weight of the export is
   exactly DeepLabCut's seeded initialisation (so ``build_export`` rebuilds the export bit for bit);
3. runs DeepLabCut's own PyTorch inference on ``reference_frames()`` (BGR -> RGB, /255, ImageNet mean/std:
   DeepLabCut-Live's pose transform; no padding for resnet_50), one frame at a time: the network, then
   ``model.get_predictions`` (its ``PartAffinityFieldPredictor``: sigmoid, Gaussian smoothing, peaks, PAF
   costs, DeepLabCut's ``Assembler``). It keeps the smoothed score maps the predictor found its peaks on,
   the raw locref and PAF maps (for the first :data:`MAPS_FRAMES` frames: the maps are 1.2 MB per
   640x480 frame), the final poses (N, A, K, 5) for all frames, each frame's peaks (the predictor's
   ``preds``: coordinates and confidences per body part) and DeepLabCut-Live 1.1.0's poses for the same
   export (``DLCLive(pt, model_type="pytorch", single_animal=False)``), into ``resnet_50.reference.npz``.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # tests/, for dlc3_ma_models

#: Frames whose full maps are stored: two synthetic two-mouse frames and one openfield frame.
MAPS_FRAMES = (0, 1, 4)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def dlc_inference(model, frames):
    """DeepLabCut's own forward + PartAffinityFieldPredictor per frame; (scoremap, locref, paf, poses, peaks)."""
    import numpy as np
    import torch

    predictor = model.heads["bodypart"].predictor
    predictor.return_preds = True
    find_peaks = type(predictor).find_local_peak_indices_maxpool_nms
    captured = []

    def capture(input_, radius, threshold):
        captured.append(input_.detach().clone())
        return find_peaks(input_, radius, threshold)

    predictor.find_local_peak_indices_maxpool_nms = capture
    graph = predictor.graph
    channels = [2 * e + c for e in predictor.edges_to_keep for c in (0, 1)]
    mean = torch.tensor(IMAGENET_MEAN).reshape(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).reshape(1, 3, 1, 1)
    sc, lr, paf, poses, peaks, unique = [], [], [], [], [], []
    with torch.inference_mode():
        for frame in frames:
            x = torch.from_numpy(np.ascontiguousarray(frame[..., ::-1])).permute(2, 0, 1)[None] / 255.0
            out = model((x - mean) / std)
            captured.clear()
            predictions = model.get_predictions(out)
            pred = predictions["bodypart"]
            if "unique_bodypart" in predictions:  # its HeatmapPredictor's (1, 1, U, 3) poses
                unique.append(predictions["unique_bodypart"]["poses"].numpy()[0])
            heads = out["bodypart"]
            sc.append(captured[0].permute(0, 2, 3, 1).numpy()[0])
            lr.append(heads["locref"].permute(0, 2, 3, 1).numpy()[0])
            paf.append(heads["paf"][:, channels].permute(0, 2, 3, 1).numpy()[0])
            poses.append(pred["poses"].numpy()[0])
            found = pred["preds"][0]
            peaks.append([np.concatenate([xy, c], axis=1) if len(xy) else np.zeros((0, 3), np.float32)
                          for xy, c in zip(found["coordinates"][0], found["confidence"])])
    del predictor.find_local_peak_indices_maxpool_nms
    assert [tuple(e) for e in graph] and channels
    unique = np.stack(unique).astype(np.float32) if unique else None
    return np.stack(sc), np.stack(lr), np.stack(paf), np.stack(poses).astype(np.float32), peaks, unique


def dlc_identity(model, frames):
    """DeepLabCut's identity head on each frame, as its bottom-up inference runner does it: the network,
    ``model.get_predictions`` (``IdentityPredictor``: resize + sigmoid; ``PartAffinityFieldPredictor``), the
    per-image numpy split of ``PoseInferenceRunner.predict``, then DeepLabCut's own
    ``build_bottom_up_postprocessor(..., with_identity=True)`` (``PredictKeypointIdentities``,
    ``PadOutputs``, ``AssignIndividualIdentities``; no rescaling: full frames).

    Returns (raw identity maps (N, h, w, A) NHWC, bodyparts (N, A, K, 5) in identity order,
    identity_scores (N, A, K, A) in identity order)."""
    import numpy as np
    import torch
    from deeplabcut.pose_estimation_pytorch.data.postprocessor import build_bottom_up_postprocessor

    model.heads["bodypart"].predictor.return_preds = False  # as DeepLabCut's runner builds it
    mean = torch.tensor(IMAGENET_MEAN).reshape(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).reshape(1, 3, 1, 1)
    raw, bodyparts, scores = [], [], []
    with torch.inference_mode():
        for frame in frames:
            x = torch.from_numpy(np.ascontiguousarray(frame[..., ::-1])).permute(2, 0, 1)[None] / 255.0
            out = model((x - mean) / std)
            raw.append(out["identity"]["heatmap"].permute(0, 2, 3, 1).numpy()[0])
            predictions = model.get_predictions(out)
            image = [{head: {k: v[0].cpu().numpy() for k, v in outs.items()} for head, outs in predictions.items()}]
            a, k = image[0]["bodypart"]["poses"].shape[:2]
            post = build_bottom_up_postprocessor(max_individuals=a, num_bodyparts=k, num_unique_bodyparts=0,
                                                 with_identity=True)
            result, _ = post(image, {})
            bodyparts.append(np.asarray(result["bodyparts"], np.float32))
            scores.append(np.asarray(result["identity_scores"], np.float64))
    return np.stack(raw), np.stack(bodyparts), np.stack(scores)


def build_resize_reference() -> None:
    """``identity_resize.reference.npz``: PyTorch's ``F.resize(BILINEAR, antialias=True)`` (DeepLabCut's
    ``IdentityPredictor``) of seeded random maps, and torch's sigmoid of the result, for
    ``tests/test_multianimal_identity.py``: maps of up to 100 cells resized whole; larger ones
    (16x21 and the 640x480 geometry of the fixture, 61x81 -> 488x648) at 4000 sampled pixels."""
    import numpy as np
    import torch
    import torchvision.transforms.functional as F

    rng = np.random.default_rng(0)
    out = {}
    for n, (h, w, s) in enumerate([(16, 21, 8), (7, 9, 4), (13, 5, 3), (61, 81, 8)]):
        x = (rng.standard_normal((1, 2, h, w)) * 4).astype(np.float32)
        y = F.resize(torch.from_numpy(x), size=[int(h * s), int(w * s)], interpolation=F.InterpolationMode.BILINEAR,
                     antialias=True)
        sig = torch.sigmoid(y)
        out[f"in{n}"], out[f"stride{n}"] = x[0].transpose(1, 2, 0), np.float64(s)
        y, sig = y[0].numpy().transpose(1, 2, 0), sig[0].numpy().transpose(1, 2, 0)
        if h * w > 100:  # sampled: (row, col, channel) and the values
            idx = np.stack([rng.integers(0, y.shape[0], 4000), rng.integers(0, y.shape[1], 4000),
                            rng.integers(0, 2, 4000)], axis=1)
            out[f"idx{n}"], out[f"out{n}"] = idx, y[idx[:, 0], idx[:, 1], idx[:, 2]]
            out[f"sig{n}"], out[f"shape{n}"] = sig[idx[:, 0], idx[:, 1], idx[:, 2]], np.asarray(y.shape)
        else:
            out[f"out{n}"], out[f"sig{n}"], out[f"shape{n}"] = y, sig, np.asarray(y.shape)
    out["versions"] = np.array([f"torch {torch.__version__}"])
    np.savez_compressed(HERE / "identity_resize.reference.npz", **out)


def main(export: str, name: str | None = None) -> None:
    """``name``: the fixture's name (default ``dlc3_ma_models.NET``; ``UNIQUE_NET`` for the export of
    ``make_model.py --unique``, whose reference frames carry the unique landmark)."""
    import deeplabcut
    import dlclive
    import numpy as np
    import torch
    from dlclive import DLCLive

    import dlc3_ma_models as M

    export = Path(export)
    pt = next(export.glob("*.pt")) if export.is_dir() else export
    raw = torch.load(pt, map_location="cpu", weights_only=True)
    cfg = raw["config"]
    assert cfg["net_type"] == M.NET, cfg["net_type"]
    name = name or M.NET
    marker = name == M.UNIQUE_NET
    identity = name == M.IDENTITY_NET  # its frames: the second mouse tinted red
    (HERE / f"{name}.config.json").write_text(json.dumps(cfg, indent=1, sort_keys=True) + "\n")
    trained = {k: v.numpy() for k, v in raw["pose"].items() if k.startswith(M.TRAINED_PREFIXES)}
    np.savez_compressed(HERE / f"{name}.heads.npz", **trained)
    seeded = M.seeded_model(cfg).state_dict()
    differ = [k for k in seeded if k not in trained and not torch.equal(seeded[k], raw["pose"][k])]
    assert not differ, f"weights other than the trained head layers differ from the seeded init: {differ[:5]}"
    state = M.build_state(cfg, HERE / f"{name}.heads.npz")
    sha = M.weights_sha256(state)
    assert sha == M.weights_sha256(raw["pose"]), "the rebuilt weights differ from the export's"

    model = M.seeded_model(cfg)
    model.load_state_dict(state)
    model.eval()
    frames = M.reference_frames(marker=marker, tint=identity)
    sc, lr, paf, poses, peaks, unique = dlc_inference(model, frames)
    with tempfile.TemporaryDirectory() as tmp:
        folder, sha_rebuilt = M.build_export(Path(tmp), cfg, name=name)
        assert sha_rebuilt == sha
        live_poses = np.zeros((0,), np.float32)
        if not identity:  # DeepLabCut-Live 1.1.0 cannot build it: 'IdentityPredictor is not in the predictors registry'
            live = DLCLive(str(next(folder.glob("*.pt"))), model_type="pytorch", device="cpu", single_animal=False)
            live.init_inference(frames[0])
            live_poses = np.stack([np.asarray(live.get_pose(f), np.float32) for f in frames])
    n_peaks = np.array([[len(p) for p in frame] for frame in peaks])
    flat_peaks = np.concatenate([p for frame in peaks for p in frame]).astype(np.float32)
    keep = list(MAPS_FRAMES)
    versions = [f"deeplabcut {deeplabcut.__version__}", f"deeplabcut-live {dlclive.VERSION}",
                f"torch {torch.__version__}", f"numpy {np.__version__}"]
    extra = {} if unique is None else {"unique_poses": unique}
    if identity:  # DeepLabCut's identity head: raw maps of every frame, its final (reordered) predictions
        id_maps, id_bodyparts, id_scores = dlc_identity(model, frames)
        extra.update(identity_maps=id_maps, identity_bodyparts=id_bodyparts, identity_scores=id_scores)
        print("identity order frame 0:", id_bodyparts[0].round(1), id_scores[0].round(3), flush=True)
    if marker:  # the unique variant keeps the maps of two frames only (one synthetic, one openfield)
        extra["maps_frames"] = np.asarray([0, 4])
        keep = [0, 4]
    np.savez_compressed(
        HERE / f"{name}.reference.npz", **extra,
        frames_synthetic=np.asarray(M.REFERENCE_SYNTHETIC), frames_video=np.asarray(M.REFERENCE_VIDEO),
        **({} if marker else {"maps_frames": np.asarray(keep)}), scoremap=sc[keep], locref=lr[keep], paf=paf[keep], poses=poses,
        peaks=flat_peaks, n_peaks=n_peaks, dlclive_poses=live_poses, weights_sha256=np.array(sha),
        versions=np.array(versions))
    found = (poses[..., 2] > 0).sum(axis=(1, 2))
    print(f"poses {poses.shape}; keypoints found per frame {found.tolist()}; peaks per frame/part "
          f"{n_peaks.tolist()}; DLC-Live poses {live_poses.shape}; weights {sha[:16]}", flush=True)
    print("DLC poses frame 0:\n", poses[0].round(2), "\nDLC-Live:\n", live_poses[:1].round(2), flush=True)


def save_config(export: str) -> None:
    import torch

    export = Path(export)
    pt = next(export.glob("*.pt")) if export.is_dir() else export
    cfg = torch.load(pt, map_location="cpu", weights_only=True)["config"]
    (HERE / f"{cfg['net_type']}.config.json").write_text(json.dumps(cfg, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    if sys.argv[1] == "--resize":  # build_fixtures.py --resize (torch only)
        build_resize_reference()
    elif sys.argv[1] == "--identity":  # build_fixtures.py --identity EXPORT (from make_model.py --identity)
        import dlc3_ma_models

        main(sys.argv[2], dlc3_ma_models.IDENTITY_NET)
    elif sys.argv[1] == "--unique":  # build_fixtures.py --unique EXPORT (from make_model.py --unique)
        import dlc3_ma_models

        main(sys.argv[2], dlc3_ma_models.UNIQUE_NET)
    else:
        main(sys.argv[1])
        for other in sys.argv[2:]:
            save_config(other)
