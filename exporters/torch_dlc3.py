"""DeepLabCut 3 (PyTorch engine) exports -> ONNX, with DeepLabCut's own model code.

``deeplabcut.export_model`` on a PyTorch project writes one ``.pt`` file:
``torch.save({"config": <pytorch_config>, "pose": <state dict>, "detector": ...})``.
This module rebuilds the network exactly as DeepLabCut-Live 1.1.0 does
(``PoseModel.build(config["model"])`` + ``load_state_dict``; the code that
defines the architectures is DeepLabCut 3's own, ``deeplabcut.pose_estimation_pytorch``)
and traces it to ONNX inside a wrapper that makes it an rtpose model:

* input ``image``: NHWC float32 RGB 0-255 (DeepLabCut-Live converts the BGR
  camera frame to RGB; ``DLCLive(convert2rgb=True)`` is its default);
* in the graph, DeepLabCut-Live's ``pose_transform``: ``ToDtype(float32,
  scale=True)`` (÷255), ``AutoPadToDivisor`` (reflect padding at the bottom
  and right, only where the config asks for it: HRNet, divisor 32), then
  ``Normalize`` with the ImageNet mean/std when ``data.inference.normalize_images``;
* outputs ``scoremap`` (B, h, w, K) and ``locref`` (B, h, w, 2K), NHWC: the
  ``HeatmapHead``'s ``heatmap`` and ``locref`` maps, a Sigmoid appended only if
  the predictor has ``apply_sigmoid: true`` (DeepLabCut 3's default head has
  ``apply_sigmoid: false, clip_scores: true``: raw maps; the likelihood is the
  raw value at the maximum clipped to [0, 1], see ``rtpose.decode``).

``HeatmapPredictor`` decodes them with DeepLabCut's TF formula
(``x = col * stride + stride / 2 + dx * locref_std``, first maximum), so the
existing decoder and pipeline run them unchanged; ``stride`` is the model's
(``backbone.stride / head.stride``, DeepLabCut's ``PoseModel._strides``).

Multi-animal bottom-up models with part-affinity fields (DeepLabCut's ``DLCRNetHead`` with its
``PartAffinityFieldPredictor``, e.g. a multi-animal project's ``resnet_50`` or ``dlcrnet_stride16_ms5``)
export too, as rtpose's multi-animal contract (``rtpose/multianimal/params.py``) asks: ``scoremap``
is the predictor's map AFTER its sigmoid and its Gaussian smoothing (``make_2d_gaussian_kernel(sigma,
2 * nms_radius + 1)``, a depthwise ``conv2d`` with "same" zero padding, built with DeepLabCut's own
kernel function), ``locref`` the raw offsets, ``paf`` (B, h, w, 2E) the part-affinity fields of the
kept limbs ``graph[edges_to_keep]`` in that order (channels 2e, 2e + 1 = DeepLabCut's
``pafs.reshape(B, -1, 2, h, w)[:, edges_to_keep[e], 0 / 1]``). The metadata carries the
:class:`~rtpose.multianimal.layout.AnimalLayout` and :class:`~rtpose.multianimal.params.AssemblyParams`.

DeepLabCut's identity head (``identity: true``: ``HeatmapHead`` + ``IdentityPredictor``) adds the output
``identity`` (B, h', w', A): its raw maps at the head's own resolution (stride ``assembly.identity_stride``),
NHWC; the predictor's resize and sigmoid run in rtpose's decoder (:mod:`rtpose.multianimal.identity`).

Top-down models (a detector, ``method: td``) export through :mod:`.torch_dlc3_topdown` (detector and pose
stage in one file); other multi-animal heads (DEKR) raise
:class:`~rtpose.errors.ExportError` naming the model type.

torch and DeepLabCut are imported only when a function here runs
(:mod:`.deps`, the ``export-torch`` extra).
"""

from __future__ import annotations

import contextlib
import copy
import io
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from rtpose.errors import ExportError
from rtpose.multianimal.layout import AnimalLayout
from rtpose.multianimal.params import AssemblyParams

from . import deps
from .frames import SYNTHETIC_SIZES
from .sources import ModelDescription

#: torchvision's Normalize constants as DeepLabCut-Live 1.1.0 hard-codes them (runner.py, load_model).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Check frames: the usual synthetic sizes and a real camera frame size (640x480).
CHECK_SIZES = SYNTHETIC_SIZES + ((480, 640),)


@dataclass(frozen=True)
class Dlc3Model:
    """A DeepLabCut 3 ``.pt`` export, read and checked."""

    pt: Path
    config: dict
    state: dict
    description: ModelDescription
    net_type: str
    normalize: bool
    pad_divisor: tuple[int, int] | None  # (height, width) divisors of AutoPadToDivisor, or None
    multianimal: "PafModel | None" = None
    topdown: "TopDownSpec | None" = None  # a top-down model's detector and crops (.torch_dlc3_topdown)

    @property
    def outputs(self) -> tuple[str, ...]:
        """The ONNX outputs, in order."""
        if self.multianimal is not None:
            unique = ("unique_scoremap", "unique_locref") if self.multianimal.unique is not None else ()
            identity = ("identity",) if self.multianimal.identity is not None else ()  # identity head (ma-id)
            return ("scoremap", "locref", "paf") + unique + identity
        return ("scoremap", "locref") if self.description.location_refinement else ("scoremap",)

    def note(self) -> str:
        d = self.description
        if self.multianimal is not None:
            ma = self.multianimal
            return (f"DeepLabCut 3 PyTorch {self.net_type}, multi-animal DLCRNetHead + PartAffinityFieldPredictor "
                    f"({len(ma.layout.individuals)} individuals, {len(ma.graph)} PAF limbs); score maps"
                    + (" sigmoid +" if d.apply_sigmoid else "") + f" Gaussian-smoothed (sigma {ma.sigma:g}, "
                    f"{2 * ma.nms_radius + 1}x{2 * ma.nms_radius + 1}) in the graph"
                    + (", ImageNet mean/std in the graph" if self.normalize else ""))
        return (f"DeepLabCut 3 PyTorch {self.net_type}, HeatmapHead"
                + (", sigmoid" if d.apply_sigmoid else ", raw heatmap") + (" + locref" if d.location_refinement else "")
                + (", likelihood clipped to [0, 1]" if d.clip_scores else "")
                + (f", reflect-padded to multiples of {self.pad_divisor}" if self.pad_divisor else "")
                + (", ImageNet mean/std in the graph" if self.normalize else ""))


@dataclass(frozen=True)
class UniqueHead:
    """DeepLabCut 3's unique-body-part head: a ``HeatmapHead`` with a ``HeatmapPredictor`` (argmax per part)."""

    apply_sigmoid: bool
    clip_scores: bool
    locref_stdev: float


@dataclass(frozen=True)
class IdentityHead:
    """DeepLabCut 3's identity head (``identity: true``; ``config/base/head_identity.yaml``): a ``HeatmapHead``
    with one map per individual and an ``IdentityPredictor``. The ONNX output ``identity`` is its raw maps at
    head resolution (NHWC); the predictor's antialiased bilinear resize and sigmoid run in rtpose's decoder
    (:mod:`rtpose.multianimal.identity`), only at the keypoints it needs."""

    apply_sigmoid: bool


@dataclass(frozen=True)
class PafModel:
    """A multi-animal ``PartAffinityFieldPredictor``'s settings, as its config gives them."""

    layout: AnimalLayout
    full_graph: tuple[tuple[int, int], ...]  # DeepLabCut's ``graph`` (all limbs the head has PAF channels for)
    edges_to_keep: tuple[int, ...]  # indices into full_graph, in the order the predictor uses them
    nms_radius: int
    sigma: float
    min_affinity: float
    add_discarded: bool
    force_fusion: bool
    unique: UniqueHead | None = None
    identity: IdentityHead | None = None

    @property
    def graph(self) -> tuple[tuple[int, int], ...]:
        """The limbs the ONNX ``paf`` output holds, in channel order: ``full_graph[edges_to_keep]``."""
        return tuple(self.full_graph[i] for i in self.edges_to_keep)

    def assembly(self, stride: float, desc: ModelDescription, unique_stride: float | None = None,
                 identity_stride: float | None = None) -> AssemblyParams:
        identity = {} if self.identity is None else {  # identity head (ma-id)
            "identity_stride": float(identity_stride), "identity_apply_sigmoid": self.identity.apply_sigmoid}
        return AssemblyParams(**identity,
            unique_stride=None if unique_stride is None or unique_stride == stride else float(unique_stride),
            num_animals=len(self.layout.individuals), graph=self.graph, stride=float(stride),
            locref_stdev=desc.locref_stdev, nms_radius=self.nms_radius, sigma=self.sigma,
            min_affinity=self.min_affinity, force_fusion=self.force_fusion, add_discarded=self.add_discarded,
            apply_sigmoid=bool(desc.apply_sigmoid), clip_scores=bool(desc.clip_scores), smoothed_in_graph=True,
            extra={"dlc_graph": [list(e) for e in self.full_graph], "dlc_edges_to_keep": list(self.edges_to_keep)})


def _paf_model(pt: Path, net: str, meta: dict, heads: dict) -> PafModel | None:
    """The multi-animal PAF settings of a bottom-up export, None for single-animal heads;
    :class:`ExportError` for multi-animal variants rtpose cannot export yet."""
    individuals = [str(i) for i in (meta.get("individuals") or [])]
    unique = [str(u) for u in (meta.get("unique_bodyparts") or [])]
    head = heads.get("bodypart", {})
    predictor = head.get("predictor", {})
    paf = head.get("type") == "DLCRNetHead" or predictor.get("type") == "PartAffinityFieldPredictor"
    if not paf and len(individuals) <= 1 and not unique and set(heads) == {"bodypart"}:
        return None
    what = (f"{pt}: a multi-animal DeepLabCut 3 model ({net}, {len(individuals)} individuals, heads "
            f"{sorted(heads)}, {head.get('type')} with {predictor.get('type')})")
    unique_head = None
    if unique or "unique_bodypart" in heads:
        u = heads.get("unique_bodypart", {})
        upred = u.get("predictor", {})
        if (not unique or u.get("type") != "HeatmapHead" or upred.get("type") != "HeatmapPredictor"
                or not upred.get("location_refinement", True)):
            raise ExportError(f"{what} with unique body parts ({', '.join(unique) or 'none listed'}) and a "
                              f"{u.get('type')} unique head with {upred.get('type')}. rtpose exports the unique "
                              "body parts of DeepLabCut's own unique head (HeatmapHead + HeatmapPredictor with "
                              "location refinement); export it again with deeplabcut.export_model")
        unique_head = UniqueHead(apply_sigmoid=bool(upred.get("apply_sigmoid", True)),
                                 clip_scores=bool(upred.get("clip_scores", False)),
                                 locref_stdev=float(upred.get("locref_std", 7.2801)))
        paf_stdev = float(predictor.get("locref_stdev", 7.2801))
        if unique_head.locref_stdev != paf_stdev or not unique_head.clip_scores:
            raise ExportError(f"{what}: its unique head has locref_std {unique_head.locref_stdev:g} and clip_scores "
                              f"{unique_head.clip_scores} where rtpose's decoder uses the PAF head's locref_stdev "
                              f"{paf_stdev:g} and clips the unique likelihoods (DeepLabCut's defaults); export a model "
                              "with those defaults")
    identity_head = None
    if "identity" in heads:  # identity head (ma-id)
        ident = heads["identity"]
        ipred = ident.get("predictor", {})
        if ident.get("type") != "HeatmapHead" or ipred.get("type") != "IdentityPredictor":
            raise ExportError(f"{what} with a {ident.get('type')} identity head and {ipred.get('type')}. rtpose "
                              "exports DeepLabCut's own identity head (HeatmapHead + IdentityPredictor); export it "
                              "again with deeplabcut.export_model")
        identity_head = IdentityHead(apply_sigmoid=bool(ipred.get("apply_sigmoid", True)))
    if set(heads) - {"unique_bodypart", "identity"} != {"bodypart"}:
        raise ExportError(f"{what}. rtpose exports multi-animal models with the PAF head, DeepLabCut's unique-part "
                          "and identity heads only; train a shuffle without the other heads")
    if head.get("type") != "DLCRNetHead" or predictor.get("type") != "PartAffinityFieldPredictor":
        raise ExportError(f"{what}. rtpose exports bottom-up multi-animal models with part-affinity fields "
                          "(DLCRNetHead + PartAffinityFieldPredictor: resnet_50, dlcrnet_stride16_ms5, ...) for now")
    bodyparts = [str(b) for b in (meta.get("bodyparts") or [])]
    if not individuals or not bodyparts:
        raise ExportError(f"{what}: its config lists no individuals or bodyparts (metadata); export it again with "
                          "deeplabcut.export_model")
    full = tuple((int(i), int(j)) for i, j in predictor.get("graph", []))
    keep = tuple(int(i) for i in predictor.get("edges_to_keep", range(len(full))))
    if not full or any(not 0 <= i < len(full) for i in keep) or any(
            not (0 <= a < len(bodyparts) and 0 <= b < len(bodyparts)) for a, b in full):
        raise ExportError(f"{what}: its PAF graph {list(full)} / edges_to_keep {list(keep)} do not fit its "
                          f"{len(bodyparts)} body parts; export it again with deeplabcut.export_model")
    if int(predictor.get("num_animals", len(individuals))) != len(individuals):
        raise ExportError(f"{what}: its predictor expects {predictor.get('num_animals')} animals but the config lists "
                          f"{len(individuals)} individuals; export it again with deeplabcut.export_model")
    defaults = {"nms_radius": 5, "sigma": 1.0, "min_affinity": 0.05}  # PartAffinityFieldPredictor.default_init
    return PafModel(
        layout=AnimalLayout(tuple(individuals), tuple(bodyparts), tuple(unique)), full_graph=full, edges_to_keep=keep,
        nms_radius=int(predictor.get("nms_radius", defaults["nms_radius"])),
        sigma=float(predictor.get("sigma", defaults["sigma"])),
        min_affinity=float(predictor.get("min_affinity", defaults["min_affinity"])),
        add_discarded=bool(predictor.get("add_discarded", False)),
        force_fusion=bool(predictor.get("force_fusion", False)), unique=unique_head, identity=identity_head)


def load(pt: Path) -> Dlc3Model:
    """Read a DeepLabCut 3 ``.pt`` export; :class:`ExportError` for unsupported model types."""
    torch = deps.torch()
    try:
        raw = torch.load(str(pt), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle/zip/torch errors of a damaged or foreign file
        raise ExportError(f"{pt}: cannot be read as a DeepLabCut 3 model export ({exc}); export it again with "
                          "deeplabcut.export_model(config_path, shuffle=...)") from exc
    if not isinstance(raw, dict) or "config" not in raw or "pose" not in raw:
        keys = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
        raise ExportError(f"{pt}: not a DeepLabCut 3 model export (expected a dict with 'config' and 'pose', "
                          f"found {keys}). Training snapshots (snapshot-*.pt) are not exports: run "
                          "deeplabcut.export_model(config_path, shuffle=...) and give its exported-models-pytorch folder")
    cfg = raw["config"]
    net = str(cfg.get("net_type", "?"))
    method = str(cfg.get("method", "bu")).lower()
    meta = cfg.get("metadata", {}) or {}
    heads = cfg.get("model", {}).get("heads", {})
    topdown = None
    if raw.get("detector") is not None or method != "bu" or cfg.get("detector"):
        from . import torch_dlc3_topdown  # refuses what it cannot export (ctd, SimCC heads, unique parts, ...)

        topdown = torch_dlc3_topdown.spec(pt, raw)
    multianimal = None if topdown is not None else _paf_model(pt, net, meta, heads)
    head = heads["bodypart"]
    predictor = head.get("predictor", {})
    if multianimal is None and (head.get("type") != "HeatmapHead" or predictor.get("type") != "HeatmapPredictor"):
        raise ExportError(f"{pt}: DeepLabCut 3 model {net} has a {head.get('type')} head with a "
                          f"{predictor.get('type')}; rtpose exports HeatmapHead/HeatmapPredictor models for now")
    bodyparts = meta.get("bodyparts") or []
    if not bodyparts:
        raise ExportError(f"{pt}: its config lists no bodyparts (metadata.bodyparts); export it again with "
                          "deeplabcut.export_model")
    inference = cfg.get("data", {}).get("inference", {}) or {}
    pad = inference.get("auto_padding")
    pad_divisor = (int(pad.get("pad_height_divisor", 1)), int(pad.get("pad_width_divisor", 1))) if pad else None
    if pad_divisor == (1, 1):
        pad_divisor = None
    refine = bool(predictor.get("location_refinement", True)) or multianimal is not None  # PAF heads always have locref
    desc = ModelDescription(
        bodyparts=tuple(str(b) for b in bodyparts),
        stride=1.0,  # replaced by the built model's stride in build()
        locref_stdev=float(predictor.get("locref_stdev" if multianimal else "locref_std", 7.2801)),
        location_refinement=refine,
        apply_sigmoid=bool(predictor.get("apply_sigmoid", True)),
        input_color="RGB", input_range="0-255", preprocessing_in_graph=True,
        clip_scores=bool(predictor.get("clip_scores", False)),
        described_by=f"{pt} (config)")
    return Dlc3Model(pt=pt, config=cfg, state=raw["pose"], description=desc, net_type=net,
                     normalize=bool(inference.get("normalize_images", False)), pad_divisor=pad_divisor,
                     multianimal=multianimal, topdown=topdown)


def build(model: Dlc3Model):
    """DeepLabCut's own network in eval mode, and the description with its stride; as DeepLabCut-Live does."""
    deps.torch()
    PoseModel = deps.dlc3_pose_model()
    net = PoseModel.build(copy.deepcopy(model.config["model"]))  # pretrained backbone off by default
    try:
        net.load_state_dict(model.state)
    except RuntimeError as exc:
        raise ExportError(f"{model.pt}: its weights do not fit the network its config describes ({exc}); "
                          "export it again with deeplabcut.export_model") from exc
    net.eval()
    stride = float(net._strides["bodypart"])
    return net, replace(model.description, stride=stride)


def unique_stride(net) -> float | None:
    """The unique-body-part head's own map stride (``resnet_50``: 8, while the PAF head's is 4), or None."""
    strides = getattr(net, "_strides", {})
    return float(strides["unique_bodypart"]) if "unique_bodypart" in strides else None


def identity_stride(net) -> float | None:
    """The identity head's map stride (``resnet_50``: 8, one deconvolution on the stride-16 backbone), or None."""
    strides = getattr(net, "_strides", {})
    return float(strides["identity"]) if "identity" in strides else None


def wrapper(model: Dlc3Model, net, desc: ModelDescription):
    """An nn.Module: NHWC RGB 0-255 float image -> (scoremap NHWC, locref NHWC) per DeepLabCut-Live's transforms."""
    torch = deps.torch()
    F = torch.nn.functional

    class RtposeDlc3(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net
            self.register_buffer("mean", torch.tensor(IMAGENET_MEAN, dtype=torch.float32).reshape(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(IMAGENET_STD, dtype=torch.float32).reshape(1, 3, 1, 1))
            self.paf_channels = None
            if model.multianimal is not None:
                ma = model.multianimal
                self.register_buffer("smoothing", smoothing_kernel(ma, len(desc.bodyparts)))
                if ma.edges_to_keep != tuple(range(len(ma.full_graph))):
                    self.paf_channels = [2 * e + c for e in ma.edges_to_keep for c in (0, 1)]

        def forward(self, image):
            x = image.permute(0, 3, 1, 2) / 255.0  # ToDtype(float32, scale=True)
            if model.pad_divisor is not None:  # AutoPadToDivisor: reflect, bottom and right
                dh, dw = model.pad_divisor
                h, w = x.shape[2], x.shape[3]
                x = F.pad(x, (0, (dw - w % dw) % dw, 0, (dh - h % dh) % dh), mode="reflect")
            if model.normalize:
                x = (x - self.mean) / self.std  # torchvision Normalize: sub_(mean).div_(std)
            outs = self.net(x)
            out = outs["bodypart"]
            unique_out = outs.get("unique_bodypart")
            heatmap = out["heatmap"]
            if desc.apply_sigmoid:
                heatmap = torch.sigmoid(heatmap)
            if model.multianimal is not None:
                heatmap = F.conv2d(heatmap, self.smoothing, padding=model.multianimal.nms_radius,
                                   groups=heatmap.shape[1])
                paf = out["paf"][:, self.paf_channels] if self.paf_channels is not None else out["paf"]
                maps = (heatmap.permute(0, 2, 3, 1), out["locref"].permute(0, 2, 3, 1), paf.permute(0, 2, 3, 1))
                if model.multianimal.unique is not None:
                    u = unique_out
                    uh = torch.sigmoid(u["heatmap"]) if model.multianimal.unique.apply_sigmoid else u["heatmap"]
                    maps += (uh.permute(0, 2, 3, 1), u["locref"].permute(0, 2, 3, 1))
                if model.multianimal.identity is not None:  # raw maps, head resolution (ma-id)
                    maps += (outs["identity"]["heatmap"].permute(0, 2, 3, 1),)
                return maps
            scoremap = heatmap.permute(0, 2, 3, 1)
            if not desc.location_refinement:
                return (scoremap,)
            return scoremap, out["locref"].permute(0, 2, 3, 1)

    return RtposeDlc3().eval()


def smoothing_kernel(ma: PafModel, channels: int):
    """DeepLabCut's (channels, 1, 2r+1, 2r+1) Gaussian kernel, made by its own ``make_2d_gaussian_kernel``."""
    deps.dlc3_pose_model()  # imports DeepLabCut as the exporter does (triton blocked)
    from deeplabcut.pose_estimation_pytorch.models.predictors.paf_predictor import PartAffinityFieldPredictor

    kernel = PartAffinityFieldPredictor.make_2d_gaussian_kernel(sigma=ma.sigma, size=ma.nms_radius * 2 + 1)
    return kernel[None, None].repeat(channels, 1, 1, 1).contiguous()


def _dlc_input(model: Dlc3Model, frame: np.ndarray):
    """One (H, W, 3) RGB 0-255 float frame through DeepLabCut-Live's pose transform -> (1, 3, H', W')."""
    torch = deps.torch()
    from torchvision.transforms import v2

    x = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1).unsqueeze(0) / 255.0
    if model.pad_divisor is not None:
        dh, dw = model.pad_divisor
        h, w = x.shape[2:]
        x = torch.nn.functional.pad(x, (0, (dw - w % dw) % dw, 0, (dh - h % dh) % dh), mode="reflect")
    if model.normalize:
        x = v2.Normalize(mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD))(x)
    return x


def predict_multianimal(model: Dlc3Model, net, batch: np.ndarray):
    """DeepLabCut's own multi-animal inference, one frame at a time: ``net(x)`` then the head's
    ``PartAffinityFieldPredictor`` (``net.get_predictions``: sigmoid, smoothing, peaks, PAF costs, Assembler).

    Returns (scoremap, locref, paf, poses[, unique_scoremap, unique_locref, unique_poses][, identity]): the smoothed
    score maps the predictor found its peaks on
    (captured at its ``find_local_peak_indices_maxpool_nms`` call), NHWC; the raw locref; the PAF
    channels of the kept limbs (NHWC, :attr:`PafModel.graph` order); its poses (B, A, K, 5); with unique
    body parts also the unique head's maps (after its sigmoid when it applies one) and its
    ``HeatmapPredictor``'s poses (B, 1, U, 3); with an identity head its raw maps (B, h, w, A), NHWC.
    """
    torch = deps.torch()
    ma = model.multianimal
    predictor = net.heads["bodypart"].predictor
    captured = []
    find_peaks = type(predictor).find_local_peak_indices_maxpool_nms

    def capture(input_, radius, threshold):
        captured.append(input_.detach().clone())
        return find_peaks(input_, radius, threshold)

    channels = [2 * e + c for e in ma.edges_to_keep for c in (0, 1)]
    maps, poses, unique_maps, unique_poses, identity = ([], [], []), [], ([], []), [], []
    predictor.find_local_peak_indices_maxpool_nms = capture
    try:
        with torch.inference_mode():
            for frame in batch:
                out = net(_dlc_input(model, frame))
                captured.clear()
                predictions = net.get_predictions(out)
                heads = out["bodypart"]
                for dst, t in zip(maps, (captured[0], heads["locref"], heads["paf"][:, channels])):
                    dst.append(t.permute(0, 2, 3, 1).numpy())
                poses.append(np.asarray(predictions["bodypart"]["poses"].numpy(), np.float32))
                if ma.unique is not None:
                    u = out["unique_bodypart"]
                    uh = torch.sigmoid(u["heatmap"]) if ma.unique.apply_sigmoid else u["heatmap"]
                    unique_maps[0].append(uh.permute(0, 2, 3, 1).numpy())
                    unique_maps[1].append(u["locref"].permute(0, 2, 3, 1).numpy())
                    unique_poses.append(np.asarray(predictions["unique_bodypart"]["poses"].numpy(), np.float32))
                if ma.identity is not None:
                    identity.append(out["identity"]["heatmap"].permute(0, 2, 3, 1).numpy())
    finally:
        del predictor.find_local_peak_indices_maxpool_nms
    result = tuple(np.ascontiguousarray(np.concatenate(m)) for m in maps) + (np.concatenate(poses),)
    if ma.unique is not None:
        result += tuple(np.ascontiguousarray(np.concatenate(m)) for m in unique_maps) + (np.concatenate(unique_poses),)
    if ma.identity is not None:
        result += (np.ascontiguousarray(np.concatenate(identity)),)
    return result


def reference(model: Dlc3Model, net, desc: ModelDescription, batch: np.ndarray):
    """PyTorch's maps for a (B, H, W, 3) RGB float batch, one frame at a time (batch 1), as DeepLabCut-Live runs.

    The preprocessing is DeepLabCut-Live's own transforms (torchvision ``v2.ToDtype`` for uint8 input
    is a division by 255; ``AutoPadToDivisor``; ``v2.Normalize``), applied eagerly.
    """
    if model.multianimal is not None:  # (scoremap, locref, paf[, unique_scoremap, unique_locref][, identity])
        out = predict_multianimal(model, net, batch)
        return (out[:3] + (out[4:6] if model.multianimal.unique is not None else ())
                + (out[-1:] if model.multianimal.identity is not None else ()))
    torch = deps.torch()
    from torchvision.transforms import v2

    F = torch.nn.functional
    normalize = v2.Normalize(mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD))
    scoremaps, locrefs = [], []
    with torch.inference_mode():
        for frame in batch:
            x = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1).unsqueeze(0) / 255.0
            if model.pad_divisor is not None:
                dh, dw = model.pad_divisor
                h, w = x.shape[2:]
                x = F.pad(x, (0, (dw - w % dw) % dw, 0, (dh - h % dh) % dh), mode="reflect")
            if model.normalize:
                x = normalize(x)
            out = net(x)["bodypart"]
            heatmap = torch.sigmoid(out["heatmap"]) if desc.apply_sigmoid else out["heatmap"]
            scoremaps.append(heatmap.permute(0, 2, 3, 1).numpy())
            if desc.location_refinement:
                locrefs.append(out["locref"].permute(0, 2, 3, 1).numpy())
    sc = np.ascontiguousarray(np.concatenate(scoremaps))
    return sc, (np.ascontiguousarray(np.concatenate(locrefs)) if locrefs else None)


@contextlib.contextmanager
def _exportable_dlcrnet_resize(net):
    """While tracing, DeepLabCut's ``DLCRNet`` backbone resizes its fused feature banks without antialiasing.

    ``DLCRNet.forward`` (``models/backbones/resnet.py``) brings two feature banks to the stride-16 output's
    size with torchvision's ``resize(..., antialias=True)``, which traces to ``aten::_upsample_bilinear2d_aa``,
    an operator ONNX has no export for. The banks come from unpadded stride-2 convolutions, so they are
    never larger than the output (``floor((n - 1) / 2) <= ceil(n / 2)``): the resize only enlarges (or keeps)
    them, and PyTorch's antialiased bilinear filter enlarging is plain bilinear interpolation with half-pixel
    centres (the filter's support is one input pixel; edge weights renormalised = edge index clamped).
    ``antialias=False`` is therefore the same computation, and the numeric check compares the result with
    DeepLabCut's own forward (antialias on).
    """
    from importlib import import_module

    if type(getattr(net, "backbone", None)).__name__ != "DLCRNet":
        yield
        return
    module = import_module(type(net.backbone).__module__)
    original = module.resize

    def resize(img, size, *args, antialias=True, **kwargs):
        if img.shape[-2] > size[0] or img.shape[-1] > size[1]:
            raise ExportError(f"DLCRNet resizes a {tuple(img.shape[-2:])} feature bank down to {tuple(size)}; rtpose "
                              "exports only its enlarging resize; please report this with the model")
        return original(img, size, *args, antialias=False, **kwargs)

    module.resize = resize
    try:
        yield
    finally:
        module.resize = original


def convert(model: Dlc3Model, net, desc: ModelDescription, *, opset: int, example: np.ndarray):
    """Trace the wrapped network to an ONNX ModelProto (dynamic batch, height and width)."""
    torch = deps.torch()
    onnx = deps.onnx()
    module = wrapper(model, net, desc)
    outputs = list(model.outputs)
    dims = {"image": {0: "batch", 1: "height", 2: "width"}}
    dims.update({name: {0: "batch", 1: "map_height", 2: "map_width"} for name in outputs})
    buf = io.BytesIO()
    x = torch.from_numpy(np.ascontiguousarray(example[:1]))
    try:
        with warnings.catch_warnings(), torch.inference_mode(), _exportable_dlcrnet_resize(net):
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (x,), buf, input_names=["image"], output_names=outputs, dynamic_axes=dims,
                              opset_version=opset, do_constant_folding=True, dynamo=False)
    except Exception as exc:  # torch.onnx raises many types for unsupported operators
        raise ExportError(f"{model.pt}: torch.onnx cannot export DeepLabCut 3 model {model.net_type} at opset "
                          f"{opset} ({exc}); try another --opset, or report it with the model") from exc
    return onnx.load_from_string(buf.getvalue())

