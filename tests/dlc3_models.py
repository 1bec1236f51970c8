"""DeepLabCut 3 (PyTorch) test models, built by DeepLabCut 3's own code from real DeepLabCut 3 configs.

A trained DeepLabCut 3 ``resnet_50`` export is ~95 MB, too big for the repository.
What the repository keeps instead (``tests/data/dlc3/``), per architecture:

* ``<net>.config.json``: the ``config`` of a real DeepLabCut 3.0.2 export
  (``deeplabcut.export_model(..., wipe_paths=True)`` on the openfield project
  made by ``examples/dlc3_openfield/make_models.py``);
* ``<net>.dlclive.npz``: DeepLabCut-Live 1.1.0's poses (PyTorch runner) on
  :data:`FRAMES` of the bundled video for the model :func:`build_export` makes
  from that config, and the sha256 of its weights.

:func:`build_export` rebuilds that model: ``torch.manual_seed(SEED)`` then
DeepLabCut's ``PoseModel.build(config["model"], pretrained_backbone=False)``
(its own random initialisation), saved as DeepLabCut's export format
(``{"config": ..., "pose": state_dict}``) in an ``exported-models-pytorch``-style
folder. ``tests/data/dlc3/build_fixtures.py`` (run in a side environment with
DeepLabCut-Live) made the ``.npz`` files with it. This module imports torch and
DeepLabCut only inside its functions.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "dlc3"
VIDEO = HERE.parent / "rtpose" / "data" / "m3v1mp4.mp4"
#: Architectures tested. DeepLabCut's HRNet keeps its batch-norm statistics frozen (freeze_bn_stats: true):
#: with random init (mean 0, var 1) nothing normalises and its maps reach ~4e6. Its fixture therefore also
#: carries batch-norm statistics recalibrated on FRAMES (``<net>.bn_stats.npz``, :func:`calibrate_bn_stats`),
#: loaded by :func:`build_export`; its maps are then of order 1, as a trained network's are.
NETS = ("resnet_50", "hrnet_w32")
SEED = 0
#: Frames of the bundled openfield video (640x480) with DeepLabCut-Live reference poses.
FRAMES = tuple(range(0, 400, 50))


def config(net: str) -> dict:
    return json.loads((DATA / f"{net}.config.json").read_text())


def folder_name(cfg: dict) -> str:
    """DeepLabCut's export folder name (``apis/export.py: get_export_folder_name``) for shuffle 1."""
    return f"DLC_openfield_{cfg['net_type']}_iteration-0_shuffle-1"


def build_export(net: str, out_dir: Path, cfg: dict | None = None) -> tuple[Path, str]:
    """(export folder, weights sha256): DeepLabCut's network for ``net``'s real config, seeded random init."""
    try:
        from rtpose.exporters import deps
    except ImportError:  # DeepLabCut-Live's side environment (build_fixtures.py), where rtpose is not installed
        import torch
        from deeplabcut.pose_estimation_pytorch.models import PoseModel
    else:
        torch = deps.torch()  # as the exporter imports it (without triton, which crashes beside TensorFlow)
        PoseModel = deps.dlc3_pose_model()

    cfg = copy.deepcopy(cfg or config(net))
    torch.manual_seed(SEED)
    model = PoseModel.build(copy.deepcopy(cfg["model"]), pretrained_backbone=False)
    state = model.state_dict()
    stats = DATA / f"{net}.bn_stats.npz"
    if stats.is_file():  # recalibrated batch-norm statistics (exact: stored, not recomputed)
        with np.load(stats) as z:
            for name in z.files:
                state[name] = torch.from_numpy(z[name].copy())
    folder = Path(out_dir) / "exported-models-pytorch" / folder_name(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"config": cfg, "pose": state}, folder / f"{folder_name(cfg)}_snapshot-seed{SEED}.pt")
    return folder, weights_sha256(state)


def calibrate_bn_stats(net: str, out: Path | None = None) -> Path:
    """Recalibrate the seeded network's batch-norm statistics on :data:`FRAMES` of the bundled video and store
    them (``tests/data/dlc3/<net>.bn_stats.npz``; run once, by ``build_fixtures.py --bn-stats``).

    Each frame goes through DeepLabCut-Live's preprocessing (RGB, /255, reflect padding to the config's
    divisor, ImageNet mean/std) with only the batch norms in train mode and ``momentum=None`` (the
    cumulative average over the frames); DeepLabCut's ``freeze_bn_stats`` would otherwise keep them in eval.
    """
    import torch

    from rtpose.exporters import deps
    from rtpose.exporters.torch_dlc3 import IMAGENET_MEAN, IMAGENET_STD

    cfg = config(net)
    torch.manual_seed(SEED)
    model = deps.dlc3_pose_model().build(copy.deepcopy(cfg["model"]), pretrained_backbone=False)
    norms = {n: m for n, m in model.named_modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)}
    model.eval()
    for m in norms.values():
        m.reset_running_stats()
        m.momentum = None
        m.train()
    pad = cfg.get("data", {}).get("inference", {}).get("auto_padding") or {}
    dh, dw = int(pad.get("pad_height_divisor", 1)), int(pad.get("pad_width_divisor", 1))
    mean = torch.tensor(IMAGENET_MEAN).reshape(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).reshape(1, 3, 1, 1)
    with torch.no_grad():
        for frame in video_frames():
            x = torch.from_numpy(np.ascontiguousarray(frame[..., ::-1])).permute(2, 0, 1)[None].float() / 255.0
            h, w = x.shape[2:]
            x = torch.nn.functional.pad(x, (0, (dw - w % dw) % dw, 0, (dh - h % dh) % dh), mode="reflect")
            model((x - mean) / std)
    arrays = {f"{n}.{b}": getattr(m, b).detach().numpy().astype(np.float32)
              for n, m in norms.items() for b in ("running_mean", "running_var")}
    out = out or DATA / f"{net}.bn_stats.npz"
    np.savez_compressed(out, **arrays)
    return out


def weights_sha256(state: dict) -> str:
    import hashlib

    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def video_frames(indices=FRAMES, video: Path = VIDEO) -> np.ndarray:
    """BGR uint8 frames (N, 480, 640, 3) of the video at ``indices`` (read in order, as OpenCV decodes them)."""
    import cv2

    cap = cv2.VideoCapture(str(video))
    wanted, frames, i = set(indices), {}, 0
    while len(frames) < len(wanted):
        ok, frame = cap.read()
        if not ok:
            raise RuntimeError(f"{video} ended before frame {max(wanted)}")
        if i in wanted:
            frames[i] = frame
        i += 1
    cap.release()
    return np.ascontiguousarray(np.stack([frames[i] for i in indices]))
