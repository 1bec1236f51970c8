"""Top-down multi-animal models: DeepLabCut's box selection and its crop geometry. Pure.

A DeepLabCut 3 top-down model (``method: td``) finds animals in two stages: an object detector gives
boxes in the whole frame, then a single-animal pose model runs on a crop around each kept box. rtpose
runs both stages from one ONNX file (:mod:`rtpose.multianimal.topdown_model`); this module holds what
they do between the two networks, with DeepLabCut 3.0.2's semantics and the parameters the file carries
(:class:`~rtpose.multianimal.topdown_params.TopDownParams`):

* :func:`select_boxes` - ``build_detector_postprocessor`` (``data/postprocessor.py``): the detector's
  boxes (score-descending, as torchvision returns them) trimmed to the first ``max_individuals``
  (``TrimOutputs``), converted from xyxy to COCO xywh (``BboxToCoco``, float32), then, only when
  ``min_bbox_score`` is set, boxes scoring below it dropped (``RemoveLowConfidenceBoxes``, ``>=`` keeps);
* :func:`crop_geometry` / :func:`crop_into` - ``top_down_crop`` (``data/image.py``, called by
  ``TopDownCrop`` in ``data/preprocessor.py``): the box grown by ``margin``, widened or heightened to the
  crop's aspect ratio (``with_context``), rounded to pixels, padded with zeros where it leaves the frame,
  resized with ``cv2.resize(INTER_LINEAR)`` to (``crop_width``, ``crop_height``). :func:`crop_into`
  writes the same pixels bit for bit into preallocated buffers instead of allocating the padded copy;
* a crop's keypoints go back to the frame as ``x * scale_x + offset_x`` (``RescaleAndOffset``, mode
  ``KEYPOINT_TD``: float64 arithmetic stored into DeepLabCut's float32 pose array).

No I/O, no threads, no clocks. DeepLabCut is LGPL-3.0 like rtpose; the semantics are ported, the files cited.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

from ..errors import ModelError


def select_boxes(boxes_xyxy: np.ndarray, scores: np.ndarray, max_individuals: int,
                 min_bbox_score: float | None, out_xywh: np.ndarray, out_scores: np.ndarray | None = None) -> int:
    """DeepLabCut's detector postprocessing (see the module docstring) into ``out_xywh`` (at least
    ``max_individuals`` rows, float32) and their scores into ``out_scores`` (if given); returns how many
    boxes were kept (their order kept)."""
    n = min(len(boxes_xyxy), max_individuals)
    # DeepLabCut compares its float32 score array with the threshold: in float32
    threshold = None if min_bbox_score is None else np.float32(min_bbox_score)
    kept = 0
    for d in range(n):
        if threshold is not None and not np.float32(scores[d]) >= threshold:
            continue
        out_xywh[kept, 0] = boxes_xyxy[d, 0]
        out_xywh[kept, 1] = boxes_xyxy[d, 1]
        out_xywh[kept, 2] = np.float32(boxes_xyxy[d, 2]) - np.float32(boxes_xyxy[d, 0])  # float32, as in place
        out_xywh[kept, 3] = np.float32(boxes_xyxy[d, 3]) - np.float32(boxes_xyxy[d, 1])
        if out_scores is not None:
            out_scores[kept] = scores[d]
        kept += 1
    return kept


class CropGeometry(NamedTuple):
    """Where ``top_down_crop`` takes its pixels: rows ``y1:y2``, columns ``x1:x2`` of the frame, placed at
    (``pad_top``, ``pad_left``) in a zero image of ``padded_h`` x ``padded_w``, which is resized to the crop;
    ``offset`` and ``scale`` map crop pixels back to the frame."""

    x1: int
    y1: int
    x2: int
    y2: int
    pad_left: int
    pad_top: int
    padded_w: int
    padded_h: int
    offset_x: int
    offset_y: int
    scale_x: float
    scale_y: float


def crop_geometry(image_h: int, image_w: int, bbox_xywh, output_size: tuple[int, int], margin: int = 0,
                  center_padding: bool = False, crop_with_context: bool = True) -> CropGeometry:
    """The arithmetic of DeepLabCut 3.0.2's ``top_down_crop`` (``pose_estimation_pytorch/data/image.py``),
    statement for statement. The box's float32 values are taken as Python floats: under the NumPy 1.26 that
    DeepLabCut 3.0.2 installs, ``float32 + w / 2`` and ``w += 2 * margin`` promote to float64, so its
    arithmetic is float64 from the first line on (NumPy 2 would keep float32 and round differently)."""
    out_w, out_h = output_size
    x, y, w, h = (float(v) for v in bbox_xywh)

    cx = x + w / 2
    cy = y + h / 2
    w += 2 * margin
    h += 2 * margin

    if crop_with_context:
        input_ratio = w / h
        output_ratio = out_w / out_h
        if input_ratio > output_ratio:
            h = w / output_ratio
        elif input_ratio < output_ratio:
            w = h * output_ratio

    x1, y1 = int(round(cx - (w / 2))), int(round(cy - (h / 2)))
    x2, y2 = int(round(cx + (w / 2))), int(round(cy + (h / 2)))

    pad_left, pad_right, pad_top, pad_bottom = 0, 0, 0, 0
    if x1 < 0:
        pad_left = -x1
        x1 = 0
    if x2 > image_w:
        pad_right = x2 - image_w
        x2 = image_w
    if y1 < 0:
        pad_top = -y1
        y1 = 0
    if y2 > image_h:
        pad_bottom = y2 - image_h
        y2 = image_h

    w, h = x2 - x1, y2 - y1
    if not crop_with_context:
        if h == 0:
            raise ModelError(f"a detected box gives an empty crop (frame rows {y1}:{y2}); DeepLabCut cannot crop it either")
        input_ratio = w / h
        output_ratio = out_w / out_h
        if input_ratio > output_ratio:  # DeepLabCut pads top and bottom by a width difference (kept as is)
            w_pad = int(w - h * output_ratio) // 2
            pad_top += w_pad
            pad_bottom += w_pad
        elif input_ratio < output_ratio:
            h_pad = int(h - (w / output_ratio)) // 2
            pad_left += h_pad
            pad_right += h_pad

    pad_x = pad_left + pad_right
    pad_y = pad_top + pad_bottom
    if center_padding:
        pad_left = pad_x // 2
        pad_top = pad_y // 2

    return CropGeometry(x1, y1, x2, y2, pad_left, pad_top, w + pad_x, h + pad_y, x1 - pad_left, y1 - pad_top,
                        (w + pad_x) / out_w, (h + pad_y) / out_h)


def crop_into(image: np.ndarray, g: CropGeometry, scratch: np.ndarray, out: np.ndarray) -> None:
    """``top_down_crop``'s pixels for geometry ``g`` into ``out`` (``(crop_h, crop_w, 3)``, the image's dtype),
    bit-identical to DeepLabCut's. Without padding the frame region is resized straight from the frame;
    with padding it is assembled in ``scratch`` (flat, the image's dtype, at least ``padded_h * padded_w * 3``
    elements: see :func:`scratch_size`), only the padding strips zeroed."""
    h, w = g.y2 - g.y1, g.x2 - g.x1
    out_h, out_w = out.shape[:2]
    if h <= 0 or w <= 0:  # a box off the frame (detectors clip theirs to it): DeepLabCut's own slicing, verbatim
        try:
            padded = np.zeros((g.padded_h, g.padded_w, image.shape[2]), image.dtype)
            padded[g.pad_top:g.pad_top + h, g.pad_left:g.pad_left + w] = image[g.y1:g.y2, g.x1:g.x2]
            cv2.resize(padded, (out_w, out_h), dst=out, interpolation=cv2.INTER_LINEAR)
        except (ValueError, cv2.error) as exc:
            raise ModelError(f"a detected box gives an empty crop (frame rows {g.y1}:{g.y2}, columns {g.x1}:{g.x2}); "
                             f"DeepLabCut cannot crop it either ({exc})") from exc
        return
    region = image[g.y1:g.y2, g.x1:g.x2]
    if g.padded_h == h and g.padded_w == w:
        cv2.resize(region, (out_w, out_h), dst=out, interpolation=cv2.INTER_LINEAR)
        return
    c = image.shape[2]
    if scratch.size < g.padded_h * g.padded_w * c:
        raise ModelError(f"crop scratch buffer of {scratch.size} values is too small for a {g.padded_w}x{g.padded_h} "
                         "padded crop (see scratch_size)")
    padded = scratch[: g.padded_h * g.padded_w * c].reshape(g.padded_h, g.padded_w, c)
    top, left = g.pad_top, g.pad_left
    padded[:top] = 0
    padded[top + h:] = 0
    padded[top:top + h, :left] = 0
    padded[top:top + h, left + w:] = 0
    padded[top:top + h, left:left + w] = region
    cv2.resize(padded, (out_w, out_h), dst=out, interpolation=cv2.INTER_LINEAR)


def scratch_size(g: CropGeometry, channels: int = 3) -> int:
    """Values :func:`crop_into` needs in its scratch buffer for ``g`` (0 without padding)."""
    if g.padded_h == g.y2 - g.y1 and g.padded_w == g.x2 - g.x1:
        return 0
    return g.padded_h * g.padded_w * channels


def to_frame(crop_poses: np.ndarray, scale_xy: np.ndarray, offset_xy: np.ndarray, scratch_f32: np.ndarray,
             out: np.ndarray) -> None:
    """Crop keypoints ``(K, 3)`` to frame pixels into ``out`` ``(K, 3)``: DeepLabCut's ``RescaleAndOffset``
    (``KEYPOINT_TD``), ``x * scale + offset`` in float64 (``scale_xy``, ``offset_xy``: ``(2,)`` float64, a
    :class:`CropGeometry`'s), stored as float32 as in its pose array (through ``scratch_f32``, ``(K, 2)``
    float32); the likelihood is copied. Allocates nothing."""
    xy = out[:, :2]
    np.multiply(crop_poses[:, :2], scale_xy, out=xy)
    np.add(xy, offset_xy, out=xy)
    np.copyto(scratch_f32, xy, casting="same_kind")
    np.copyto(xy, scratch_f32)
    out[:, 2] = crop_poses[:, 2]


__all__ = ["CropGeometry", "crop_geometry", "crop_into", "scratch_size", "select_boxes", "to_frame"]
