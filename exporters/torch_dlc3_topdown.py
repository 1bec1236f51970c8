"""DeepLabCut 3 TOP-DOWN exports (a detector, then a single-animal pose model on each crop) -> ONE ONNX file.

``deeplabcut.export_model`` on a top-down shuffle (``method: td``, e.g. ``top_down_resnet_50``) writes one
``.pt`` with ``config``, ``pose`` and ``detector`` (state dicts). Both networks are rebuilt with DeepLabCut's own
code (``PoseModel.build`` as :mod:`.torch_dlc3` does; ``DETECTORS.build(config["detector"]["model"])`` with
``pretrained`` off, as DeepLabCut's ``apis/utils.py: get_inference_runners`` does) and traced separately:

* detector stage, input ``image`` (1, H, W, 3) float32 RGB 0-255, one whole frame: DeepLabCut's detector
  transform (``ToTensor`` ÷255, ``Normalize`` ImageNet mean/std when ``detector.data.inference.normalize_images``)
  then the torchvision model as DeepLabCut's ``DetectorInferenceRunner`` calls it (its own
  ``GeneralizedRCNNTransform`` normalise + resize, the network, box decoding, score threshold
  ``box_score_thresh``, NMS, ``detections_per_img``); outputs ``boxes`` (D, 4) xyxy in the frame's pixels and
  ``box_scores`` (D,), torchvision's order (score descending);
* pose stage, input ``crops`` (N, Hc, Wc, 3) float32 RGB 0-255 (crops made by DeepLabCut's ``top_down_crop``):
  :mod:`.torch_dlc3`'s single-animal ``HeatmapHead`` wrapper, outputs ``scoremap`` (N, h, w, K) and ``locref``
  (N, h, w, 2K).

The two graphs are merged into one file as two disjoint sub-graphs, every node, value and initializer name
prefixed ``detector/`` or ``pose/`` (graph inputs and outputs keep the plain names); the runtime splits them
into two sessions. The metadata carries the :class:`~rtpose.multianimal.layout.AnimalLayout` (DeepLabCut's
individuals, the pose body parts) and :class:`~rtpose.multianimal.topdown_params.TopDownParams` (detector,
``max_individuals``, crop size, margin, ``with_context``; DeepLabCut 3.0.2's selection semantics there).

Checks before anything is written (:func:`export`): the detector stage against DeepLabCut's detector forward
on every check frame (same number of boxes, boxes and scores within :data:`DETECTOR_TOLERANCE`, at every
onnxruntime optimisation level); the pose stage against DeepLabCut's pose forward on the crops DeepLabCut's
``top_down_crop`` makes from those detections (the single-animal FP32 tolerances); and the pose stage's batch
invariance (each crop alone vs inside a batch of other crops).

Refused with :class:`~rtpose.errors.ExportError` naming the model: conditional top-down (``ctd``), pose heads
other than ``HeatmapHead`` + ``HeatmapPredictor`` (RTMPose's SimCC head, ...), unique body parts or identity
heads with a top-down model, detectors other than DeepLabCut's ``SSDLite`` / ``FasterRCNN``, exports without
their detector (``without_detector=True``), ``--fp16`` and ``--decode-in-graph``.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from rtpose.errors import ExportError
from rtpose.multianimal.layout import AnimalLayout
from rtpose.multianimal.topdown_params import TopDownParams

from . import deps, parity
from . import fp16 as fp16_mod
from .onnx_graph import fix_padding, rename_value
from .report import BATCH_TOLERANCE, FP16_TOLERANCE, FP32_TOLERANCE

#: Detector stage vs DeepLabCut's detector forward: box corners (px) and scores (see docs/export.md).
DETECTOR_TOLERANCE = {"boxes_px": 0.05, "scores": 1e-4}
#: The torchvision variant behind each DeepLabCut detector class (``models/detectors/*.py``).
DETECTORS = {"SSDLite": "ssdlite320_mobilenet_v3_large", "FasterRCNN": None}


@dataclass(frozen=True)
class TopDownSpec:
    """What the ``.pt`` says about the detector and the crops (checked by :func:`spec`)."""

    detector_config: dict
    detector_state: dict
    detector_normalize: bool
    params: TopDownParams
    layout: AnimalLayout


def spec(pt: Path, raw: dict) -> TopDownSpec:
    """The top-down part of a DeepLabCut 3 export; :class:`ExportError` for what rtpose cannot export."""
    cfg = raw["config"]
    net = str(cfg.get("net_type", "?"))
    method = str(cfg.get("method", "bu")).lower()
    meta = cfg.get("metadata", {}) or {}
    heads = cfg.get("model", {}).get("heads", {})
    head = heads.get("bodypart", {})
    predictor = head.get("predictor", {})
    what = (f"{pt}: a top-down DeepLabCut 3 model ({net}, method {method}, {head.get('type')} with "
            f"{predictor.get('type')})")
    if method != "td":
        raise ExportError(f"{what}. rtpose exports top-down (td) models with their detector; conditional top-down "
                          "(ctd, pose conditioned on a bottom-up model's keypoints) is not supported yet")
    if head.get("type") != "HeatmapHead" or predictor.get("type") != "HeatmapPredictor":
        raise ExportError(f"{what}. rtpose exports top-down pose models with DeepLabCut's HeatmapHead + "
                          "HeatmapPredictor (top_down_resnet_50, top_down_hrnet_w32, ...); RTMPose's SimCC head and "
                          "other heads are not supported yet")
    unique = list(meta.get("unique_bodyparts") or [])
    if unique or set(heads) != {"bodypart"}:
        raise ExportError(f"{what} with heads {sorted(heads)} and unique body parts {unique}. rtpose exports top-down "
                          "models with the body-part head only (no unique body parts, no identity head); train a "
                          "shuffle without them")
    if raw.get("detector") is None or not cfg.get("detector"):
        raise ExportError(f"{what} exported without its detector. rtpose needs the detector in the same file: "
                          "run deeplabcut.export_model(config_path, shuffle=...) without without_detector=True")
    det_model = cfg["detector"].get("model", {}) or {}
    det_type = str(det_model.get("type"))
    if det_type not in DETECTORS:
        raise ExportError(f"{what} and a {det_type} detector. rtpose exports DeepLabCut's SSDLite and FasterRCNN "
                          "detectors")
    individuals = [str(i) for i in (meta.get("individuals") or [])]
    bodyparts = [str(b) for b in (meta.get("bodyparts") or [])]
    if not individuals or not bodyparts:
        raise ExportError(f"{what}: its config lists no individuals or bodyparts (metadata); export it again with "
                          "deeplabcut.export_model")
    data = cfg.get("data", {}) or {}
    crop = (data.get("inference", {}) or {}).get("top_down_crop") or {}  # get_inference_runners' defaults
    det_inference = (cfg["detector"].get("data", {}) or {}).get("inference", {}) or {}
    variant = DETECTORS[det_type] or str(det_model.get("variant") or "fasterrcnn_mobilenet_v3_large_fpn")
    params = TopDownParams(
        detector_type=det_type, detector_variant=variant,
        box_score_thresh=float(det_model.get("box_score_thresh", 0.01)), max_individuals=len(individuals),
        crop_width=int(crop.get("width", 256)), crop_height=int(crop.get("height", 256)),
        margin=int(crop.get("margin", 0)), with_context=bool(crop.get("crop_with_context", True)),
        center_padding=False, min_bbox_score=None)
    return TopDownSpec(detector_config=det_model, detector_state=raw["detector"],
                       detector_normalize=bool(det_inference.get("normalize_images", False)), params=params,
                       layout=AnimalLayout(tuple(individuals), tuple(bodyparts), ()))


def build_detector(pt: Path, td: TopDownSpec):
    """DeepLabCut's detector (``DETECTORS.build``, pretrained off as ``get_inference_runners`` does), eval mode."""
    import copy

    deps.dlc3_pose_model()  # imports DeepLabCut as the exporter does (triton blocked)
    from deeplabcut.pose_estimation_pytorch.models.detectors import DETECTORS as REGISTRY

    cfg = copy.deepcopy(td.detector_config)
    if "pretrained" in cfg:
        cfg["pretrained"] = False
    try:
        det = REGISTRY.build(cfg)
        det.load_state_dict(td.detector_state)
    except RuntimeError as exc:
        raise ExportError(f"{pt}: its detector weights do not fit the {cfg.get('type')} its config describes ({exc}); "
                          "export it again with deeplabcut.export_model") from exc
    except OSError as exc:  # torchvision tries to download backbone weights (FasterRCNN in DeepLabCut 3.0.2)
        raise ExportError(f"{pt}: DeepLabCut cannot build its {cfg.get('type')} detector offline ({exc}); put "
                          "torchvision's backbone weights in the torch hub cache (TORCH_HOME) and retry") from exc
    det.eval()  # (DeepLabCut's BaseDetector.train returns None: never chain)
    return det


def applied_thresholds(det, config_thresh: float) -> dict:
    """The thresholds the built torchvision model applies (``box_score_thresh`` and ``extra``).

    Not always the config's: DeepLabCut 3.0.2 passes ``box_score_thresh`` to torchvision's
    ``ssdlite320_mobilenet_v3_large``, whose ``SSD`` hands unknown keywords to its image transform, which ignores
    them; SSDLite then keeps its own ``score_thresh`` (0.001). FasterRCNN takes it (``roi_heads.score_thresh``)."""
    tv = det.model
    heads = getattr(tv, "roi_heads", tv)  # FasterRCNN: the box head holds them; SSD: the model itself
    return {"box_score_thresh": float(heads.score_thresh),
            "extra": {"nms_thresh": float(heads.nms_thresh), "detections_per_img": int(heads.detections_per_img),
                      "config_box_score_thresh": float(config_thresh), "input_size": detector_input_size(tv)}}


def detector_input_size(tv) -> str:
    """The size torchvision's ``GeneralizedRCNNTransform`` resizes each frame to inside the detector stage
    (SSDLite: a fixed 320x320; FasterRCNN: shorter side ``min_size``, longer side at most ``max_size``)."""
    transform = getattr(tv, "transform", None)
    fixed = getattr(transform, "fixed_size", None)
    if fixed:
        return f"{fixed[1]}x{fixed[0]} (fixed)"  # torchvision's fixed_size is (height, width)
    min_size = getattr(transform, "min_size", None)
    if min_size:
        return f"shorter side {min(min_size)}, longer side at most {transform.max_size}"
    return "as given"


def detector_wrapper(det, normalize: bool):
    """nn.Module: (1, H, W, 3) RGB 0-255 -> (boxes (D, 4) xyxy, scores (D,)), as DeepLabCut runs its detector."""
    torch = deps.torch()
    from .torch_dlc3 import IMAGENET_MEAN, IMAGENET_STD

    class RtposeDetector(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.det = det
            self.register_buffer("mean", torch.tensor(IMAGENET_MEAN, dtype=torch.float32).reshape(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(IMAGENET_STD, dtype=torch.float32).reshape(1, 3, 1, 1))

        def forward(self, image):
            x = image.permute(0, 3, 1, 2) / 255.0  # ToTensor of the uint8 frame
            if normalize:
                x = (x - self.mean) / self.std
            _, detections = self.det(x)  # DetectorInferenceRunner.predict: `_, raw = self.model(inputs)`
            return detections[0]["boxes"], detections[0]["scores"]

    module = RtposeDetector()
    module.eval()
    return module


def detect(det, normalize: bool, frame_rgb: np.ndarray):
    """DeepLabCut's detector forward on one (H, W, 3) RGB frame -> (boxes (D, 4) xyxy, scores (D,)) float32."""
    torch = deps.torch()
    module = detector_wrapper(det, normalize)
    with torch.inference_mode():
        boxes, scores = module(torch.from_numpy(np.ascontiguousarray(frame_rgb[None], dtype=np.float32)))
    return boxes.numpy().astype(np.float32), scores.numpy().astype(np.float32)


def crops_for(frame_rgb: np.ndarray, boxes: np.ndarray, params: TopDownParams):
    """DeepLabCut's selection and crops: first ``max_individuals`` boxes, ``top_down_crop`` of each (xywh) from the
    uint8 frame -> (crops (N, Hc, Wc, 3) float32, offsets (N, 2), scales (N, 2))."""
    deps.dlc3_pose_model()
    from deeplabcut.pose_estimation_pytorch.data.image import top_down_crop

    image = np.clip(np.rint(frame_rgb), 0, 255).astype(np.uint8)
    crops, offsets, scales = [], [], []
    for x1, y1, x2, y2 in boxes[:params.max_individuals]:
        crop, offset, scale = top_down_crop(image, np.array([x1, y1, x2 - x1, y2 - y1]),
                                            (params.crop_width, params.crop_height), margin=params.margin,
                                            center_padding=params.center_padding, crop_with_context=params.with_context)
        crops.append(crop.astype(np.float32))
        offsets.append(offset)
        scales.append(scale)
    shape = (0, params.crop_height, params.crop_width, 3)
    return (np.stack(crops) if crops else np.zeros(shape, np.float32), np.asarray(offsets, np.float64).reshape(-1, 2),
            np.asarray(scales, np.float64).reshape(-1, 2))


def convert_detector(pt: Path, det, normalize: bool, *, opset: int, example: np.ndarray):
    """Trace the detector stage to an ONNX ModelProto (input ``image`` (1, H, W, 3), dynamic H and W)."""
    torch = deps.torch()
    onnx = deps.onnx()
    buf = io.BytesIO()
    x = torch.from_numpy(np.ascontiguousarray(example[:1], dtype=np.float32))
    try:
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")
            torch.onnx.export(detector_wrapper(det, normalize), (x,), buf, input_names=["image"],
                              output_names=["boxes", "box_scores"],
                              dynamic_axes={"image": {1: "height", 2: "width"}, "boxes": {0: "detections"},
                                            "box_scores": {0: "detections"}},
                              opset_version=opset, do_constant_folding=True, dynamo=False)
    except Exception as exc:  # torch.onnx raises many types for unsupported operators
        raise ExportError(f"{pt}: torch.onnx cannot export the DeepLabCut detector {type(det).__name__} at opset "
                          f"{opset} ({exc}); try another --opset, or report it with the model") from exc
    return onnx.load_from_string(buf.getvalue())


def match_detections(boxes, scores, ref_boxes, ref_scores) -> tuple[float, float]:
    """Largest box (px) and score differences between two equally long detection lists, matched one to one.

    Boxes whose scores differ by less than float32 noise (the low-score tail holds hundreds of them, 1e-9 apart)
    may come out of the sort in either order, so each box is matched to the unused reference box nearest to it
    among those with a score within :data:`DETECTOR_TOLERANCE` (greedily, in score order); a box without one
    counts as infinitely far."""
    box_worst, score_worst = 0.0, 0.0
    used = np.zeros(len(ref_boxes), bool)
    for box, score in zip(boxes, scores):
        near = np.flatnonzero(~used & (np.abs(ref_scores - score) <= DETECTOR_TOLERANCE["scores"]))
        if not near.size:
            return float("inf"), float(np.min(np.abs(ref_scores - score), initial=np.inf))
        dist = np.abs(ref_boxes[near] - box).max(axis=1)
        j = near[int(np.argmin(dist))]
        used[j] = True
        box_worst = max(box_worst, float(dist.min()))
        score_worst = max(score_worst, float(abs(ref_scores[j] - score)))
    return box_worst, score_worst


def check_detector(model_bytes: bytes, frames, reference, source: str) -> dict:
    """The detector stage at every onnxruntime level vs DeepLabCut's detector forward: worst figures
    (detections matched one to one, :func:`match_detections`).

    Raises :class:`ExportError` when a frame's number of boxes differs or a box/score is off by more than
    :data:`DETECTOR_TOLERANCE`."""
    worst = {"boxes_max_px": 0.0, "scores_max_abs": 0.0, "detections": sum(len(r[0]) for r in reference)}
    for level in parity.ORT_LEVELS:
        sess = parity.session(model_bytes, level)
        for i, (frame, (ref_boxes, ref_scores)) in enumerate(zip(frames, reference)):
            boxes, scores = sess.run(["boxes", "box_scores"], {"image": frame[None].astype(np.float32)})
            if boxes.shape != ref_boxes.shape:
                raise ExportError(f"{source}: the ONNX detector finds {len(boxes)} boxes on check frame {i} "
                                  f"({frame.shape[1]}x{frame.shape[0]}, ORT level {level}) where DeepLabCut's finds "
                                  f"{len(ref_boxes)}. Nothing was written; please report this with the model")
            box_diff, score_diff = match_detections(boxes, scores, ref_boxes, ref_scores)
            worst["boxes_max_px"] = max(worst["boxes_max_px"], box_diff)
            worst["scores_max_abs"] = max(worst["scores_max_abs"], score_diff)
    if not (worst["boxes_max_px"] <= DETECTOR_TOLERANCE["boxes_px"]
            and worst["scores_max_abs"] <= DETECTOR_TOLERANCE["scores"]):
        raise ExportError(f"{source}: the ONNX detector does not reproduce DeepLabCut's: boxes differ by up to "
                          f"{worst['boxes_max_px']:.3g} px (tolerance {DETECTOR_TOLERANCE['boxes_px']:g}), scores by "
                          f"{worst['scores_max_abs']:.3g} (tolerance {DETECTOR_TOLERANCE['scores']:g}). Nothing was "
                          "written; try another --opset, or report it with the model")
    return worst


def prefixed(model, prefix: str, keep: set[str]):
    """``model`` with every node, value and initializer name prefixed, except the graph inputs/outputs in ``keep``."""
    onnx = deps.onnx()
    from onnx import compose

    out = compose.add_prefix(model, prefix)
    for name in keep:
        rename_value(out, prefix + name, name)
    onnx.checker.check_model(out)
    return out


def merge(detector, pose):
    """One ModelProto holding the two disjoint, prefixed graphs (inputs ``image``, ``crops``)."""
    onnx = deps.onnx()
    from onnx import helper

    d = prefixed(detector, "detector/", {"image", "boxes", "box_scores"})
    p = prefixed(pose, "pose/", {"crops", "scoremap", "locref"})
    opsets: dict[str, int] = {}
    for m in (d, p):
        for op in m.opset_import:
            opsets[op.domain] = max(opsets.get(op.domain, 0), op.version)
    graph = helper.make_graph(
        list(d.graph.node) + list(p.graph.node), "rtpose_topdown",
        list(d.graph.input) + list(p.graph.input), list(d.graph.output) + list(p.graph.output),
        initializer=list(d.graph.initializer) + list(p.graph.initializer),
        value_info=list(d.graph.value_info) + list(p.graph.value_info))
    graph.sparse_initializer.extend(list(d.graph.sparse_initializer) + list(p.graph.sparse_initializer))
    merged = helper.make_model(graph, opset_imports=[helper.make_opsetid(k, v) for k, v in sorted(opsets.items())])
    merged.ir_version = max(d.ir_version, p.ir_version)
    onnx.checker.check_model(merged)
    return merged


def stage(model, prefix: str):
    """The stage of a merged file whose names start with ``prefix`` (``detector/`` or ``pose/``), as a model.

    Split by name, not by reachability: the detector's ``If`` nodes have sub-graphs that read values of the
    outer graph (``onnx.utils.Extractor`` drops their producers)."""
    from onnx import helper

    g = model.graph
    own = {"detector/": ("image", "boxes", "box_scores"), "pose/": ("crops", "scoremap", "locref")}[prefix]
    graph = helper.make_graph(
        [n for n in g.node if n.name.startswith(prefix)], f"rtpose_topdown_{prefix[:-1]}",
        [i for i in g.input if i.name in own], [o for o in g.output if o.name in own],
        initializer=[t for t in g.initializer if t.name.startswith(prefix)],
        value_info=[v for v in g.value_info if v.name.startswith(prefix)])
    out = helper.make_model(graph, opset_imports=list(model.opset_import))
    out.ir_version = model.ir_version
    return out


def check_frames_rgb(check_frames) -> list[np.ndarray]:
    """The frames the export is checked on (RGB 0-255): the user's, or rtpose's synthetic open-field frames
    (two of 640x480, one of 320x240: the detector stage takes any frame size)."""
    if check_frames is not None:
        return [np.asarray(f, np.float32) for f in check_frames]
    from .frames import synthetic_frames

    return synthetic_frames(((480, 640), (480, 640), (240, 320)))


def export(model, out: Path, *, source, fp16: bool, opset: int, check_frames, user_extra,
           decode_in_graph: bool = False):
    """Export a top-down :class:`~.torch_dlc3.Dlc3Model` (``model.topdown`` set) to ``out``; the ExportReport."""
    from rtpose.metadata import ModelMetadata

    from . import api, torch_dlc3
    from .report import ExportReport

    name = str(source.path)
    if decode_in_graph:
        raise ExportError(f"{model.pt}: a top-down DeepLabCut 3 model ({model.net_type} + "
                          f"{model.topdown.params.detector_type}) exports its maps as outputs only (the crops are made "
                          "between the detector and the pose stage, outside the graph); drop --decode-in-graph")
    td = model.topdown
    params = td.params
    det = build_detector(model.pt, td)
    params = replace(params, **applied_thresholds(det, params.box_score_thresh))
    net, desc = torch_dlc3.build(model)
    frames = check_frames_rgb(check_frames)
    det_ref = [detect(det, td.detector_normalize, f) for f in frames]
    crops = []
    for frame, (boxes, _) in zip(frames, det_ref):
        h, w = frame.shape[:2]
        whole = np.array([[0.0, 0.0, w, h]], np.float32)  # one crop per frame even without detections
        crops.append(crops_for(frame, np.concatenate([boxes[:params.max_individuals], whole]),
                               replace(params, max_individuals=params.max_individuals + 1))[0])
    crops = np.concatenate(crops)
    pose_batches = [crops[i:i + 3] for i in range(0, len(crops), 3)]
    if len(pose_batches[-1]) < 2 and len(pose_batches) > 1:
        pose_batches[-2:] = [np.concatenate(pose_batches[-2:])]
    pose_ref = [parity.stack_frames([torch_dlc3.reference(model, net, desc, b[i:i + 1]) for i in range(len(b))])
                for b in pose_batches]

    detector = convert_detector(model.pt, det, td.detector_normalize, opset=opset, example=frames[0][None])
    pose = torch_dlc3.convert(model, net, desc, opset=opset, example=pose_batches[0])
    fixes = fix_padding(detector) + fix_padding(pose)
    api._set_io_dims(pose, params.crop_height, params.crop_width, len(desc.bodyparts), True)
    rename_value(pose, "image", "crops")
    pose32 = pose
    if fp16:  # the pose stage only: the detector's box decoding and NMS run in If nodes, which stay float32
        pose = fp16_mod.to_float16(pose, name)
    merged = merge(detector, pose)
    det_bytes = stage(merged, "detector/").SerializeToString()
    merged32 = merge(detector, pose32) if fp16 else merged  # the float32 file, checked against PyTorch first
    pose_bytes = stage(merged32, "pose/").SerializeToString()
    det_figures = check_detector(det_bytes, frames, det_ref, name)
    outputs = ("scoremap", "locref")
    figures, fp32_out = parity.check(pose_bytes, pose_batches, pose_ref, outputs=outputs, stride=desc.stride,
                                     locref_stdev=desc.locref_stdev, reference_name="pytorch",
                                     tolerance=FP32_TOLERANCE, source=name)
    if not figures.ok:
        raise ExportError(f"{name}: the ONNX pose stage does not reproduce PyTorch on DeepLabCut's crops: "
                          f"{'; '.join(figures.failures())} ({figures.summary()}). Nothing was written. Try another "
                          "--opset; if it persists please report it with the model (tolerances: docs/export.md).")
    figures16 = None
    if fp16:
        pose_bytes = stage(merged, "pose/").SerializeToString()
        figures16, _ = parity.check(pose_bytes, pose_batches, fp32_out, outputs=outputs, stride=desc.stride,
                                    locref_stdev=desc.locref_stdev, reference_name="onnx-fp32",
                                    tolerance=FP16_TOLERANCE, source=name)
        if not figures16.ok:
            raise ExportError(f"{name}: the float16 pose stage strays too far from float32: "
                              f"{'; '.join(figures16.failures())}. Nothing was written; export without --fp16.")
    batch_figures = parity.batch_invariance(pose_bytes, [b for b in pose_batches if len(b) >= 2], outputs=outputs,
                                            stride=desc.stride, locref_stdev=desc.locref_stdev,
                                            tolerance=BATCH_TOLERANCE, source=name)
    if not batch_figures.ok:
        raise ExportError(f"{name}: the pose stage's crops depend on the other crops of their batch: "
                          f"{'; '.join(batch_figures.failures())}. Nothing was written; please report this.")
    extra = {
        "source": Path(name).name, "source_sha256": source.sha256(), "source_kind": "dlc3",
        "source_variant": f"dlc3-{model.net_type}-topdown", "exporter": "rtpose.exporters",
        "exporter_version": api.__version__, "opset": str(opset), "fp16": "true" if fp16 else "false",
        "precision": "fp16 pose stage, fp32 detector" if fp16 else "fp32",
        "graph_fixes": str(len(fixes)), "exporter_revision": str(api.EXPORTER_REVISION), "batch_invariant": "true",
        "per_frame_rewrites": "0",
        "detector_check.boxes_max_px": f"{det_figures['boxes_max_px']:.3g}",
        "detector_check.scores_max_abs": f"{det_figures['scores_max_abs']:.3g}",
        "detector_check.detections": str(det_figures["detections"]),
        "detector_check.frames": str(len(frames)),
        "detector_check.tolerance": (f"boxes {DETECTOR_TOLERANCE['boxes_px']:g} px, "
                                     f"scores {DETECTOR_TOLERANCE['scores']:g}"),
    }
    extra.update(deps.versions("dlc3"))
    extra.update(figures.as_extra("parity"))
    extra.update(batch_figures.as_extra("batch_invariance"))
    if figures16 is not None:
        extra.update(figures16.as_extra("parity_fp16"))
    for key, value in (user_extra or {}).items():
        if key in extra:
            raise ExportError(f"extra metadata key {key!r} is set by the exporter itself; choose another name")
        extra[str(key)] = str(value)
    metadata = ModelMetadata(
        bodyparts=desc.bodyparts, stride=desc.stride, locref_stdev=desc.locref_stdev, location_refinement=True,
        scoremap_output="scoremap", locref_output="locref", input_name="image", input_color="RGB",
        input_range="0-255", preprocessing_in_graph=True, clip_scores=desc.clip_scores, extra=extra,
        layout=td.layout, topdown=params)
    api._write(merged, metadata, out, name)
    detector_line = (f"{params.detector_type} ({params.detector_variant}) vs DeepLabCut: {det_figures['detections']} "
                     f"box(es) on {len(frames)} frame(s), same count; boxes {det_figures['boxes_max_px']:.2e} px, "
                     f"scores {det_figures['scores_max_abs']:.2e} [ORT levels {', '.join(parity.ORT_LEVELS)}] -> OK")
    return ExportReport(out=out, source=name, source_kind="dlc3", variant=f"dlc3-{model.net_type}-topdown",
                        variant_note=model.note() + f"; top-down with {params.detector_type} detector, "
                        f"{params.crop_width}x{params.crop_height} crops", metadata=metadata, parity=figures,
                        parity_fp16=figures16, fp16=fp16, opset=opset, graph_fixes=tuple(fixes),
                        batch_invariance=batch_figures,
                        detector_check=detector_line)
