"""Edits of a converted ONNX graph: rename I/O, portable padding, split/sigmoid heads, op checks.

Every edit here leaves the computation exactly as it was (or adds an op the
caller asked for); the parity check afterwards proves it numerically.

Padding: tf2onnx writes TF ``SAME`` as ``auto_pad=SAME_UPPER``. onnxruntime
runs some of those only at its top optimisation level, where a fused kernel
replaces the plain one:

* ``MaxPool``/``AveragePool`` with kernel 1 (ResNet's strided shortcut): the
  plain kernel fails with "padding values must be non-negative". For kernel 1
  SAME and VALID give the same output size, ceil(n / stride), and read the same
  pixels, so ``auto_pad=VALID`` is exactly equivalent.
* dilated ``Conv`` (atrous blocks): the NCHWc kernel fails with "Dilation not
  supported for AutoPadType::SAME_UPPER". TF only allows stride 1 with
  dilation, and for stride 1 SAME padding does not depend on the input size:
  ``(k - 1) * d`` in total, the extra pixel at the end. Writing those explicit
  pads is exactly equivalent.
"""

from __future__ import annotations

from rtpose.errors import ExportError

from . import deps

_SAME = (b"SAME_UPPER", b"SAME_LOWER")
POOLS = ("MaxPool", "AveragePool", "LpPool")


def _attr(node, name):
    for a in node.attribute:
        if a.name == name:
            return a
    return None


def _ints(node, name, default):
    a = _attr(node, name)
    return list(a.ints) if a is not None and a.ints else list(default)


def _graphs(graph):
    """The graph and every subgraph (If/Loop bodies), depth first."""
    yield graph
    for node in graph.node:
        for a in node.attribute:
            if a.g is not None and a.g.node:
                yield from _graphs(a.g)
            for g in a.graphs:
                yield from _graphs(g)


def fix_padding(model) -> list[str]:
    """Rewrite ``auto_pad=SAME_*`` where onnxruntime needs it (see module doc); returns what changed."""
    helper = deps.onnx().helper
    changed = []
    for graph in _graphs(model.graph):
        for node in graph.node:
            pad = _attr(node, "auto_pad")
            if pad is None or pad.s not in _SAME:
                continue
            kernel = _ints(node, "kernel_shape", ())
            if node.op_type in POOLS and kernel and all(k == 1 for k in kernel):
                pad.s = b"VALID"
                changed.append(f"{node.name or node.op_type}: {node.op_type} kernel 1 auto_pad SAME -> VALID")
                continue
            if node.op_type != "Conv":
                continue
            rank = len(kernel)
            dilations = _ints(node, "dilations", [1] * rank)
            strides = _ints(node, "strides", [1] * rank)
            if not kernel or all(d == 1 for d in dilations) or any(s != 1 for s in strides):
                continue
            totals = [(k - 1) * d for k, d in zip(kernel, dilations)]
            upper = pad.s == b"SAME_UPPER"
            begins = [t // 2 if upper else t - t // 2 for t in totals]
            ends = [t - b for t, b in zip(totals, begins)]
            node.attribute.remove(pad)
            node.attribute.append(helper.make_attribute("pads", begins + ends))
            changed.append(f"{node.name or node.op_type}: dilated Conv auto_pad SAME -> pads {begins + ends}")
    return changed


def rename_value(model, old: str, new: str) -> None:
    """Rename a tensor everywhere it appears (node I/O, graph I/O, value_info, initializers)."""
    if old == new:
        return
    for graph in _graphs(model.graph):
        for node in graph.node:
            for i, name in enumerate(node.input):
                if name == old:
                    node.input[i] = new
            for i, name in enumerate(node.output):
                if name == old:
                    node.output[i] = new
        for vi in list(graph.input) + list(graph.output) + list(graph.value_info):
            if vi.name == old:
                vi.name = new
        for init in graph.initializer:
            if init.name == old:
                init.name = new


def set_dims(value_info, dims) -> None:
    """Set a graph I/O's shape: ints are fixed sizes, strings symbolic (dynamic) names, None unknown."""
    shape = value_info.type.tensor_type.shape
    while len(shape.dim) < len(dims):
        shape.dim.add()
    while len(shape.dim) > len(dims):
        shape.dim.pop()
    for dim, want in zip(shape.dim, dims):
        dim.Clear()
        if isinstance(want, int):
            dim.dim_value = want
        elif isinstance(want, str):
            dim.dim_param = want


def split_channels(model, output: str, k: int, names: tuple[str, str]) -> None:
    """Replace one (B, h, w, 3K) output by two: channels [0, K) and [K, 3K)."""
    onnx = deps.onnx()
    helper, np_helper = onnx.helper, onnx.numpy_helper
    import numpy as np

    graph = model.graph
    out_vi = next(o for o in graph.output if o.name == output)
    inner = output + "/concatenated"
    rename_value(model, output, inner)
    consts = {
        "starts_a": [0], "ends_a": [k], "starts_b": [k], "ends_b": [3 * k], "axes": [3],
    }
    for key, value in consts.items():
        graph.initializer.append(np_helper.from_array(np.asarray(value, dtype=np.int64), f"{output}/split_{key}"))
    graph.node.append(helper.make_node("Slice", [inner, f"{output}/split_starts_a", f"{output}/split_ends_a",
                                                 f"{output}/split_axes"], [names[0]], name=f"{names[0]}/Slice"))
    graph.node.append(helper.make_node("Slice", [inner, f"{output}/split_starts_b", f"{output}/split_ends_b",
                                                 f"{output}/split_axes"], [names[1]], name=f"{names[1]}/Slice"))
    graph.output.remove(next(o for o in graph.output if o.name == inner))
    for name in names:
        vi = graph.output.add()
        vi.CopyFrom(out_vi)
        vi.name = name


def append_sigmoid(model, output: str) -> None:
    """Make graph output ``output`` the sigmoid of what it was (for heads that emit logits)."""
    helper = deps.onnx().helper
    logits = output + "/logits"
    rename_value(model, output, logits)
    model.graph.node.append(helper.make_node("Sigmoid", [logits], [output], name=output + "/Sigmoid"))
    for vi in model.graph.output:
        if vi.name == logits:
            vi.name = output


def unsupported_ops(model, opset: int) -> list[tuple[str, str]]:
    """(node name, op type) of nodes that are not standard ONNX ops available at ``opset``.

    tf2onnx leaves a TF op it cannot map in the graph under its TF name, and logs
    instead of failing; this finds them.
    """
    defs = deps.onnx().defs
    bad = []
    for graph in _graphs(model.graph):
        for node in graph.node:
            if node.domain not in ("", "ai.onnx"):
                bad.append((node.name, f"{node.domain}.{node.op_type}"))
                continue
            try:
                defs.get_schema(node.op_type, opset, node.domain)
            except Exception:  # onnx raises SchemaError (not exported under one stable name)
                bad.append((node.name, node.op_type))
    return bad


def check_supported(model, opset: int, source: str) -> None:
    bad = unsupported_ops(model, opset)
    if bad:
        ops = sorted({op for _, op in bad})
        where = ", ".join(name for name, _ in bad[:5]) + (" ..." if len(bad) > 5 else "")
        raise ExportError(
            f"{source}: TensorFlow op(s) {', '.join(ops)} could not be converted to ONNX opset {opset} "
            f"(node {where}). Try a newer opset (--opset 18, the highest tf2onnx 1.17 supports), or replace the op "
            "in the model; if it is a standard layer, please report it with the model attached.")


def load_rtpose_file(src):
    """(ModelProto, ModelMetadata) of an rtpose ``.onnx`` file; :class:`ExportError` if it cannot be read."""
    from pathlib import Path

    from rtpose.metadata import ModelMetadata

    onnx = deps.onnx()
    src = Path(src)
    try:
        model = onnx.load(str(src))
    except Exception as exc:  # DecodeError, OSError
        raise ExportError(f"{src}: cannot be read as an ONNX model ({exc})") from exc
    return model, ModelMetadata.from_props({p.key: p.value for p in model.metadata_props}, source=str(src))
