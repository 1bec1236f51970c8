"""Frames for the export check: the user's images, or deterministic synthetic ones.

Frames are float32 RGB 0-255 arrays of shape (H, W, 3), what a DeepLabCut graph
takes. Frames of the same size are checked together as one batch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rtpose.errors import ExportError

#: Synthetic check frames: two 240x320 frames (a batch of 2) and one odd size
#: that is not a multiple of any stride (exercises SAME padding and ceil'd map sizes).
SYNTHETIC_SIZES = ((240, 320), (240, 320), (203, 298))
#: Extra frames for the batch-invariance check, at a real camera size (640x480): a batch of three.
BATCH_CHECK_SIZES = ((480, 640), (480, 640), (480, 640))
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def synthetic_frames(sizes=SYNTHETIC_SIZES, seed: int = 0) -> list[np.ndarray]:
    """Open-field-like frames: lit arena with a vignette, a dark elongated animal, sensor noise."""
    rng = np.random.default_rng(seed)
    frames = []
    for h, w in sizes:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        r2 = ((yy - h / 2) / h) ** 2 + ((xx - w / 2) / w) ** 2
        img = 170.0 - 120.0 * r2 + rng.normal(0, 4, (h, w))
        cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
        angle = rng.uniform(0, np.pi)
        u = (xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)
        v = -(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)
        body = np.exp(-((u / (0.12 * w)) ** 2 + (v / (0.05 * w)) ** 2) * 2.0)
        img -= 110.0 * body
        tail = (u < -0.1 * w) & (u > -0.3 * w) & (np.abs(v) < 2.0)
        img[tail] -= 60.0
        rgb = np.stack([img, img * 0.97 + 3.0, img * 0.94 + 6.0], axis=-1)
        frames.append(np.clip(rgb, 0, 255).astype(np.float32))
    return frames


def load_images(paths) -> list[np.ndarray]:
    """Read image files (or folders of them) as RGB float32; :class:`ExportError` for unreadable ones."""
    import cv2

    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise ExportError(f"{p}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder for --check")
            files.extend(found)
        else:
            files.append(p)
    frames = []
    for f in files:
        bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ExportError(f"{f}: cannot be read as an image for --check; give PNG/JPEG files")
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32))
    if not frames:
        raise ExportError("--check was given no images")
    return frames


def batches(frames) -> list[np.ndarray]:
    """Group frames of equal size into (B, H, W, 3) batches, in first-seen order."""
    groups: dict[tuple, list] = {}
    for f in frames:
        groups.setdefault(f.shape, []).append(f)
    return [np.ascontiguousarray(np.stack(g)) for g in groups.values()]


def batch_check_batches(frames, input_hw=(None, None)) -> list[np.ndarray]:
    """Batches for the batch-invariance check: ``frames`` grouped by size plus three synthetic
    640x480 frames (for a dynamic-size model), every group padded with other synthetic frames of
    its size to at least two, so each frame meets different neighbours."""
    h, w = input_hw
    fixed = h is not None and w is not None
    extra = synthetic_frames(((h, w),) * 3 if fixed else BATCH_CHECK_SIZES, seed=1)
    groups = batches(list(frames) + extra)
    out = []
    for i, batch in enumerate(groups):
        if batch.shape[0] < 2:
            size = batch.shape[1:3]
            others = synthetic_frames((size, size), seed=2 + i)
            batch = np.ascontiguousarray(np.concatenate([batch, np.stack(others)]))
        out.append(batch)
    return out
