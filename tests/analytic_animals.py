"""A hand-built multi-animal ONNX model for tests: it really finds the synthetic source's mice.

DeepLabCut's bottom-up multi-animal models output score maps, location-refinement offsets and
part-affinity fields (PAFs); :func:`build_analytic_animals_model` writes a graph with the same three
outputs, computed from colours instead of learnt, for the synthetic mice of
:mod:`rtpose.drivers.sources.synthetic` (``animals=N``), so the whole multi-animal path (decoding,
assembly, tracking, rules, sinks) can be tested on frames with known identities:

* ``scoremap`` (N, h, w, 3): head/body/tail scores as in :mod:`analytic_model` (steeper, so the
  background is far below DeepLabCut's peak threshold 0.01), then DeepLabCut's Gaussian smoothing
  (``PartAffinityFieldPredictor.make_2d_gaussian_kernel``), which rtpose's multi-animal exports put in
  the graph (:mod:`rtpose.multianimal.params`);
* ``locref`` (N, h, w, 6): the analytic centroid offsets of :mod:`analytic_model`;
* ``paf`` (N, h, w, 2E) for the E = 3 limbs of DeepLabCut's default graph for three parts
  ((head, body), (head, tail), (body, tail)): the three parts of a synthetic mouse lie on its axis, so
  every limb's field is the same unit vector along the animal's heading (from the centroid of the blue
  tail disk to that of the red head disk in a window around the cell), masked to the animal's drawn
  shape. Between two animals the field is zero, so DeepLabCut's line integral links the parts of one
  animal and not those of two.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from onnx import helper

from rtpose.metadata import ModelMetadata
from rtpose.multianimal.layout import AnimalLayout
from rtpose.multianimal.params import AssemblyParams

from analytic_model import (BODYPARTS, LOCREF_STDEV, _const, _feature_weights, _image_input, _locref_nodes,
                            _nhwc_output, _save)

#: DeepLabCut's default PAF graph for three body parts (every pair), in PAF channel order.
GRAPH = ((0, 1), (0, 2), (1, 2))
#: Steeper scores than the single-animal model's: the background (pooled feature 0) scores ~3e-4.
_SCORE_CENTRE = np.array([40.0, 7.0, 40.0], np.float32)
_SCORE_WIDTH = np.array([5.0, 1.0, 5.0], np.float32)
#: "Part of an animal": darkness 255 + G - R - B above this (body rings 150-235, background 55, disks 35).
_BODY_THRESHOLD = 100.0
#: A cell counts fully as animal once its pooled animal features reach this.
_MASK_FULL = 30.0
#: Half-width, in cells, of the window whose head/tail centroids give the heading (a whole mouse at 640x480).
HEADING_WINDOW_CELLS = 8


def gaussian_kernel(sigma: float, size: int) -> np.ndarray:
    """DeepLabCut 3.0.2's ``make_2d_gaussian_kernel`` (a softmax of -k²/2σ², outer product), float32."""
    k = np.arange(-size // 2 + 1, size // 2 + 1, dtype=np.float32) ** 2
    e = np.exp(-k / (2 * sigma ** 2) - np.max(-k / (2 * sigma ** 2)))
    k1 = (e / e.sum()).astype(np.float32)
    return np.outer(k1, k1).astype(np.float32)


def _heading_nodes(stride: int) -> tuple[list, list]:
    """``paf`` from the pooled head/tail features and an animal mask (see the module docstring)."""
    m = HEADING_WINDOW_CELLS
    size = 2 * m + 1
    off = np.arange(size, dtype=np.float32) - m
    ones = np.ones((size, size), np.float32)
    moments = np.stack([ones, np.broadcast_to(off, (size, size)), np.broadcast_to(off[:, None], (size, size))])
    kernels = np.concatenate([moments, moments])[:, None]  # (6, 1, size, size): Σw, Σw·dx, Σw·dy per feature
    inits = [
        _const("ends_idx", np.array([0, 2], np.int64)),  # head (red) and tail (blue) features
        _const("heading_w", kernels),
        _const("head_num_idx", np.array([1, 2], np.int64)), _const("head_den_idx", np.array([0, 0], np.int64)),
        _const("tail_num_idx", np.array([4, 5], np.int64)), _const("tail_den_idx", np.array([3, 3], np.int64)),
        _const("heading_eps", np.array(1e-3, np.float32)),
        _const("body_w", np.array(_feature_weights("RGB")[1], np.float32).reshape(1, 3, 1, 1)),
        _const("body_b", np.array([255.0 - _BODY_THRESHOLD], np.float32)),
        _const("mask_scale", np.array(1.0 / _MASK_FULL, np.float32)),
        _const("zero", np.array(0.0, np.float32)), _const("one", np.array(1.0, np.float32)),
        _const("limb_repeats", np.array([1, len(GRAPH), 1, 1], np.int64)),
    ]
    nodes = [
        helper.make_node("Gather", ["pooled", "ends_idx"], ["ends"], axis=1),
        helper.make_node("Conv", ["ends", "heading_w"], ["heading_moments"], kernel_shape=[size, size],
                         pads=[m, m, m, m], group=2),
        helper.make_node("Gather", ["heading_moments", "head_num_idx"], ["head_m1"], axis=1),
        helper.make_node("Gather", ["heading_moments", "head_den_idx"], ["head_m0"], axis=1),
        helper.make_node("Gather", ["heading_moments", "tail_num_idx"], ["tail_m1"], axis=1),
        helper.make_node("Gather", ["heading_moments", "tail_den_idx"], ["tail_m0"], axis=1),
        helper.make_node("Add", ["head_m0", "heading_eps"], ["head_m0_safe"]),
        helper.make_node("Add", ["tail_m0", "heading_eps"], ["tail_m0_safe"]),
        helper.make_node("Div", ["head_m1", "head_m0_safe"], ["head_at"]),
        helper.make_node("Div", ["tail_m1", "tail_m0_safe"], ["tail_at"]),
        helper.make_node("Sub", ["head_at", "tail_at"], ["heading"]),
        helper.make_node("Mul", ["heading", "heading"], ["heading_sq"]),
        helper.make_node("ReduceSum", ["heading_sq"], ["heading_len_sq"], keepdims=1, noop_with_empty_axes=0),
        helper.make_node("Sqrt", ["heading_len_sq"], ["heading_len"]),
        helper.make_node("Add", ["heading_len", "heading_eps"], ["heading_len_safe"]),
        helper.make_node("Div", ["heading", "heading_len_safe"], ["heading_unit"]),
        # the animal's drawn shape: dark body, plus its red and blue disks
        helper.make_node("Conv", ["x_nchw", "body_w", "body_b"], ["body_raw"], kernel_shape=[1, 1]),
        helper.make_node("Relu", ["body_raw"], ["body_feature"]),
        helper.make_node("AveragePool", ["body_feature"], ["body_pooled"], kernel_shape=[stride, stride],
                         strides=[stride, stride]),
        helper.make_node("ReduceSum", ["ends"], ["ends_pooled"], keepdims=1, noop_with_empty_axes=0),
        helper.make_node("Add", ["body_pooled", "ends_pooled"], ["animal_pooled"]),
        helper.make_node("Mul", ["animal_pooled", "mask_scale"], ["mask_raw"]),
        helper.make_node("Clip", ["mask_raw", "zero", "one"], ["mask"]),
        helper.make_node("Mul", ["heading_unit", "mask"], ["limb_field"]),
        helper.make_node("Tile", ["limb_field", "limb_repeats"], ["paf_nchw"]),
        helper.make_node("Transpose", ["paf_nchw"], ["paf"], perm=[0, 2, 3, 1]),
    ]
    # ReduceSum over channels: opset 13+ takes the axes as an input
    inits.append(_const("channel_axis", np.array([1], np.int64)))
    for node in nodes:
        if node.op_type == "ReduceSum":
            node.input.append("channel_axis")
    return inits, nodes


def build_analytic_animals_graph(stride: int = 8, nms_radius: int = 5, sigma: float = 1.0):
    """The graph (see the module docstring); inputs NHWC RGB 0-255 of any size and batch."""
    w = _feature_weights("RGB")
    size = 2 * nms_radius + 1
    inits = [
        _const("feat_w", w[:, :, None, None]),
        _const("feat_b", np.array([0.0, 255.0, 0.0], np.float32) - np.array([60.0, 215.0, 60.0], np.float32)),
        _const("score_scale", (1.0 / _SCORE_WIDTH).reshape(1, 3, 1, 1)),
        _const("score_offset", (-_SCORE_CENTRE / _SCORE_WIDTH).reshape(1, 3, 1, 1)),
        _const("smooth_w", np.repeat(gaussian_kernel(sigma, size)[None, None], 3, axis=0)),
    ]
    nodes = [
        helper.make_node("Transpose", ["image"], ["x_nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["x_nchw", "feat_w", "feat_b"], ["raw_features"], kernel_shape=[1, 1]),
        helper.make_node("Relu", ["raw_features"], ["features"]),
        helper.make_node("AveragePool", ["features"], ["pooled"], kernel_shape=[stride, stride],
                         strides=[stride, stride]),
        helper.make_node("Mul", ["pooled", "score_scale"], ["scaled"]),
        helper.make_node("Add", ["scaled", "score_offset"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["scores_nchw"]),
        helper.make_node("Conv", ["scores_nchw", "smooth_w"], ["smoothed_nchw"], kernel_shape=[size, size],
                         pads=[nms_radius] * 4, group=3),
        helper.make_node("Transpose", ["smoothed_nchw"], ["scoremap"], perm=[0, 2, 3, 1]),
    ]
    for more_inits, more_nodes in (_locref_nodes(stride), _heading_nodes(stride)):
        inits += more_inits
        nodes += more_nodes
    outputs = [_nhwc_output("scoremap", 3), _nhwc_output("locref", 6), _nhwc_output("paf", 2 * len(GRAPH))]
    return helper.make_graph(nodes, "rtpose_analytic_mice", [_image_input()], outputs, initializer=inits)


def animals_metadata(n_animals: int, stride: int = 8, **assembly) -> ModelMetadata:
    """rtpose metadata of the model: individuals ``mouse1..mouseN``, head/body/tail, DeepLabCut's default
    assembly parameters (overridable), declared batch-invariant (per-pixel and windowed ops only)."""
    layout = AnimalLayout(tuple(f"mouse{i + 1}" for i in range(n_animals)), BODYPARTS)
    params = AssemblyParams(num_animals=n_animals, graph=GRAPH, stride=float(stride), locref_stdev=LOCREF_STDEV,
                            **assembly)
    return ModelMetadata(bodyparts=BODYPARTS, stride=float(stride), locref_stdev=LOCREF_STDEV, layout=layout,
                         paf_output="paf", assembly=params,
                         extra={"builder": "tests/analytic_animals.py", "batch_invariant": "true"})


def build_analytic_animals_model(path: str | os.PathLike, n_animals: int = 2, *, stride: int = 8,
                                 metadata: ModelMetadata | None = None) -> Path:
    """Write the model for up to ``n_animals`` animals (metadata: :func:`animals_metadata` by default)."""
    return _save(build_analytic_animals_graph(stride), path, metadata or animals_metadata(n_animals, stride))


__all__ = ["BODYPARTS", "GRAPH", "LOCREF_STDEV", "animals_metadata", "build_analytic_animals_graph",
           "build_analytic_animals_model", "gaussian_kernel"]
