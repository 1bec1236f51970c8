"""Crop boxes and coordinate mapping (rtpose.framing): DeepLabCut-Live's rules, pure functions."""

import numpy as np
import pytest

from rtpose.errors import ConfigError
from rtpose.framing import (CropBox, DynamicCrop, Framing, aligned_box, box_quantum, dynamic_box, resized_size,
                            to_full_frame)

FRAME = CropBox.full(640, 480)


def test_crop_parses_in_dlc_live_order_and_rejects_nonsense():
    assert CropBox.parse("100, 500,50,400") == CropBox(100, 500, 50, 400)
    for bad in ("1,2,3", "a,b,c,d", "500,100,0,10", "-1,10,0,10", "0,10,5,5"):
        with pytest.raises(ConfigError, match="X1"):
            CropBox.parse(bad)
    with pytest.raises(ConfigError, match="beyond the 640x480 frame"):
        Framing(crop=CropBox(0, 641, 0, 10)).region(640, 480)


def test_dynamic_settings_parse_and_validate():
    assert DynamicCrop.parse("0.5,10") == DynamicCrop(0.5, 10.0)
    for bad in ("0.5", "x,1", "1.5,10", "0.5,-1"):
        with pytest.raises(ConfigError):
            DynamicCrop.parse(bad)
    with pytest.raises(ConfigError, match="positive factor"):
        Framing(resize=0.0)


def test_resized_size_truncates_like_dlc_live():
    assert resized_size(640, 480, 0.5) == (320, 240)
    assert resized_size(333, 101, 0.5) == (166, 50)
    assert resized_size(333, 101, 1.0) == (333, 101)
    assert Framing(crop=CropBox(10, 331, 0, 200), resize=0.5).input_size(640, 480) == (160, 100)


def test_dynamic_box_is_the_confident_keypoints_plus_margin_clamped():
    pose = np.array([[100.7, 50.2, 0.9], [140.2, 80.9, 0.6], [300.0, 300.0, 0.2]])
    # int() of min/max, +- margin; the low-likelihood keypoint is ignored
    assert dynamic_box(pose, 0.5, 10, FRAME) == CropBox(90, 150, 40, 90)
    assert dynamic_box(pose, 0.5, 60, FRAME) == CropBox(40, 200, 0, 140)  # clamped at the top
    assert dynamic_box(pose, 0.95, 10, FRAME) is None  # nothing confident: full frame
    assert dynamic_box(pose, 0.5, 10, CropBox(120, 640, 0, 480)) == CropBox(120, 150, 40, 90)
    nan = pose.copy()
    nan[0, :2] = np.nan
    assert dynamic_box(nan, 0.5, 10, FRAME) == CropBox(130, 150, 70, 90)


def test_aligned_box_grows_to_the_quantum_about_its_centre_within_bounds():
    assert box_quantum(8, 1.0) == 8 and box_quantum(8, 0.5) == 16 and box_quantum(8, 0.3) == 27
    box = aligned_box(CropBox(90, 150, 40, 90), 16, FRAME)
    assert (box.width % 16, box.height % 16) == (0, 0)
    assert box.x1 <= 90 and box.x2 >= 150 and box.y1 <= 40 and box.y2 >= 90
    assert box.width - 60 < 16 and box.height - 50 < 16
    edge = aligned_box(CropBox(0, 10, 475, 480), 16, FRAME)
    assert edge == CropBox(0, 16, 464, 480)  # shifted inside, not cut
    assert aligned_box(CropBox(0, 630, 0, 470), 16, FRAME) == FRAME  # does not fit: the bounds


def test_to_full_frame_undoes_resize_then_adds_the_box_origin():
    pose = np.array([[[10.0, 20.0, 0.7], [0.0, 0.0, 0.1]], [[5.0, 5.0, 0.9], [1.0, 2.0, 0.3]]])
    boxes = np.array([[100, 300, 50, 200], [0, 640, 0, 480]])
    to_full_frame(pose, boxes, 0.5, 1)
    np.testing.assert_array_equal(pose[0], [[120.0, 90.0, 0.7], [100.0, 50.0, 0.1]])
    np.testing.assert_array_equal(pose[1], [[5.0, 5.0, 0.9], [1.0, 2.0, 0.3]])  # row 1 not touched (n=1)
