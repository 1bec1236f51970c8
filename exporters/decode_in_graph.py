"""DeepLabCut's decode inside the ONNX graph: a batch returns (B, K, 3) poses instead of full maps.

:func:`add_decode` appends to an rtpose model the nodes that compute, per image
``b`` and body part ``k``, exactly what :class:`rtpose.decode.Decoder` (Numba)
computes from the score maps and offsets the graph already outputs::

    cell       = first maximum of scoremap[b, :, :, k] in row-major order
                 (np.argmax rule: the first NaN if the map holds one)
    row, col   = cell // w, cell - row * w
    dx, dy     = float32(locref[b, row, col, 2k : 2k+2]) * float32(locref_stdev)   # float32 product
    x          = (float64(col) * stride + stride / 2) + float64(dx)                 # float64
    y          = (float64(row) * stride + stride / 2) + float64(dy)
    likelihood = float64(scoremap[b, row, col, k]), clipped to [0, 1] (NaN kept) when
                 the metadata says ``clip_scores``

into a new float64 output ``poses`` of shape (B, K, 3). The same operations in
the same precision and order, so on onnxruntime's CPU provider the result is
bit-identical to the Numba decoder (tests/test_decode_in_graph.py proves it on
random maps with ties, NaNs and infinities, and on the bundled model's maps of
real frames).

The first maximum is found without ``ArgMax``, whose tie rule is an
implementation detail on GPUs (cuDNN's reduction, TensorRT's TopK)::

    m     = ReduceMax over the cells                     (B, 1, K)
    first = ReduceMin(Where(scoremap == m, cell_index, BIG))

which picks the lowest cell index among the maxima on any execution provider.
Indices are int32 (ONNX Runtime's CUDA reductions have int32 kernels, not
int64). The maps stay graph outputs: the runtime fetches only ``poses`` per
batch (ONNX Runtime copies only the outputs asked for), and the maps when it
checks the model at load time.

The decode nodes are appended last, after ``--fp16`` (which casts the maps
back to float32 before they leave the network, so the decode still runs on
float32 maps) and ``--input uint8-bgr`` (which only changes the input): the
options compose.

:func:`add_to_file` adds the decode to an existing rtpose ``.onnx`` (e.g. the
bundled model) and checks it the same way before writing.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from rtpose.errors import ExportError
from rtpose.metadata import ModelMetadata

from . import deps, onnx_graph

#: Name of the (B, K, 3) float64 output the decode adds.
POSE_OUTPUT = "poses"
#: What ``rtpose.extra.decode_in_graph`` says in a model with the decode inside.
DECODE_NOTE = ("poses (B, K, 3) float64 decoded inside the graph: first maximum, offsets at that cell, "
               "x = col*stride + stride/2 + dx*locref_stdev")
_BIG = np.iinfo(np.int32).max


def _opset(model) -> int:
    for op in model.opset_import:
        if op.domain in ("", "ai.onnx"):
            return int(op.version)
    raise ExportError("the model imports no standard ONNX opset; please report this")


def decode_nodes(scoremap: str, locref: str | None, *, num_bodyparts: int, stride: float, locref_stdev: float,
                 clip_scores: bool, opset: int, output: str = POSE_OUTPUT, prefix: str = "decode/"):
    """Nodes and initializers that decode ``scoremap`` (+ ``locref``) into ``output``; see the module doc."""
    onnx = deps.onnx()
    helper, numpy_helper, TensorProto = onnx.helper, onnx.numpy_helper, onnx.TensorProto
    if opset < 13:
        raise ExportError(f"decoding inside the graph needs ONNX opset 13 or later; the model has {opset}")
    k = int(num_bodyparts)
    nodes, inits = [], []

    def name(s: str) -> str:
        return prefix + s

    def const(s: str, value, dtype) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name(s)))
        return name(s)

    def node(op: str, inputs, out: str, **attrs) -> str:
        nodes.append(helper.make_node(op, list(inputs), [name(out)], name=name(out), **attrs))
        return name(out)

    axis1 = const("axis1", [1], np.int64)  # Squeeze/Unsqueeze take axes as an input from opset 13
    axis2 = const("axis2", [2], np.int64)

    def reduce(op: str, x: str, out: str) -> str:  # over the cells (axis 1), keepdims
        if opset >= 18:  # ReduceMax/ReduceMin take axes as an input from opset 18
            return node(op, [x, axis1], out, keepdims=1)
        return node(op, [x], out, axes=[1], keepdims=1)

    # ---- maps as (B, cells, K), cells in row-major order
    shape = node("Shape", [scoremap], "map_shape")
    s_flat = node("Reshape", [scoremap, const("flat_shape", [0, -1, k], np.int64)], "scores_flat")
    width = node("Gather", [shape, const("width_index", 2, np.int64)], "map_width")
    ncells = node("Mul", [node("Gather", [shape, const("height_index", 1, np.int64)], "map_height"), width], "cells")
    cells = node("Range", [const("zero", 0, np.int64), ncells, const("one", 1, np.int64)], "cell_range")
    cells32 = node("Reshape", [node("Cast", [cells], "cell_range_i32", to=TensorProto.INT32),
                               const("cell_shape", [1, -1, 1], np.int64)], "cell_index")
    big = const("big", _BIG, np.int32)
    # ---- first maximum, or first NaN (np.argmax)
    peak = reduce("ReduceMax", s_flat, "peak")
    first_max = reduce("ReduceMin", node("Where", [node("Equal", [s_flat, peak], "is_peak"), cells32, big],
                                         "peak_cells"), "first_peak")
    first_nan = reduce("ReduceMin", node("Where", [node("IsNaN", [s_flat], "is_nan"), cells32, big],
                                         "nan_cells"), "first_nan")
    cell = node("Where", [node("Less", [first_nan, big], "has_nan"), first_nan, first_max], "cell")  # (B, 1, K)
    cell64 = node("Cast", [cell], "cell_i64", to=TensorProto.INT64)
    # ---- row, col -> pixel centre of the cell, float64
    width32 = node("Cast", [width], "map_width_i32", to=TensorProto.INT32)
    row = node("Div", [cell, width32], "row")
    col = node("Sub", [cell, node("Mul", [row, width32], "row_start")], "col")
    stride64 = const("stride", float(stride), np.float64)
    half64 = const("half_stride", 0.5 * float(stride), np.float64)

    def centre(idx: str, out: str) -> str:
        as64 = node("Cast", [node("Squeeze", [idx, axis1], out + "_cell")], out + "_f64", to=TensorProto.DOUBLE)
        return node("Add", [node("Mul", [as64, stride64], out + "_scaled"), half64], out + "_centre")

    x = centre(col, "x")
    y = centre(row, "y")
    if locref is not None:
        l_flat = node("Reshape", [locref, const("offset_flat_shape", [0, -1, 2 * k], np.int64)], "offsets_flat")
        # (B, 1, K) -> (B, 1, K, 1) -> (B, 1, K, 2) -> (B, 1, 2K): channels 2k and 2k+1 at cell k
        c4 = node("Unsqueeze", [cell64, const("axis3", [3], np.int64)], "cell_4d")
        pairs = node("Reshape", [node("Concat", [c4, c4], "cell_pairs", axis=3),
                                 const("pair_shape", [0, 1, 2 * k], np.int64)], "offset_index")
        off = node("Reshape", [node("GatherElements", [l_flat, pairs], "offsets_at_peak", axis=1),
                               const("offset_shape", [0, k, 2], np.int64)], "offsets")  # (B, K, 2) float32
        scaled = node("Mul", [off, const("locref_stdev", np.float32(locref_stdev), np.float32)], "offsets_px")
        dx = node("Cast", [node("Gather", [scaled, const("dx_index", 0, np.int64)], "dx", axis=2)], "dx_f64",
                  to=TensorProto.DOUBLE)
        dy = node("Cast", [node("Gather", [scaled, const("dy_index", 1, np.int64)], "dy", axis=2)], "dy_f64",
                  to=TensorProto.DOUBLE)
        x = node("Add", [x, dx], "x")
        y = node("Add", [y, dy], "y")
    score = node("Cast", [node("Squeeze", [node("GatherElements", [s_flat, cell64], "score_at_peak", axis=1), axis1],
                               "score")], "score_f64", to=TensorProto.DOUBLE)
    if clip_scores:  # as rtpose.decode: below 0 -> 0, above 1 -> 1, NaN stays NaN
        zero64, one64 = const("clip_low", 0.0, np.float64), const("clip_high", 1.0, np.float64)
        score = node("Where", [node("Less", [score, zero64], "below"), zero64,
                               node("Where", [node("Greater", [score, one64], "above"), one64, score], "clipped_high")],
                     "likelihood")
    parts = [node("Unsqueeze", [v, axis2], f"{tag}_column") for v, tag in ((x, "x"), (y, "y"), (score, "p"))]
    nodes.append(helper.make_node("Concat", parts, [output], name=name("poses"), axis=2))
    return nodes, inits


def add_decode(model, meta: ModelMetadata, *, source: str = "model"):
    """A copy of ``model`` with the decode appended (output :data:`POSE_OUTPUT`) and the metadata saying so.

    Returns ``(model, metadata)``. The score-map and offset outputs are kept.
    """
    onnx = deps.onnx()
    if meta.pose_output:
        raise ExportError(f"{source} already decodes inside the graph (output {meta.pose_output!r})")
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    names = {o.name for o in g.output}
    wanted = [meta.scoremap_output] + ([meta.locref_output] if meta.location_refinement else [])
    missing = [w for w in wanted if w not in names]
    if missing:
        raise ExportError(f"{source}: outputs {missing} named in the metadata are not in the graph; re-export it")
    if POSE_OUTPUT in names or any(POSE_OUTPUT in n.output for n in g.node):
        raise ExportError(f"{source}: the graph already has a tensor named {POSE_OUTPUT!r}")
    nodes, inits = decode_nodes(meta.scoremap_output, meta.locref_output if meta.location_refinement else None,
                                num_bodyparts=meta.num_bodyparts, stride=meta.stride,
                                locref_stdev=meta.locref_stdev, clip_scores=meta.clip_scores, opset=_opset(out))
    g.node.extend(nodes)
    g.initializer.extend(inits)
    batch_dim = g.input[0].type.tensor_type.shape.dim[0] if g.input[0].type.tensor_type.shape.dim else None
    batch = (batch_dim.dim_value or batch_dim.dim_param or "batch") if batch_dim is not None else "batch"
    g.output.append(onnx.helper.make_tensor_value_info(POSE_OUTPUT, onnx.TensorProto.DOUBLE,
                                                       [batch, meta.num_bodyparts, 3]))
    try:
        onnx.checker.check_model(out, full_check=True)
    except Exception as exc:  # ValidationError / InferenceError
        raise ExportError(f"{source}: adding the decode made an invalid model ({exc}); please report this") from exc
    extra = dict(meta.extra, decode_in_graph=DECODE_NOTE)
    return out, dataclasses.replace(meta, pose_output=POSE_OUTPUT, extra=extra)


@dataclasses.dataclass(frozen=True)
class DecodeCheck:
    """The in-graph decode against :class:`rtpose.decode.Decoder` on the same maps (onnxruntime CPU)."""

    points: int
    mismatches: int
    frames: int

    @property
    def ok(self) -> bool:
        return self.points > 0 and self.mismatches == 0

    def note(self) -> str:
        return (f"bit-identical to rtpose.decode on {self.points} points ({self.frames} frames, onnxruntime CPU)"
                if self.ok else f"{self.mismatches} of {self.points} points differ from rtpose.decode")


def same_bits(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise: equal float64 bit patterns, every NaN counting as equal to every NaN."""
    a = np.ascontiguousarray(a, np.float64)
    b = np.ascontiguousarray(b, np.float64)
    return (a.view(np.int64) == b.view(np.int64)) | (np.isnan(a) & np.isnan(b))


def check_decode(model_bytes: bytes, meta: ModelMetadata, batches, *, source: str = "model") -> DecodeCheck:
    """Run the model on ``batches`` (what its input takes) and compare ``poses`` with the Numba decoder
    applied to the maps of the same run, bit for bit."""
    from rtpose.decode import Decoder

    ort = deps.onnxruntime()
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])
    names = [meta.pose_output, meta.scoremap_output] + ([meta.locref_output] if meta.location_refinement else [])
    points = mismatches = frames = 0
    for batch in batches:
        outs = sess.run(names, {meta.input_name: batch})
        poses, scmap = outs[0], np.ascontiguousarray(outs[1], np.float32)
        locref = np.ascontiguousarray(outs[2], np.float32) if meta.location_refinement else None
        n = scmap.shape[0]
        expected = np.empty((n, meta.num_bodyparts, 3), np.float64)
        Decoder(meta.stride, meta.locref_stdev, meta.num_bodyparts, n, clip_scores=meta.clip_scores).decode(
            scmap, locref, expected)
        if poses.shape != expected.shape or poses.dtype != np.float64:
            raise ExportError(f"{source}: the in-graph decode returned {poses.dtype} {poses.shape}, expected float64 "
                              f"{expected.shape}; please report this")
        mismatches += int((~same_bits(poses, expected).all(axis=-1)).sum())
        points += n * meta.num_bodyparts
        frames += n
    return DecodeCheck(points=points, mismatches=mismatches, frames=frames)


def model_batches(model, meta: ModelMetadata) -> list[np.ndarray]:
    """Synthetic check batches in what ``model``'s input takes (float32 RGB/BGR 0-255, or uint8)."""
    from . import frames as frames_mod

    onnx = deps.onnx()
    inp = next(i for i in model.graph.input if i.name == meta.input_name)
    dims = inp.type.tensor_type.shape.dim
    fixed = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    h, w = (fixed[1], fixed[2]) if len(fixed) == 4 else (None, None)
    sizes = ((h, w),) * 3 if h and w else frames_mod.SYNTHETIC_SIZES + frames_mod.BATCH_CHECK_SIZES
    batches = frames_mod.batches(frames_mod.synthetic_frames(sizes, seed=3))
    if fixed and isinstance(fixed[0], int) and fixed[0]:
        batches = [np.ascontiguousarray(np.resize(b, (fixed[0], *b.shape[1:]))) for b in batches]
    rgb = meta.input_color == "RGB"
    out = []
    for b in batches:
        if inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8:
            out.append(np.ascontiguousarray(np.clip(np.rint(b), 0, 255).astype(np.uint8)[..., ::-1]
                                            if rgb else np.clip(np.rint(b), 0, 255).astype(np.uint8)))
        else:
            out.append(b if rgb else np.ascontiguousarray(b[..., ::-1]))
    return out


def add_checked(model, meta: ModelMetadata, *, source: str = "model", batches=None):
    """:func:`add_decode`, then :func:`check_decode` on ``batches`` (default: synthetic frames);
    :class:`ExportError` (nothing to write) when a single point differs. Returns ``(model, metadata)``."""
    if meta.multianimal:
        raise ExportError(f"{source}: a multi-animal model (individuals {', '.join(meta.layout.individuals)}) is "
                          "decoded by rtpose's multi-animal decoder, not inside the graph; drop --decode-in-graph")
    out, new_meta = add_decode(model, meta, source=source)
    check = check_decode(out.SerializeToString(), new_meta, batches or model_batches(out, new_meta), source=source)
    if not check.ok:
        raise ExportError(f"{source}: the decode inside the graph does not reproduce rtpose's decoder: {check.note()}. "
                          "Nothing was written; please report this, and export without --decode-in-graph meanwhile.")
    return out, dataclasses.replace(new_meta, extra=dict(new_meta.extra, decode_in_graph_check=check.note()))


def add_to_file(src, out=None) -> tuple[Path, ModelMetadata]:
    """Add the decode to an rtpose ``.onnx`` file (``out``: default ``<src>-decode.onnx`` beside it)."""
    src = Path(src)
    model, meta = onnx_graph.load_rtpose_file(src)
    out = Path(out) if out else src.with_name(src.stem + "-decode.onnx")
    if out.resolve() == src.resolve():
        raise ExportError(f"{out}: give another --out; the file with the decode inside does not replace its source")
    model, meta = add_checked(model, meta, source=str(src))
    from .api import _write

    _write(model, meta, out, str(src), doc_string=model.doc_string or None)
    return out, meta


__all__ = ["POSE_OUTPUT", "DECODE_NOTE", "DecodeCheck", "add_checked", "add_decode", "add_to_file", "check_decode",
           "decode_nodes", "model_batches", "same_bits"]
