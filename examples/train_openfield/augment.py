"""Geometric augmentation and DeepLabCut target encoding in NumPy/OpenCV (no TensorFlow).

One affine warp per sample does crop + scale + rotation + flips; labels follow the
same matrix, and a mirror (exactly one flip) swaps left/right ear. Targets are
DeepLabCut's: score map 1 inside a disk of radius ``pos_dist_thresh`` around each
label (cell centres at col*stride + stride/2), location-refinement target
(label - cell centre)/locref_stdev inside the disk, with weights only there.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from dataset import MIRROR_PERMUTATION

POS_DIST_THRESH = 17.0
LOCREF_STDEV = 7.2801


def random_affine(rng: np.random.Generator, xy: np.ndarray, img_hw, crop: int, *,
                  scale=(0.8, 1.2), max_rot_deg=25.0, p_animal=0.85):
    """Return (2x3 matrix source->crop, mirrored) for one sample."""
    h, w = img_hw
    valid = ~np.isnan(xy).any(axis=1)
    if valid.any() and rng.random() < p_animal:
        centre = xy[valid].mean(axis=0) + rng.uniform(-0.25, 0.25, size=2) * crop
    else:
        centre = np.array([rng.uniform(0, w), rng.uniform(0, h)])
    s = rng.uniform(*scale)
    a = math.radians(rng.uniform(-max_rot_deg, max_rot_deg))
    fx = -1.0 if rng.random() < 0.5 else 1.0
    fy = -1.0 if rng.random() < 0.5 else 1.0
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    lin = s * rot @ np.diag([fx, fy])
    t = np.array([crop / 2.0, crop / 2.0]) - lin @ centre
    return np.hstack([lin, t[:, None]]).astype(np.float64), (fx * fy) < 0


def warp_sample(img: np.ndarray, xy: np.ndarray, m: np.ndarray, mirrored: bool, crop: int):
    """Apply the affine to image and labels; returns (crop image uint8, (K,2) labels)."""
    out = cv2.warpAffine(img, m, (crop, crop), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    pts = xy @ m[:, :2].T + m[:, 2]
    if mirrored:
        pts = pts[list(MIRROR_PERMUTATION)]
    return out, pts.astype(np.float32)


def encode_targets(xy: np.ndarray, map_hw, stride: int = 8, pos_dist_thresh: float = POS_DIST_THRESH,
                   locref_stdev: float = LOCREF_STDEV):
    """DeepLabCut targets for one sample: scmap (h,w,K), locref (h,w,2K), locref weights (h,w,2K)."""
    h, w = map_hw
    k = xy.shape[0]
    cx = (np.arange(w, dtype=np.float32) * stride + stride / 2)[None, :]
    cy = (np.arange(h, dtype=np.float32) * stride + stride / 2)[:, None]
    scmap = np.zeros((h, w, k), np.float32)
    locref = np.zeros((h, w, k, 2), np.float32)
    weights = np.zeros((h, w, k, 2), np.float32)
    for j in range(k):
        x, y = xy[j]
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        dx = x - cx
        dy = y - cy
        inside = (dx * dx + dy * dy) <= pos_dist_thresh ** 2
        if not inside.any():
            continue
        scmap[..., j] = inside
        locref[..., j, 0] = np.where(inside, dx / locref_stdev, 0.0)
        locref[..., j, 1] = np.where(inside, dy / locref_stdev, 0.0)
        weights[..., j, :] = inside[..., None]
    return scmap, locref.reshape(h, w, 2 * k), weights.reshape(h, w, 2 * k)
