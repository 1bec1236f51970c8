"""DeepLabCut 3 multi-animal (PAF) test model, built by DeepLabCut 3's own code from a real DeepLabCut 3 config.

What the repository keeps (``tests/data/dlc3_ma/``, made by ``build_fixtures.py`` there from the project
``examples/dlc3_multianimal/make_model.py`` creates with DeepLabCut 3.0.2):

* ``resnet_50.config.json``: the ``config`` of the real ``deeplabcut.export_model`` export
  (``wipe_paths=True``): a 2-animal project (individuals ``mouse1``, ``mouse2``; multi-animal body parts
  ``head``, ``body``, ``tail``), ``resnet_50`` with DeepLabCut's ``DLCRNetHead`` and ``PartAffinityFieldPredictor``;
* ``resnet_50.heads.npz``: the weights of the three final layers of that head (``heatmap_head``,
  ``locref_head``, ``paf_head``; ~20 KB), trained on synthetic two-mouse frames over DeepLabCut's frozen,
  seeded random backbone and head stages (see ``make_model.py``), so the maps have real peaks and limbs;
* ``resnet_50.reference.npz``: DeepLabCut's own PyTorch inference on :func:`reference_frames`: the
  smoothed score maps, locref and PAF maps of its ``PartAffinityFieldPredictor`` and its final poses
  ``(N, A, K, 5)``; plus the sha256 of the weights;
* ``resnet_50_unique.*`` / ``resnet_50_identity.*``: the same for the variants with a unique body part
  (:data:`UNIQUE_NET`) and with DeepLabCut's identity head (:data:`IDENTITY_NET`, frames with the
  second mouse tinted red).

:func:`build_export` rebuilds the model: ``torch.manual_seed(SEED)``, DeepLabCut's
``PoseModel.build(config["model"], pretrained_backbone=False)`` (its own random initialisation), the stored
head weights loaded over it, saved in DeepLabCut's export format (``{"config": ..., "pose": state_dict}``).
Frames: :func:`synthetic_frame` composites single-mouse :class:`SyntheticSource` frames (one seed per
animal) with ``np.minimum`` (dark bodies on a light background). This module imports torch and DeepLabCut
only inside its functions, and runs in DeepLabCut's side environment too (no rtpose import at module level).
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "dlc3_ma"
VIDEO = HERE.parent / "rtpose" / "data" / "m3v1mp4.mp4"
NET = "resnet_50"
SEED = 0
INDIVIDUALS = ("mouse1", "mouse2")
BODYPARTS = ("head", "body", "tail")
#: One SyntheticSource seed per animal (paths chosen so the two mice rarely overlap).
ANIMAL_SEEDS = (0, 3)
#: Frames with DeepLabCut references: synthetic two-mouse frames (640x480) ...
REFERENCE_SYNTHETIC = (7, 211, 433, 1009)
#: ... and frames of the bundled openfield video (640x480, one real mouse).
REFERENCE_VIDEO = (0, 200)
#: Weights of these head layers are stored (the rest is DeepLabCut's seeded initialisation).
TRAINED_PREFIXES = ("heads.bodypart.heatmap_head.", "heads.bodypart.locref_head.", "heads.bodypart.paf_head.",
                    "heads.unique_bodypart.", "heads.identity.")


#: The same project's ``dlcrnet_stride16_ms5`` shuffle (DeepLabCut's multi-scale DLCRNet backbone, same head):
#: only its config is kept (``<net>.config.json``); tested with DeepLabCut's seeded initialisation alone.
DLCRNET = "dlcrnet_stride16_ms5"


def config(net: str = NET) -> dict:
    return json.loads((DATA / f"{net}.config.json").read_text())


def folder_name(cfg: dict) -> str:
    return f"DLC_twomice_{cfg['net_type']}_iteration-0_shuffle-1"


#: The unique-body-part variant (``make_model.py --unique``): one landmark per frame, a dark disk on a
#: light ring drawn over the two mice, circling slowly (``marker_xy``).
UNIQUE_NET = "resnet_50_unique"
UNIQUE_BODYPARTS = ("marker",)


def marker_xy(index: int) -> np.ndarray:
    """(2,) float64 position of the unique ``marker`` in frame ``index`` (640x480 frames)."""
    t = index / 30.0
    return np.array([560.0 + 40.0 * np.cos(0.3 * t), 80.0 + 40.0 * np.sin(0.3 * t)])


#: The identity variant (``make_model.py --identity``): DeepLabCut's identity head (``identity: true``). rtpose's
#: synthetic mice all look alike, so in its frames the second mouse is tinted red (:func:`synthetic_frame`
#: ``tint``): the identity head has something visible to learn.
IDENTITY_NET = "resnet_50_identity"


def tint_red(frame: np.ndarray) -> None:
    """In place: a dark-on-light BGR frame's blue and green stay, its red channel is lightened 4x (dark -> red)."""
    red = frame[..., 2]
    np.subtract(255, (255 - red.astype(np.int16)) // 4, out=red, casting="unsafe")


def synthetic_frame(index: int, width: int = 640, height: int = 480, seeds=ANIMAL_SEEDS, marker: bool = False,
                    tint: bool = False):
    """(BGR uint8 frame (H, W, 3), truth (A, 3, 2) float64 head/body/tail per animal) of two-mouse frame ``index``;
    ``marker``: the unique landmark drawn too (its truth: :func:`marker_xy`); ``tint``: the second mouse is red
    (:func:`tint_red`), the identity variant's frames."""
    import sys

    sys.path.insert(0, str(HERE.parent))  # the repository root, for drivers/ (side environment)
    from drivers.sources.synthetic import SyntheticSource

    frame = np.full((height, width, 3), 255, np.uint8)
    one = np.empty_like(frame)
    truths = []
    for seed in seeds:
        src = SyntheticSource(width, height, seed=seed)
        src.render(index, one)
        if tint and len(truths) == 1:
            tint_red(one)
        np.minimum(frame, one, out=frame)
        truths.append(src.truth(index))
    if marker:
        import cv2

        x, y = (int(round(v * 16)) for v in marker_xy(index))
        cv2.circle(frame, (x, y), 14 * 16, (235, 235, 235), -1, cv2.LINE_AA, 4)
        cv2.circle(frame, (x, y), 8 * 16, (30, 90, 30), -1, cv2.LINE_AA, 4)
    return frame, np.stack(truths)


def reference_frames(marker: bool = False, tint: bool = False) -> np.ndarray:
    """BGR uint8 (N, 480, 640, 3): :data:`REFERENCE_SYNTHETIC` two-mouse frames (``marker``: with the unique
    landmark; ``tint``: the second mouse red), then :data:`REFERENCE_VIDEO`."""
    synth = [synthetic_frame(i, marker=marker, tint=tint)[0] for i in REFERENCE_SYNTHETIC]
    return np.ascontiguousarray(np.stack(synth + list(video_frames(REFERENCE_VIDEO))))


def video_frames(indices, video: Path = VIDEO) -> np.ndarray:
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
    return np.stack([frames[i] for i in indices])


def _torch_and_pose_model():
    try:
        from rtpose.exporters import deps
    except ImportError:  # DeepLabCut's side environment, without rtpose
        import torch
        from deeplabcut.pose_estimation_pytorch.models import PoseModel
    else:
        torch = deps.torch()
        PoseModel = deps.dlc3_pose_model()
    return torch, PoseModel


def seeded_model(cfg: dict):
    """DeepLabCut's network for ``cfg`` with its own random initialisation under ``torch.manual_seed(SEED)``."""
    torch, PoseModel = _torch_and_pose_model()
    torch.manual_seed(SEED)
    return PoseModel.build(copy.deepcopy(cfg["model"]), pretrained_backbone=False)


def build_state(cfg: dict | None = None, heads: Path | None = None) -> dict:
    """The fixture's state dict: seeded initialisation + the stored trained head layers (``heads``, default
    ``<NET>.heads.npz``; none when that file does not exist, e.g. ``<DLCRNET>.heads.npz``)."""
    torch, _ = _torch_and_pose_model()
    cfg = cfg or config()
    state = seeded_model(cfg).state_dict()
    heads = heads or DATA / f"{NET}.heads.npz"
    if not heads.is_file():
        return state
    with np.load(heads) as z:
        for name in z.files:
            if name not in state or tuple(state[name].shape) != z[name].shape:
                raise RuntimeError(f"{heads}: {name} does not fit DeepLabCut's network; rebuild the fixture")
            state[name] = torch.from_numpy(z[name].copy())
    return state


def build_export(out_dir: Path, cfg: dict | None = None, name: str = NET) -> tuple[Path, str]:
    """(export folder, weights sha256) in DeepLabCut's ``exported-models-pytorch`` layout, for fixture
    ``name`` (:data:`NET`, :data:`DLCRNET`, :data:`UNIQUE_NET`): ``<name>.config.json`` (or ``cfg``) and
    ``<name>.heads.npz`` when it exists."""
    torch, _ = _torch_and_pose_model()
    cfg = copy.deepcopy(cfg or config(name))
    state = build_state(cfg, DATA / f"{name}.heads.npz")
    folder = Path(out_dir) / "exported-models-pytorch" / folder_name(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"config": cfg, "pose": state}, folder / f"{folder_name(cfg)}_snapshot-seed{SEED}.pt")
    return folder, weights_sha256(state)


def export_checked(fixtures, base: Path, onnx_name: str, weights_sha: str):
    """(export folder, .onnx, ExportReport): ``fixtures.build_export(base)`` (this module, or
    ``dlc3_td_models``), its weights checked against ``weights_sha`` (the one its stored references were made
    with), then exported by rtpose to ``base / onnx_name``."""
    from rtpose.exporters import export_model

    folder, sha = fixtures.build_export(base)
    assert sha == weights_sha, (
        "the seeded DeepLabCut networks differ from the ones the references were made with (another torch or "
        f"DeepLabCut?); rerun {fixtures.DATA.relative_to(HERE.parent)}/build_fixtures.py")
    onnx_path = Path(base) / onnx_name
    return folder, onnx_path, export_model(folder, onnx_path)


def weights_sha256(state: dict) -> str:
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
