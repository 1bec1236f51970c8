"""Run DeepLabCut 3.0.2's own ``top_down_crop`` on edge cases; store its crops, offsets and scales.

Run in the DeepLabCut 3 side environment (NumPy 1.26, OpenCV as DeepLabCut installs it):

    /work/side/dlc3-torch/bin/python tests/data/topdown_crop/build_fixture.py

tests/test_topdown_crop.py checks that rtpose's crops (rtpose.multianimal.topdown) are bit-identical.
"""

import itertools
import json
from pathlib import Path

import cv2
import numpy as np
from deeplabcut.pose_estimation_pytorch.data.image import top_down_crop
import deeplabcut

HERE = Path(__file__).resolve().parent
H, W = 61, 83

# xywh boxes, float32 as the detector postprocessing gives them: inside, at each border, partly outside
# (negative coordinates), wide, tall, tiny, half-pixel positions, the whole frame, larger than the frame
BOXES = np.array([
    [20.0, 15.0, 30.0, 20.0], [0.0, 0.0, 10.0, 12.0], [70.0, 50.0, 13.0, 11.0], [-6.5, 10.25, 20.0, 15.0],
    [60.0, -4.0, 30.0, 12.5], [5.0, 20.0, 70.0, 6.0], [40.0, 2.0, 5.0, 55.0], [33.3, 22.7, 1.0, 1.0],
    [10.5, 10.5, 20.5, 20.5], [0.0, 0.0, 83.0, 61.0], [-10.0, -10.0, 103.0, 81.0], [41.49, 30.51, 17.77, 9.13],
], np.float32)
SIZES = [(20, 14), (14, 20), (12, 12)]  # (width, height)


def main():
    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    cases, arrays = [], {"image": image, "boxes": BOXES}
    for size, margin, context, center in itertools.product(SIZES, (0, 5), (True, False), (False, True)):
        if center and size != SIZES[0]:
            continue
        for b, box in enumerate(BOXES):
            crop, offset, scale = top_down_crop(image, box, size, margin=margin, center_padding=center,
                                                crop_with_context=context)
            i = len(cases)
            arrays[f"crop_{i}"] = crop
            cases.append({"box": b, "size": list(size), "margin": margin, "with_context": context,
                          "center_padding": center, "offset": [int(v) for v in offset],
                          "scale": [float(v) for v in scale]})
    arrays["cases"] = np.array(json.dumps(cases))
    arrays["versions"] = np.array(json.dumps({"deeplabcut": deeplabcut.__version__, "numpy": np.__version__,
                                              "opencv": cv2.__version__}))
    np.savez_compressed(HERE / "dlc_top_down_crop.npz", **arrays)
    print(len(cases), "cases")


if __name__ == "__main__":
    main()
