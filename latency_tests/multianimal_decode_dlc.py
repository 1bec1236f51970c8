"""DeepLabCut 3.0.2's side of latency_tests/multianimal_decode.py (runs in the DeepLabCut 3 side venv).

    --make OUT.npz   synthetic 60x80 maps (stride 8: a 640x480 frame) with 1, 2 and 4 animals, K=12,
                     for a full and a chain PAF graph; DeepLabCut's poses for them; the smoothed maps
                     rtpose decodes (sigmoid + smoothing happen in rtpose's ONNX graph)
    --time IN.npz    per-frame time of PartAffinityFieldPredictor.forward (batch 1, torch 1 thread),
                     with and without its sigmoid + Gaussian smoothing; JSON on stdout
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "data" / "ma_decode"))
import build_fixtures as BF  # noqa: E402  (the fixture builder's map synthesis)
from deeplabcut.pose_estimation_pytorch.models.predictors.paf_predictor import (  # noqa: E402
    PartAffinityFieldPredictor,
)

K = 12
GRAPHS = {"full": [(i, j) for i in range(K) for j in range(i + 1, K)],
          "chain": [(i, i + 1) for i in range(K - 1)]}
ANIMALS = (1, 2, 4)
N_FRAMES = 20


def predictor(graph, A):
    return PartAffinityFieldPredictor(num_animals=A, num_multibodyparts=K, num_uniquebodyparts=0,
                                      graph=[list(e) for e in graph], edges_to_keep=list(range(len(graph))),
                                      locref_stdev=BF.STDEV, nms_radius=5, sigma=1.0, min_affinity=0.05)


def make(out):
    arrays = {}
    for gname, graph in GRAPHS.items():
        for A in ANIMALS:
            frames = BF.random_frames(100 + A, N_FRAMES, K, graph, 60, 80, 8, n_animals=(A, A), p_missing=0.05,
                                      noise=0.004)
            heat = np.stack([f[0] for f in frames])
            loc = BF.q16(np.stack([f[1] for f in frames]))
            paf = BF.q16(np.stack([f[2] for f in frames]))
            pred = predictor(graph, A)
            with torch.no_grad():
                poses = pred.forward(8.0, {"heatmap": torch.from_numpy(heat), "locref": torch.from_numpy(loc),
                                           "paf": torch.from_numpy(paf)})["poses"].numpy()
                smoothed = BF.smooth(pred, heat).numpy()
            key = f"{gname}_a{A}"
            arrays[key + "_logits"] = heat
            arrays[key + "_locref"] = loc
            arrays[key + "_paf"] = paf
            arrays[key + "_scores"] = smoothed
            arrays[key + "_poses"] = poses
    np.savez(out, **arrays)


def time_it(path):
    torch.set_num_threads(1)
    z = np.load(path)
    res = {}
    for gname, graph in GRAPHS.items():
        for A in ANIMALS:
            key = f"{gname}_a{A}"
            pred = predictor(graph, A)
            heat, loc, paf, sm = (torch.from_numpy(z[key + s]) for s in ("_logits", "_locref", "_paf", "_scores"))
            full, smooth_only = [], []
            with torch.no_grad():
                for rep in range(2):
                    for b in range(heat.shape[0]):
                        t0 = time.perf_counter_ns()
                        pred.forward(8.0, {"heatmap": heat[b:b + 1], "locref": loc[b:b + 1], "paf": paf[b:b + 1]})
                        t1 = time.perf_counter_ns()
                        BF.smooth(pred, z[key + "_logits"][b:b + 1])
                        t2 = time.perf_counter_ns()
                        if rep:
                            full.append((t1 - t0) / 1e3)
                            smooth_only.append((t2 - t1) / 1e3)
            res[key] = {"forward_us": float(np.median(full)), "smoothing_us": float(np.median(smooth_only))}
    print(json.dumps(res))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--make")
    ap.add_argument("--time")
    a = ap.parse_args()
    if a.make:
        make(a.make)
    if a.time:
        time_it(a.time)
