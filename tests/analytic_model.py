"""Hand-built ONNX pose models for tests: no training, no TensorFlow.

:func:`build_analytic_model` writes a small graph that really finds the
synthetic mouse of :mod:`rtpose.drivers.sources.synthetic` (red head disk,
dark shaded body, blue tail disk) and describes itself with rtpose metadata,
exactly like an exported DeepLabCut model:

* input ``image``: float32 NHWC ``(N, H, W, 3)``, 0–255, RGB (or BGR), dynamic N/H/W;
* a 1x1 Conv and a Relu compute per-pixel features (linear in R, G, B, then
  thresholded): redness ``R - (G+B)/2``, darkness ``255 + G - R - B``,
  blueness ``B - (R+G)/2`` (the red and blue disks are *not* dark by this
  measure; only the body's round centre spot is dark enough to count);
* ``scoremap`` ``(N, H//stride, W//stride, 3)``: AveragePool(stride) of the
  features, a per-channel scale/offset, Sigmoid — for head, body, tail;
* ``locref`` ``(N, h, w, 6)`` (optional): for every cell, the centroid of the
  feature in a window of a few cells around the cell, as the offset
  ``(dx, dy)`` from ``col*stride + stride/2`` (DeepLabCut's decode convention),
  divided by ``locref_stdev``. Decoding the argmax cell with these offsets
  recovers the drawn positions to well under a pixel.

The ``build_*`` helpers below it write deliberately broken or minimal models
for the model loader's error tests.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from rtpose.metadata import ModelMetadata

OPSET = 17
IR_VERSION = 8  # readable by every onnxruntime rtpose supports

BODYPARTS = ("head", "body", "tail")
LOCREF_STDEV = 7.2801

#: Feature weights per output channel (head, body, tail) over input (R, G, B), and biases:
#: redness R - (G+B)/2, darkness 255 + G - R - B, blueness B - (R+G)/2.
_FEATURE_W_RGB = np.array(
    [
        [1.0, -0.5, -0.5],
        [-1.0, 1.0, -1.0],
        [-0.5, -0.5, 1.0],
    ],
    dtype=np.float32,
)
_FEATURE_B = np.array([0.0, 255.0, 0.0], dtype=np.float32)
#: Only what exceeds these counts (Relu): the red disk (redness 180), the body's
#: centre spot (darkness 235; its surrounding rings are 200 and less, the
#: background 55, the coloured disks 35) and the blue disk (blueness 180).
_THRESHOLD = np.array([60.0, 215.0, 60.0], dtype=np.float32)
#: Score = sigmoid((pooled_feature - centre) / width); a fully covered cell pools to 120 / 20 / 120.
_SCORE_CENTRE = np.array([40.0, 7.0, 40.0], dtype=np.float32)
_SCORE_WIDTH = np.array([10.0, 2.0, 10.0], dtype=np.float32)


def _feature_weights(input_color: str) -> np.ndarray:
    if input_color == "RGB":
        return _FEATURE_W_RGB
    if input_color == "BGR":
        return _FEATURE_W_RGB[:, ::-1].copy()
    raise ValueError(f"input_color must be 'RGB' or 'BGR', got {input_color!r}")


def _const(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.ascontiguousarray(array), name=name)


def _image_input(name: str = "image", hw: tuple[int, int] | None = None) -> onnx.ValueInfoProto:
    h, w = hw if hw is not None else ("H", "W")
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", h, w, 3])


def _nhwc_output(name: str, channels: int) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", "h", "w", channels])


def _save(graph: onnx.GraphProto, path: str | os.PathLike, metadata: ModelMetadata | None) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="rtpose-tests")
    model.ir_version = IR_VERSION
    if metadata is not None:
        helper.set_model_props(model, metadata.to_props())
    onnx.checker.check_model(model, full_check=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def window_cells(stride: int) -> int:
    """Padding, in cells, of the centroid window on each side of a cell.

    The window must hold a whole disk (radius <= 7 px, plus anti-aliasing) whose
    centre lies within about half a cell of the argmax cell.
    """
    return math.ceil(0.5 + 10.0 / stride)


def _locref_nodes(stride: int) -> tuple[list, list]:
    """Centroid of each thresholded feature in a window around every cell, as DeepLabCut offsets.

    Separable: a horizontal strided Conv gives per-row sums ``Σw`` and ``Σw·dx``, a
    vertical one turns them into ``Σw``, ``Σw·dx`` and ``Σw·dy`` per cell. Output
    cell ``c`` sees input pixels ``p = c*stride - m*stride + j``; pixel ``p`` is
    centred at ``x = p`` and DeepLabCut decodes ``x = c*stride + stride/2 + dx``,
    so the kernel weights are ``dx = j - m*stride - stride/2``.
    """
    m = window_cells(stride)
    k = (2 * m + 1) * stride
    pad = m * stride
    offs = np.arange(k, dtype=np.float32) - pad - stride / 2.0
    ones = np.ones(k, np.float32)
    horizontal = np.stack([ones, offs] * 3).reshape(6, 1, 1, k)  # per feature: row Σw, row Σw·dx
    vertical = np.zeros((9, 2, k, 1), np.float32)  # per feature: Σw, Σw·dx, Σw·dy
    for f in range(3):
        vertical[3 * f + 0, 0, :, 0] = ones
        vertical[3 * f + 1, 1, :, 0] = ones
        vertical[3 * f + 2, 0, :, 0] = offs
    inits = [
        _const("centroid_h_w", horizontal),
        _const("centroid_v_w", vertical),
        _const("centroid_num_idx", np.array([1, 2, 4, 5, 7, 8], np.int64)),  # x0 y0 x1 y1 x2 y2
        _const("centroid_den_idx", np.array([0, 0, 3, 3, 6, 6], np.int64)),
        _const("centroid_eps", np.array(1e-3, np.float32)),
        _const("inv_locref_stdev", np.array(1.0 / LOCREF_STDEV, np.float32)),
    ]
    nodes = [
        helper.make_node(
            "Conv", ["features", "centroid_h_w"], ["row_moments"],
            kernel_shape=[1, k], strides=[1, stride], pads=[0, pad, 0, pad], group=3,
        ),
        helper.make_node(
            "Conv", ["row_moments", "centroid_v_w"], ["moments"],
            kernel_shape=[k, 1], strides=[stride, 1], pads=[pad, 0, pad, 0], group=3,
        ),
        helper.make_node("Gather", ["moments", "centroid_num_idx"], ["moment1"], axis=1),
        helper.make_node("Gather", ["moments", "centroid_den_idx"], ["moment0"], axis=1),
        helper.make_node("Add", ["moment0", "centroid_eps"], ["moment0_safe"]),
        helper.make_node("Div", ["moment1", "moment0_safe"], ["offset_px"]),
        helper.make_node("Mul", ["offset_px", "inv_locref_stdev"], ["locref_nchw"]),
        helper.make_node("Transpose", ["locref_nchw"], ["locref"], perm=[0, 2, 3, 1]),
    ]
    return inits, nodes


def build_analytic_model(
    path: str | os.PathLike,
    *,
    stride: int = 8,
    with_locref: bool = True,
    input_color: str = "RGB",
) -> Path:
    """Write the analytic head/body/tail model to ``path`` and return it.

    Decoding its outputs the DeepLabCut way (argmax cell ``(r, c)``, then
    ``x = c*stride + stride/2 + dx*locref_stdev``) gives the synthetic source's
    ``truth()``: within ``stride`` px from the score maps alone, to a fraction of
    a pixel with the offsets.
    """
    stride = int(stride)
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    w = _feature_weights(input_color)
    inits = [
        _const("feat_w", w[:, :, None, None]),
        _const("feat_b", _FEATURE_B - _THRESHOLD),
        _const("score_scale", (1.0 / _SCORE_WIDTH).reshape(1, 3, 1, 1)),
        _const("score_offset", (-_SCORE_CENTRE / _SCORE_WIDTH).reshape(1, 3, 1, 1)),
    ]
    nodes = [
        helper.make_node("Transpose", ["image"], ["x_nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["x_nchw", "feat_w", "feat_b"], ["raw_features"], kernel_shape=[1, 1]),
        helper.make_node("Relu", ["raw_features"], ["features"]),
        helper.make_node("AveragePool", ["features"], ["pooled"], kernel_shape=[stride, stride], strides=[stride, stride]),
        helper.make_node("Mul", ["pooled", "score_scale"], ["scaled"]),
        helper.make_node("Add", ["scaled", "score_offset"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["scores_nchw"]),
        helper.make_node("Transpose", ["scores_nchw"], ["scoremap"], perm=[0, 2, 3, 1]),
    ]
    outputs = [_nhwc_output("scoremap", 3)]
    if with_locref:
        more_inits, more_nodes = _locref_nodes(stride)
        inits += more_inits
        nodes += more_nodes
        outputs.append(_nhwc_output("locref", 6))
    graph = helper.make_graph(nodes, "rtpose_analytic_mouse", [_image_input()], outputs, initializer=inits)
    meta = ModelMetadata(
        bodyparts=BODYPARTS,
        stride=float(stride),
        locref_stdev=LOCREF_STDEV,
        location_refinement=with_locref,
        scoremap_output="scoremap",
        locref_output="locref" if with_locref else None,
        input_name="image",
        input_color=input_color,
        preprocessing_in_graph=True,
        # Per-pixel convolution, pooling and per-cell windows: no op spans frames, so the model is
        # batch-invariant by construction (tests/test_analytic_model.py runs the exporter's check on it).
        extra={"builder": "tests/analytic_model.py", "batch_invariant": "true"},
    )
    return _save(graph, path, meta)


# -- minimal and broken models for the model loader's error tests -----------------------


def build_zero_model(
    path: str | os.PathLike,
    num_bodyparts: int = 3,
    stride: int = 8,
    *,
    with_locref: bool = True,
    metadata: bool = True,
    input_name: str = "image",
    input_hw: tuple[int, int] | None = None,
    scoremap_name: str = "scoremap",
    locref_name: str = "locref",
    scoremap_channels: int | None = None,
    metadata_overrides: dict | None = None,
) -> Path:
    """A model whose outputs are all zeros, with knobs to break it on purpose.

    Args:
        num_bodyparts: K; bodyparts are named ``bp0 .. bp{K-1}`` in the metadata.
        with_locref: add a ``(N, h, w, 2K)`` offset output.
        metadata: False writes no rtpose metadata at all.
        input_name: graph input name (metadata always says ``image`` unless overridden).
        input_hw: fixed input height/width instead of dynamic.
        scoremap_name, locref_name: graph output names (metadata keeps ``scoremap``/``locref``
            unless overridden), e.g. ``scoremap_name="heatmap"`` makes the scoremap the metadata
            names missing from the graph.
        scoremap_channels: channels of the score map output (default K), e.g. K+1 for a mismatch.
        metadata_overrides: keyword arguments of :class:`ModelMetadata` to replace.
    """
    stride = int(stride)
    kc = num_bodyparts if scoremap_channels is None else int(scoremap_channels)
    out_channels = kc + (2 * num_bodyparts if with_locref else 0)
    inits = [_const("zero_w", np.zeros((out_channels, 3, 1, 1), np.float32))]
    nodes = [
        helper.make_node("Transpose", [input_name], ["x_nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("AveragePool", ["x_nchw"], ["pooled"], kernel_shape=[stride, stride], strides=[stride, stride]),
        helper.make_node("Conv", ["pooled", "zero_w"], ["maps_nchw"], kernel_shape=[1, 1]),
        helper.make_node("Transpose", ["maps_nchw"], ["maps"], perm=[0, 2, 3, 1]),
    ]
    outputs = [_nhwc_output(scoremap_name, kc)]
    if with_locref:
        inits += [
            _const("split_sizes", np.array([kc, 2 * num_bodyparts], np.int64)),
        ]
        nodes.append(helper.make_node("Split", ["maps", "split_sizes"], [scoremap_name, locref_name], axis=3))
        outputs.append(_nhwc_output(locref_name, 2 * num_bodyparts))
    else:
        nodes.append(helper.make_node("Identity", ["maps"], [scoremap_name]))
    graph = helper.make_graph(nodes, "rtpose_zero_model", [_image_input(input_name, input_hw)], outputs, initializer=inits)
    meta = None
    if metadata:
        fields = dict(
            bodyparts=tuple(f"bp{i}" for i in range(num_bodyparts)),
            stride=float(stride),
            location_refinement=with_locref,
            scoremap_output="scoremap",
            locref_output="locref" if with_locref else None,
            input_name="image",
            extra={"batch_invariant": "true"},  # all zeros whatever the batch
        )
        fields.update(metadata_overrides or {})
        meta = ModelMetadata(**fields)
    return _save(graph, path, meta)


def build_model_without_metadata(path: str | os.PathLike) -> Path:
    """A valid pose-shaped model with no rtpose metadata (loader must say to re-export)."""
    return build_zero_model(path, metadata=False)


def build_model_missing_scoremap(path: str | os.PathLike) -> Path:
    """Metadata names output ``scoremap``, but the graph calls it ``heatmap``."""
    return build_zero_model(path, scoremap_name="heatmap")


def build_model_missing_locref(path: str | os.PathLike) -> Path:
    """Metadata names output ``locref``, but the graph has only the score map."""
    return build_zero_model(
        path, with_locref=False, metadata_overrides={"location_refinement": True, "locref_output": "locref"}
    )


def build_model_wrong_channels(path: str | os.PathLike, num_bodyparts: int = 3) -> Path:
    """The score map has K+1 channels while the metadata lists K bodyparts."""
    return build_zero_model(path, num_bodyparts, scoremap_channels=num_bodyparts + 1)


def build_model_with_raw_props(path: str | os.PathLike, props: dict[str, str]) -> Path:
    """A zero model whose ``metadata_props`` are exactly ``props`` (malformed metadata tests)."""
    path = build_zero_model(path, metadata=False)
    model = onnx.load(str(path))
    helper.set_model_props(model, props)
    onnx.save(model, str(path))
    return path
