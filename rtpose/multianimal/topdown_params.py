"""DeepLabCut 3 top-down (detector + pose model) parameters, as an exported model file carries them.

A top-down model is one ONNX file with two disjoint stages (docs/export.md, "Top-down models"):
the detector (input ``image_input``, one whole RGB frame; outputs ``boxes_output`` xyxy in frame pixels and
``scores_output``, in torchvision's order, score descending, torchvision's own ``box_score_thresh``, NMS and
per-image cap already applied in the graph) and the pose model (input ``crops_input``, N crops; outputs the
single-animal DeepLabCut 3 ``HeatmapHead`` maps ``scoremap_output`` / ``locref_output``, decoded per crop with
the model metadata's stride, locref_stdev, apply_sigmoid and clip_scores).

Between the two, DeepLabCut 3.0.2's own selection and crop (``data/postprocessor.py:
build_detector_postprocessor``, ``data/preprocessor.py: TopDownCrop``, ``data/image.py: top_down_crop``):

1. keep the first ``max_individuals`` boxes (``TrimOutputs``), then, if ``min_bbox_score`` is not None, those
   with score >= it (``RemoveLowConfidenceBoxes``; DeepLabCut's default: None, no filter); xyxy -> xywh;
2. crop each box from the RGB uint8 frame with ``top_down_crop(frame, xywh, (crop_width, crop_height),
   margin, center_padding, crop_with_context=with_context)`` -> crop, offset, scale;
3. decode each crop; frame coordinates ``x * scale_x + offset_x``, ``y * scale_y + offset_y``.

The exporter writes these (JSON, ``multianimal.topdown`` in the model's metadata); the runtime reads them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

from ..errors import ModelError


@dataclass(frozen=True)
class TopDownParams:
    detector_type: str  # DeepLabCut's detector class: "SSDLite" or "FasterRCNN"
    detector_variant: str  # torchvision's model, e.g. "ssdlite320_mobilenet_v3_large"
    box_score_thresh: float  # the threshold the torchvision model applies inside the graph (informative; SSDLite:
    # its own 0.001, DeepLabCut's configured box_score_thresh does not reach it; extra.config_box_score_thresh)
    max_individuals: int
    crop_width: int
    crop_height: int
    min_bbox_score: float | None = None
    margin: int = 0
    with_context: bool = True
    center_padding: bool = False
    image_input: str = "image"
    crops_input: str = "crops"
    boxes_output: str = "boxes"
    scores_output: str = "box_scores"
    scoremap_output: str = "scoremap"
    locref_output: str = "locref"
    extra: dict = field(default_factory=dict)  # anything else worth showing (detector check figures, ...)

    def __post_init__(self):
        if self.max_individuals < 1 or self.crop_width < 1 or self.crop_height < 1:
            raise ModelError(f"top-down parameters max_individuals {self.max_individuals}, crop "
                             f"{self.crop_width}x{self.crop_height} make no sense; re-export the model")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "TopDownParams":
        try:
            d = json.loads(text)
            unknown = sorted(set(d) - {f.name for f in fields(cls)})
            if unknown:
                raise ModelError(f"top-down parameters {', '.join(unknown)} are unknown to this rtpose; "
                                 "upgrade rtpose or re-export the model with this version")
            return cls(**d)
        except (ValueError, TypeError, KeyError) as exc:
            raise ModelError(f"the model's top-down parameters cannot be read ({exc}); "
                             "re-export it with `rtpose export`") from exc
