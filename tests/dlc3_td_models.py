"""DeepLabCut 3 TOP-DOWN test model (SSDLite detector + ``top_down_resnet_50`` pose model), built by DeepLabCut 3's
own code from the config of a real DeepLabCut 3.0.2 export.

What the repository keeps (``tests/data/dlc3_td/``, made by ``build_fixtures.py`` there from the project
``examples/dlc3_topdown/make_model.py`` creates with DeepLabCut 3.0.2):

* ``top_down_resnet_50.config.json``: the export's ``config`` (``wipepaths=True``; ``method: td``, a ``detector``
  section with DeepLabCut's default ``SSDLite``);
* ``top_down_resnet_50.heads.npz``: the trained final layers only (pose ``heatmap_head``/``locref_head``, detector
  ``head.{classification,regression}_head.module_list.*.1``) and the detector's batch-norm statistics measured on
  the labelled frames; every other weight is DeepLabCut's seeded
  initialisation, regenerated here (:func:`seeded_pose_model`, :func:`seeded_detector`);
* ``top_down_resnet_50.reference.npz``: DeepLabCut's own top-down inference on :func:`reference_frames`.

This module imports torch and DeepLabCut only inside its functions and runs in DeepLabCut's side environment too.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import numpy as np

from dlc3_ma_models import (  # noqa: F401  (the same two-mouse frames and layout as the bottom-up fixtures)
    BODYPARTS, INDIVIDUALS, REFERENCE_SYNTHETIC, REFERENCE_VIDEO, SEED, reference_frames, synthetic_frame,
    video_frames)

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "dlc3_td"
NET = "top_down_resnet_50"
TASK = "twomicetd"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Stored (trained) weights: prefixes in the pose state dict / in the detector state dict.
POSE_TRAINED = ("heads.bodypart.heatmap_head.", "heads.bodypart.locref_head.")
DETECTOR_TRAINED = tuple(f"model.head.{h}_head.module_list.{i}.1." for h in ("classification", "regression")
                         for i in range(6))
#: ... and the detector's batch-norm statistics, measured on the labelled frames (make_model.py)
BN_STATISTICS = ("running_mean", "running_var", "num_batches_tracked")


def stored(stage: str, name: str) -> bool:
    """Whether weight ``name`` of ``stage`` ("pose"/"detector") is stored (else: DeepLabCut's seeded init)."""
    if stage == "pose":
        return name.startswith(POSE_TRAINED)
    return name.startswith(DETECTOR_TRAINED) or name.rsplit(".", 1)[-1] in BN_STATISTICS


def config() -> dict:
    return json.loads((DATA / f"{NET}.config.json").read_text())


def _torch():
    try:
        from rtpose.exporters import deps
    except ImportError:  # DeepLabCut's side environment, without rtpose
        import torch
    else:
        torch = deps.torch()
        deps.dlc3_pose_model()
    return torch


def seeded_pose_model(cfg: dict):
    """DeepLabCut's pose network for ``cfg`` under ``torch.manual_seed(SEED)`` (no pretrained backbone)."""
    torch = _torch()
    from deeplabcut.pose_estimation_pytorch.models import PoseModel

    torch.manual_seed(SEED)
    return PoseModel.build(copy.deepcopy(cfg["model"]), pretrained_backbone=False)


def seeded_detector(cfg: dict):
    """DeepLabCut's detector for ``cfg["detector"]`` under ``torch.manual_seed(SEED)``, pretrained off (as
    DeepLabCut's ``get_inference_runners`` builds it), in eval mode."""
    torch = _torch()
    from deeplabcut.pose_estimation_pytorch.models.detectors import DETECTORS

    det_cfg = copy.deepcopy(cfg["detector"]["model"])
    if "pretrained" in det_cfg:
        det_cfg["pretrained"] = False
    torch.manual_seed(SEED)
    det = DETECTORS.build(det_cfg)
    det.eval()  # (BaseDetector.train returns None: never chain .eval())
    return det


def normalize(images_rgb: np.ndarray):
    """(B, H, W, 3) RGB uint8/float 0-255 -> DeepLabCut's inference transform (albumentations Normalize with the
    ImageNet mean/std, then ToTensor): (B, 3, H, W) float32."""
    torch = _torch()
    x = torch.from_numpy(np.ascontiguousarray(images_rgb, dtype=np.float32)).permute(0, 3, 1, 2) / 255.0
    mean = torch.tensor(IMAGENET_MEAN).reshape(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).reshape(1, 3, 1, 1)
    return (x - mean) / std


def box_from_keypoints(xy: np.ndarray, margin: int, shape) -> np.ndarray:
    """DeepLabCut's training box of one animal (``data/utils.py: bbox_from_keypoints``, COCO xywh)."""
    from deeplabcut.pose_estimation_pytorch.data.utils import bbox_from_keypoints

    kp = np.concatenate([np.asarray(xy, float), np.full((len(xy), 1), 2.0)], axis=1)
    return bbox_from_keypoints(kp, shape[0], shape[1], margin)


def build_states(cfg: dict | None = None, heads: Path | None = None) -> tuple[dict, dict]:
    """(pose state dict, detector state dict): seeded initialisation + the stored trained layers."""
    torch = _torch()
    cfg = cfg or config()
    pose = seeded_pose_model(cfg).state_dict()
    det = seeded_detector(cfg).state_dict()
    heads = heads or DATA / f"{NET}.heads.npz"
    with np.load(heads) as z:
        for key in z.files:
            stage, name = key.split("/", 1)
            state = pose if stage == "pose" else det
            if name not in state or tuple(state[name].shape) != z[key].shape:
                raise RuntimeError(f"{heads}: {key} does not fit DeepLabCut's network; rebuild the fixture")
            state[name] = torch.from_numpy(z[key].copy())
    return pose, det


def folder_name(cfg: dict) -> str:
    return f"DLC_{TASK}_{NET}_iteration-0_shuffle-1"


def build_export(out_dir: Path, cfg: dict | None = None) -> tuple[Path, str]:
    """(export folder, weights sha256) in DeepLabCut's ``exported-models-pytorch`` layout."""
    torch = _torch()
    cfg = copy.deepcopy(cfg or config())
    pose, det = build_states(cfg)
    folder = Path(out_dir) / "exported-models-pytorch" / folder_name(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"config": cfg, "pose": pose, "detector": det}, folder / f"{folder_name(cfg)}_snapshot-seed{SEED}.pt")
    return folder, weights_sha256(pose, det)


def weights_sha256(pose: dict, det: dict) -> str:
    digest = hashlib.sha256()
    for prefix, state in (("pose/", pose), ("detector/", det)):
        for name in sorted(state):
            digest.update((prefix + name).encode())
            digest.update(state[name].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
