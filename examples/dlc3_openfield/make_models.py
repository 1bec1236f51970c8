"""Real DeepLabCut 3 (PyTorch) models of the openfield mouse, made by DeepLabCut 3 itself.

Runs in a side environment with DeepLabCut 3 (never rtpose's own)::

    python3.11 -m venv /work/side/dlc3-torch
    /work/side/dlc3-torch/bin/pip install torch==2.14.1 torchvision==0.29.1 deeplabcut==3.0.2 \\
        'deeplabcut-live[pytorch]==1.1.0'
    HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 /work/side/dlc3-torch/bin/python \\
        examples/dlc3_openfield/make_models.py OUT_DIR [--nets resnet_50 hrnet_w32] [--epochs 1] [--crop 448]

It creates a single-animal DeepLabCut project in ``OUT_DIR`` from the 100
labelled openfield frames (``../shared/data/openfield/labeled``, 4 bodyparts),
one shuffle per network, and for each:

1. ``deeplabcut.create_training_dataset`` (PyTorch engine) writes the shuffle's
   ``pytorch_config.yaml``;
2. no ImageNet weights can be downloaded here, and DeepLabCut 3.0.2 loads them
   whenever no weight-init snapshot is given, so DeepLabCut's own
   ``PoseModel.build(cfg, pretrained_backbone=False)`` builds the network
   (``torch.manual_seed(SEED)``), its state dict is saved as a snapshot
   (``{"model": state_dict}``) and the shuffle is recreated with
   ``weight_init=WeightInitialization(snapshot_path=..., with_decoder=False)``;
3. ``deeplabcut.train_network`` trains it briefly (``--epochs``, default 1;
   ``--crop N`` sets the training crop, DeepLabCut's default is 448) so a real
   snapshot exists;
4. ``deeplabcut.export_model`` writes
   ``exported-models-pytorch/DLC_<task>_<net>_iteration-0_shuffle-<s>/*.pt``.

It prints the exported folders. Nothing here imports rtpose.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

HERE = Path(__file__).resolve().parent
LABELS = Path(os.environ.get("RTPOSE_OPENFIELD", HERE.parents[2] / "shared" / "data" / "openfield")) / "labeled"
BODYPARTS = ["snout", "leftear", "rightear", "tailbase"]
SEED = 0


def make_project(out: Path) -> Path:
    import deeplabcut
    import yaml

    out.mkdir(parents=True, exist_ok=True)
    project = out / "openfield-Pranav-dlc3"
    if project.exists():
        shutil.rmtree(project)
    (project / "labeled-data" / "m4s1").mkdir(parents=True)
    (project / "videos").mkdir()
    (project / "training-datasets").mkdir()
    (project / "dlc-models-pytorch").mkdir()
    for png in sorted(LABELS.glob("*.png")):
        shutil.copy(png, project / "labeled-data" / "m4s1" / png.name)
    shutil.copy(LABELS / "CollectedData_Pranav.csv", project / "labeled-data" / "m4s1" / "CollectedData_Pranav.csv")
    # DeepLabCut finds labelled folders through video_sets; the session's video is not needed to train
    cfg = {
        "Task": "openfield", "scorer": "Pranav", "date": "Nov30", "multianimalproject": False,
        "identity": None, "project_path": str(project), "engine": "pytorch",
        "video_sets": {str(project / "videos" / "m4s1.mp4"): {"crop": "0, 640, 0, 480"}},
        "bodyparts": BODYPARTS, "start": 0, "stop": 1, "numframes2pick": 20,
        "skeleton": [["snout", "leftear"], ["snout", "rightear"], ["leftear", "tailbase"], ["rightear", "tailbase"]],
        "skeleton_color": "black", "pcutoff": 0.6, "dotsize": 8, "alphavalue": 0.7, "colormap": "rainbow",
        "TrainingFraction": [0.95], "iteration": 0, "default_net_type": "resnet_50",
        "default_augmenter": "default", "snapshotindex": -1, "detector_snapshotindex": -1, "batch_size": 8,
        "cropping": False, "x1": 0, "x2": 640, "y1": 277, "y2": 624, "corner2move2": [50, 50], "move2corner": True,
        "SuperAnimalConversionTables": None,
    }
    config = project / "config.yaml"
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    deeplabcut.convertcsv2h5(str(config), userfeedback=False, scorer="Pranav")
    return config


def make_shuffle(config: Path, shuffle: int, net: str, epochs: int, crop: int | None = None) -> Path:
    import deeplabcut
    import torch
    import yaml
    from deeplabcut.core.engine import Engine
    from deeplabcut.core.weight_init import WeightInitialization
    from deeplabcut.pose_estimation_pytorch.models import PoseModel

    kwargs = dict(Shuffles=[shuffle], net_type=net, engine=Engine.PYTORCH, userfeedback=False)
    deeplabcut.create_training_dataset(str(config), **kwargs)
    project = config.parent
    train_dir = next(project.glob(f"dlc-models-pytorch/iteration-0/*shuffle{shuffle}/train"))
    model_cfg = yaml.safe_load((train_dir / "pytorch_config.yaml").read_text())
    torch.manual_seed(SEED)
    model = PoseModel.build(model_cfg["model"], pretrained_backbone=False)
    init = project / f"random-init-{net}-seed{SEED}.pt"
    torch.save({"model": model.state_dict()}, init)
    # the same split (trainIndices/testIndices), now with the random-init weights
    deeplabcut.create_training_dataset(
        str(config), **kwargs, weight_init=WeightInitialization(snapshot_path=init, with_decoder=False))
    updates = {"data.train.crop_sampling.width": crop, "data.train.crop_sampling.height": crop} if crop else None
    deeplabcut.train_network(str(config), shuffle=shuffle, epochs=epochs, save_epochs=epochs, device="cpu",
                             batch_size=8, display_iters=4, pytorch_cfg_updates=updates)
    deeplabcut.export_model(str(config), shuffle=shuffle, overwrite=True, wipepaths=True)
    folders = sorted(project.glob(f"exported-models-pytorch/*_shuffle-{shuffle}"))  # 3.0.2 writes NetType.X in the name
    if not folders:
        raise SystemExit(f"export_model wrote no folder for shuffle {shuffle} ({net})")
    return folders[-1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--nets", nargs="+", default=["resnet_50", "hrnet_w32"])
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--crop", type=int, default=None, help="training crop size (default: DeepLabCut's, 448)")
    p.add_argument("--shuffle", type=int, default=1, help="number of the first shuffle")
    p.add_argument("--existing", action="store_true", help="add shuffles to the project made by an earlier run")
    args = p.parse_args()
    out = args.out.resolve()
    config = out / "openfield-Pranav-dlc3" / "config.yaml" if args.existing else make_project(out)
    for shuffle, net in enumerate(args.nets, start=args.shuffle):
        folder = make_shuffle(config, shuffle, net, args.epochs, args.crop)
        print(f"{net}: {folder} ({', '.join(f.name for f in folder.iterdir())})", flush=True)


if __name__ == "__main__":
    main()
