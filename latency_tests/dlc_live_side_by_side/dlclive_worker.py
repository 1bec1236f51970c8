"""Runs inside a DeepLabCut-Live virtual environment (numpy < 2; TensorFlow 2.15 for
TF models, torch for DeepLabCut 3 models), never in rtpose's. Imports nothing from rtpose.

    python dlclive_worker.py MODEL FRAMES.npy OUT.npz [--warmup N] [--model-type base|pytorch] [--resize F] [--dynamic T,M]

Loads the BGR uint8 frames ``(N, H, W, 3)``, builds ``DLCLive(MODEL,
model_type="base")`` (a TF exported-model folder) or ``DLCLive(MODEL,
model_type="pytorch", device="cpu")`` (a DeepLabCut 3 ``.pt``; DLC-Live's
``PyTorchRunner``), calls ``init_inference`` on the first frame, warms up on
a few frames, then times ``get_pose`` on every frame with ``perf_counter_ns``
(one call = DLC-Live's whole per-frame path: colour conversion, TensorFlow
session run or PyTorch forward, argmax decode). Writes poses ``(N, K, 3)``, per-frame times (ns)
and versions to OUT.npz. ``--resize F`` and ``--dynamic T,M`` pass DLC-Live's own
``resize=F`` and ``dynamic=(True, T, M)``.
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("model_dir")
    p.add_argument("frames")
    p.add_argument("out")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--resize", type=float, default=None)
    p.add_argument("--dynamic", default=None, help="THRESHOLD,MARGIN")
    p.add_argument("--model-type", choices=("base", "pytorch"), default="base")
    args = p.parse_args()

    import numpy as np
    if args.model_type == "pytorch":
        import torch as framework
        kwargs = {"device": "cpu"}
    else:
        import tensorflow as framework
        kwargs = {}
    import dlclive
    from dlclive import DLCLive

    frames = np.load(args.frames)
    if args.resize is not None:
        kwargs["resize"] = args.resize
    if args.dynamic:
        threshold, margin = (float(v) for v in args.dynamic.split(","))
        kwargs["dynamic"] = (True, threshold, int(margin) if margin.is_integer() else margin)
    live = DLCLive(args.model_dir, model_type=args.model_type, **kwargs)
    live.init_inference(frames[0])
    for i in range(args.warmup):
        live.get_pose(frames[i % len(frames)])
    n = len(frames)
    poses = None
    times = np.zeros(n, np.int64)
    t_all = time.perf_counter_ns()
    for i in range(n):
        t0 = time.perf_counter_ns()
        pose = live.get_pose(frames[i])
        times[i] = time.perf_counter_ns() - t0
        if poses is None:
            poses = np.zeros((n,) + np.asarray(pose).shape, np.float64)
        poses[i] = pose
    total = time.perf_counter_ns() - t_all
    version = getattr(dlclive, "__version__", None) or getattr(getattr(dlclive, "version", None), "__version__", "?")
    np.savez(args.out, poses=poses, times_ns=times, total_ns=np.int64(total),
             versions=np.array([f"deeplabcut-live {version}", f"{framework.__name__} {framework.__version__}",
                                f"numpy {np.__version__}", f"python {sys.version.split()[0]}"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
