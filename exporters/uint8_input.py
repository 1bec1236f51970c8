"""A uint8 BGR model input: channel order, cast and scaling move into the graph.

OpenCV hands rtpose frames as uint8 BGR. A float32 RGB model makes the host
swap channels and cast every pixel before each frame (~0.9 ms at 640x480, the
largest engine cost). :func:`to_uint8_bgr` puts that work in front of the
network instead, so the host only copies the frame (``OnnxPoseModel.load_frame``
sees a uint8 BGR input and does a plain copy):

    image (N, H, W, 3) uint8 BGR
      -> Gather(channels [2, 1, 0])      only for models that expect RGB
      -> Cast(float32)
      -> the original network (its own normalisation - DeepLabCut's mean
         subtraction, a Keras Rescaling - unchanged, inside the graph as before)

rtpose feeds every model pixel values 0-255, so that is the only range a
model may expect here.

The conversion is exact (a uint8 value is exactly representable in float32),
so the exporter checks the result against TensorFlow with the same tolerance
as any export, on the same check frames given as uint8 BGR.
"""

from __future__ import annotations

import numpy as np

from rtpose.errors import ExportError

from . import deps

#: What ``rtpose.extra.input_conversion`` says in a converted model.
CONVERSION_NOTE = "uint8 BGR input; channel order and cast to float32 inside the graph"


def to_uint8_bgr(model, *, input_color: str, input_range: str, input_name: str = "image"):
    """A copy of ``model`` (float32 NHWC input ``input_name``) whose input is uint8 BGR of the same name."""
    onnx = deps.onnx()
    from onnx import TensorProto, helper, numpy_helper

    if input_range != "0-255":
        raise ExportError(f"a uint8 input needs a model that takes pixel values 0-255; this one is described as "
                          f"taking {input_range!r}. Export it without the uint8 input option")
    if input_color not in ("RGB", "BGR"):
        raise ExportError(f"unknown input colour order {input_color!r}; expected RGB or BGR")
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    inputs = [i for i in g.input if i.name == input_name]
    if len(inputs) != 1 or inputs[0].type.tensor_type.elem_type != TensorProto.FLOAT:
        raise ExportError(f"the converted model has no float32 input {input_name!r}; please report this")
    inner = f"{input_name}_float32"
    for node in g.node:
        node.input[:] = [inner if name == input_name else name for name in node.input]
    for o in g.output:
        if o.name == input_name:  # pragma: no cover - a pose model never outputs its input
            raise ExportError("the model's input is also an output; please report this")
    inputs[0].type.tensor_type.elem_type = TensorProto.UINT8
    nodes, inits = [], []
    current = input_name
    if input_color == "RGB":
        inits.append(numpy_helper.from_array(np.array([2, 1, 0], np.int64), f"{input_name}_bgr_to_rgb"))
        nodes.append(helper.make_node("Gather", [current, f"{input_name}_bgr_to_rgb"], [f"{input_name}_rgb_u8"],
                                      axis=3, name=f"{input_name}_bgr_to_rgb"))
        current = f"{input_name}_rgb_u8"
    nodes.append(helper.make_node("Cast", [current], [inner], to=TensorProto.FLOAT, name=f"{input_name}_cast"))
    old_nodes = list(g.node)
    del g.node[:]
    g.node.extend(nodes + old_nodes)
    g.initializer.extend(inits)
    try:
        onnx.checker.check_model(out)
    except Exception as exc:
        raise ExportError(f"adding the uint8 BGR input made an invalid model ({exc}); please report this") from exc
    return out


def uint8_bgr_batches(batches) -> list[np.ndarray]:
    """Check batches (float32 RGB 0-255, integer-valued) as the uint8 BGR frames a camera gives."""
    out = []
    for b in batches:
        if not np.array_equal(b, np.rint(b)):
            raise ExportError("check frames for a uint8-input export must hold whole pixel values; please report this")
        out.append(np.ascontiguousarray(b[..., ::-1]).astype(np.uint8))
    return out
