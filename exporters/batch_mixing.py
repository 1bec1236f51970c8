"""Nodes whose result mixes the frames of a batch, and their per-frame rewrite at conversion.

A pose model must give a frame the same pose whichever other frames share its
batch: DeepLabCut-Live runs one frame at a time, rtpose batches offline. Some
real exports break that. DeepLabCut's TF MobileNetV2 builder (tf-slim with
``is_training=True``) freezes its batch norms as ``FusedBatchNorm*`` nodes with
``is_training=True``: they normalise with the mean and variance *of the tensor
being processed*, over batch, height and width. With one frame (DeepLabCut-Live,
and DeepLabCut itself at batch size 1) that is each frame's own statistics over
H x W. tf2onnx reproduces the batch-wide version (about ten small ops per node),
so batched frames change each other's poses.

:func:`find` lists such nodes in a TensorFlow ``GraphDef``;
:func:`tf2onnx_handlers` converts each training-mode batch norm to one ONNX
``InstanceNormalization`` with the node's scale, offset and epsilon: statistics
over each frame's own H x W, per channel, biased variance, exactly what TF
computes for a batch of one frame. Inference-mode batch norms go to tf2onnx's
own handler unchanged. Whatever else might mix frames is caught by the export's
batch-invariance check (:func:`rtpose.exporters.parity.batch_invariance`),
which refuses the export.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from rtpose.errors import ExportError

BATCH_NORM_OPS = ("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MixingNode:
    name: str
    op: str
    reason: str


def _is_training(node) -> bool:
    # TF's default for the attribute is True; frozen graphs may omit attributes left at their default.
    return bool(node.attr["is_training"].b) if "is_training" in node.attr else True


def find(graph_def) -> list[MixingNode]:
    """Training-mode batch norms in ``graph_def`` (the nodes :func:`tf2onnx_handlers` rewrites)."""
    return [MixingNode(n.name, n.op, "batch norm with is_training=True (statistics of the processed tensor)")
            for n in graph_def.node if n.op in BATCH_NORM_OPS and _is_training(n)]


class _Counter:
    def __init__(self):
        self.rewritten: list[str] = []


def tf2onnx_handlers(counter: _Counter | None = None) -> dict:
    """``custom_op_handlers`` for tf2onnx: training-mode batch norm -> per-frame InstanceNormalization."""
    from tf2onnx.onnx_opset.nn import BatchNorm, conv_convert_inputs

    def handler(ctx, node, name, args):
        if not node.get_attr_value("is_training", True):
            BatchNorm.version_9(ctx, node)
            return
        for extra_output in node.output[1:]:
            if ctx.find_output_consumers(extra_output):
                raise ExportError(
                    f"batch norm node {node.name} ({node.type}, is_training=True) has its batch statistics "
                    "consumed by other nodes; rtpose cannot make it per-frame. Export the model with "
                    "deeplabcut.export_model(config_path) (inference graph) and report this with the model")
        shape = ctx.get_shape(node.input[0])
        if shape is None or len(shape) != 4:
            raise ExportError(f"batch norm node {node.name} ({node.type}, is_training=True) has an input of rank "
                              f"{None if shape is None else len(shape)}; rtpose rewrites only 4-D (image) batch norms")
        epsilon = node.get_attr_value("epsilon", 1e-3)
        node.type = "InstanceNormalization"
        ctx.replace_inputs(node, node.input[:3])  # x, scale, offset; the (empty) mean/variance inputs go
        node.output = [node.output[0]]
        for attr in ("is_training", "exponential_avg_factor", "U", "T"):
            if attr in node.attr:
                del node.attr[attr]
        node.set_attr("epsilon", float(epsilon))
        conv_convert_inputs(ctx, node, with_kernel=False, spatial=2)  # NHWC -> NCHW around the node
        if counter is not None:
            counter.rewritten.append(node.name)

    return {op: (handler, []) for op in BATCH_NORM_OPS}


def new_counter() -> _Counter:
    return _Counter()
