"""Keras models (in memory or ``.keras``/``.h5``) and TF SavedModels: run in TF, convert.

Outputs are matched by name when the model description names them
(``scoremap_output``/``locref_output``), otherwise by channel count: K score-map
channels, 2K offset channels, or a single 3K output split in two. Never by
position: tf2onnx routes order outputs differently.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rtpose.errors import ExportError

from . import deps, onnx_graph
from .tf_frozen import run_tf2onnx


@dataclass(frozen=True)
class OutputMap:
    scoremap: str | None  # TF-side output names
    locref: str | None
    concatenated: str | None
    note: str


def identify_outputs(channels: dict[str, int | None], k: int, *, scoremap_hint=None, locref_hint=None,
                     source: str) -> OutputMap:
    """Pick the score-map and offset outputs among ``{name: channels}``."""
    listed = ", ".join(f"`{n}` ({c if c is not None else '?'} channels)" for n, c in channels.items())

    def by_hint(hint, what):
        matches = [n for n in channels if n == hint or n.split(":")[0] == hint or n.split("/")[0] == hint]
        if len(matches) != 1:
            raise ExportError(f"{source}: {what} `{hint}` names no single model output; outputs are {listed}")
        return matches[0]

    if scoremap_hint:
        score = by_hint(scoremap_hint, "scoremap_output")
        locref = by_hint(locref_hint, "locref_output") if locref_hint else None
        return OutputMap(score, locref, None, f"outputs named in the description: score maps `{score}`"
                         + (f", offsets `{locref}`" if locref else ""))
    with_k = [n for n, c in channels.items() if c == k]
    with_2k = [n for n, c in channels.items() if c == 2 * k]
    with_3k = [n for n, c in channels.items() if c == 3 * k]
    if len(with_k) == 1 and len(with_2k) == 1 and len(channels) == 2:
        return OutputMap(with_k[0], with_2k[0], None,
                         f"score maps `{with_k[0]}` ({k} channels) and offsets `{with_2k[0]}` ({2 * k} channels)")
    if len(channels) == 1 and with_3k:
        return OutputMap(None, None, with_3k[0], f"one output `{with_3k[0]}` with {3 * k} channels, split into "
                         f"[0, {k}) score maps and [{k}, {3 * k}) offsets")
    if len(channels) == 1 and with_k:
        return OutputMap(with_k[0], None, None, f"score maps `{with_k[0]}` only (no offset output)")
    raise ExportError(
        f"{source}: cannot tell which output is which for {k} bodyparts: outputs are {listed}; expected {k} "
        f"(score maps) and {2 * k} (offsets) channels, or one output of {3 * k}. Name them with `scoremap_output:` "
        "and `locref_output:` in the model description YAML (or check the bodyparts list).")


def _keras():
    deps.tensorflow()
    import keras

    return keras


def load_keras_file(path: Path):
    keras = _keras()
    try:
        return keras.models.load_model(str(path), compile=False)
    except Exception as exc:  # ValueError/OSError/TypeError depending on what is wrong
        raise ExportError(f"{path}: Keras cannot load this model ({type(exc).__name__}: {exc}). If it uses custom "
                          "layers, export a SavedModel instead (model.export(folder)).") from exc


class KerasModel:
    """An in-memory Keras model: reference runner and tf2onnx conversion."""

    def __init__(self, model, source: str):
        self.model = model
        self.source = source
        self.names = [str(n) for n in _output_names(model)]
        shape = tuple(model.inputs[0].shape) if getattr(model, "inputs", None) else (None, None, None, 3)
        if len(shape) != 4 or shape[-1] != 3:
            raise ExportError(f"{source}: the model input has shape {shape}; rtpose needs (batch, height, width, 3)")
        self.input_hw = (shape[1], shape[2])

    def channels(self) -> dict[str, int | None]:
        return {n: (None if t.shape[-1] is None else int(t.shape[-1])) for n, t in zip(self.names, self.model.outputs)}

    def __call__(self, batch) -> dict[str, np.ndarray]:
        out = self.model(batch, training=False)
        if isinstance(out, dict):
            return {str(k): _numpy(v) for k, v in out.items()}
        if not isinstance(out, (list, tuple)):
            out = [out]
        return {n: _numpy(v) for n, v in zip(self.names, out)}

    def convert(self, opset: int):
        tf = deps.tensorflow()
        tf2onnx = deps.tf2onnx()
        h, w = self.input_hw
        spec = (tf.TensorSpec((None, h, w, 3), tf.float32, name="image"),)
        model, rewritten = run_tf2onnx(lambda handlers: tf2onnx.convert.from_keras(
            self.model, input_signature=spec, opset=opset, custom_op_handlers=handlers)[0],
            opset=opset, source=self.source)
        return model, _match_onnx_names(model, self.names, self.source), rewritten


def _numpy(tensor) -> np.ndarray:
    return tensor.numpy() if hasattr(tensor, "numpy") else np.asarray(tensor)


def _output_names(model) -> list[str]:
    names = getattr(model, "output_names", None)
    if names:
        return list(names)
    return [t.name.split("/")[0].split(":")[0] for t in model.outputs]


class SavedModel:
    """A TF SavedModel's serving signature: reference runner and tf2onnx conversion."""

    def __init__(self, path: Path, signature: str = "serving_default"):
        tf = deps.tensorflow()
        self.path = path
        self.source = str(path)
        try:
            self.loaded = tf.saved_model.load(str(path))
        except Exception as exc:
            raise ExportError(f"{path}: TensorFlow cannot load this SavedModel ({type(exc).__name__}: {exc}); "
                              "save it again with model.export(folder) or tf.saved_model.save") from exc
        sigs = getattr(self.loaded, "signatures", {})
        if signature not in sigs:
            raise ExportError(f"{path}: has no `{signature}` signature (found: {', '.join(sigs) or 'none'}); "
                              "save it with model.export(folder), which writes serving_default")
        self.signature = signature
        self.fn = sigs[signature]
        args, kwargs = self.fn.structured_input_signature
        specs = dict(kwargs)
        if len(specs) != 1:
            raise ExportError(f"{path}: the serving signature takes {len(specs)} inputs ({', '.join(specs)}); "
                              "rtpose needs one image input")
        (self.input_key, spec), = specs.items()
        if len(spec.shape) != 4 or spec.shape[-1] != 3:
            raise ExportError(f"{path}: input `{self.input_key}` has shape {spec.shape}; rtpose needs (batch, height, "
                              "width, 3)")
        self.input_hw = (spec.shape[1], spec.shape[2])
        self.names = list(self.fn.structured_outputs)

    def channels(self) -> dict[str, int | None]:
        return {n: (None if s.shape[-1] is None else int(s.shape[-1])) for n, s in self.fn.structured_outputs.items()}

    def __call__(self, batch) -> dict[str, np.ndarray]:
        tf = deps.tensorflow()
        out = self.fn(**{self.input_key: tf.constant(batch)})
        return {k: _numpy(v) for k, v in out.items()}

    def convert(self, opset: int):
        tf2onnx = deps.tf2onnx()
        from tf2onnx import tf_loader

        def run(handlers):
            graph_def, inputs, outputs, rename = tf_loader.from_saved_model(
                str(self.path), None, None, signatures=[self.signature], return_tensors_to_rename=True)
            rename = dict(rename)
            rename[inputs[0]] = "image"
            return tf2onnx.convert.from_graph_def(graph_def, input_names=inputs, output_names=outputs, opset=opset,
                                                  tensors_to_rename=rename, custom_op_handlers=handlers)[0]

        model, rewritten = run_tf2onnx(run, opset=opset, source=self.source)
        return model, _match_onnx_names(model, self.names, self.source), rewritten


def _match_onnx_names(model, tf_names: list[str], source: str) -> dict[str, str]:
    """TF output name -> ONNX output name (tf2onnx keeps structured names, sometimes with ``:0``)."""
    onnx_names = [o.name for o in model.graph.output]
    mapping = {}
    for name in tf_names:
        hits = [o for o in onnx_names if o == name or o.split(":")[0] == name]
        if len(hits) != 1:
            raise ExportError(f"{source}: cannot find model output `{name}` among the converted ONNX outputs "
                              f"{onnx_names}; please report this")
        mapping[name] = hits[0]
    return mapping


def finish_outputs(model, mapping: dict[str, str], outputs: OutputMap, k: int, apply_sigmoid: bool) -> None:
    """Rename/split the converted outputs to ``scoremap``/``locref``; drop outputs rtpose does not use."""
    keep = {outputs.scoremap, outputs.locref, outputs.concatenated} - {None}
    for vi in list(model.graph.output):
        if vi.name not in {mapping[n] for n in keep}:
            model.graph.output.remove(vi)
    if outputs.concatenated:
        onnx_graph.rename_value(model, mapping[outputs.concatenated], "maps")
        onnx_graph.split_channels(model, "maps", k, ("scoremap", "locref"))
    else:
        onnx_graph.rename_value(model, mapping[outputs.scoremap], "scoremap")
        if outputs.locref:
            onnx_graph.rename_value(model, mapping[outputs.locref], "locref")
    if apply_sigmoid:
        onnx_graph.append_sigmoid(model, "scoremap")


def reference_maps(arrays: dict[str, np.ndarray], outputs: OutputMap, k: int, apply_sigmoid: bool):
    """TF outputs -> (scoremap, locref) the way the ONNX model will return them."""
    if outputs.concatenated:
        both = arrays[outputs.concatenated]
        score, locref = both[..., :k], both[..., k:]
    else:
        score = arrays[outputs.scoremap]
        locref = arrays[outputs.locref] if outputs.locref else None
    if apply_sigmoid:
        score = (1.0 / (1.0 + np.exp(-score.astype(np.float64)))).astype(np.float32)
    return score, locref
