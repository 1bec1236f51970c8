"""Export entry points: a source on disk (:func:`export_model`) or an in-memory Keras model
(:func:`export_keras_model`) -> one self-describing, self-checked ONNX file.

Every export: converts with tf2onnx (DeepLabCut 3 ``.pt`` files: torch.onnx,
:mod:`.torch_dlc3`), names the input ``image`` and the outputs
``scoremap`` (B, h, w, K) and ``locref`` (B, h, w, 2K) with dynamic batch and
size, rewrites paddings onnxruntime mishandles (:mod:`.onnx_graph`), compares
ONNX with TensorFlow on check frames at every onnxruntime optimisation level
(:mod:`.parity`), and only then writes the file, metadata inside
(:class:`rtpose.metadata.ModelMetadata`). A failed check raises
:class:`~rtpose.errors.ExportError` and writes nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import numpy as np

from rtpose import __version__
from rtpose.errors import ExportError
from rtpose.metadata import ModelMetadata

from . import decode_in_graph as decode_mod
from . import deps, fp16 as fp16_mod, frames as frames_mod, onnx_graph, parity, sources, uint8_input
from .report import BATCH_TOLERANCE, FP16_TOLERANCE, FP32_TOLERANCE, ExportReport

#: Bumped whenever a change makes earlier exports wrong or incomplete; part of the cache key, so
#: models cached by an earlier revision are exported again. 2: per-frame rewrite of training-mode
#: batch norms, batch-invariance check, ``batch_invariant`` declared in the metadata.
EXPORTER_REVISION = 2
DEFAULT_OPSET = 17
MIN_OPSET, MAX_OPSET = 13, 18  # tf2onnx 1.17 converts up to 18; Slice/Split inputs need 13+


def export_model(src, out=None, *, fp16: bool = False, opset: int = DEFAULT_OPSET, check_images=None,
                 bodyparts=None, stride=None, locref_stdev=None, description=None,
                 extra: dict | None = None, uint8_bgr: bool = False, decode_in_graph: bool = False) -> ExportReport:
    """Export a DeepLabCut exported-model folder (TF or DeepLabCut 3), a TF SavedModel or a Keras file to ONNX.

    Args:
        src: DeepLabCut folder (``pose_cfg.yaml`` + ``snapshot-*.pb``) or its ``.pb``, a DeepLabCut 3
            exported-model folder (one ``.pt``) or its ``.pt``, a SavedModel folder, or a ``.keras``/``.h5``
            file; or an ``.onnx`` file an earlier rtpose wrote (:func:`recheck_onnx`).
        out: the ``.onnx`` file to write; default: beside ``src``, named after it (``-fp16`` added).
        fp16: store weights as float16 (input and outputs stay float32); checked against FP32.
        opset: ONNX opset, 13-18.
        check_images: image files/folders for the numeric check; default: synthetic frames.
        bodyparts, stride, locref_stdev: override (or, for SavedModel/Keras, supply) the description.
        description: YAML/JSON describing a SavedModel/Keras model (default: found beside it).
        extra: more ``rtpose.extra.*`` metadata (e.g. training facts), strings.
        uint8_bgr: the model takes uint8 BGR frames as OpenCV gives them; channel order, cast and
            scaling run inside the graph (:mod:`.uint8_input`), checked like the float model.
        decode_in_graph: the model also outputs (B, K, 3) poses decoded inside the graph
            (:mod:`.decode_in_graph`), checked bit for bit against rtpose's decoder. For an rtpose
            ``.onnx`` source, this adds the decode to that file's model (written to ``out``).
    """
    _check_opset(opset)
    if Path(src).suffix.lower() == ".onnx" and decode_in_graph:
        if uint8_bgr or fp16:
            raise ExportError("an existing .onnx file only gets the decode added; export the source model again "
                              "for --fp16 or --input uint8-bgr (with --decode-in-graph)")
        return add_decode_to_onnx(src, out)
    if Path(src).suffix.lower() == ".onnx":
        if uint8_bgr:
            raise ExportError("a uint8 BGR input is added when exporting from the source model; export the "
                              "DeepLabCut folder, SavedModel or Keras file again with it")
        return recheck_onnx(src, out, check_images=check_images)
    source = sources.locate(src, description)
    deps.require_export(source.kind)
    check_frames = frames_mod.load_images(check_images) if check_images else None
    if source.kind == "dlc3":
        if uint8_bgr:
            raise ExportError(f"{source.model_file}: --input uint8-bgr is not available for DeepLabCut 3 models yet; "
                              "export without it")
        if bodyparts is not None or stride is not None or locref_stdev is not None or description is not None:
            raise ExportError(f"{source.model_file}: a DeepLabCut 3 model describes itself (its config is inside "
                              "the .pt); drop --bodyparts/--stride/--locref-stdev/--meta")
        return _export_dlc3(source, Path(out) if out else default_out(source, fp16, decode=decode_in_graph), fp16=fp16,
                            opset=opset, check_frames=check_frames, user_extra=extra, decode_in_graph=decode_in_graph)
    desc = sources.describe(source, bodyparts=bodyparts, stride=stride, locref_stdev=locref_stdev)
    out = Path(out) if out else default_out(source, fp16, uint8_bgr, decode_in_graph)
    if source.kind == "dlc":
        return _export_dlc(source, desc, out, fp16=fp16, opset=opset, check_frames=check_frames, user_extra=extra,
                           uint8_bgr=uint8_bgr, decode_in_graph=decode_in_graph)
    from . import tf_keras

    if source.kind == "savedmodel":
        wrapped = tf_keras.SavedModel(source.model_file)
    else:
        wrapped = tf_keras.KerasModel(tf_keras.load_keras_file(source.model_file), str(source.model_file))
    return _export_wrapped(wrapped, desc, out, source_name=str(source.path), source_kind=source.kind,
                           source_sha256=source.sha256(), fp16=fp16, opset=opset, check_frames=check_frames,
                           user_extra=extra, uint8_bgr=uint8_bgr, decode_in_graph=decode_in_graph)


def export_keras_model(model, out, *, bodyparts, stride, locref_stdev: float = sources.DEFAULT_LOCREF_STDEV,
                       fp16: bool = False, opset: int = DEFAULT_OPSET, check_images=None,
                       scoremap_output: str | None = None, locref_output: str | None = None,
                       apply_sigmoid: bool = False, input_color: str = "RGB", input_range: str = "0-255",
                       preprocessing_in_graph: bool = True, extra: dict | None = None,
                       uint8_bgr: bool = False, decode_in_graph: bool = False) -> ExportReport:
    """Export an in-memory Keras model (NHWC image in; score maps and offsets out).

    Outputs are matched by name (``scoremap_output``/``locref_output``) or else by channel count
    (K and 2K, or one 3K output). ``apply_sigmoid``: the score-map output is logits; a Sigmoid is
    appended in the ONNX model. ``input_color``/``input_range``/``preprocessing_in_graph`` describe
    what the model expects and go into the metadata. ``extra``: more ``rtpose.extra.*`` metadata.
    ``uint8_bgr``, ``decode_in_graph``: see :func:`export_model`.
    """
    _check_opset(opset)
    deps.require_export()
    from . import tf_keras

    if not bodyparts:
        raise ExportError("export_keras_model needs bodyparts=[...] (score-map channel order)")
    desc = sources.ModelDescription(
        bodyparts=tuple(str(b) for b in bodyparts), stride=float(stride), locref_stdev=float(locref_stdev),
        scoremap_output=scoremap_output, locref_output=locref_output, apply_sigmoid=apply_sigmoid,
        input_color=input_color, input_range=input_range, preprocessing_in_graph=preprocessing_in_graph,
        described_by="export_keras_model arguments")
    name = getattr(model, "name", "keras_model")
    wrapped = tf_keras.KerasModel(model, f"Keras model {name!r}")
    digest = hashlib.sha256()
    for w in model.get_weights():
        digest.update(w.tobytes())
    check_frames = frames_mod.load_images(check_images) if check_images else None
    return _export_wrapped(wrapped, desc, Path(out), source_name=f"keras-model:{name}", source_kind="keras-model",
                           source_sha256=digest.hexdigest(), fp16=fp16, opset=opset, check_frames=check_frames,
                           user_extra=extra, uint8_bgr=uint8_bgr, decode_in_graph=decode_in_graph)


def default_out(source: sources.Source, fp16: bool = False, uint8_bgr: bool = False, decode: bool = False) -> Path:
    base = source.path if source.path.is_dir() else source.path.with_suffix("")
    return base.with_name(base.name + ("-fp16" if fp16 else "") + ("-uint8" if uint8_bgr else "")
                          + ("-decode" if decode else "") + ".onnx")


def add_decode_to_onnx(src, out=None) -> ExportReport:
    """Add the in-graph decode to an rtpose ``.onnx`` file (:mod:`.decode_in_graph`); the source is kept."""
    out, meta = decode_mod.add_to_file(src, out)
    return ExportReport(out=Path(out), source=str(src), source_kind="onnx", variant="decode-in-graph",
                        variant_note="an rtpose export with the decode added inside the graph (weights unchanged)",
                        metadata=meta, parity=None, opset=int(meta.extra.get("opset", DEFAULT_OPSET)),
                        decode_check=meta.extra.get("decode_in_graph_check", ""))


def _check_opset(opset: int) -> None:
    if not MIN_OPSET <= int(opset) <= MAX_OPSET:
        raise ExportError(f"opset {opset} is not supported; use {MIN_OPSET}-{MAX_OPSET} (default {DEFAULT_OPSET})")


def recheck_onnx(src, out=None, *, check_images=None) -> ExportReport:
    """Bring an rtpose ONNX file written by an earlier exporter revision up to date without its source.

    Runs the batch-invariance check every export now runs and writes the file (``out``, default:
    in place) declaring the result; the weights and the original parity figures are kept. A model
    that mixes the frames of a batch (e.g. an earlier export of a DeepLabCut MobileNetV2 with
    training-mode batch norm) is refused: export it again from its source.
    """
    src = Path(src)
    model, meta = onnx_graph.load_rtpose_file(src)
    out = Path(out) if out else src
    dims = model.graph.input[0].type.tensor_type.shape.dim
    input_hw = tuple(d.dim_value if d.HasField("dim_value") else None for d in dims[1:3]) if len(dims) == 4 \
        else (None, None)
    check_frames = frames_mod.load_images(check_images) if check_images else None
    figures = _check_batch_invariance(
        model, check_frames, input_hw,
        (meta.scoremap_output, meta.locref_output) + ((meta.paf_output,) if meta.paf_output else ())
    + ((meta.unique_scoremap_output, meta.unique_locref_output) if meta.unique_scoremap_output else ())
    + ((meta.identity_output,) if meta.identity_output else ()), meta.stride,
        meta.locref_stdev,
        str(src), "Export the model again from its source (DeepLabCut folder, SavedModel or Keras file): the "
        "exporter rewrites such nodes.")
    extra = dict(meta.extra, exporter_revision=str(EXPORTER_REVISION), batch_invariant="true",
                 rechecked_by=f"rtpose {__version__}")
    extra.update(figures.as_extra("batch_invariance"))
    upgraded = dataclasses.replace(meta, extra=extra)
    _write(model, upgraded, out, str(src), doc_string=model.doc_string or None)
    return ExportReport(out=out, source=str(src), source_kind="onnx", variant="recheck",
                        variant_note="an earlier rtpose export, re-checked (weights and parity figures kept)",
                        metadata=upgraded, parity=None, opset=int(meta.extra.get("opset", DEFAULT_OPSET)),
                        batch_invariance=figures)


def _check_batch_invariance(model, check_frames, input_hw, outputs, stride, stdev, source_name, what_to_do):
    """The batch-invariance figures of ``model``; :class:`ExportError` (nothing written) when it fails."""
    figures = parity.batch_invariance(
        model.SerializeToString(), frames_mod.batch_check_batches(check_frames or (), input_hw), outputs=outputs,
        stride=stride, locref_stdev=stdev, tolerance=BATCH_TOLERANCE, source=source_name)
    if not figures.ok:
        raise ExportError(
            f"{source_name}: the ONNX model is not batch-invariant: a frame's outputs change with the other frames "
            f"in its batch ({'; '.join(figures.failures())}; {figures.summary()}). Nothing was written. {what_to_do}")
    return figures


def _export_dlc(source, desc, out, *, fp16, opset, check_frames, user_extra, uint8_bgr=False,
                decode_in_graph=False) -> ExportReport:
    from . import tf_frozen

    pb = source.model_file
    refine = True if desc.location_refinement is None else desc.location_refinement
    graph_def = tf_frozen.read_graph_def(pb)
    io = tf_frozen.find_io(graph_def, pb, location_refinement=refine)
    runner = tf_frozen.FrozenGraphRunner(graph_def, io, pb)
    try:
        batches, ref = _reference(runner, desc, check_frames, (None, None), source_name=str(source.path),
                                  described_by=str(source.description_file), whole_pixels=uint8_bgr)
    finally:
        runner.close()
    model, rewritten = tf_frozen.convert(graph_def, io, opset=opset, num_bodyparts=len(desc.bodyparts),
                                         source=str(pb))
    return _finish(model, batches, ref, desc, out, source_name=str(source.path), source_kind="dlc",
                   source_sha256=source.sha256(), variant=io.variant, note=io.note, fp16=fp16, opset=opset,
                   input_hw=(None, None), has_locref=refine, user_extra=user_extra, check_frames=check_frames,
                   per_frame_rewrites=rewritten, uint8_bgr=uint8_bgr, decode_in_graph=decode_in_graph)


def _export_dlc3(source, out, *, fp16, opset, check_frames, user_extra, decode_in_graph=False) -> ExportReport:
    """A DeepLabCut 3 ``.pt``: DeepLabCut's own network, references one frame at a time (as DeepLabCut-Live)."""
    from . import torch_dlc3

    model = torch_dlc3.load(source.model_file)
    if model.topdown is not None:
        from . import torch_dlc3_topdown

        return torch_dlc3_topdown.export(model, out, source=source, fp16=fp16, opset=opset, check_frames=check_frames,
                                         user_extra=user_extra, decode_in_graph=decode_in_graph)
    if model.multianimal is not None and decode_in_graph:
        raise ExportError(f"{source.model_file}: a multi-animal DeepLabCut 3 model exports its maps as outputs "
                          "(rtpose's multi-animal decoder assembles the animals); drop --decode-in-graph")
    net, desc = torch_dlc3.build(model)
    frames = check_frames if check_frames is not None else frames_mod.synthetic_frames(torch_dlc3.CHECK_SIZES)
    batches, ref = _reference(lambda b: torch_dlc3.reference(model, net, desc, b), desc, frames, (None, None),
                              source_name=str(source.path), described_by=desc.described_by)
    onnx_model = torch_dlc3.convert(model, net, desc, opset=opset, example=batches[0])
    multianimal = None
    if model.multianimal is not None:
        multianimal = (model.multianimal.layout,
                       model.multianimal.assembly(desc.stride, desc, torch_dlc3.unique_stride(net),
                                                  torch_dlc3.identity_stride(net)))
    return _finish(onnx_model, batches, ref, desc, out, source_name=str(source.path), source_kind="dlc3",
                   source_sha256=source.sha256(), variant=f"dlc3-{model.net_type}", note=model.note(), fp16=fp16,
                   opset=opset, input_hw=(None, None), has_locref=bool(desc.location_refinement),
                   user_extra=user_extra, check_frames=check_frames, decode_in_graph=decode_in_graph,
                   multianimal=multianimal)


def _export_wrapped(wrapped, desc, out, *, source_name, source_kind, source_sha256, fp16, opset,
                    check_frames, user_extra, uint8_bgr=False, decode_in_graph=False) -> ExportReport:
    from . import tf_keras

    k = len(desc.bodyparts)
    outputs = tf_keras.identify_outputs(wrapped.channels(), k, scoremap_hint=desc.scoremap_output,
                                        locref_hint=desc.locref_output, source=wrapped.source)
    if desc.location_refinement is True and not (outputs.locref or outputs.concatenated):
        raise ExportError(f"{wrapped.source}: location_refinement is true but no offset output with {2 * k} "
                          "channels was found; set location_refinement: false or name locref_output")

    def reference(batch):
        return tf_keras.reference_maps(wrapped(batch), outputs, k, desc.apply_sigmoid)

    batches, ref = _reference(reference, desc, check_frames, wrapped.input_hw, source_name=source_name,
                              described_by=desc.described_by, whole_pixels=uint8_bgr)
    model, mapping, rewritten = wrapped.convert(opset)
    tf_keras.finish_outputs(model, mapping, outputs, k, desc.apply_sigmoid)
    return _finish(model, batches, ref, desc, out, source_name=source_name, source_kind=source_kind,
                   source_sha256=source_sha256, variant=source_kind, note=outputs.note, fp16=fp16, opset=opset,
                   input_hw=wrapped.input_hw, has_locref=bool(outputs.locref or outputs.concatenated),
                   user_extra=user_extra, check_frames=check_frames, per_frame_rewrites=rewritten,
                   uint8_bgr=uint8_bgr, decode_in_graph=decode_in_graph)


def _reference(reference, desc, check_frames, input_hw, *, source_name, described_by, whole_pixels=False):
    """Check frames in batches, and the source framework's (scoremap, locref) for each batch.

    The reference runs one frame at a time, as DeepLabCut-Live and DeepLabCut at batch size 1 do:
    a graph whose nodes mix the frames of a batch (training-mode batch norm) then still gives the
    poses DeepLabCut gives, and the ONNX model, run on whole batches, must match them.
    ``whole_pixels``: round the frames to whole values 0-255 first (a uint8-input model sees them so).
    """
    h, w = input_hw
    frames = check_frames if check_frames is not None else frames_mod.synthetic_frames(
        frames_mod.SYNTHETIC_SIZES if h is None or w is None else ((h, w), (h, w)))
    if whole_pixels:
        frames = [np.clip(np.rint(f), 0, 255).astype(np.float32) for f in frames]
    if h is not None and w is not None and any(f.shape[:2] != (h, w) for f in frames):
        raise ExportError(f"{source_name}: the model takes only {h}x{w} images; give --check images of that size")
    batches = frames_mod.batches(frames)
    ref = [parity.stack_frames([reference(b[i:i + 1]) for i in range(b.shape[0])]) for b in batches]
    k = len(desc.bodyparts)
    channels = ref[0][0].shape[-1]
    if channels != k:
        raise ExportError(f"{described_by or source_name}: lists {k} bodyparts ({', '.join(desc.bodyparts)}) but "
                          f"the model's score maps have {channels} channels; fix the bodyparts list")
    return batches, ref


def _finish(model, batches, ref, desc, out: Path, *, source_name, source_kind, source_sha256, variant, note, fp16,
            opset, input_hw, has_locref, check_frames, per_frame_rewrites=(), user_extra=None,
            uint8_bgr=False, decode_in_graph=False, multianimal=None) -> ExportReport:
    """``multianimal``: (AnimalLayout, AssemblyParams) of a multi-animal model with a ``paf`` output."""
    onnx = deps.onnx()
    k = len(desc.bodyparts)
    fixes = onnx_graph.fix_padding(model)
    h, w = input_hw
    paf_channels = 2 * len(multianimal[1].graph) if multianimal else None
    n_unique = multianimal[0].n_unique if multianimal else 0
    n_identity = len(multianimal[0].individuals) if multianimal and multianimal[1].with_identity else 0
    _set_io_dims(model, h, w, k, has_locref, paf_channels, n_unique, n_identity)
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise ExportError(f"{source_name}: the converted ONNX model is invalid ({exc}); please report this") from exc
    stride, stdev = desc.stride, desc.locref_stdev
    outputs = (("scoremap", "locref" if has_locref else None) + (("paf",) if multianimal else ())
               + (("unique_scoremap", "unique_locref") if n_unique else ()) + (("identity",) if n_identity else ()))
    framework = "pytorch" if source_kind == "dlc3" else "tensorflow"
    batch_figures = _check_batch_invariance(
        model, check_frames, input_hw, outputs, stride, stdev, source_name,
        f"Some node mixes the frames of a batch ({len(per_frame_rewrites)} training-mode batch norm(s) were "
        "rewritten per frame; something else remains); please report this with the model attached.")
    figures, fp32_out = parity.check(model.SerializeToString(), batches, ref, outputs=outputs, stride=stride,
                                     locref_stdev=stdev, reference_name=framework, tolerance=FP32_TOLERANCE,
                                     source=source_name)
    if not figures.ok:
        raise ExportError(f"{source_name}: the ONNX model does not reproduce "
                          f"{'PyTorch' if framework == 'pytorch' else 'TensorFlow'}: "
                          f"{'; '.join(figures.failures())} ({figures.summary()}). Nothing was written. Try another "
                          "--opset; if it persists please report it with the model (tolerances: docs/export.md).")
    figures16 = None
    final = model
    if fp16:
        final = fp16_mod.to_float16(model, source_name)
        figures16, _ = parity.check(final.SerializeToString(), batches, fp32_out, outputs=outputs, stride=stride,
                                    locref_stdev=stdev, reference_name="onnx-fp32", tolerance=FP16_TOLERANCE,
                                    source=source_name)
        if not figures16.ok:
            raise ExportError(f"{source_name}: the float16 model strays too far from float32: "
                              f"{'; '.join(figures16.failures())}. Nothing was written; export without --fp16.")
    figures_u8 = None
    input_color, input_range = desc.input_color, desc.input_range
    if uint8_bgr:
        final = uint8_input.to_uint8_bgr(final, input_color=input_color, input_range=input_range)
        against, name, tol = (fp32_out, "onnx-fp32", FP16_TOLERANCE) if fp16 else (ref, "tensorflow", FP32_TOLERANCE)
        figures_u8, _ = parity.check(final.SerializeToString(), uint8_input.uint8_bgr_batches(batches), against,
                                     outputs=outputs, stride=stride, locref_stdev=stdev, reference_name=name,
                                     tolerance=tol, source=source_name)
        if not figures_u8.ok:
            raise ExportError(f"{source_name}: the model with a uint8 BGR input strays from {name}: "
                              f"{'; '.join(figures_u8.failures())}. Nothing was written; please report this, and "
                              "export without the uint8 input meanwhile.")
        input_color, input_range = "BGR", "0-255"

    extra = {
        "source": Path(source_name).name if source_kind != "keras-model" else source_name,
        "source_sha256": source_sha256,
        "source_kind": source_kind,
        "source_variant": variant,
        "exporter": "rtpose.exporters",
        "exporter_version": __version__,
        "opset": str(opset),
        "fp16": "true" if fp16 else "false",
        "precision": "fp16" if fp16 else "fp32",
        "graph_fixes": str(len(fixes)),
        "exporter_revision": str(EXPORTER_REVISION),
        "batch_invariant": "true",
        "per_frame_rewrites": str(len(per_frame_rewrites)),
    }
    extra.update(deps.versions(source_kind))
    extra.update(figures.as_extra("parity"))
    extra.update(batch_figures.as_extra("batch_invariance"))
    if figures16 is not None:
        extra.update(figures16.as_extra("parity_fp16"))
    if figures_u8 is not None:
        extra["input_conversion"] = uint8_input.CONVERSION_NOTE
        extra.update(figures_u8.as_extra("parity_uint8"))
    for key, value in (user_extra or {}).items():
        if key in extra:
            raise ExportError(f"extra metadata key {key!r} is set by the exporter itself; choose another name")
        extra[str(key)] = str(value)
    metadata = ModelMetadata(
        bodyparts=desc.bodyparts, stride=stride, locref_stdev=stdev, location_refinement=has_locref,
        scoremap_output="scoremap", locref_output="locref" if has_locref else None, input_name="image",
        input_color=input_color, input_range=input_range,
        preprocessing_in_graph=desc.preprocessing_in_graph, clip_scores=desc.clip_scores, extra=extra,
        layout=multianimal[0] if multianimal else None, paf_output="paf" if multianimal else None,
        assembly=multianimal[1] if multianimal else None,
        unique_scoremap_output="unique_scoremap" if n_unique else None,
        unique_locref_output="unique_locref" if n_unique else None,
        identity_output="identity" if n_identity else None)
    decode_check = ""
    if decode_in_graph:  # last: after --fp16 (maps cast back to float32) and --input uint8-bgr (input only)
        frames_in = uint8_input.uint8_bgr_batches(batches) if uint8_bgr else batches
        final, metadata = decode_mod.add_checked(final, metadata, source=source_name, batches=frames_in)
        decode_check = metadata.extra["decode_in_graph_check"]
    _write(final, metadata, out, source_name)
    return ExportReport(out=out, source=source_name, source_kind=source_kind, variant=variant, variant_note=note,
                        metadata=metadata, parity=figures, parity_fp16=figures16, fp16=fp16, opset=opset,
                        graph_fixes=tuple(fixes), batch_invariance=batch_figures,
                        per_frame_rewrites=tuple(per_frame_rewrites), parity_uint8=figures_u8,
                        decode_check=decode_check)


def _set_io_dims(model, h, w, k: int, has_locref: bool, paf_channels: int | None = None, n_unique: int = 0,
                 n_identity: int = 0) -> None:
    g = model.graph
    if len(g.input) != 1 or g.input[0].name != "image":
        names = [i.name for i in g.input]
        raise ExportError(f"the converted model has inputs {names}, expected one `image`; please report this")
    onnx_graph.set_dims(g.input[0], ["batch", h if h is not None else "height", w if w is not None else "width", 3])
    want = {"scoremap": k}
    if has_locref:
        want["locref"] = 2 * k
    if paf_channels:
        want["paf"] = paf_channels
    if n_unique:
        want["unique_scoremap"], want["unique_locref"] = n_unique, 2 * n_unique
    if n_identity:
        want["identity"] = n_identity
    got = {o.name for o in g.output}
    if got != set(want):
        raise ExportError(f"the converted model has outputs {sorted(got)}, expected {sorted(want)}; please report this")
    for o in g.output:
        dims = o.type.tensor_type.shape.dim
        keep = [d.dim_value if d.HasField("dim_value") else None for d in dims] if len(dims) == 4 else [None] * 4
        onnx_graph.set_dims(o, ["batch", keep[1] or "map_height", keep[2] or "map_width", want[o.name]])


def _write(model, metadata: ModelMetadata, out: Path, source_name: str, *, doc_string: str | None = None) -> None:
    onnx = deps.onnx()
    del model.metadata_props[:]
    for key, value in metadata.to_props().items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = "rtpose.exporters"
    model.producer_version = __version__
    model.doc_string = doc_string or f"rtpose export of {source_name}"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        onnx.save(model, str(tmp))
        os.replace(tmp, out)
    except OSError as exc:
        raise ExportError(f"{out}: cannot write the ONNX file ({exc}); choose another --out") from exc
    finally:
        if tmp.exists():
            tmp.unlink()
