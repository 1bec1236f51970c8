"""Float16 conversion of an exported model, keeping float32 input and outputs.

The installed onnx has no float16 converter (it lives in onnxconverter-common,
which is not a dependency), so this is a small one for the ops an rtpose
export contains: float32 initializers and ``Constant`` values become float16,
``Cast(to=FLOAT)`` becomes ``Cast(to=FLOAT16)``, the input is cast to float16
right after entry and each output back to float32 right before exit. Inputs that
ONNX requires to stay float32 (``Resize`` scales) are kept or cast back.
Models with control flow (If/Loop/Scan) are refused rather than half-converted.
"""

from __future__ import annotations

import numpy as np

from rtpose.errors import ExportError

from . import deps

#: op type -> input positions that must stay float32
KEEP_FLOAT32_INPUTS = {"Resize": (2,), "Upsample": (1,)}
CONTROL_FLOW = ("If", "Loop", "Scan")
_FP16_MAX = 65504.0


def to_float16(model, source: str):
    """Return a float16 copy of ``model`` (float32 I/O)."""
    onnx = deps.onnx()
    TensorProto, helper, numpy_helper = onnx.TensorProto, onnx.helper, onnx.numpy_helper
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    flow = sorted({n.op_type for n in g.node if n.op_type in CONTROL_FLOW})
    if flow:
        raise ExportError(f"{source}: float16 export does not handle control flow ({', '.join(flow)}); export "
                          "without --fp16")
    keep32 = set()
    for node in g.node:
        for pos in KEEP_FLOAT32_INPUTS.get(node.op_type, ()):
            if pos < len(node.input) and node.input[pos]:
                keep32.add(node.input[pos])
    overflow = []
    for init in g.initializer:
        if init.data_type == TensorProto.FLOAT and init.name not in keep32:
            arr = numpy_helper.to_array(init)
            if np.any(np.abs(arr) > _FP16_MAX):
                overflow.append(init.name)
                continue
            init.CopyFrom(numpy_helper.from_array(arr.astype(np.float16), init.name))
    if overflow:
        raise ExportError(f"{source}: weights {', '.join(overflow[:5])} exceed the float16 range; export without "
                          "--fp16")
    for node in g.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value" and a.t.data_type == TensorProto.FLOAT and node.output[0] not in keep32:
                    a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype(np.float16)))
        elif node.op_type == "Cast":
            for a in node.attribute:
                if a.name == "to" and a.i == TensorProto.FLOAT:
                    a.i = TensorProto.FLOAT16
        elif node.op_type == "ConstantOfShape":
            for a in node.attribute:
                if a.name == "value" and a.t.data_type == TensorProto.FLOAT:
                    a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype(np.float16)))
    # Computed tensors feeding float32-only inputs: cast back to float32.
    new_nodes = []
    init_names = {i.name for i in g.initializer}
    for node in g.node:
        for pos in KEEP_FLOAT32_INPUTS.get(node.op_type, ()):
            name = node.input[pos] if pos < len(node.input) else ""
            if name and name not in init_names:
                cast_out = f"{name}/as_float32_for_{node.name or node.op_type}"
                new_nodes.append(helper.make_node("Cast", [name], [cast_out], to=TensorProto.FLOAT,
                                                  name=cast_out + "/Cast"))
                node.input[pos] = cast_out
        new_nodes.append(node)
    # Float32 graph inputs -> float16 inside.
    head = []
    for inp in g.input:
        if inp.type.tensor_type.elem_type != TensorProto.FLOAT or inp.name in init_names:
            continue
        inner = inp.name + "/float16"
        for node in new_nodes:
            for i, name in enumerate(node.input):
                if name == inp.name:
                    node.input[i] = inner
        head.append(helper.make_node("Cast", [inp.name], [inner], to=TensorProto.FLOAT16, name=inner + "/Cast"))
    # Float16 results -> float32 graph outputs.
    tail = []
    for out in g.output:
        if out.type.tensor_type.elem_type != TensorProto.FLOAT:
            continue
        inner = out.name + "/float16"
        for node in new_nodes:
            for i, name in enumerate(node.output):
                if name == out.name:
                    node.output[i] = inner
            for i, name in enumerate(node.input):
                if name == out.name:
                    node.input[i] = inner
        tail.append(helper.make_node("Cast", [inner], [out.name], to=TensorProto.FLOAT, name=out.name + "/Cast"))
    del g.node[:]
    g.node.extend(head + new_nodes + tail)
    del g.value_info[:]  # float32 intermediate types are stale; ORT re-infers them
    try:
        onnx.checker.check_model(m, full_check=True)
    except Exception as exc:  # onnx.checker.ValidationError / InferenceError
        raise ExportError(f"{source}: the float16 model does not type-check ({exc}); export without --fp16 and "
                          "please report this") from exc
    return m
