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

Only single-animal, bottom-up models with a ``HeatmapHead`` are exported;
top-down models (a detector, ``method: td``, e.g. RTMPose) and multi-animal
models raise :class:`~rtpose.errors.ExportError` naming the model type.

torch and DeepLabCut are imported only when a function here runs
(:mod:`.deps`, the ``export-torch`` extra).
"""

from __future__ import annotations

import copy
import io
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from rtpose.errors import ExportError

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

    def note(self) -> str:
        d = self.description
        return (f"DeepLabCut 3 PyTorch {self.net_type}, HeatmapHead"
                + (", sigmoid" if d.apply_sigmoid else ", raw heatmap") + (" + locref" if d.location_refinement else "")
                + (", likelihood clipped to [0, 1]" if d.clip_scores else "")
                + (f", reflect-padded to multiples of {self.pad_divisor}" if self.pad_divisor else "")
                + (", ImageNet mean/std in the graph" if self.normalize else ""))


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
    if raw.get("detector") is not None or method != "bu" or cfg.get("detector"):
        raise ExportError(f"{pt}: a top-down DeepLabCut 3 model ({net}, method {method}, with a detector). rtpose "
                          "exports single-animal bottom-up models (resnet_50/101, hrnet_w18/32/48, ... with the "
                          "heatmap head) for now; train such a shuffle (net_type='resnet_50') for rtpose")
    individuals = meta.get("individuals") or []
    if len(individuals) > 1 or meta.get("unique_bodyparts") or set(heads) != {"bodypart"}:
        raise ExportError(f"{pt}: a multi-animal DeepLabCut 3 model ({net}, {len(individuals)} individuals, heads "
                          f"{sorted(heads)}). rtpose exports single-animal models for now; train a single-animal "
                          "shuffle for rtpose")
    head = heads["bodypart"]
    predictor = head.get("predictor", {})
    if head.get("type") != "HeatmapHead" or predictor.get("type") != "HeatmapPredictor":
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
    refine = bool(predictor.get("location_refinement", True))
    desc = ModelDescription(
        bodyparts=tuple(str(b) for b in bodyparts),
        stride=1.0,  # replaced by the built model's stride in build()
        locref_stdev=float(predictor.get("locref_std", 7.2801)),
        location_refinement=refine,
        apply_sigmoid=bool(predictor.get("apply_sigmoid", True)),
        input_color="RGB", input_range="0-255", preprocessing_in_graph=True,
        clip_scores=bool(predictor.get("clip_scores", False)),
        described_by=f"{pt} (config)")
    return Dlc3Model(pt=pt, config=cfg, state=raw["pose"], description=desc, net_type=net,
                     normalize=bool(inference.get("normalize_images", False)), pad_divisor=pad_divisor)


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

        def forward(self, image):
            x = image.permute(0, 3, 1, 2) / 255.0  # ToDtype(float32, scale=True)
            if model.pad_divisor is not None:  # AutoPadToDivisor: reflect, bottom and right
                dh, dw = model.pad_divisor
                h, w = x.shape[2], x.shape[3]
                x = F.pad(x, (0, (dw - w % dw) % dw, 0, (dh - h % dh) % dh), mode="reflect")
            if model.normalize:
                x = (x - self.mean) / self.std  # torchvision Normalize: sub_(mean).div_(std)
            out = self.net(x)["bodypart"]
            heatmap = out["heatmap"]
            if desc.apply_sigmoid:
                heatmap = torch.sigmoid(heatmap)
            scoremap = heatmap.permute(0, 2, 3, 1)
            if not desc.location_refinement:
                return (scoremap,)
            return scoremap, out["locref"].permute(0, 2, 3, 1)

    return RtposeDlc3().eval()


def reference(model: Dlc3Model, net, desc: ModelDescription, batch: np.ndarray):
    """PyTorch's maps for a (B, H, W, 3) RGB float batch, one frame at a time (batch 1), as DeepLabCut-Live runs.

    The preprocessing is DeepLabCut-Live's own transforms (torchvision ``v2.ToDtype`` for uint8 input
    is a division by 255; ``AutoPadToDivisor``; ``v2.Normalize``), applied eagerly.
    """
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


def convert(model: Dlc3Model, net, desc: ModelDescription, *, opset: int, example: np.ndarray):
    """Trace the wrapped network to an ONNX ModelProto (dynamic batch, height and width)."""
    torch = deps.torch()
    onnx = deps.onnx()
    module = wrapper(model, net, desc)
    outputs = ["scoremap", "locref"] if desc.location_refinement else ["scoremap"]
    dims = {"image": {0: "batch", 1: "height", 2: "width"}}
    dims.update({name: {0: "batch", 1: "map_height", 2: "map_width"} for name in outputs})
    buf = io.BytesIO()
    x = torch.from_numpy(np.ascontiguousarray(example[:1]))
    try:
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (x,), buf, input_names=["image"], output_names=outputs, dynamic_axes=dims,
                              opset_version=opset, do_constant_folding=True, dynamo=False)
    except Exception as exc:  # torch.onnx raises many types for unsupported operators
        raise ExportError(f"{model.pt}: torch.onnx cannot export DeepLabCut 3 model {model.net_type} at opset "
                          f"{opset} ({exc}); try another --opset, or report it with the model") from exc
    return onnx.load_from_string(buf.getvalue())

