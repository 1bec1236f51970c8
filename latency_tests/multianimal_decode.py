"""Multi-animal decode cost per frame: rtpose's Numba decoder vs DeepLabCut 3.0.2's own predictor.

Peaks + PAF line integrals + assembly for one 640x480 frame (60x80 maps at stride 8), K=12 body
parts, 1, 2 and 4 animals, a full PAF graph (66 limbs, DeepLabCut's default) and a chain (11 limbs).
DeepLabCut's ``PartAffinityFieldPredictor.forward`` runs in its side venv (torch, 1 thread; its time
includes the sigmoid + Gaussian smoothing that rtpose does inside the ONNX graph, reported separately),
rtpose's :class:`MultiAnimalDecoder` here (1 thread). Rounds alternate between the two so machine load
hits both alike; the ratio is taken per round. Also checks that both give the same animals.

    .venv/bin/python latency_tests/multianimal_decode.py --dlc-python /work/side/dlc3-torch/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rtpose.multianimal.decoder import MultiAnimalDecoder
from rtpose.multianimal.layout import AnimalLayout
from rtpose.multianimal.params import AssemblyParams

HERE = Path(__file__).resolve().parent
K = 12
GRAPHS = {"full": [(i, j) for i in range(K) for j in range(i + 1, K)],
          "chain": [(i, i + 1) for i in range(K - 1)]}
ANIMALS = (1, 2, 4)


def decoders(z):
    out = {}
    for gname, graph in GRAPHS.items():
        for A in ANIMALS:
            key = f"{gname}_a{A}"
            p = AssemblyParams(num_animals=A, graph=tuple(graph), stride=8.0)
            lay = AnimalLayout(tuple(f"m{i}" for i in range(A)), tuple(f"p{k}" for k in range(K)))
            out[key] = (MultiAnimalDecoder(p, lay, 1), np.ascontiguousarray(z[key + "_scores"].transpose(0, 2, 3, 1)),
                        np.ascontiguousarray(z[key + "_locref"].transpose(0, 2, 3, 1)),
                        np.ascontiguousarray(z[key + "_paf"].transpose(0, 2, 3, 1)),
                        np.empty((1, lay.n_flat, 3)))
    return out


def check_agreement(z, decs):
    for key, (dec, sc, lr, pf, out) in decs.items():
        dlc = z[key + "_poses"]
        A = dec.layout.n_animals
        for b in range(sc.shape[0]):
            n, _ = dec.decode(sc[b:b + 1], lr[b:b + 1], pf[b:b + 1], out)
            dn = int((dlc[b, :, 0, 0] != -1).sum())
            assert n[0] == dn, (key, b, n[0], dn)
            mine = out[0, : A * K].reshape(A, K, 3)[:dn]
            theirs = dlc[b, :dn, :, :3].astype(np.float64)
            ok = np.isnan(theirs[..., 0])
            assert (np.isnan(mine[..., 0]) == ok).all() and (mine[~ok] == theirs[~ok]).all(), (key, b)


def time_rtpose(decs):
    res = {}
    for key, (dec, sc, lr, pf, out) in decs.items():
        ts = []
        for rep in range(2):
            for b in range(sc.shape[0]):
                s, l, p = sc[b:b + 1], lr[b:b + 1], pf[b:b + 1]
                t0 = time.perf_counter_ns()
                dec.decode(s, l, p, out)
                t1 = time.perf_counter_ns()
                if rep:
                    ts.append((t1 - t0) / 1e3)
        res[key] = float(np.median(ts))
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dlc-python", default="/work/side/dlc3-torch/bin/python")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="2 rounds")
    a = ap.parse_args(argv)
    rounds = 2 if a.quick else a.rounds
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    dlc_script = str(HERE / "multianimal_decode_dlc.py")
    with tempfile.TemporaryDirectory() as tmp:
        maps = str(Path(tmp) / "maps.npz")
        subprocess.run([a.dlc_python, dlc_script, "--make", maps], check=True, env=env, stderr=subprocess.DEVNULL)
        z = np.load(maps)
        decs = decoders(z)
        check_agreement(z, decs)  # also compiles / loads the kernels
        print(f"agreement: same animals and bit-identical keypoints on all {len(decs)} x "
              f"{z['full_a1_scores'].shape[0]} frames")
        ours, theirs = [], []
        for r in range(rounds):
            ours.append(time_rtpose(decs))
            out = subprocess.run([a.dlc_python, dlc_script, "--time", maps], check=True, env=env,
                                 capture_output=True, text=True).stdout
            theirs.append(json.loads(out.strip().splitlines()[-1]))
            print(f"round {r + 1}/{rounds} done (load average {os.getloadavg()[0]:.2f})", file=sys.stderr)
    print(f"\n{os.cpu_count()} CPUs, load average {os.getloadavg()}; medians over rounds of per-round "
          "medians (20 frames each)")
    print("| graph | animals | rtpose µs | DLC forward µs | DLC smoothing µs | DLC w/o smoothing µs | "
          "ratio (DLC w/o smoothing / rtpose, per round) |")
    print("|---|---|---|---|---|---|---|")
    for gname in GRAPHS:
        for A in ANIMALS:
            key = f"{gname}_a{A}"
            o = np.array([d[key] for d in ours])
            f = np.array([d[key]["forward_us"] for d in theirs])
            s = np.array([d[key]["smoothing_us"] for d in theirs])
            ratio = (f - s) / o
            print(f"| {gname} ({len(GRAPHS[gname])} limbs) | {A} | {np.median(o):.0f} | {np.median(f):.0f} | "
                  f"{np.median(s):.0f} | {np.median(f - s):.0f} | {np.median(ratio):.0f}x "
                  f"({ratio.min():.0f}-{ratio.max():.0f}) |")


if __name__ == "__main__":
    main()
