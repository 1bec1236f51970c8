"""Make the multi-animal DeepLabCut 3 fixtures of tests/test_export_dlc3_ma.py (not collected by pytest).

Runs in the DeepLabCut 3 side environment (DeepLabCut 3.0.2 + DeepLabCut-Live 1.1.0, PyTorch), never rtpose's::

    HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 /work/side/dlc3-torch/bin/python tests/data/dlc3_ma/build_fixtures.py \\
        PROJECT/exported-models-pytorch/DLC_twomice_NetType.RESNET_50_iteration-0_shuffle-1

where PROJECT was made by ``examples/dlc3_multianimal/make_model.py``. It

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
    sc, lr, paf, poses, peaks = [], [], [], [], []
    with torch.inference_mode():
        for frame in frames:
            x = torch.from_numpy(np.ascontiguousarray(frame[..., ::-1])).permute(2, 0, 1)[None] / 255.0
            out = model((x - mean) / std)
            captured.clear()
            pred = model.get_predictions(out)["bodypart"]
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
    return np.stack(sc), np.stack(lr), np.stack(paf), np.stack(poses).astype(np.float32), peaks


def main(export: str) -> None:
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
    (HERE / f"{M.NET}.config.json").write_text(json.dumps(cfg, indent=1, sort_keys=True) + "\n")
    trained = {k: v.numpy() for k, v in raw["pose"].items() if k.startswith(M.TRAINED_PREFIXES)}
    np.savez_compressed(HERE / f"{M.NET}.heads.npz", **trained)
    seeded = M.seeded_model(cfg).state_dict()
    differ = [k for k in seeded if k not in trained and not torch.equal(seeded[k], raw["pose"][k])]
    assert not differ, f"weights other than the trained head layers differ from the seeded init: {differ[:5]}"
    state = M.build_state(cfg)
    sha = M.weights_sha256(state)
    assert sha == M.weights_sha256(raw["pose"]), "the rebuilt weights differ from the export's"

    model = M.seeded_model(cfg)
    model.load_state_dict(state)
    model.eval()
    frames = M.reference_frames()
    sc, lr, paf, poses, peaks = dlc_inference(model, frames)
    with tempfile.TemporaryDirectory() as tmp:
        folder, sha_rebuilt = M.build_export(Path(tmp), cfg)
        assert sha_rebuilt == sha
        live = DLCLive(str(next(folder.glob("*.pt"))), model_type="pytorch", device="cpu", single_animal=False)
        live.init_inference(frames[0])
        live_poses = np.stack([np.asarray(live.get_pose(f), np.float32) for f in frames])
    n_peaks = np.array([[len(p) for p in frame] for frame in peaks])
    flat_peaks = np.concatenate([p for frame in peaks for p in frame]).astype(np.float32)
    keep = list(MAPS_FRAMES)
    versions = [f"deeplabcut {deeplabcut.__version__}", f"deeplabcut-live {dlclive.VERSION}",
                f"torch {torch.__version__}", f"numpy {np.__version__}"]
    np.savez_compressed(
        HERE / f"{M.NET}.reference.npz",
        frames_synthetic=np.asarray(M.REFERENCE_SYNTHETIC), frames_video=np.asarray(M.REFERENCE_VIDEO),
        maps_frames=np.asarray(keep), scoremap=sc[keep], locref=lr[keep], paf=paf[keep], poses=poses,
        peaks=flat_peaks, n_peaks=n_peaks, dlclive_poses=live_poses, weights_sha256=np.array(sha),
        versions=np.array(versions))
    found = (poses[..., 2] > 0).sum(axis=(1, 2))
    print(f"poses {poses.shape}; keypoints found per frame {found.tolist()}; peaks per frame/part "
          f"{n_peaks.tolist()}; DLC-Live poses {live_poses.shape}; weights {sha[:16]}", flush=True)
    print("DLC poses frame 0:\n", poses[0].round(2), "\nDLC-Live:\n", live_poses[0].round(2), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
