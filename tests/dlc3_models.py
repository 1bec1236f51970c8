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
#: Architectures tested. hrnet_w32 (its real config and DLC-Live poses are in tests/data/dlc3/) is left out
#: for now: DeepLabCut's HRNet keeps frozen batch-norm statistics (freeze_bn_stats: true), so with random
#: init (mean 0, var 1) nothing normalises and its maps reach ~4e6; ONNX matches PyTorch to 1.6e-6
#: relative, but that is ~7 absolute, above the export check's absolute 1e-3, and the export is refused.
NETS = ("resnet_50",)
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
    from rtpose.exporters import deps

    torch = deps.torch()  # as the exporter imports it (without triton, which crashes beside TensorFlow)
    PoseModel = deps.dlc3_pose_model()

    cfg = copy.deepcopy(cfg or config(net))
    torch.manual_seed(SEED)
    model = PoseModel.build(copy.deepcopy(cfg["model"]), pretrained_backbone=False)
    state = model.state_dict()
    folder = Path(out_dir) / "exported-models-pytorch" / folder_name(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"config": cfg, "pose": state}, folder / f"{folder_name(cfg)}_snapshot-seed{SEED}.pt")
    return folder, weights_sha256(state)


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
