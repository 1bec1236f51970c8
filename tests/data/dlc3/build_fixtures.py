"""Make the DeepLabCut 3 fixtures of tests/test_export_dlc3.py (not collected by pytest).

Runs in a side environment holding DeepLabCut 3.0.2 and DeepLabCut-Live 1.1.0 (PyTorch),
never rtpose's own (DeepLabCut-Live pins numpy < 2)::

    /work/side/dlc3-torch/bin/pip install torch==2.14.1 torchvision==0.29.1 deeplabcut==3.0.2 \\
        'deeplabcut-live[pytorch]==1.1.0'
    HF_HUB_OFFLINE=1 /work/side/dlc3-torch/bin/python tests/data/dlc3/build_fixtures.py \\
        PROJECT/exported-models-pytorch/DLC_openfield_resnet_50_iteration-0_shuffle-1 \\
        PROJECT/exported-models-pytorch/DLC_openfield_hrnet_w32_iteration-0_shuffle-2

where PROJECT was made by ``examples/dlc3_openfield/make_models.py``. For each export it

1. writes ``<net>.config.json``: the export's ``config`` (``export_model(wipe_paths=True)``);
2. rebuilds the network from that config with DeepLabCut's own code and a fixed seed
   (``tests/dlc3_models.py: build_export``) and records the sha256 of its weights;
3. runs DeepLabCut-Live's PyTorch runner on it, ``DLCLive(pt, model_type="pytorch",
   device="cpu")``, on frames ``FRAMES`` of rtpose/data/m3v1mp4.mp4, BGR uint8 as OpenCV
   decodes them (DLC-Live converts them to RGB), and writes ``<net>.dlclive.npz``
   (poses (N, K, 3) float32, frame indices, weights sha256, versions).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # tests/, for dlc3_models


def main(exports) -> None:
    import dlclive
    import numpy as np
    import torch
    from dlclive import DLCLive

    import dlc3_models

    frames = dlc3_models.video_frames()
    for export in map(Path, exports):
        pt = next(export.glob("*.pt")) if export.is_dir() else export
        cfg = torch.load(pt, map_location="cpu", weights_only=True)["config"]
        net = cfg["net_type"]
        (HERE / f"{net}.config.json").write_text(json.dumps(cfg, indent=1, sort_keys=True) + "\n")
        with tempfile.TemporaryDirectory() as tmp:
            folder, sha = dlc3_models.build_export(net, Path(tmp))
            live = DLCLive(str(next(folder.glob("*.pt"))), model_type="pytorch", device="cpu")
            live.init_inference(frames[0])
            poses = np.stack([np.asarray(live.get_pose(f), np.float32) for f in frames])
        versions = [f"deeplabcut-live {dlclive.__version__ if hasattr(dlclive, '__version__') else dlclive.VERSION}",
                    f"torch {torch.__version__}", f"numpy {np.__version__}"]
        np.savez(HERE / f"{net}.dlclive.npz", poses=poses, frames=np.asarray(dlc3_models.FRAMES),
                 weights_sha256=np.array(sha), versions=np.array(versions))
        print(f"{net}: {poses.shape} poses, weights {sha[:16]}, likelihood {poses[..., 2].min():.3f}-"
              f"{poses[..., 2].max():.3f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
