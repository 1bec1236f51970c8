"""Recalibrate the batch-norm statistics of a briefly trained DeepLabCut 3 shuffle, then export it again.

Runs in the DeepLabCut 3 side environment (see ``make_models.py``), never in rtpose's::

    HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 /work/side/dlc3-torch/bin/python \\
        examples/dlc3_openfield/recalibrate_bn.py PROJECT/config.yaml --shuffle 2 [--from-init] [--frames N]

Why: DeepLabCut 3 trains CPU-sized batches with ``freeze_bn_stats: true`` (its
default for the HRNet and ResNet backbones), so a network trained from random
initialisation keeps the *initial* running statistics (mean 0, variance 1) in
every batch norm. In eval mode a random-init HRNet then amplifies activations
layer after layer: after one epoch the heat maps of ``hrnet_w32`` reach ~4e6 and
the training loss ~2e11. A network trained from ImageNet weights, as DeepLabCut
users train, does not have this problem; here no ImageNet weights can be
downloaded.

Training from there does not repair it: one epoch of ``hrnet_w32`` (loss
~2e11) leaves weights so large that even with recalibrated statistics its maps
reach ~5e4, where float32 rounding alone moves them by ~0.1. ``--from-init``
therefore starts from the seeded random initialisation ``make_models.py`` saved
(``random-init-<net>-seed0.pt``, DeepLabCut's own ``PoseModel.build``) instead of
the trained snapshot: a random-init network, as the issue allows, whose maps
are of order 1.

What it does, with DeepLabCut's own code:

1. builds the shuffle's network (``PoseModel.build`` from its ``pytorch_config.yaml``)
   and loads its newest training snapshot (``--from-init``: the random-init weights);
2. resets every batch norm's running statistics and sets ``momentum=None``
   (PyTorch's cumulative average), puts the network in train mode and, without
   gradients, runs the project's labelled frames through it one at a time with
   DeepLabCut-Live's inference transform (RGB, ÷255, reflect padding to the
   model's divisor, ImageNet mean/std): each batch norm's statistics become the
   average over those frames, the standard recalibration step;
3. writes the snapshot back (the previous one is kept as ``*.before-bn-recalibration``)
   and runs ``deeplabcut.export_model`` so the export folder holds the result.

Only the batch-norm running statistics change; every trained weight stays as
DeepLabCut trained it. Nothing here imports rtpose.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def recalibrate(config: Path, shuffle: int, from_init: bool = False, n_frames: int = 100) -> Path:
    import cv2
    import deeplabcut
    import numpy as np
    import torch
    import yaml
    from deeplabcut.pose_estimation_pytorch.models import PoseModel

    project = config.parent
    train_dir = next(project.glob(f"dlc-models-pytorch/iteration-0/*shuffle{shuffle}/train"))
    model_cfg = yaml.safe_load((train_dir / "pytorch_config.yaml").read_text())
    snapshots = sorted(train_dir.glob("snapshot-*.pt"))
    if not snapshots:
        raise SystemExit(f"{train_dir}: no training snapshot; train the shuffle first (make_models.py)")
    snapshot = snapshots[-1]
    ckpt = torch.load(snapshot, map_location="cpu", weights_only=False)
    net = PoseModel.build(model_cfg["model"], pretrained_backbone=False)
    if from_init:
        init = next(project.glob(f"random-init-{model_cfg['net_type']}-seed*.pt"))  # saved by make_models.py
        net.load_state_dict(torch.load(init, map_location="cpu", weights_only=True)["model"])
    else:
        net.load_state_dict(ckpt["model"])
    norms = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        raise SystemExit(f"{model_cfg['model']['backbone']['model_name']}: no batch norms to recalibrate")
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration frames
    pad = (model_cfg.get("data", {}).get("inference", {}) or {}).get("auto_padding") or {}
    dh, dw = int(pad.get("pad_height_divisor", 1)), int(pad.get("pad_width_divisor", 1))
    mean = torch.tensor(IMAGENET_MEAN).reshape(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).reshape(1, 3, 1, 1)
    frames = sorted(project.glob("labeled-data/*/img*.png"))
    frames = [frames[int(i)] for i in np.linspace(0, len(frames) - 1, min(n_frames, len(frames))).round()]
    net.train()
    for m in norms:  # DeepLabCut's backbones keep batch norms in eval mode under freeze_bn_stats: undo that here
        m.train()
    with torch.no_grad():
        for png in frames:
            rgb = cv2.cvtColor(cv2.imread(str(png), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).unsqueeze(0).float() / 255.0
            h, w = x.shape[2:]
            x = torch.nn.functional.pad(x, (0, (dw - w % dw) % dw, 0, (dh - h % dh) % dh), mode="reflect")
            net((x - mean) / std)
    net.eval()
    backup = snapshot.with_name(snapshot.name + ".before-bn-recalibration")
    if not backup.exists():
        shutil.copy(snapshot, backup)
    ckpt["model"] = net.state_dict()
    torch.save(ckpt, snapshot)
    print(f"recalibrated {len(norms)} batch norms of {init.name if from_init else snapshot.name} on "
          f"{len(frames)} labelled frames; written as {snapshot.name}", flush=True)
    deeplabcut.export_model(str(config), shuffle=shuffle, overwrite=True, wipepaths=True)
    return sorted(project.glob(f"exported-models-pytorch/*_shuffle-{shuffle}"))[-1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config", type=Path, help="the project's config.yaml (made by make_models.py)")
    p.add_argument("--shuffle", type=int, required=True)
    p.add_argument("--from-init", action="store_true",
                   help="start from the seeded random-init weights instead of the trained snapshot")
    p.add_argument("--frames", type=int, default=100, help="labelled frames to calibrate on (evenly spaced)")
    args = p.parse_args()
    print(recalibrate(args.config.resolve(), args.shuffle, args.from_init, args.frames))


if __name__ == "__main__":
    main()
