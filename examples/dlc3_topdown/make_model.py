"""A real DeepLabCut 3 TOP-DOWN model of two synthetic mice (detector + pose model), made by DeepLabCut 3 itself.

Runs in the DeepLabCut 3 side environment (see ``examples/dlc3_multianimal/make_model.py``), never in rtpose's::

    HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 /work/side/dlc3-torch/bin/python \\
        examples/dlc3_topdown/make_model.py OUT_DIR [--frames 48] [--steps 300] [--det-steps 300]

1. writes the two-mouse DeepLabCut multi-animal project of ``examples/dlc3_multianimal/make_model.py``
   (same frames, labels and layout; task ``twomicetd``) in ``OUT_DIR/twomicetd-synth-dlc3``;
2. ``deeplabcut.create_training_dataset(net_type="top_down_resnet_50")`` (PyTorch engine), with DeepLabCut's
   default detector (no ``detector_type``: ``SSDLite``, torchvision's ``ssdlite320_mobilenet_v3_large``).
   ``top_down_resnet_50`` is DeepLabCut's own top-down recipe (timm ``resnet50_gn`` + ``HeatmapHead`` +
   ``HeatmapPredictor`` on 256x256 crops): its head is just two 1x1 convolutions, so a crop costs ~1/5 of a
   640x480 frame and the network is the one the bottom-up fixtures already use. The other detector DeepLabCut
   3.0.2 offers for top-down, ``fasterrcnn_mobilenet_v3_large_fpn``, cannot be built here at all: DeepLabCut's
   ``FasterRCNN`` does not pass ``weights_backbone=None`` and torchvision then downloads ImageNet weights;
3. no pretrained weights: DeepLabCut's own builders under ``torch.manual_seed(0)``
   (``PoseModel.build(..., pretrained_backbone=False)``, ``DETECTORS.build(detector.model, pretrained=False)``) give
   both networks; only their final layers are trained, over the frozen seeded rest:
   * pose: the head's ``heatmap_head`` and ``locref_head`` (two 1x1 convolutions, 6 k parameters) on the crops
     DeepLabCut's ``top_down_crop`` makes around each mouse's labelled box (keypoint box + ``data.bbox_margin``),
     with DeepLabCut's own target generator and losses (``model.get_target``, ``model.get_loss``);
   * detector: first its batch-norm statistics are measured on the labelled frames (:func:`recalibrate_batch_norm`:
     from a random initialisation DeepLabCut's frozen statistics shrink SSDLite's features to 1e-14..1e-25, every
     frame then gives the same boxes), then the six final 1x1 convolutions of SSDLite's classification and
     box-regression heads (83 k parameters) are trained with torchvision's own SSD loss (``model(images, targets)``
     in training mode, DeepLabCut's ``freeze_bn_stats``), targets = the same labelled boxes;
   saved as the shuffle's ``snapshot-<steps>.pt`` and ``snapshot-detector-<steps>.pt`` (``{"model": state_dict}``);
4. ``deeplabcut.export_model`` writes ``exported-models-pytorch/DLC_twomicetd_..._shuffle-1/*.pt`` with
   ``config``, ``pose`` and ``detector``.

It prints the export folder and the final losses.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "tests"))
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE.parent / "dlc3_multianimal"))

import dlc3_td_models as T  # noqa: E402
import make_model as MA  # noqa: E402  (the bottom-up example: its project writer)

MA.TASK = T.TASK
NET = "top_down_resnet_50"


def labelled_data(project: Path):
    """[(RGB uint8 frame, (A, K, 2) keypoints)] of the project's labelled frames."""
    import cv2
    import numpy as np
    import pandas as pd

    df = pd.read_hdf(next(project.glob(f"labeled-data/{T.TASK}/CollectedData_{MA.SCORER}.h5")))
    out = []
    for (_, _, name), row in df.iterrows():
        frame = cv2.imread(str(project / "labeled-data" / T.TASK / name), cv2.IMREAD_COLOR)[..., ::-1]
        xy = row.to_numpy(float).reshape(len(T.INDIVIDUALS), len(T.BODYPARTS), 2)
        out.append((np.ascontiguousarray(frame), xy))
    return out


def train_pose(model_cfg: dict, data, steps: int, lr: float):
    import numpy as np
    import torch
    from deeplabcut.pose_estimation_pytorch.data.image import top_down_crop

    model = T.seeded_pose_model(model_cfg)
    model.eval()
    head = model.heads["bodypart"]
    finals = {"heatmap": head.heatmap_head, "locref": head.locref_head}
    captured: dict[str, list] = {k: [] for k in finals}
    hooks = [m.register_forward_hook(lambda mod, inp, out, k=k: captured[k].append(inp[0].detach()))
             for k, m in finals.items()]
    crop = model_cfg["data"]["inference"]["top_down_crop"]
    size = (int(crop["width"]), int(crop["height"]))
    margin = int(model_cfg["data"].get("bbox_margin", 20))
    keypoints = []
    t0 = time.perf_counter()
    with torch.no_grad():
        for frame, xy in data:
            for animal in xy:
                box = T.box_from_keypoints(animal, margin, frame.shape)
                image, offset, scale = top_down_crop(frame, box, size, crop_with_context=True)
                model(T.normalize(image[None]))
                kp = (animal - np.asarray(offset)) / np.asarray(scale)
                keypoints.append(np.concatenate([kp, np.full((len(kp), 1), 2.0)], axis=1)[None])
    for h in hooks:
        h.remove()
    print(f"pose features of {len(keypoints)} crops in {time.perf_counter() - t0:.0f} s", flush=True)
    feats = {k: torch.cat(v) for k, v in captured.items()}
    keypoints = torch.from_numpy(np.asarray(keypoints, np.float32))  # (N, 1, K, 3)
    params = [p for m in finals.values() for p in m.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator().manual_seed(T.SEED)
    t0 = time.perf_counter()
    for step in range(steps):
        idx = torch.randperm(len(keypoints), generator=gen)[:8]
        outputs = {"bodypart": {k: finals[k](feats[k][idx]) for k in finals}}
        losses = model.get_loss(outputs, model.get_target(outputs, {"keypoints": keypoints[idx]}))
        opt.zero_grad()
        losses["total_loss"].backward()
        opt.step()
        if step % 50 == 0 or step == steps - 1:
            print(f"pose step {step}: " + ", ".join(f"{k} {float(v):.4f}" for k, v in losses.items()), flush=True)
    print(f"{steps} pose steps in {time.perf_counter() - t0:.0f} s", flush=True)
    return model


def recalibrate_batch_norm(det, images) -> None:
    """Batch-norm running statistics of the seeded detector, measured on the labelled frames.

    DeepLabCut's detectors keep their batch-norm statistics frozen (``freeze_bn_stats: true``) and expect
    COCO/ImageNet weights; from a random initialisation the frozen statistics (mean 0, variance 1) shrink the
    activations layer after layer (SSDLite's six feature maps reach 1e-14 .. 1e-25 on these frames: every frame
    gives the same boxes and scores). Measuring the statistics once (PyTorch's cumulative average,
    ``momentum=None``, train mode, no gradient) gives features of order 1, as a pretrained backbone would.
    """
    import torch

    bns = [m for m in det.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    det.model.train()  # the torchvision model itself: DeepLabCut's BaseDetector.train would re-freeze the stats
    with torch.no_grad():
        images_t, _ = det.model.transform(list(images))
        det.model.backbone(images_t.tensors)  # backbone + extra layers: one batch of all frames
        det.model.backbone.eval()  # then the head's batch norms, on the recalibrated backbone's features
        feats = list(det.model.backbone(images_t.tensors).values())
        det.model.head(feats)
    for bn, momentum in zip(bns, momenta):
        bn.momentum = momentum
    det.eval()
    print(f"detector batch norms recalibrated on {len(images)} frames: feature std "
          + ", ".join(f"{float(f.std()):.3g}" for f in feats), flush=True)


def train_detector(model_cfg: dict, data, steps: int, lr: float):
    import numpy as np
    import torch

    det = T.seeded_detector(model_cfg)
    margin = int(model_cfg["data"].get("bbox_margin", 20))
    finals = [m[1] for m in det.model.head.classification_head.module_list] + \
             [m[1] for m in det.model.head.regression_head.module_list]
    for p in det.parameters():
        p.requires_grad_(False)
    params = [p for m in finals for p in m.parameters()]
    for p in params:
        p.requires_grad_(True)
    images = [T.normalize(frame[None])[0] for frame, _ in data]
    recalibrate_batch_norm(det, images)
    targets = []
    for frame, xy in data:
        boxes = np.stack([T.box_from_keypoints(a, margin, frame.shape) for a in xy])  # xywh
        boxes[:, 2:] += boxes[:, :2]
        targets.append({"boxes": torch.from_numpy(boxes.astype(np.float32)),
                        "labels": torch.ones(len(boxes), dtype=torch.int64)})
    opt = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator().manual_seed(T.SEED)
    det.train()  # DeepLabCut's BaseDetector.train keeps the batch-norm statistics frozen (freeze_bn_stats)
    t0 = time.perf_counter()
    for step in range(steps):
        idx = torch.randperm(len(images), generator=gen)[:8].tolist()
        losses, _ = det(torch.stack([images[i] for i in idx]), [targets[i] for i in idx])
        total = sum(losses.values())
        opt.zero_grad()
        total.backward()
        opt.step()
        if step % 50 == 0 or step == steps - 1:
            print(f"detector step {step}: " + ", ".join(f"{k} {float(v):.4f}" for k, v in losses.items()), flush=True)
    print(f"{steps} detector steps in {time.perf_counter() - t0:.0f} s", flush=True)
    det.eval()
    return det


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--frames", type=int, default=48)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--det-steps", type=int, default=300)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--det-lr", type=float, default=0.01)
    args = p.parse_args()
    import deeplabcut
    import torch
    import yaml
    from deeplabcut.core.engine import Engine

    config = MA.make_project(args.out.resolve(), args.frames)
    deeplabcut.create_training_dataset(str(config), Shuffles=[1], net_type=NET, engine=Engine.PYTORCH,
                                       userfeedback=False)
    train_dir = next(config.parent.glob("dlc-models-pytorch/iteration-0/*shuffle1/train"))
    model_cfg = yaml.safe_load((train_dir / "pytorch_config.yaml").read_text())
    data = labelled_data(config.parent)
    pose = train_pose(model_cfg, data, args.steps, args.lr)
    torch.save({"model": pose.state_dict(), "metadata": {"epoch": args.steps}},
               train_dir / f"snapshot-{args.steps:03d}.pt")
    det = train_detector(model_cfg, data, args.det_steps, args.det_lr)
    torch.save({"model": det.state_dict(), "metadata": {"epoch": args.det_steps}},
               train_dir / f"snapshot-detector-{args.det_steps:03d}.pt")
    deeplabcut.export_model(str(config), shuffle=1, overwrite=True, wipepaths=True)
    print(sorted(config.parent.glob("exported-models-pytorch/*_shuffle-1"))[-1], flush=True)


if __name__ == "__main__":
    main()
