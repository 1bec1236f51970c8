"""The metadata an rtpose ONNX file carries inside itself (``metadata_props``).

This is the single contract between the exporters (which write it) and the
runtime (which reads it): loading a model needs no other file. Every key is
prefixed with ``rtpose.``; values are strings (ONNX stores strings only), lists
and dicts are JSON.
"""

from __future__ import annotations

import json
import mmap
import os
from dataclasses import dataclass, field

from .errors import ConfigError, ModelError
from .multianimal.layout import AnimalLayout
from .multianimal.params import AssemblyParams
from .multianimal.topdown_params import TopDownParams

FORMAT_VERSION = "1"
PREFIX = "rtpose."

#: Colour orders a model may expect. Frames inside rtpose are BGR (OpenCV).
COLOR_ORDERS = ("RGB", "BGR")


@dataclass(frozen=True)
class ModelMetadata:
    """What inference needs to know about a pose model.

    Attributes:
        bodyparts: names of the K body parts, in score-map channel order.
        stride: input pixels per score-map cell (DeepLabCut's ``stride``).
        locref_stdev: scale of the location-refinement offsets (``locref_stdev``).
        location_refinement: whether the model has an offset output.
        scoremap_output: ONNX output name of the (B, h, w, K) score maps (already sigmoid for
            DeepLabCut 2.x/TF models; DeepLabCut 3 PyTorch heads output raw maps, see ``clip_scores``).
        locref_output: ONNX output name of the (B, h, w, 2K) offsets, or None.
        input_name: ONNX input name; input is NHWC.
        input_color: colour order the model expects, "RGB" or "BGR".
        input_range: value range of the input pixels, e.g. "0-255".
        preprocessing_in_graph: True when mean subtraction/scaling is inside the graph.
        clip_scores: the likelihood is the score at the maximum clipped to [0, 1] (DeepLabCut 3's
            ``HeatmapPredictor(clip_scores=True)``); the maximum itself is found on the raw map.
        pose_output: ONNX output name of (B, K, 3) float64 poses (x, y, likelihood) decoded inside the
            graph (``rtpose export --decode-in-graph``), bit-identical to :mod:`rtpose.decode` on the
            maps the graph also outputs; None when the runtime decodes the maps itself.
        layout: multi-animal models only (DeepLabCut bottom-up, part-affinity fields): the individuals,
            the multi-animal body parts (= ``bodyparts``, the score-map channels) and the unique body
            parts; None for single-animal models.
        paf_output: ONNX output name of the (B, h, w, 2E) part-affinity fields (multi-animal), or None.
        unique_scoremap_output, unique_locref_output: multi-animal models with unique body parts: ONNX output
            names of the unique head's (B, h', w', U) score maps and (B, h', w', 2U) offsets (its own
            stride: ``assembly.unique_stride``); None otherwise.
        identity_output: multi-animal models with DeepLabCut's identity head: ONNX output name of its raw
            (B, h'', w'', A) maps (stride ``assembly.identity_stride``); None otherwise.
        assembly: how the multi-animal maps become animals (DeepLabCut's PAF predictor and Assembler
            parameters, :class:`~rtpose.multianimal.params.AssemblyParams`); set exactly when ``layout`` is,
            for bottom-up models.
        topdown: top-down multi-animal models (a detector, then the pose network on a crop per animal):
            how boxes become crops (:class:`~rtpose.multianimal.topdown_params.TopDownParams`); with
            ``layout``, and without assembly, PAFs or unique parts. The other fields describe the pose stage.
        extra: everything else (source hash, versions, parity figures), shown by ``rtpose info``.
    """

    bodyparts: tuple[str, ...]
    stride: float
    locref_stdev: float = 7.2801
    location_refinement: bool = True
    scoremap_output: str = "scoremap"
    locref_output: str | None = "locref"
    input_name: str = "image"
    input_color: str = "RGB"
    input_range: str = "0-255"
    preprocessing_in_graph: bool = True
    clip_scores: bool = False
    pose_output: str | None = None
    layout: AnimalLayout | None = None
    paf_output: str | None = None
    assembly: AssemblyParams | None = None
    unique_scoremap_output: str | None = None
    unique_locref_output: str | None = None
    identity_output: str | None = None
    topdown: TopDownParams | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.bodyparts:
            raise ModelError("model metadata lists no bodyparts; re-export the model with bodypart names")
        if self.stride <= 0:
            raise ModelError(f"model metadata has stride {self.stride}; it must be positive")
        if self.input_color not in COLOR_ORDERS:
            raise ModelError(f"model metadata input_color={self.input_color!r}; expected one of {COLOR_ORDERS}")
        if self.location_refinement and not self.locref_output:
            raise ModelError("model metadata says location_refinement but names no locref output")
        if self.topdown is not None:
            if self.layout is None or self.assembly is not None or self.paf_output is not None \
                    or self.layout.unique_bodyparts:
                raise ModelError("top-down model metadata needs a layout without unique body parts, and no "
                                 "assembly parameters or PAF output; re-export the model with `rtpose export`")
        elif (self.layout is None) != (self.assembly is None) or (self.layout is None) != (self.paf_output is None):
            raise ModelError("multi-animal model metadata needs its layout, its assembly parameters and its PAF "
                             "output together; re-export the model with `rtpose export`")
        if self.layout is not None and tuple(self.layout.bodyparts) != tuple(self.bodyparts):
            raise ModelError(f"multi-animal model metadata: the score-map body parts {list(self.bodyparts)} differ "
                             f"from the layout's {list(self.layout.bodyparts)}; re-export the model")
        has_unique = self.layout is not None and bool(self.layout.unique_bodyparts)
        if has_unique != bool(self.unique_scoremap_output) or has_unique != bool(self.unique_locref_output):
            raise ModelError("multi-animal model metadata: unique body parts need the unique head's score-map and "
                             "offset outputs (and only they have them); re-export the model with `rtpose export`")
        has_identity = self.assembly is not None and self.assembly.with_identity
        if has_identity != bool(self.identity_output):
            raise ModelError("multi-animal model metadata: an identity head needs both its output name and its stride "
                             "(assembly.identity_stride); re-export the model with `rtpose export`")

    @property
    def multianimal(self) -> bool:
        """A multi-animal model (``layout``): bottom-up (score maps, offsets and part-affinity fields,
        ``assembly``) or top-down (``topdown``)."""
        return self.layout is not None

    @property
    def topdown_model(self) -> bool:
        """A top-down multi-animal model: a detector stage, then the pose stage on crops (``topdown``)."""
        return self.topdown is not None

    @property
    def pose_names(self) -> tuple[str, ...]:
        """Names of the rows of a decoded pose: the body parts, or for a multi-animal model its flat names
        (``mouse1.snout``, ..., unique parts; :mod:`rtpose.multianimal.layout`)."""
        return self.layout.flat_names() if self.layout is not None else tuple(self.bodyparts)

    @property
    def num_bodyparts(self) -> int:
        return len(self.bodyparts)

    @property
    def batch_invariant(self) -> bool:
        """True when the exporter proved that a frame's outputs do not depend on the other frames of
        its batch (``extra.batch_invariant``). Files without it (earlier exports, other tools) may hold
        nodes that mix frames, e.g. DeepLabCut's training-mode batch norms: run them one frame at a time."""
        return self.extra.get("batch_invariant") == "true"

    @property
    def skeleton(self) -> list[list[str]]:
        """Body-part pairs pictures join with a line (``extra.skeleton``: JSON ``[["snout", "leftear"], ...]``,
        as in a DeepLabCut config.yaml's ``skeleton``); empty when the model declares none. Validated
        against the body parts where it is drawn (:func:`rtpose.viz.overlay.parse_skeleton`)."""
        text = self.extra.get("skeleton", "")
        try:
            pairs = json.loads(text) if text else []
        except ValueError:
            raise ModelError(f"model metadata extra.skeleton is not JSON: {text!r}; re-export the model") from None
        return pairs if isinstance(pairs, list) else []

    def to_props(self) -> dict[str, str]:
        """Key/value strings for ONNX ``metadata_props``."""
        props = {
            "format_version": FORMAT_VERSION,
            "bodyparts": json.dumps(list(self.bodyparts)),
            "stride": repr(float(self.stride)),
            "locref_stdev": repr(float(self.locref_stdev)),
            "location_refinement": json.dumps(bool(self.location_refinement)),
            "scoremap_output": self.scoremap_output,
            "locref_output": self.locref_output or "",
            "input_name": self.input_name,
            "input_color": self.input_color,
            "input_range": self.input_range,
            "preprocessing_in_graph": json.dumps(bool(self.preprocessing_in_graph)),
            "clip_scores": json.dumps(bool(self.clip_scores)),
        }
        if self.pose_output:  # absent rather than empty: files without the decode stay as they were
            props["pose_output"] = self.pose_output
        if self.layout is not None:  # likewise: single-animal files carry none of these keys
            props["multianimal.layout"] = json.dumps(self.layout.to_dict())
        if self.assembly is not None:
            props["multianimal.assembly"] = self.assembly.to_json()
            props["paf_output"] = self.paf_output
        if self.topdown is not None:
            props["multianimal.topdown"] = self.topdown.to_json()
        if self.unique_scoremap_output:
            props["unique_scoremap_output"] = self.unique_scoremap_output
            props["unique_locref_output"] = self.unique_locref_output
        if self.identity_output:
            props["identity_output"] = self.identity_output
        out = {PREFIX + k: v for k, v in props.items()}
        for k, v in self.extra.items():
            out[PREFIX + "extra." + k] = str(v)
        return out

    @classmethod
    def from_props(cls, props: dict[str, str], *, source: str = "model") -> "ModelMetadata":
        """Parse ``metadata_props``; raises :class:`ModelError` naming what is missing."""
        ours = {k[len(PREFIX):]: v for k, v in props.items() if k.startswith(PREFIX)}
        if not ours:
            raise ModelError(
                f"{source} has no rtpose metadata (bodyparts, stride, ...). "
                "Export it with `rtpose export` so the ONNX file describes itself."
            )
        required = ("bodyparts", "stride", "scoremap_output", "input_name")
        missing = [k for k in required if k not in ours]
        if missing:
            raise ModelError(f"{source} metadata lacks {', '.join(PREFIX + m for m in missing)}; re-export it with `rtpose export`")
        version = ours.get("format_version", FORMAT_VERSION)
        if version != FORMAT_VERSION:
            raise ModelError(f"{source} has rtpose metadata format {version}; this rtpose reads format {FORMAT_VERSION}. Upgrade rtpose or re-export.")
        try:
            return cls(
                bodyparts=tuple(json.loads(ours["bodyparts"])),
                stride=float(ours["stride"]),
                locref_stdev=float(ours.get("locref_stdev", "7.2801")),
                location_refinement=json.loads(ours.get("location_refinement", "false")),
                scoremap_output=ours["scoremap_output"],
                locref_output=ours.get("locref_output") or None,
                input_name=ours["input_name"],
                input_color=ours.get("input_color", "RGB"),
                input_range=ours.get("input_range", "0-255"),
                preprocessing_in_graph=json.loads(ours.get("preprocessing_in_graph", "true")),
                clip_scores=json.loads(ours.get("clip_scores", "false")),
                pose_output=ours.get("pose_output") or None,
                layout=AnimalLayout.from_dict(json.loads(ours["multianimal.layout"]))
                if "multianimal.layout" in ours else None,
                paf_output=ours.get("paf_output") or None,
                assembly=AssemblyParams.from_json(ours["multianimal.assembly"])
                if "multianimal.assembly" in ours else None,
                unique_scoremap_output=ours.get("unique_scoremap_output") or None,
                unique_locref_output=ours.get("unique_locref_output") or None,
                identity_output=ours.get("identity_output") or None,
                topdown=TopDownParams.from_json(ours["multianimal.topdown"]) if "multianimal.topdown" in ours else None,
                extra={k[len("extra."):]: v for k, v in ours.items() if k.startswith("extra.")},
            )
        except (ValueError, TypeError, KeyError, ConfigError) as exc:
            raise ModelError(f"{source} has malformed rtpose metadata ({exc}); re-export it with `rtpose export`") from exc


def _varint(buf, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def read_props(path: str | os.PathLike) -> dict[str, str]:
    """An ONNX file's ``metadata_props`` (keys and values), read from its top-level protobuf fields without
    parsing the graph or the weights (ModelProto field 14, StringStringEntryProto fields 1 and 2). Cheap: tells
    what a file is (a top-down model, a twin of another export) before any session is created. A file that is
    not ONNX, or is truncated, gives what could be read (possibly nothing): loading it says what is wrong."""
    props: dict[str, str] = {}
    with open(path, "rb") as f:
        try:
            buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # an empty file
            return props
        with buf:
            pos, end = 0, len(buf)
            try:
                while pos < end:
                    tag, pos = _varint(buf, pos)
                    field_number, wire = tag >> 3, tag & 7
                    if wire == 0:
                        _, pos = _varint(buf, pos)
                    elif wire == 1:
                        pos += 8
                    elif wire == 5:
                        pos += 4
                    elif wire == 2:
                        size, pos = _varint(buf, pos)
                        if field_number == 14:  # one metadata_props entry
                            entry: dict[int, str] = {}
                            sub, sub_end = pos, pos + size
                            while sub < sub_end:
                                t, sub = _varint(buf, sub)
                                n, sub = _varint(buf, sub)
                                entry[t >> 3] = bytes(buf[sub:sub + n]).decode("utf-8", "replace")
                                sub += n
                            if 1 in entry:
                                props[entry[1]] = entry.get(2, "")
                        pos += size
                    else:
                        return props
            except IndexError:
                return props
    return props


def count_repeats(items) -> str:
    """Equal items counted, in first-seen order: ``480x640, 480x640, 240x320`` -> ``2 × 480x640, 1 × 240x320``."""
    counts: dict[str, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return ", ".join(f"{n} × {item}" for item, n in counts.items())


def compress_listing(value: str) -> str:
    """A metadata value shown by ``rtpose info`` with runs of equal list items counted:
    ``15 (480x640, 480x640, ...)`` -> ``15 (15 × 480x640)``; anything else unchanged."""
    head, sep, rest = value.partition(" (")
    if not sep or not rest.endswith(")"):
        return value
    items = [item.strip() for item in rest[:-1].split(",")]
    if len(set(items)) == len(items):
        return value
    return f"{head} ({count_repeats(items)})"
