"""DeepLabCut's bottom-up multi-animal decoding parameters, as an exported model file carries them.

A DeepLabCut 3 multi-animal model (``PartAffinityFieldPredictor``) turns its maps into animals in three
steps; these are its parameters, with DeepLabCut 3.0.2's names and defaults:

1. peaks: the (sigmoid) score maps smoothed with a Gaussian (``sigma``, window ``2*nms_radius + 1``),
   local maxima by max-pooling (``nms_radius``), kept where ``>= peak_threshold``; refined with the
   location-refinement offsets (``locref_stdev``) at ``stride``;
2. limbs: part-affinity-field line integrals (``n_points`` samples) for the ``graph`` edges, in the
   PAF output's channel order (DeepLabCut's ``graph[edges_to_keep]``);
3. assembly: DeepLabCut's ``Assembler`` (greedy linking by affinity, ``min_affinity``, ``pcutoff``,
   ``min_n_links``, ``max_overlap``, ``force_fusion``, ``add_discarded``) into at most ``num_animals``.

The exporter writes them (JSON, ``rtpose.multianimal.assembly`` in the model's metadata); the decoder
reads them. In rtpose step 1's sigmoid and smoothing run inside the ONNX graph (``smoothed_in_graph``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

from ..errors import ModelError


@dataclass(frozen=True)
class AssemblyParams:
    num_animals: int
    graph: tuple[tuple[int, int], ...]  # (part i, part j) per PAF limb, in the PAF output's channel order
    stride: float
    locref_stdev: float = 7.2801
    nms_radius: int = 5
    sigma: float = 1.0
    peak_threshold: float = 0.01
    n_points: int = 10
    n_decimals: int = 3
    min_affinity: float = 0.05
    pcutoff: float = 0.1
    min_n_links: int = 2
    max_overlap: float = 0.8
    greedy: bool = False
    force_fusion: bool = False
    add_discarded: bool = False
    apply_sigmoid: bool = True
    clip_scores: bool = False
    smoothed_in_graph: bool = True
    # the unique-body-part head (DeepLabCut 3: a separate HeatmapHead + HeatmapPredictor, argmax per part):
    # its map stride when it differs from ``stride`` (resnet_50: 8 vs the PAF head's 4), None = ``stride``
    unique_stride: float | None = None
    # DeepLabCut's identity head (``identity: true``, IdentityPredictor): its raw maps' stride (the ONNX
    # ``identity`` output, ModelMetadata.identity_output), None = no identity head; and whether DeepLabCut
    # applies its sigmoid after the resize (rtpose.multianimal.identity)
    identity_stride: float | None = None
    identity_apply_sigmoid: bool = True
    extra: dict = field(default_factory=dict)  # anything else DeepLabCut's config had (shown by `rtpose info`)

    def __post_init__(self):
        object.__setattr__(self, "graph", tuple((int(i), int(j)) for i, j in self.graph))

    @property
    def with_identity(self) -> bool:
        """The model has DeepLabCut's identity head: animals take their slot from it (rtpose.multianimal.identity)."""
        return self.identity_stride is not None

    def to_json(self) -> str:
        d = asdict(self)
        d["graph"] = [list(e) for e in self.graph]
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "AssemblyParams":
        try:
            d = json.loads(text)
            known = {f.name for f in fields(cls)}
            unknown = sorted(set(d) - known)
            if unknown:
                raise ModelError(f"multi-animal assembly parameters {', '.join(unknown)} are unknown to this rtpose; "
                                 "upgrade rtpose or re-export the model with this version")
            return cls(**d)
        except (ValueError, TypeError, KeyError) as exc:
            raise ModelError(f"the model's multi-animal assembly parameters cannot be read ({exc}); "
                             "re-export it with `rtpose export`") from exc
