"""A real DeepLabCut 3 multi-animal (PAF) model of two synthetic mice, made by DeepLabCut 3 itself.

Runs in the DeepLabCut 3 side environment (see ``examples/dlc3_openfield/make_models.py``), never in rtpose's::

    HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 /work/side/dlc3-torch/bin/python \\
        examples/dlc3_multianimal/make_model.py OUT_DIR [--frames 48] [--steps 300]

1. writes a DeepLabCut multi-animal project in ``OUT_DIR/twomice-synth-dlc3``: individuals ``mouse1``,
   ``mouse2``, multi-animal body parts ``head``, ``body``, ``tail`` (no unique body parts), and ``--frames``
   labelled 640x480 two-mouse frames (``tests/dlc3_ma_models.py: synthetic_frame``, the exact ground truth of
   rtpose's synthetic source as labels) in DeepLabCut's multi-animal ``CollectedData_<scorer>.h5`` layout;
2. ``deeplabcut.create_training_dataset(net_type="resnet_50")`` (PyTorch engine): DeepLabCut makes a
   ``resnet_50`` (timm ``resnet50_gn``) with its PAF head ``DLCRNetHead`` and ``PartAffinityFieldPredictor``;
3. no ImageNet weights can be downloaded here and training the whole 24 M-parameter network from random
   weights on 2 shared cores is out of reach, so: DeepLabCut's own ``PoseModel.build(..., pretrained_backbone=False)``
   under ``torch.manual_seed(0)`` gives the network, and only the three final layers of its head
   (``heatmap_head``, ``locref_head``, ``paf_head``: ~5 k parameters) are trained, over the frozen seeded
   backbone and head stages, with DeepLabCut's own target generators (plateau heat maps, locref, PAF) and
   losses (``model.get_target``, ``model.get_loss``), Adam, ``--steps`` steps on the labelled frames.
   The result is saved as the shuffle's snapshot (``snapshot-<steps>.pt``, ``{"model": state_dict}``);
4. ``deeplabcut.export_model`` writes ``exported-models-pytorch/DLC_twomice_..._shuffle-1/*.pt``;
5. with ``--identity``, the project (``twomicei-synth-dlc3``) has ``identity: true``: DeepLabCut adds its
   identity head (``config/base/head_identity.yaml``: a ``HeatmapHead``, one deconvolution to one map per
   individual, ``IdentityPredictor``), whose layer is trained with the three others (DeepLabCut's
   ``HeatmapPlateauGenerator`` in INDIVIDUAL mode, weighted BCE). rtpose's synthetic mice all look alike,
   so in this project's frames the second mouse is tinted red (``dlc3_ma_models.tint_red``): something
   visible for the identity head to learn;
6. with ``--dlcrnet``, shuffle 2 is DeepLabCut's other multi-animal network, ``dlcrnet_stride16_ms5``
   (multi-scale DLCRNet backbone, same head), with DeepLabCut's seeded initialisation alone (saved as
   ``snapshot-000.pt``, untrained) and exported the same way.

It prints the export folder and the final losses. Nothing here imports rtpose (only tests/dlc3_ma_models.py and
the synthetic source, drivers/sources/synthetic.py).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "tests"))
sys.path.insert(0, str(HERE.parents[1]))

import dlc3_ma_models as M  # noqa: E402

SCORER = "synth"
TASK = "twomice"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Labelled frames: indices where the two mice are at least this far apart (body to body, px).
MIN_SEPARATION_PX = 90


def labelled_indices(n: int) -> list[int]:
    import numpy as np

    chosen = []
    for i in range(0, 100000, 37):
        if i in M.REFERENCE_SYNTHETIC:
            continue
        truth = _truth(i)
        if np.linalg.norm(truth[0, 1] - truth[1, 1]) >= MIN_SEPARATION_PX:
            chosen.append(i)
        if len(chosen) == n:
            return chosen
    raise SystemExit("not enough separated frames")


def _truth(i):
    import numpy as np
    from drivers.sources.synthetic import SyntheticSource

    return np.stack([SyntheticSource(640, 480, seed=s).truth(i) for s in M.ANIMAL_SEEDS])


def make_project(out: Path, n_frames: int, unique: bool = False, identity: bool = False) -> Path:
    import cv2
    import deeplabcut  # noqa: F401  (DeepLabCut's own config helpers below)
    import numpy as np
    import pandas as pd
    import yaml

    out.mkdir(parents=True, exist_ok=True)
    task = _task(unique, identity)
    project = out / f"{task}-{SCORER}-dlc3"
    if project.exists():
        shutil.rmtree(project)
    folder = project / "labeled-data" / task
    folder.mkdir(parents=True)
    (project / "videos").mkdir()
    indices = labelled_indices(n_frames)
    rows, data = [], []
    for i in indices:
        frame, truth = M.synthetic_frame(i, marker=unique, tint=identity)
        name = f"img{i:05d}.png"
        cv2.imwrite(str(folder / name), frame)
        rows.append(("labeled-data", task, name))
        row = truth.reshape(-1)  # (A*K*2,) x, y per individual and body part
        data.append(np.concatenate([row, M.marker_xy(i)]) if unique else row)
    columns = pd.MultiIndex.from_tuples(
        [(SCORER, ind, bp, c) for ind in M.INDIVIDUALS for bp in M.BODYPARTS for c in ("x", "y")]
        + ([(SCORER, "single", bp, c) for bp in M.UNIQUE_BODYPARTS for c in ("x", "y")] if unique else []),
        names=["scorer", "individuals", "bodyparts", "coords"])
    df = pd.DataFrame(np.asarray(data, float), index=pd.MultiIndex.from_tuples(rows), columns=columns)
    df.to_hdf(folder / f"CollectedData_{SCORER}.h5", key="df_with_missing", mode="w")
    df.to_csv(folder / f"CollectedData_{SCORER}.csv")
    cfg = {
        "Task": task, "scorer": SCORER, "date": "Nov30", "multianimalproject": True, "identity": identity,
        "project_path": str(project), "engine": "pytorch",
        "video_sets": {str(project / "videos" / f"{task}.mp4"): {"crop": "0, 640, 0, 480"}},
        "individuals": list(M.INDIVIDUALS), "uniquebodyparts": list(M.UNIQUE_BODYPARTS) if unique else [],
        "multianimalbodyparts": list(M.BODYPARTS),
        "bodyparts": "MULTI!", "start": 0, "stop": 1, "numframes2pick": 20,
        "skeleton": [["head", "body"], ["body", "tail"]], "skeleton_color": "black", "pcutoff": 0.6,
        "dotsize": 8, "alphavalue": 0.7, "colormap": "rainbow", "TrainingFraction": [0.95], "iteration": 0,
        "default_net_type": "resnet_50", "default_augmenter": "default", "snapshotindex": -1,
        "detector_snapshotindex": -1, "batch_size": 8, "cropping": False, "x1": 0, "x2": 640, "y1": 0, "y2": 480,
        "corner2move2": [50, 50], "move2corner": True, "SuperAnimalConversionTables": None,
    }
    config = project / "config.yaml"
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return config


def _task(unique: bool, identity: bool) -> str:
    return TASK + ("u" if unique else "") + ("i" if identity else "")


def preprocess(frame_bgr):
    """DeepLabCut-Live's inference transform: RGB, /255, ImageNet mean/std (no padding for resnet_50)."""
    import numpy as np
    import torch

    x = torch.from_numpy(np.ascontiguousarray(frame_bgr[..., ::-1])).permute(2, 0, 1)[None].float() / 255.0
    return (x - torch.tensor(IMAGENET_MEAN).reshape(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).reshape(1, 3, 1, 1)


def train_heads(config: Path, steps: int, lr: float) -> Path:
    import numpy as np
    import pandas as pd
    import torch
    import yaml

    project = config.parent
    train_dir = next(project.glob("dlc-models-pytorch/iteration-0/*shuffle1/train"))
    model_cfg = yaml.safe_load((train_dir / "pytorch_config.yaml").read_text())
    model = M.seeded_model(model_cfg)
    model.eval()
    head = model.heads["bodypart"]
    finals = {"heatmap": head.heatmap_head, "locref": head.locref_head, "paf": head.paf_head}
    unique = "unique_bodypart" in model.heads
    if unique:  # DeepLabCut's unique-body-part head: a HeatmapHead on the backbone (its two layers, trained)
        finals["u_heatmap"] = model.heads["unique_bodypart"].heatmap_head
        finals["u_locref"] = model.heads["unique_bodypart"].locref_head
    identity = "identity" in model.heads
    if identity:  # DeepLabCut's identity head (head_identity.yaml): a HeatmapHead, one deconv layer, trained
        finals["identity"] = model.heads["identity"].heatmap_head
    # the inputs of the three final layers, captured once (everything before them stays frozen)
    captured: dict[str, list] = {k: [] for k in finals}
    hooks = [m.register_forward_hook(lambda mod, inp, out, k=k: captured[k].append(inp[0].detach()))
             for k, m in finals.items()]
    task = _task(unique, identity)
    df = pd.read_hdf(next(project.glob(f"labeled-data/{task}/CollectedData_{SCORER}.h5")))
    import cv2

    t0 = time.perf_counter()
    keypoints, keypoints_unique = [], []
    n_multi = len(M.INDIVIDUALS) * len(M.BODYPARTS) * 2
    with torch.no_grad():
        for (_, _, name), row in df.iterrows():
            frame = cv2.imread(str(project / "labeled-data" / task / name), cv2.IMREAD_COLOR)
            model(preprocess(frame))
            values = row.to_numpy(float)
            xy = values[:n_multi].reshape(len(M.INDIVIDUALS), len(M.BODYPARTS), 2)
            keypoints.append(np.concatenate([xy, np.full((*xy.shape[:2], 1), 2.0)], axis=-1))
            if unique:
                uxy = values[n_multi:].reshape(len(M.UNIQUE_BODYPARTS), 2)
                keypoints_unique.append(np.concatenate([uxy, np.full((len(uxy), 1), 2.0)], axis=-1))
    for h in hooks:
        h.remove()
    print(f"features of {len(df)} frames in {time.perf_counter() - t0:.0f} s", flush=True)
    feats = {k: torch.cat(v) for k, v in captured.items()}
    keypoints = torch.from_numpy(np.asarray(keypoints, np.float32))
    keypoints_unique = torch.from_numpy(np.asarray(keypoints_unique, np.float32)) if unique else None
    params = [p for m in finals.values() for p in m.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator().manual_seed(M.SEED)
    n, batch = len(keypoints), 8
    t0 = time.perf_counter()
    for step in range(steps):
        idx = torch.randperm(n, generator=gen)[:batch]
        outputs = {"bodypart": {k: finals[k](feats[k][idx]) for k in ("heatmap", "locref", "paf")}}
        labels = {"keypoints": keypoints[idx]}
        if unique:
            outputs["unique_bodypart"] = {k[2:]: finals[k](feats[k][idx]) for k in ("u_heatmap", "u_locref")}
            labels["keypoints_unique"] = keypoints_unique[idx]
        if identity:  # DeepLabCut's dataset gives each labelled animal its individual's index
            outputs["identity"] = {"heatmap": finals["identity"](feats["identity"][idx])}
            labels["individual_ids"] = torch.arange(len(M.INDIVIDUALS)).repeat(len(idx), 1)
        targets = model.get_target(outputs, labels)
        losses = model.get_loss(outputs, targets)
        opt.zero_grad()
        losses["total_loss"].backward()
        opt.step()
        if step % 25 == 0 or step == steps - 1:
            print(f"step {step}: " + ", ".join(f"{k} {float(v):.4f}" for k, v in losses.items()), flush=True)
    print(f"{steps} steps in {time.perf_counter() - t0:.0f} s", flush=True)
    snapshot = train_dir / f"snapshot-{steps:03d}.pt"
    torch.save({"model": model.state_dict(), "metadata": {"epoch": steps}}, snapshot)
    return snapshot


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--frames", type=int, default=48)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--existing", action="store_true", help="retrain the heads of the project an earlier run made")
    p.add_argument("--dlcrnet", action="store_true", help="also export a seeded dlcrnet_stride16_ms5 (shuffle 2)")
    p.add_argument("--unique", action="store_true",
                   help="the variant with one unique body part (a landmark, 'marker'): project twomiceu-synth-dlc3")
    p.add_argument("--identity", action="store_true",
                   help="the variant with DeepLabCut's identity head (identity: true; the second mouse tinted red): "
                        "project twomicei-synth-dlc3")
    args = p.parse_args()
    import deeplabcut
    from deeplabcut.core.engine import Engine

    out = args.out.resolve()
    if args.existing:
        config = out / f"{_task(args.unique, args.identity)}-{SCORER}-dlc3" / "config.yaml"
    else:
        config = make_project(out, args.frames, args.unique, args.identity)
        deeplabcut.create_training_dataset(str(config), Shuffles=[1], net_type=M.NET, engine=Engine.PYTORCH,
                                           userfeedback=False)
    print(train_heads(config, args.steps, args.lr), flush=True)
    deeplabcut.export_model(str(config), shuffle=1, overwrite=True, wipepaths=True)
    print(sorted(config.parent.glob("exported-models-pytorch/*_shuffle-1"))[-1], flush=True)
    if args.dlcrnet:
        import torch
        import yaml

        deeplabcut.create_training_dataset(str(config), Shuffles=[2], net_type=M.DLCRNET, engine=Engine.PYTORCH,
                                           userfeedback=False)
        train_dir = next(config.parent.glob("dlc-models-pytorch/iteration-0/*shuffle2/train"))
        model_cfg = yaml.safe_load((train_dir / "pytorch_config.yaml").read_text())
        torch.save({"model": M.seeded_model(model_cfg).state_dict()}, train_dir / "snapshot-000.pt")
        deeplabcut.export_model(str(config), shuffle=2, overwrite=True, wipepaths=True)
        print(sorted(config.parent.glob("exported-models-pytorch/*_shuffle-2"))[-1], flush=True)


if __name__ == "__main__":
    main()
