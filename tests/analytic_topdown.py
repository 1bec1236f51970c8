"""A hand-built top-down multi-animal ONNX file for tests: a detector stage and a pose stage that really find
the synthetic source's mice, in the file contract rtpose's top-down runtime reads
(:mod:`rtpose.multianimal.topdown_model`; what ``rtpose export`` writes for a DeepLabCut 3 ``method: td``
model):

* detector stage (names prefixed ``detector/``): input ``image`` ``(1, H, W, 3)`` RGB 0-255. The dark round
  spot at the centre of each mouse's body (darkness ``255 + G - R - B`` above 215, as in
  :mod:`analytic_model`), pooled per 8-px cell and summed over 3x3 cells, is the score (1 for a whole spot)
  of a candidate box of :data:`BOX_SIZE` px around every cell; ONNX ``NonMaxSuppression`` (IoU 0.5, score
  :data:`BOX_SCORE_THRESH`) keeps one per mouse, sorted by score; boxes clipped to the frame (as
  torchvision's detectors do). Outputs ``boxes`` ``(D, 4)`` xyxy and ``box_scores`` ``(D,)``;
* pose stage (prefixed ``pose/``): :func:`analytic_model.build_analytic_model`'s graph (head/body/tail score
  maps and location-refinement offsets from colours) on input ``crops`` ``(N, 112, 112, 3)``; outputs
  ``scoremap`` and ``locref``.

The pose stage first paints the crop's black padding (``top_down_crop`` pads with zeros where a crop
leaves the frame) background grey, as the colour features would take black for a dark body spot. A crop
around a mouse may hold part of the other mouse; the pose stage then finds whichever head, body and
tail score highest in it (a real top-down pose model is trained to prefer the centred animal).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from analytic_model import BODYPARTS, LOCREF_STDEV, OPSET, IR_VERSION, _const, build_analytic_model
from rtpose.metadata import ModelMetadata
from rtpose.multianimal.layout import AnimalLayout
from rtpose.multianimal.topdown_params import TopDownParams

STRIDE = 8
#: Candidate boxes are squares of this size around a cell centre: a whole 640x480 synthetic mouse (80 px long).
BOX_SIZE = 112
#: The crop the pose stage takes (width = height): crops of whole boxes are not rescaled.
CROP_SIZE = 112
#: The detector's own score threshold (in its graph, like torchvision's box_score_thresh).
BOX_SCORE_THRESH = 0.3
#: Spot feature summed over 3x3 cells for a whole spot (radius 6 px: 113 px² x 20 / 64 px² per cell).
_SPOT_FULL = 35.0


def _detector_graph_parts():
    p = "detector/"
    inits = [
        _const(p + "dark_w", np.array([-1.0, 1.0, -1.0], np.float32).reshape(1, 3, 1, 1)),
        _const(p + "dark_b", np.array([255.0 - 215.0], np.float32)),
        _const(p + "sum3_w", np.ones((1, 1, 3, 3), np.float32) / _SPOT_FULL),
        _const(p + "zero", np.array(0.0, np.float32)), _const(p + "one", np.array(1.0, np.float32)),
        _const(p + "i0", np.array(0, np.int64)), _const(p + "i1", np.array(1, np.int64)),
        _const(p + "i2", np.array(2, np.int64)), _const(p + "i3", np.array(3, np.int64)),
        _const(p + "stride", np.array(float(STRIDE), np.float32)),
        _const(p + "half_cell", np.array(STRIDE / 2.0, np.float32)),
        _const(p + "half_box", np.array([-BOX_SIZE / 2, -BOX_SIZE / 2, BOX_SIZE / 2, BOX_SIZE / 2], np.float32)),
        _const(p + "axes0", np.array([0], np.int64)), _const(p + "axes1", np.array([1], np.int64)),
        _const(p + "minus1", np.array([-1], np.int64)), _const(p + "shape_c4", np.array([1, -1, 4], np.int64)),
        _const(p + "shape_1c", np.array([1, 1, -1], np.int64)),
        _const(p + "max_out", np.array([20], np.int64)), _const(p + "iou", np.array([0.5], np.float32)),
        _const(p + "score_thresh", np.array([BOX_SCORE_THRESH], np.float32)),
        _const(p + "col2", np.array([2], np.int64)),
    ]
    n = helper.make_node
    nodes = [
        n("Transpose", ["image"], [p + "x"], perm=[0, 3, 1, 2], name=p + "to_nchw"),
        n("Conv", [p + "x", p + "dark_w", p + "dark_b"], [p + "dark_raw"], kernel_shape=[1, 1], name=p + "darkness"),
        n("Relu", [p + "dark_raw"], [p + "spot"], name=p + "spot"),
        n("AveragePool", [p + "spot"], [p + "pooled"], kernel_shape=[STRIDE, STRIDE], strides=[STRIDE, STRIDE],
          name=p + "pool"),
        n("Conv", [p + "pooled", p + "sum3_w"], [p + "sum3"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], name=p + "sum3"),
        n("Clip", [p + "sum3", p + "zero", p + "one"], [p + "cell_score"], name=p + "cell_score"),  # (1,1,h,w)
        # cell centres: x = col * stride + stride / 2, y likewise
        n("Shape", [p + "cell_score"], [p + "map_shape"], name=p + "map_shape"),
        n("Gather", [p + "map_shape", p + "i2"], [p + "h"], axis=0, name=p + "h"),
        n("Gather", [p + "map_shape", p + "i3"], [p + "w"], axis=0, name=p + "w"),
        n("Range", [p + "i0", p + "h", p + "i1"], [p + "rows"], name=p + "rows"),
        n("Range", [p + "i0", p + "w", p + "i1"], [p + "cols"], name=p + "cols"),
        n("Cast", [p + "rows"], [p + "rows_f"], to=TensorProto.FLOAT, name=p + "rows_f"),
        n("Cast", [p + "cols"], [p + "cols_f"], to=TensorProto.FLOAT, name=p + "cols_f"),
        n("Mul", [p + "rows_f", p + "stride"], [p + "ys0"], name=p + "ys0"),
        n("Add", [p + "ys0", p + "half_cell"], [p + "ys"], name=p + "ys"),
        n("Mul", [p + "cols_f", p + "stride"], [p + "xs0"], name=p + "xs0"),
        n("Add", [p + "xs0", p + "half_cell"], [p + "xs"], name=p + "xs"),
        n("Unsqueeze", [p + "ys", p + "axes1"], [p + "ys_col"], name=p + "ys_col"),  # (h, 1)
        n("Unsqueeze", [p + "xs", p + "axes0"], [p + "xs_row"], name=p + "xs_row"),  # (1, w)
        n("Add", [p + "ys_col", p + "xs_row"], [p + "zeros_hw0"], name=p + "grid"),
        n("Mul", [p + "zeros_hw0", p + "zero"], [p + "zeros_hw"], name=p + "zeros_hw"),
        n("Add", [p + "zeros_hw", p + "xs_row"], [p + "cx"], name=p + "cx"),  # (h, w)
        n("Add", [p + "zeros_hw", p + "ys_col"], [p + "cy"], name=p + "cy"),
        n("Unsqueeze", [p + "cx", p + "minus1"], [p + "cx1"], name=p + "cx1"),
        n("Unsqueeze", [p + "cy", p + "minus1"], [p + "cy1"], name=p + "cy1"),
        n("Concat", [p + "cx1", p + "cy1", p + "cx1", p + "cy1"], [p + "centres"], axis=-1, name=p + "centres"),
        n("Add", [p + "centres", p + "half_box"], [p + "boxes_hw"], name=p + "boxes_hw"),  # (h, w, 4) xyxy
        # clipped to the frame: [0, W] x [0, H]
        n("Shape", ["image"], [p + "image_shape"], name=p + "image_shape"),
        n("Gather", [p + "image_shape", p + "i1"], [p + "H"], axis=0, name=p + "H"),
        n("Gather", [p + "image_shape", p + "i2"], [p + "W"], axis=0, name=p + "W"),
        n("Cast", [p + "H"], [p + "H_f"], to=TensorProto.FLOAT, name=p + "H_f"),
        n("Cast", [p + "W"], [p + "W_f"], to=TensorProto.FLOAT, name=p + "W_f"),
        n("Unsqueeze", [p + "H_f", p + "axes0"], [p + "H1"], name=p + "H1"),
        n("Unsqueeze", [p + "W_f", p + "axes0"], [p + "W1"], name=p + "W1"),
        n("Concat", [p + "W1", p + "H1", p + "W1", p + "H1"], [p + "limits4"], axis=0, name=p + "limits4"),
        n("Reshape", [p + "limits4", p + "minus1"], [p + "limits"], name=p + "limits"),
        n("Min", [p + "boxes_hw", p + "limits"], [p + "boxes_lo"], name=p + "clip_hi"),
        n("Max", [p + "boxes_lo", p + "zero"], [p + "boxes_clipped"], name=p + "clip_lo"),
        n("Reshape", [p + "boxes_clipped", p + "shape_c4"], [p + "cand_boxes"], name=p + "cand_boxes"),  # (1, C, 4)
        n("Reshape", [p + "cell_score", p + "shape_1c"], [p + "cand_scores"], name=p + "cand_scores"),  # (1, 1, C)
        n("NonMaxSuppression", [p + "cand_boxes", p + "cand_scores", p + "max_out", p + "iou", p + "score_thresh"],
          [p + "selected"], center_point_box=0, name=p + "nms"),
        n("Gather", [p + "selected", p + "col2"], [p + "sel_idx2"], axis=1, name=p + "sel_idx2"),
        n("Reshape", [p + "sel_idx2", p + "minus1"], [p + "sel_idx"], name=p + "sel_idx"),
        n("Reshape", [p + "cand_boxes", p + "minus_4"], [p + "all_boxes"], name=p + "all_boxes"),
        n("Reshape", [p + "cand_scores", p + "minus1"], [p + "all_scores"], name=p + "all_scores"),
        n("Gather", [p + "all_boxes", p + "sel_idx"], [p + "sel_boxes"], axis=0, name=p + "sel_boxes"),
        n("Gather", [p + "all_scores", p + "sel_idx"], [p + "sel_scores"], axis=0, name=p + "sel_scores"),
        # score-descending, as torchvision returns its detections
        n("Shape", [p + "sel_scores"], [p + "n_sel"], name=p + "n_sel"),
        n("TopK", [p + "sel_scores", p + "n_sel"], ["box_scores", p + "order"], axis=0, largest=1, sorted=1,
          name=p + "sort"),
        n("Gather", [p + "sel_boxes", p + "order"], ["boxes"], axis=0, name=p + "boxes"),
    ]
    inits.append(_const(p + "minus_4", np.array([-1, 4], np.int64)))
    outputs = [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["D", 4]),
               helper.make_tensor_value_info("box_scores", TensorProto.FLOAT, ["D"])]
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, "H", "W", 3])
    return image, inits, nodes, outputs


def _pose_graph_parts():
    """The analytic single-animal model's graph, input renamed ``crops``, everything else prefixed ``pose/``."""
    with tempfile.TemporaryDirectory() as tmp:
        single = onnx.load(str(build_analytic_model(Path(tmp) / "pose.onnx", stride=STRIDE)))
    g = single.graph
    keep = {"scoremap", "locref"}

    def rename(name: str) -> str:
        if name == "image":
            return "pose/unpadded"
        return name if (name in keep or not name) else "pose/" + name

    for node in g.node:
        node.name = "pose/" + (node.name or node.op_type + "_" + node.output[0])
        node.input[:] = [rename(x) for x in node.input]
        node.output[:] = [rename(x) for x in node.output]
    for t in g.initializer:
        t.name = rename(t.name)
    # top_down_crop pads with black, which the colour features would take for a dark body spot: paint
    # black pixels background grey first (a trained pose model learns to ignore the padding instead)
    inits = [_const("pose/channel_axis", np.array([-1], np.int64)), _const("pose/zero", np.array(0.0, np.float32)),
             _const("pose/background", np.array(200.0, np.float32))]
    n = helper.make_node
    unpad = [
        n("ReduceSum", ["crops", "pose/channel_axis"], ["pose/pixel_sum"], keepdims=1, name="pose/pixel_sum"),
        n("Equal", ["pose/pixel_sum", "pose/zero"], ["pose/is_padding"], name="pose/is_padding"),
        n("Cast", ["pose/is_padding"], ["pose/padding"], to=TensorProto.FLOAT, name="pose/padding"),
        n("Mul", ["pose/padding", "pose/background"], ["pose/fill"], name="pose/fill"),
        n("Add", ["crops", "pose/fill"], ["pose/unpadded"], name="pose/unpadded"),
    ]
    crops = helper.make_tensor_value_info("crops", TensorProto.FLOAT, ["N", CROP_SIZE, CROP_SIZE, 3])
    return crops, inits + list(g.initializer), unpad + list(g.node), list(g.output)


def topdown_metadata(n_animals: int = 2, **topdown) -> ModelMetadata:
    layout = AnimalLayout(tuple(f"mouse{i + 1}" for i in range(n_animals)), BODYPARTS)
    params = dict(max_individuals=n_animals, crop_width=CROP_SIZE, crop_height=CROP_SIZE, margin=0,
                  with_context=True, box_score_thresh=BOX_SCORE_THRESH, detector_type="analytic",
                  detector_variant="tests/analytic_topdown.py")
    params.update(topdown)
    return ModelMetadata(bodyparts=BODYPARTS, stride=float(STRIDE), locref_stdev=LOCREF_STDEV, layout=layout,
                         topdown=TopDownParams(**params),
                         extra={"builder": "tests/analytic_topdown.py", "batch_invariant": "true"})


def build_analytic_topdown_model(path: str | os.PathLike, n_animals: int = 2, *,
                                 metadata: ModelMetadata | None = None) -> Path:
    """Write the two-stage file (see the module docstring) with :func:`topdown_metadata` by default."""
    image, det_inits, det_nodes, det_outputs = _detector_graph_parts()
    crops, pose_inits, pose_nodes, pose_outputs = _pose_graph_parts()
    graph = helper.make_graph(det_nodes + pose_nodes, "rtpose_analytic_topdown_mice", [image, crops],
                              det_outputs + pose_outputs, initializer=det_inits + pose_inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="rtpose-tests")
    model.ir_version = IR_VERSION
    helper.set_model_props(model, (metadata or topdown_metadata(n_animals)).to_props())
    onnx.checker.check_model(model, full_check=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


__all__ = ["BODYPARTS", "BOX_SIZE", "CROP_SIZE", "build_analytic_topdown_model", "topdown_metadata"]
