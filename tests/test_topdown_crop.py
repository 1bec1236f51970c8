"""Top-down crops (rtpose.multianimal.topdown) against DeepLabCut 3.0.2's ``top_down_crop``, bit for bit.

Two references: the crops DeepLabCut itself made in its own environment (tests/data/topdown_crop, NumPy 1.26),
and a verbatim copy of its function run here on many random boxes."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from rtpose.errors import ModelError
from rtpose.multianimal.topdown import crop_geometry, crop_into, scratch_size, select_boxes, to_frame

FIXTURE = Path(__file__).parent / "data" / "topdown_crop" / "dlc_top_down_crop.npz"


def dlc_top_down_crop(image, bbox, output_size, margin=0, center_padding=False, crop_with_context=True):
    """DeepLabCut 3.0.2's ``top_down_crop`` (pose_estimation_pytorch/data/image.py), verbatim (LGPL-3.0)."""
    image_h, image_w, c = image.shape
    out_w, out_h = output_size
    x, y, w, h = bbox

    cx = x + w / 2
    cy = y + h / 2
    w += 2 * margin
    h += 2 * margin

    if crop_with_context:
        input_ratio = w / h
        output_ratio = out_w / out_h
        if input_ratio > output_ratio:  # h/w < h0/w0 => h' = w * h0/w0
            h = w / output_ratio
        elif input_ratio < output_ratio:  # w/h < w0/h0 => w' = h * w0/h0
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
        input_ratio = w / h
        output_ratio = out_w / out_h
        if input_ratio > output_ratio:  # h/w < h0/w0 => h' = w * h0/w0
            w_pad = int(w - h * output_ratio) // 2
            pad_top += w_pad
            pad_bottom += w_pad

        elif input_ratio < output_ratio:  # w/h < w0/h0 => w' = h * w0/h0
            h_pad = int(h - (w / output_ratio)) // 2
            pad_left += h_pad
            pad_right += h_pad

    pad_x = pad_left + pad_right
    pad_y = pad_top + pad_bottom
    if center_padding:
        pad_left = pad_x // 2
        pad_top = pad_y // 2

    image_crop = np.zeros((h + pad_y, w + pad_x, c), dtype=image.dtype)
    image_crop[pad_top: pad_top + h, pad_left: pad_left + w] = image[y1:y2, x1:x2]

    image = cv2.resize(image_crop, (out_w, out_h), interpolation=cv2.INTER_LINEAR)

    offset = x1 - pad_left, y1 - pad_top
    scale = (w + pad_x) / out_w, (h + pad_y) / out_h
    return image, offset, scale


def rtpose_crop(image, box, size, margin, center, context, scratch=None):
    g = crop_geometry(image.shape[0], image.shape[1], box, size, margin, center, context)
    scratch = np.full(max(scratch_size(g), 1), 77, image.dtype) if scratch is None else scratch
    out = np.full((size[1], size[0], image.shape[2]), 99, image.dtype)  # garbage: every pixel must be written
    crop_into(image, g, scratch, out)
    return out, g


def test_crops_match_deeplabcut_itself():
    data = np.load(FIXTURE)
    image, boxes = data["image"], data["boxes"]
    cases = json.loads(str(data["cases"]))
    assert len(cases) == 192
    for i, case in enumerate(cases):
        out, g = rtpose_crop(image, boxes[case["box"]], tuple(case["size"]), case["margin"], case["center_padding"],
                             case["with_context"])
        assert (g.offset_x, g.offset_y) == tuple(case["offset"]), case
        assert (g.scale_x, g.scale_y) == tuple(case["scale"]), case
        np.testing.assert_array_equal(out, data[f"crop_{i}"], err_msg=str(case))


@pytest.mark.parametrize("context", [True, False])
@pytest.mark.parametrize("center", [False, True])
def test_crops_match_verbatim_deeplabcut_on_random_boxes(context, center):
    rng = np.random.default_rng(1 + 2 * context + center)
    image = rng.integers(0, 256, (97, 131, 3), dtype=np.uint8)
    scratch = np.zeros(4 * 300 * 300 * 3, np.uint8)  # shared and dirty from case to case, as in the runtime
    for _ in range(150):
        x1, y1 = rng.uniform(-40, 150), rng.uniform(-40, 110)
        box = np.array([x1, y1, rng.uniform(0.5, 120), rng.uniform(0.5, 90)], np.float32)
        size = (int(rng.integers(4, 40)), int(rng.integers(4, 40)))
        margin = int(rng.integers(0, 12))
        try:
            want, offset, scale = dlc_top_down_crop(image, [float(v) for v in box], size, margin, center, context)
        except (cv2.error, ValueError, ZeroDivisionError):  # the box lies outside the frame: DeepLabCut cannot crop it either
            with pytest.raises(ModelError, match="empty crop"):
                rtpose_crop(image, box, size, margin, center, context, scratch)
            continue
        got, g = rtpose_crop(image, box, size, margin, center, context, scratch)
        assert (g.offset_x, g.offset_y) == offset and (g.scale_x, g.scale_y) == scale
        np.testing.assert_array_equal(got, want)


def test_select_boxes_is_deeplabcuts_detector_postprocessing():
    boxes = np.array([[10, 20, 30, 60], [0, 0, 5, 5], [1.5, 2.25, 3.75, 9.5], [7, 7, 8, 8]], np.float32)
    scores = np.array([0.9, 0.4, 0.3, 0.2], np.float32)
    out = np.full((4, 4), np.nan, np.float32)
    # TrimOutputs: the first max_individuals (score-descending), then xyxy -> xywh; no threshold by default
    assert select_boxes(boxes, scores, 3, None, out) == 3
    np.testing.assert_array_equal(out[:3], [[10, 20, 20, 40], [0, 0, 5, 5], [1.5, 2.25, 2.25, 7.25]])
    # RemoveLowConfidenceBoxes after the trim: >= keeps
    kept_scores = np.zeros(4, np.float32)
    assert select_boxes(boxes, scores, 3, 0.4, out, kept_scores) == 2
    np.testing.assert_array_equal(out[:2], [[10, 20, 20, 40], [0, 0, 5, 5]])
    np.testing.assert_array_equal(kept_scores[:2], scores[:2])
    assert select_boxes(boxes[[0, 3, 1]], scores[[0, 3, 1]], 3, 0.3, out, kept_scores) == 2  # not re-sorted
    np.testing.assert_array_equal(out[:2], [[10, 20, 20, 40], [0, 0, 5, 5]])
    assert select_boxes(boxes[:0], scores[:0], 3, None, out) == 0


def test_to_frame_is_rescale_and_offset_in_float32():
    crop = np.array([[1.25, 2.5, 0.7], [10.0, 0.1, 0.2]])
    scale, offset = np.array([1.3, 0.7]), np.array([-3.0, 40.0])
    out = np.zeros((2, 3))
    to_frame(crop, scale, offset, np.zeros((2, 2), np.float32), out)
    want = crop.copy()  # DeepLabCut: float32 poses, float64 arithmetic, stored as float32
    want[:, :2] = (crop[:, :2] * scale + offset).astype(np.float32)
    np.testing.assert_array_equal(out, want)
