"""DeepLabCut frozen graphs (``snapshot-*.pb``): read, find inputs/outputs, run in TF, convert.

A DeepLabCut export (``deeplabcut.export_model``) freezes one of two graphs:

* ``dlc-maps`` (the default): input ``Placeholder``, outputs ``Sigmoid`` (score
  maps) and ``pose/locref_pred/block4/BiasAdd`` (offsets), or with
  ``location_refinement: false`` ``Sigmoid`` and ``pose/part_pred/block4/BiasAdd``.
* ``dlc-concat-pose`` (``TFGPUinference=True``): one output ``concat_1`` holding
  poses decoded inside the graph. Its score-map and offset tensors are still in
  the graph; rtpose exports those and decodes itself.

Also handled: ``dlc-concat-maps``, one output concatenating ``Sigmoid`` and the
offsets along channels (exported as its two inputs), and ``dlc-concat-split``, a
single 3K-channel concatenated output without those node names, split into
channels [0, K) (score maps) and [K, 3K) (offsets), DeepLabCut's order.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from rtpose.errors import ExportError

from . import batch_mixing, deps, onnx_graph

INPUT_NODE = "Placeholder"
SCOREMAP_NODE = "Sigmoid"
LOCREF_NODE = "pose/locref_pred/block4/BiasAdd"
PART_PRED_NODE = "pose/part_pred/block4/BiasAdd"
_SOURCELESS_OPS = {"Const", "NoOp", "Placeholder", "PlaceholderWithDefault", "VariableV2", "VarHandleOp"}


@dataclass(frozen=True)
class GraphIO:
    input: str  # tensor names ("Placeholder:0")
    scoremap: str | None  # None when split from ``concatenated``
    locref: str | None
    concatenated: str | None  # a (B, h, w, 3K) tensor to split
    variant: str
    note: str


def read_graph_def(pb: Path):
    tf = deps.tensorflow()
    graph_def = tf.compat.v1.GraphDef()
    try:
        data = pb.read_bytes()
        graph_def.ParseFromString(data)
    except OSError as exc:
        raise ExportError(f"{pb}: cannot be read ({exc})") from exc
    except Exception as exc:  # google.protobuf.message.DecodeError and friends
        raise ExportError(f"{pb}: not a TensorFlow frozen graph, the file is corrupt or truncated ({exc}). "
                          "Export the model again with deeplabcut.export_model(config_path).") from exc
    if not graph_def.node:
        raise ExportError(f"{pb}: holds no graph nodes (empty or corrupt file). "
                          "Export the model again with deeplabcut.export_model(config_path).")
    return graph_def


def _base(name: str) -> str:
    return name.lstrip("^").split(":")[0]


def find_io(graph_def, pb: Path, *, location_refinement: bool) -> GraphIO:
    nodes = {n.name: n for n in graph_def.node}
    consumed = {_base(i) for n in graph_def.node for i in n.input}
    terminals = [n for n in graph_def.node if n.name not in consumed and n.op not in _SOURCELESS_OPS]
    placeholders = [n for n in graph_def.node if n.op == "Placeholder"]
    if INPUT_NODE in nodes and nodes[INPUT_NODE].op == "Placeholder":
        inp = INPUT_NODE
    elif len(placeholders) == 1:
        inp = placeholders[0].name
    else:
        found = ", ".join(p.name for p in placeholders) or "none"
        raise ExportError(f"{pb}: expected one input node `Placeholder` (DeepLabCut's image input), found "
                          f"placeholders: {found}. Is this a DeepLabCut export (deeplabcut.export_model)?")
    term_names = [t.name for t in terminals]
    has_score = SCOREMAP_NODE in nodes
    has_locref = LOCREF_NODE in nodes
    if has_score and (has_locref or not location_refinement):
        locref = f"{LOCREF_NODE}:0" if location_refinement else None
        wanted = {SCOREMAP_NODE, LOCREF_NODE} if location_refinement else {SCOREMAP_NODE}
        single = terminals[0] if len(terminals) == 1 else None
        if single is not None and single.op in ("ConcatV2", "Concat") and single.name not in wanted:
            inputs = {_base(i) for i in single.input}
            if wanted <= inputs:
                variant, note = "dlc-concat-maps", (
                    f"one concatenated output `{single.name}` of score maps and offsets; exported its inputs "
                    f"`{SCOREMAP_NODE}` and `{LOCREF_NODE}` as two outputs")
            else:
                variant, note = "dlc-concat-pose", (
                    f"one concatenated output `{single.name}` with poses decoded inside the graph (DeepLabCut "
                    f"TFGPUinference export); exported its score maps `{SCOREMAP_NODE}`"
                    + (f" and offsets `{LOCREF_NODE}`" if location_refinement else "")
                    + " instead, rtpose decodes them itself")
        elif location_refinement:
            variant, note = "dlc-maps", (f"score maps `{SCOREMAP_NODE}` and offsets `{LOCREF_NODE}` "
                                         "(DeepLabCut's standard export)")
        else:
            variant, note = "dlc-scoremap-only", (f"score maps `{SCOREMAP_NODE}` only "
                                                  "(location_refinement: false in pose_cfg.yaml)")
        return GraphIO(f"{inp}:0", f"{SCOREMAP_NODE}:0", locref, None, variant, note)
    if len(terminals) == 1 and terminals[0].op in ("ConcatV2", "Concat") and location_refinement and not has_score:
        t = terminals[0]
        return GraphIO(f"{inp}:0", None, None, f"{t.name}:0", "dlc-concat-split", (
            f"one concatenated output `{t.name}` and no `{SCOREMAP_NODE}` node; split into channels [0, K) as "
            "score maps and [K, 3K) as offsets (DeepLabCut's order; the score maps must already be sigmoid)"))
    missing = [n for n, ok in ((SCOREMAP_NODE, has_score), (LOCREF_NODE, has_locref or not location_refinement))
               if not ok]
    pattern = re.compile(r"sigmoid|biasadd|pred|concat|softmax|output|logits", re.I)
    candidates = term_names + [n for n in nodes if pattern.search(n) and n not in term_names]
    listed = ", ".join(f"`{c}` ({nodes[c].op})" for c in candidates[:12]) or "none"
    fix = ("If the model was trained without location refinement, set `location_refinement: false` in "
           "pose_cfg.yaml. " if missing == [LOCREF_NODE] else "")
    raise ExportError(
        f"{pb}: lacks the DeepLabCut output node(s) {', '.join(f'`{m}`' for m in missing)}. Nodes that look like "
        f"outputs: {listed}. {fix}Export the model with deeplabcut.export_model(config_path); for other TF "
        "models export a SavedModel and describe its outputs (scoremap_output/locref_output) in a YAML file.")


class FrozenGraphRunner:
    """Runs a frozen graph in a TF1-style session: the export check's reference."""

    def __init__(self, graph_def, io: GraphIO, pb: Path):
        tf = deps.tensorflow()
        self._graph = tf.Graph()
        try:
            with self._graph.as_default():
                tf.compat.v1.import_graph_def(graph_def, name="")
        except Exception as exc:  # ValueError/InvalidArgumentError on malformed graphs
            raise ExportError(f"{pb}: TensorFlow cannot load this graph ({exc}); export it again with "
                              "deeplabcut.export_model(config_path) using the TensorFlow version it was trained "
                              "with") from exc
        self._sess = tf.compat.v1.Session(graph=self._graph)
        self._io = io
        self._fetch = [t for t in (io.scoremap, io.locref, io.concatenated) if t]

    def __call__(self, batch):
        arrays = self._sess.run(self._fetch, {self._io.input: batch})
        if self._io.concatenated:
            both = arrays[0]
            k = both.shape[-1] // 3
            return both[..., :k], both[..., k:]
        return arrays[0], (arrays[1] if len(arrays) > 1 else None)

    def close(self):
        self._sess.close()


class _UnsupportedOpCollector(logging.Handler):
    """tf2onnx logs (not raises) ops it cannot map; collect them to name them in the error."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.ops: list[str] = []

    def emit(self, record):
        msg = record.getMessage()
        m = re.search(r"Tensorflow op \[(.+?): (.+?)\] is not supported", msg)
        if m:
            self.ops.append(f"{m.group(2)} (node {m.group(1)})")


def convert(graph_def, io: GraphIO, *, opset: int, num_bodyparts: int, source: str):
    """tf2onnx conversion with the I/O named ``image``, ``scoremap``, ``locref``.

    Returns (ONNX model, names of the batch-mixing nodes rewritten per frame).
    """
    tf2onnx = deps.tf2onnx()
    rename = {io.input: "image"}
    outputs = []
    if io.concatenated:
        rename[io.concatenated] = "maps"
        outputs.append(io.concatenated)
    else:
        rename[io.scoremap] = "scoremap"
        outputs.append(io.scoremap)
        if io.locref:
            rename[io.locref] = "locref"
            outputs.append(io.locref)
    model, rewritten = run_tf2onnx(lambda handlers: tf2onnx.convert.from_graph_def(
        graph_def, input_names=[io.input], output_names=outputs, opset=opset, tensors_to_rename=rename,
        custom_op_handlers=handlers)[0], opset=opset, source=source)
    if io.concatenated:
        onnx_graph.split_channels(model, "maps", num_bodyparts, ("scoremap", "locref"))
    return model, rewritten


def run_tf2onnx(fn, *, opset: int, source: str):
    """Call a tf2onnx conversion ``fn(custom_op_handlers)``; map its failures and unconverted ops to
    :class:`ExportError`. The handlers rewrite batch-mixing nodes per frame (:mod:`.batch_mixing`).

    Returns (ONNX model, names of the nodes rewritten per frame).
    """
    collector = _UnsupportedOpCollector()
    logger = logging.getLogger("tf2onnx")
    logger.addHandler(collector)
    counter = batch_mixing.new_counter()
    try:
        model = fn(batch_mixing.tf2onnx_handlers(counter))
    except ExportError:
        raise
    except Exception as exc:  # tf2onnx raises ValueError/RuntimeError/KeyError/... from deep inside
        ops = f" Ops tf2onnx could not convert: {', '.join(collector.ops)}." if collector.ops else ""
        raise ExportError(
            f"{source}: tf2onnx failed to convert the model at opset {opset}: {type(exc).__name__}: {exc}.{ops} "
            "Try another --opset (tf2onnx 1.17 supports up to 18); if it still fails please report it with the "
            "model attached.") from exc
    finally:
        logger.removeHandler(collector)
    if collector.ops:
        raise ExportError(
            f"{source}: TensorFlow op(s) {', '.join(collector.ops)} have no ONNX conversion at opset {opset}. "
            "Try a newer --opset (up to 18), or replace the op in the model; if it is a standard layer, "
            "please report it with the model attached.")
    onnx_graph.check_supported(model, opset, source)
    if counter.rewritten:
        logging.getLogger(__name__).info("%s: %d training-mode batch norm node(s) rewritten to per-frame statistics",
                                         source, len(counter.rewritten))
    return model, tuple(counter.rewritten)
