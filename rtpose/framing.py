"""Which part of a frame the model sees, and how poses map back: crop, resize, dynamic crop.

DeepLabCut-Live's semantics (``dlclive/dlclive.py``: ``process_frame`` and
``_post_process_pose``), re-expressed as pure functions:

* a static crop ``[x1, x2, y1, y2]`` takes ``frame[y1:y2, x1:x2]``;
* dynamic cropping ``(active, threshold, margin)``: if any keypoint of the
  previous frame's pose has likelihood ``>= threshold``, the next frame is
  cropped to the bounding box of those keypoints (``int()`` of the min and max
  x and y), grown by ``margin`` pixels on every side and clamped to the image;
  otherwise the whole (statically cropped) frame is used;
* resize by ``factor``: ``cv2.resize`` to ``(int(width * factor),
  int(height * factor))`` with ``INTER_LINEAR``;
* poses come back in full-frame pixels: ``x / factor + x1``, ``y / factor + y1``.

Two deliberate differences. DeepLabCut-Live applies a dynamic box (computed
from full-frame poses) inside the statically cropped image, which mixes two
coordinate systems when both are on. Here every box is in full-frame pixels,
and the dynamic box is clamped to the static crop. And the dynamic box is
grown (about its centre, within the image) to a multiple of
:func:`box_quantum` pixels, at most ``quantum - 1`` more per axis, so that
the model input is a multiple of the network's stride: the score-map grid then
does not depend on the box size, and a run sees a few dozen input sizes
rather than a new one on almost every frame.

A box is a ``(4,)`` int array or a :class:`CropBox` holding ``x1, x2, y1, y2``
(DeepLabCut-Live's order), half-open: columns ``x1 .. x2-1``, rows ``y1 .. y2-1``.

No I/O, no threads, no clocks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError


@dataclass(frozen=True)
class CropBox:
    """A half-open pixel box ``[x1, x2) x [y1, y2)`` in full-frame coordinates."""

    x1: int
    x2: int
    y1: int
    y2: int

    @property
    def width(self) -> int:
        return self.x2 - self.x1

    @property
    def height(self) -> int:
        return self.y2 - self.y1

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.x1, self.x2, self.y1, self.y2)

    @classmethod
    def full(cls, width: int, height: int) -> "CropBox":
        return cls(0, int(width), 0, int(height))

    @classmethod
    def parse(cls, text: str) -> "CropBox":
        """``"X1,X2,Y1,Y2"`` (DeepLabCut-Live's ``cropping`` order) -> box; raises :class:`ConfigError`."""
        parts = [p.strip() for p in str(text).split(",")]
        try:
            values = [int(p) for p in parts]
        except ValueError:
            values = []
        if len(values) != 4:
            raise ConfigError(f"--crop {text!r}: give four integers X1,X2,Y1,Y2 (pixels; columns X1..X2-1, "
                              "rows Y1..Y2-1), e.g. --crop 100,500,50,400")
        box = cls(*values)
        if box.x1 < 0 or box.y1 < 0 or box.width <= 0 or box.height <= 0:
            raise ConfigError(f"--crop {text!r}: need 0 <= X1 < X2 and 0 <= Y1 < Y2")
        return box

    def check_inside(self, width: int, height: int) -> None:
        if self.x2 > width or self.y2 > height:
            raise ConfigError(f"crop {self.as_tuple()} (X1,X2,Y1,Y2) reaches beyond the {width}x{height} frame; "
                              f"use X2 <= {width} and Y2 <= {height}")


@dataclass(frozen=True)
class DynamicCrop:
    """DeepLabCut-Live's ``dynamic=(True, threshold, margin)``."""

    threshold: float = 0.5
    margin_px: float = 10.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"dynamic crop likelihood threshold {self.threshold} must be within 0..1")
        if not self.margin_px >= 0:
            raise ConfigError(f"dynamic crop margin {self.margin_px} px must be >= 0")

    @classmethod
    def parse(cls, text: str) -> "DynamicCrop":
        """``"THRESHOLD,MARGIN"`` (e.g. ``0.5,10``) -> settings; raises :class:`ConfigError`."""
        parts = [p.strip() for p in str(text).split(",")]
        try:
            threshold, margin = (float(p) for p in parts)
        except ValueError:
            raise ConfigError(f"--dynamic-crop {text!r}: give THRESHOLD,MARGIN_PX, e.g. --dynamic-crop 0.5,10 "
                              "(likelihood threshold 0..1, margin in pixels)") from None
        return cls(threshold, margin)


@dataclass(frozen=True)
class Framing:
    """What the model sees of each frame. ``resize`` 1.0 means none; ``crop`` None means the full frame."""

    crop: CropBox | None = None
    resize: float = 1.0
    dynamic: DynamicCrop | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.resize) and self.resize > 0):
            raise ConfigError(f"--resize {self.resize}: give a positive factor, e.g. 0.5 for half width and height")

    @property
    def is_identity(self) -> bool:
        return self.crop is None and self.resize == 1.0 and self.dynamic is None

    def region(self, width: int, height: int) -> CropBox:
        """The part of a ``width x height`` frame that may ever be processed (the static crop or the frame)."""
        if self.crop is None:
            return CropBox.full(width, height)
        self.crop.check_inside(width, height)
        return self.crop

    def input_size(self, width: int, height: int) -> tuple[int, int]:
        """``(width, height)`` of the model input for the largest box (the static region)."""
        region = self.region(width, height)
        return resized_size(region.width, region.height, self.resize)


def resized_size(width: int, height: int, factor: float) -> tuple[int, int]:
    """DeepLabCut-Live's ``resize_frame`` size: ``(int(width * factor), int(height * factor))``."""
    if factor == 1.0:
        return int(width), int(height)
    return int(width * factor), int(height * factor)


def dynamic_box(pose: np.ndarray, threshold: float, margin_px: float, bounds: CropBox) -> CropBox | None:
    """The next frame's crop from this frame's full-frame ``(K, 3)`` pose, or None (use ``bounds``).

    DeepLabCut-Live's rule: keypoints with likelihood ``>= threshold``; their
    ``int()`` min/max x and y; grown by ``margin_px``; clamped to ``bounds``.
    NaN positions are ignored; a box that would be empty yields None.
    """
    x1 = x2 = y1 = y2 = 0.0
    found = False
    for k in range(pose.shape[0]):
        x, y, p = float(pose[k, 0]), float(pose[k, 1]), float(pose[k, 2])
        if not (p >= threshold) or math.isnan(x) or math.isnan(y):
            continue
        if not found:
            x1 = x2 = x
            y1 = y2 = y
            found = True
        else:
            x1, x2, y1, y2 = min(x1, x), max(x2, x), min(y1, y), max(y2, y)
    if not found:
        return None
    # int() truncates toward zero, as DeepLabCut-Live does; the margin may be fractional (it is then
    # truncated too, as slicing with a float bound would fail in DeepLabCut-Live and we need ints)
    bx1 = max(bounds.x1, int(int(x1) - margin_px))
    bx2 = min(bounds.x2, int(int(x2) + margin_px))
    by1 = max(bounds.y1, int(int(y1) - margin_px))
    by2 = min(bounds.y2, int(int(y2) + margin_px))
    if bx2 <= bx1 or by2 <= by1:
        return None
    return CropBox(bx1, bx2, by1, by2)


def to_full_frame(pose: np.ndarray, boxes: np.ndarray, resize: float, n: int) -> None:
    """Map rows ``[:n]`` of ``(B, K, 3)`` model-input poses to full-frame pixels, in place.

    ``boxes`` is ``(B, 4)`` ``x1, x2, y1, y2`` per row: ``x / resize + x1``,
    ``y / resize + y1`` (DeepLabCut-Live multiplies by ``1 / resize``; so do we).
    """
    if resize != 1.0:
        pose[:n, :, :2] *= 1.0 / resize
    pose[:n, :, 0] += boxes[:n, 0:1]
    pose[:n, :, 1] += boxes[:n, 2:3]


def box_quantum(stride: float, resize: float) -> int:
    """Pixels (full-frame) a dynamic box's width and height are rounded up to: ``ceil(stride / resize)``,
    so that the resized box is a multiple of the stride whenever ``stride / resize`` is a whole number."""
    return max(1, math.ceil(stride / resize - 1e-9))


def _grow_axis(lo: int, hi: int, quantum: int, bound_lo: int, bound_hi: int) -> tuple[int, int]:
    size = -(-(hi - lo) // quantum) * quantum
    if size >= bound_hi - bound_lo:
        return bound_lo, bound_hi
    lo -= (size - (hi - lo)) // 2
    lo = min(max(lo, bound_lo), bound_hi - size)
    return lo, lo + size


def aligned_box(box: CropBox, quantum: int, bounds: CropBox) -> CropBox:
    """``box`` grown (about its centre, kept within ``bounds``) to multiples of ``quantum`` pixels;
    ``bounds`` itself along an axis where that does not fit."""
    x1, x2 = _grow_axis(box.x1, box.x2, quantum, bounds.x1, bounds.x2)
    y1, y2 = _grow_axis(box.y1, box.y2, quantum, bounds.y1, bounds.y2)
    return CropBox(x1, x2, y1, y2)
