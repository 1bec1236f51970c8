"""DeepLabCut's top-down multi-animal parameters, as an exported model file carries them.

A DeepLabCut 3 top-down model is two networks: a detector finds a box per animal in the whole frame, then a
single-animal pose network runs on a crop around each box. rtpose exports both into one ONNX file (two
disjoint stages: ``image`` -> ``boxes``, ``box_scores``; ``crops`` -> ``scoremap``, ``locref``); these
parameters say how a frame's boxes become crops, with DeepLabCut 3.0.2's names and defaults
(``data/postprocessor.py: build_detector_postprocessor``, ``data/preprocessor.py: TopDownCrop``,
``data/image.py: top_down_crop``):

1. the detector's boxes in the graph's order (score descending), the first ``max_individuals`` kept
   (DeepLabCut's ``TrimOutputs``), then, when ``min_bbox_score`` is set, those scoring ``>=`` it;
2. each box (xyxy -> COCO xywh) cropped with ``margin`` px around it, widened to the crop's aspect ratio
   when ``with_context``, padded with zeros where it leaves the frame, resized to ``crop_width`` x
   ``crop_height`` (``cv2.INTER_LINEAR`` on the uint8 frame);
3. each crop's maps decoded as a single-animal model (the file's stride, locref_stdev, clip_scores) and
   mapped back: ``x = x_crop * scale_x + offset_x``.

``box_score_thresh`` is the detector's own threshold, already applied inside the graph (informative).
JSON in the model's metadata (``rtpose.multianimal.topdown``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

from ..errors import ModelError


@dataclass(frozen=True)
class TopDownParams:
    max_individuals: int
    crop_width: int = 256
    crop_height: int = 256
    margin: int = 0
    with_context: bool = True
    center_padding: bool = False
    min_bbox_score: float | None = None
    box_score_thresh: float | None = None
    detector_type: str = ""
    detector_variant: str = ""
    image_input: str = "image"
    crops_input: str = "crops"
    boxes_output: str = "boxes"
    scores_output: str = "box_scores"
    scoremap_output: str = "scoremap"
    locref_output: str | None = "locref"
    extra: dict = field(default_factory=dict)  # anything else worth showing (the exporter's detector check, ...)

    def __post_init__(self):
        if self.max_individuals < 1:
            raise ModelError(f"top-down parameters: max_individuals {self.max_individuals}; it must be >= 1")
        if self.crop_width < 1 or self.crop_height < 1:
            raise ModelError(f"top-down parameters: crop {self.crop_width}x{self.crop_height}; it must be positive")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "TopDownParams":
        try:
            d = json.loads(text)
            unknown = sorted(set(d) - {f.name for f in fields(cls)})
            if unknown:
                raise ModelError(f"top-down parameters {', '.join(unknown)} are unknown to this rtpose; upgrade "
                                 "rtpose or re-export the model with this version")
            return cls(**d)
        except (ValueError, TypeError) as exc:
            raise ModelError(f"the model's top-down parameters cannot be read ({exc}); re-export it with "
                             "`rtpose export`") from exc
