"""Build dlc302_paf_cases.npz: DeepLabCut 3.0.2's own bottom-up decoding of synthetic multi-animal maps.

Run with the DeepLabCut 3 side venv (never a product dependency)::

    /work/side/dlc3-torch/bin/python tests/data/ma_decode/build_fixtures.py

What it does, per case (see CASES): draws 2-5 synthetic animals per frame (Gaussian score blobs,
location-refinement offsets to sub-pixel keypoints, unit part-affinity vectors along each limb; noise,
crossing animals, missing parts, spurious blobs, exact twins for ties), then runs DeepLabCut 3.0.2's
``PartAffinityFieldPredictor.forward`` (sigmoid, Gaussian smoothing, max-pool NMS, locref, PAF costs,
``Assembler._assemble``) on the NCHW logits and stores:

* ``{case}_scores``: the smoothed score maps DeepLabCut decodes, NHWC float32 (what rtpose's ONNX graph
  outputs: sigmoid + smoothing in the graph), computed with DeepLabCut's own kernel and conv;
* ``{case}_locref`` / ``{case}_paf``: NHWC float32 (values float16-representable to keep the file small);
* ``{case}_poses``: DeepLabCut's ``poses`` (B, num_animals, K, 5) float32 (-1 = no animal);
* ``{case}_peaks``: ``find_local_peak_indices_maxpool_nms`` (n, 4) (batch, part, row, col);
* ``{case}_peak_xy`` / ``{case}_peak_prob``: DeepLabCut's refined peak coordinates and confidences;
* ``{case}_cost_meta`` (frame, edge, n_s, n_t), ``{case}_cost_m1``, ``{case}_cost_dist``: its PAF cost
  matrices, flattened;
* ``{case}_unique_*`` (one case): a unique-bodypart head's raw maps and DeepLabCut's HeatmapPredictor
  output for them (``apply_sigmoid=False, clip_scores=True``, its head_bodyparts.yaml defaults);
* ``cases``: JSON, per case its AssemblyParams fields and how the maps were made.

Deterministic (numpy default_rng seeds); a few MB. DeepLabCut is LGPL-3.0; the data here are synthetic.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from deeplabcut.pose_estimation_pytorch.models.predictors.paf_predictor import PartAffinityFieldPredictor
from deeplabcut.pose_estimation_pytorch.models.predictors.single_predictor import HeatmapPredictor

OUT = Path(__file__).with_name("dlc302_paf_cases.npz")
STDEV = 7.2801


def q16(a):
    return np.asarray(a, np.float16).astype(np.float32)


def make_animal(rng, K, graph, h, w, limb=(3.0, 6.0), center=None):
    """Keypoints (K, 2) in map cells (x=col, y=row): a random tree grown along `graph` from part 0."""
    pts = np.full((K, 2), np.nan)
    c = center if center is not None else rng.uniform([3, 3], [w - 4, h - 4])
    pts[0] = c
    for _ in range(3):
        for s, t in graph:
            for a, b in ((s, t), (t, s)):
                if np.isfinite(pts[a, 0]) and not np.isfinite(pts[b, 0]):
                    ang = rng.uniform(0, 2 * np.pi)
                    pts[b] = pts[a] + rng.uniform(*limb) * np.array([np.cos(ang), np.sin(ang)])
    for k in range(K):
        if not np.isfinite(pts[k, 0]):
            pts[k] = c + rng.uniform(-3, 3, 2)
    pts[:, 0] = np.clip(pts[:, 0], 0.3, w - 1.3)
    pts[:, 1] = np.clip(pts[:, 1], 0.3, h - 1.3)
    return pts


def render(rng, animals, K, graph, h, w, stride, noise=0.02, blob_sigma=1.2, spurious=0, amp=(0.7, 0.98),
           paf_noise=0.05, paf_width=1.5):
    """Logits (K,h,w), locref (2K,h,w), paf (2E,h,w) for animals given as (K,2) cell coordinates."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    prob = rng.uniform(0, noise, (K, h, w))
    loc = rng.normal(0, 0.1, (2 * K, h, w))
    best = np.zeros((K, h, w))
    for pts in animals:
        for k in range(K):
            if not np.isfinite(pts[k, 0]):
                continue
            x, y = pts[k]
            d2 = (xx - x) ** 2 + (yy - y) ** 2
            g = rng.uniform(*amp) * np.exp(-d2 / (2 * blob_sigma**2))
            prob[k] = np.maximum(prob[k], g)
            near = (d2 < 9) & (g > best[k])
            best[k][near] = g[near]
            px, py = x * stride + stride / 2, y * stride + stride / 2  # sub-cell keypoint in pixels
            loc[2 * k][near] = ((px - (xx * stride + stride // 2)) / STDEV)[near]
            loc[2 * k + 1][near] = ((py - (yy * stride + stride // 2)) / STDEV)[near]
    for _ in range(spurious):
        k = rng.integers(K)
        x, y = rng.uniform([0, 0], [w - 1, h - 1])
        prob[k] = np.maximum(prob[k], rng.uniform(0.2, 0.6) * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 2))
    prob = np.clip(prob, 1e-4, 1 - 1e-4)
    logits = np.log(prob / (1 - prob))
    E = len(graph)
    paf = np.zeros((E, 2, h, w))
    cnt = np.zeros((E, h, w))
    for pts in animals:
        for e, (s, t) in enumerate(graph):
            if not (np.isfinite(pts[s, 0]) and np.isfinite(pts[t, 0])):
                continue
            v = pts[t] - pts[s]
            n = np.linalg.norm(v)
            if n < 1e-6:
                continue
            u = v / n
            rx, ry = xx - pts[s, 0], yy - pts[s, 1]
            along = rx * u[0] + ry * u[1]
            across = np.abs(-rx * u[1] + ry * u[0])
            m = (along >= -1) & (along <= n + 1) & (across <= paf_width)
            paf[e, 0][m] += u[0]
            paf[e, 1][m] += u[1]
            cnt[e][m] += 1
    paf = paf / np.maximum(cnt, 1)[:, None]
    paf += rng.normal(0, paf_noise, paf.shape)
    return logits.astype(np.float32), loc.astype(np.float32), paf.reshape(2 * E, h, w).astype(np.float32)


def smooth(pred, heat_logits):
    """DeepLabCut's forward up to the peak finder: sigmoid (if apply_sigmoid) and Gaussian smoothing."""
    heat = torch.from_numpy(heat_logits)
    if pred.apply_sigmoid:
        heat = pred.sigmoid(heat)
    n = heat.shape[1]
    kernel = pred.make_2d_gaussian_kernel(sigma=pred.sigma, size=pred.nms_radius * 2 + 1)[None, None]
    kernel = kernel.repeat(n, 1, 1, 1)
    return F.conv2d(heat, kernel, stride=1, padding="same", groups=n)


def run_case(name, frames, graph, A, stride, *, assembler=None, nms_radius=5, sigma=1.0, apply_sigmoid=True,
             min_affinity=0.05, add_discarded=False, force_fusion=False, unique=None, note=""):
    """frames: list of (logits (K,h,w), locref (2K,h,w), paf (2E,h,w))."""
    K = frames[0][0].shape[0]
    heat = np.stack([f[0] for f in frames])
    loc = q16(np.stack([f[1] for f in frames]))
    paf = q16(np.stack([f[2] for f in frames]))
    pred = PartAffinityFieldPredictor(
        num_animals=A, num_multibodyparts=K, num_uniquebodyparts=0, graph=[list(e) for e in graph],
        edges_to_keep=list(range(len(graph))), locref_stdev=STDEV, nms_radius=nms_radius, sigma=sigma,
        min_affinity=min_affinity, add_discarded=add_discarded, apply_sigmoid=apply_sigmoid,
        force_fusion=force_fusion, return_preds=True)
    for k, v in (assembler or {}).items():
        setattr(pred.assembler, k, v)
    with torch.no_grad():
        out = pred.forward(float(stride), {"heatmap": torch.from_numpy(heat), "locref": torch.from_numpy(loc),
                                           "paf": torch.from_numpy(paf)})
        smoothed = smooth(pred, heat)
        peaks = pred.find_local_peak_indices_maxpool_nms(smoothed, nms_radius, threshold=0.01)
    poses = out["poses"].numpy().astype(np.float32)
    d = {"scores": np.ascontiguousarray(smoothed.numpy().transpose(0, 2, 3, 1)),
         "locref": np.ascontiguousarray(loc.transpose(0, 2, 3, 1)),
         "paf": np.ascontiguousarray(paf.transpose(0, 2, 3, 1)),
         "poses": poses, "peaks": peaks.numpy().astype(np.int32)}
    xy, prob, meta, m1, dist = [], [], [], [], []
    preds = out.get("preds", [])
    if isinstance(preds, tuple):
        preds = []  # no peaks at all: DeepLabCut returns a placeholder
    for b, p in enumerate(preds):
        for k in range(K):
            xy.append(p["coordinates"][0][k].reshape(-1, 2))
            prob.append(p["confidence"][k].reshape(-1))
        for e, c in sorted(p.get("costs", {}).items()):
            meta.append((b, e, *c["m1"].shape))
            m1.append(c["m1"].reshape(-1))
            dist.append(c["distance"].reshape(-1))
    d["peak_xy"] = np.concatenate(xy).astype(np.float32) if xy else np.zeros((0, 2), np.float32)
    d["peak_prob"] = np.concatenate(prob).astype(np.float32) if prob else np.zeros(0, np.float32)
    d["cost_meta"] = np.asarray(meta, np.int32).reshape(-1, 4)
    d["cost_m1"] = np.concatenate(m1).astype(np.float32) if m1 else np.zeros(0, np.float32)
    d["cost_dist"] = np.concatenate(dist).astype(np.float32) if dist else np.zeros(0, np.float32)
    # the stored smoothed maps are what DeepLabCut decoded: its confidences are read from them
    if len(d["peaks"]):
        b, k, r, c = d["peaks"].T
        assert (d["scores"][b, r, c, k] == d["peak_prob"]).all(), name
    if unique is not None:
        uh = unique.astype(np.float32)
        ul = q16(rng_u.normal(0, 0.3, (uh.shape[0], 2 * uh.shape[1]) + uh.shape[2:]))
        up = HeatmapPredictor(apply_sigmoid=False, clip_scores=True, location_refinement=True, locref_std=STDEV)
        with torch.no_grad():
            uo = up.forward(float(stride), {"heatmap": torch.from_numpy(uh), "locref": torch.from_numpy(ul)})
        d["unique_scores"] = np.ascontiguousarray(uh.transpose(0, 2, 3, 1))
        d["unique_locref"] = np.ascontiguousarray(ul.transpose(0, 2, 3, 1))
        d["unique_poses"] = uo["poses"].numpy().astype(np.float32)
    params = dict(num_animals=A, graph=[list(e) for e in graph], stride=float(stride), locref_stdev=STDEV,
                  nms_radius=nms_radius, sigma=sigma, min_affinity=min_affinity, add_discarded=add_discarded,
                  force_fusion=force_fusion, apply_sigmoid=apply_sigmoid)
    for k, v in (assembler or {}).items():
        params[k] = v
    n_animals = [int((poses[b, :, 0, 0] != -1).sum()) for b in range(len(frames))]
    print(f"{name}: {len(frames)} frames {heat.shape[2]}x{heat.shape[3]} K={K} E={len(graph)} A={A}; "
          f"peaks {len(d['peaks'])}, animals/frame {n_animals}", file=sys.stderr)
    return {f"{name}_{k}": v for k, v in d.items()}, {"name": name, "params": params, "note": note}


rng_u = np.random.default_rng(99)


def random_frames(seed, n, K, graph, h, w, stride, n_animals=(1, 4), p_missing=0.1, crossing=(2, 3), **kw):
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        na = int(rng.integers(n_animals[0], n_animals[1] + 1))
        animals = []
        for a in range(na):
            if i % crossing[1] == crossing[0] and a == 1 and animals:  # crossing: the second over the first
                pts = make_animal(rng, K, graph, h, w, center=animals[0][0] + rng.uniform(-1.5, 1.5, 2))
            else:
                pts = make_animal(rng, K, graph, h, w)
            drop = rng.random(K) < p_missing
            pts[drop] = np.nan
            animals.append(pts)
        frames.append(render(rng, animals, K, graph, h, w, stride, spurious=int(rng.integers(0, 3)),
                             noise=kw.get("noise", 0.02)))
    return frames


def twin_frames(seed, n, K, graph, h, w, stride):
    """Exact translated copies of one animal (integer cells): equal affinities and confidences -> ties.
    Raw maps with apply_sigmoid=False and a tiny sigma (the smoothing kernel is then exactly a delta),
    so the decoded maps are these values; one peak is exactly float32(0.01)."""
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        base = make_animal(rng, K, graph, h // 2, w // 2, limb=(2.0, 4.0))
        base = np.round(base)
        shift = np.array([w // 2 - 1, (i % 2) * (h // 2 - 2)], float)
        animals = [base, base + shift] + ([base + np.array([0, h // 2 - 1])] if i % 3 == 0 else [])
        heat = np.zeros((K, h, w), np.float32)
        loc = np.zeros((2 * K, h, w), np.float32)
        for pts in animals:
            for k in range(K):
                c, r = int(pts[k, 0]), int(pts[k, 1])
                if 0 <= r < h and 0 <= c < w:
                    heat[k, r, c] = 0.5 + 0.1 * k
                    loc[2 * k, r, c] = 0.125
        heat[K - 1, h - 1, 0] = np.float32(0.01)  # exactly DeepLabCut's threshold
        heat[0, h - 1, w - 1] = np.nextafter(np.float32(0.01), np.float32(0))  # just below it
        _, _, paf = render(rng, animals, K, graph, h, w, stride, noise=0.0, paf_noise=0.0)
        frames.append((heat, loc, paf))
    return frames


def overlap_frames(seed, n, h, w, stride):
    """Two chain animals on the same four corners, B's parts one corner further along A's path: the same
    bounding box, so pose NMS (max_overlap) keeps only the one with the larger total affinity."""
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        o = rng.uniform([2, 2], [w - 14, h - 14])
        corners = o + np.array([[0, 0], [10, 0], [0, 10], [10, 10]], float) + rng.uniform(-0.3, 0.3, (4, 2))
        a = corners
        b = corners[[1, 2, 3, 0]]
        animals = [a, b]
        if i % 2:
            animals.append(make_animal(rng, 4, [(0, 1), (1, 2), (2, 3)], h, w))
        frames.append(render(rng, animals, 4, [(0, 1), (1, 2), (2, 3)], h, w, stride, paf_width=1.0))
    return frames


def main():
    arrays, meta = {}, []

    def add(res):
        arrays.update(res[0])
        meta.append(res[1])

    chain4 = [(0, 1), (1, 2), (2, 3)]
    # a full graph in a mixed order, some edges (s, t) with s > t
    full5 = [(0, 1), (2, 0), (0, 3), (4, 0), (1, 2), (3, 1), (1, 4), (2, 3), (4, 2), (3, 4)]
    tree6 = [(0, 1), (1, 2), (2, 3), (1, 4), (4, 5), (0, 5)]
    uniq = np.random.default_rng(7).normal(0, 1, (8, 2, 24, 32))
    add(run_case("chain4_a3", random_frames(1, 8, 4, chain4, 24, 32, 8), chain4, 3, 8, unique=uniq,
                 note="chain skeleton, 1-4 animals in a 3-animal model, crossings, missing parts, spurious blobs"))
    add(run_case("full5_a4", random_frames(2, 6, 5, full5, 28, 36, 8, n_animals=(2, 5), noise=0.05), full5, 4, 8,
                 note="fully connected graph (cycles), reversed edges, noisier maps, up to 5 animals for 4 slots"))
    add(run_case("tree6_a2_s16", random_frames(3, 6, 6, tree6, 20, 26, 16, n_animals=(1, 3)), tree6, 2, 16,
                 note="stride 16, a cycle, fragments to fuse"))
    add(run_case("twins", twin_frames(4, 6, 3, [(0, 1), (1, 2)], 20, 24, 8), [(0, 1), (1, 2)], 3, 8,
                 sigma=0.01, apply_sigmoid=False, note="exact ties; threshold value exactly float32(0.01)"))
    variants = [
        ("greedy", {"greedy": True}, {}),
        ("force_fusion", {}, {"force_fusion": True}),
        ("add_discarded", {}, {"add_discarded": True}),
        ("links1_nonms", {"min_n_links": 1, "max_overlap": 1.0}, {}),
        ("strict", {"pcutoff": 0.5}, {"min_affinity": 0.3}),
    ]
    for i, (vname, asm, kw) in enumerate(variants):
        g5 = [(0, 1), (1, 2), (2, 3), (1, 4), (4, 0)]
        add(run_case(f"v_{vname}", random_frames(10 + i, 5, 5, g5, 24, 32, 8, n_animals=(2, 4)),
                     g5, 2, 8, assembler=asm, **kw, note=f"assembler variant {vname}"))
    revchain = [(0, 1), (1, 2), (3, 2), (4, 3)]
    add(run_case("revchain_fuse", random_frames(40, 4, 5, revchain, 24, 32, 8, n_animals=(3, 3), p_missing=0.0),
                 revchain, 2, 8, note="edges (s, t) with s > t: complete components split, fragments fused"))
    add(run_case("overlap_nms", overlap_frames(41, 4, 24, 32, 8), chain4, 3, 8,
                 note="two animals with the same bounding box: pose NMS (max_overlap) drops one"))
    add(run_case("one_animal", random_frames(20, 3, 4, chain4, 24, 32, 8, n_animals=(1, 2)), chain4, 1, 8,
                 note="num_animals=1: best peak per part, no linking"))
    # (a single body part with an empty graph is not a DeepLabCut 3.0.2 case: compute_edge_costs fails)
    corner = np.full((1, 2, 12, 16), -9.0, np.float32)
    corner[0, 0, 0, 0] = 3.0
    add(run_case("corner_only", [(corner[0], np.zeros((4, 12, 16), np.float32), np.zeros((2, 12, 16), np.float32))],
                 [(0, 1)], 2, 8, note="the batch's only peak at (0,0,0,0): DeepLabCut returns no animal"))
    skel8 = [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (6, 7)]
    add(run_case("big60x80_a4", random_frames(30, 2, 8, skel8, 60, 80, 8, n_animals=(4, 4), noise=0.006), skel8, 4, 8,
                 note="640x480 frame at stride 8, four animals"))
    np.savez_compressed(OUT, cases=np.array(json.dumps(meta)), **arrays)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e6:.2f} MB)", file=sys.stderr)


if __name__ == "__main__":
    main()
