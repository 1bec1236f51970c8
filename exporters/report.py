"""What an export reports: parity figures, the tolerances they are held to, the result.

Tolerances (see docs/export.md for the measurements behind them):

* FP32 ONNX vs TensorFlow: score maps 1e-3 (absolute, on sigmoid values in
  [0, 1]), offsets 1e-2 (absolute, in the graph's raw units, i.e. before
  multiplying by ``locref_stdev``: 0.07 px at the default 7.28), decoded pose
  0.5 px. Two float32 implementations of the same graph differ by summation
  order only: measured 1e-7 to 1e-4 on score maps and up to ~1e-3 on offsets,
  so these bounds are ~10x above honest float32 noise while any real conversion
  error (a wrong padding, a swapped channel, a missing op) is orders larger.
* Batch invariance (the ONNX model on a frame alone vs inside a batch of
  other frames): score maps 1e-4, offsets 1e-3, pose 0.01 px.
* Part-affinity fields (multi-animal models; raw values, a limb's unit vector where it lies):
  held to the offsets' tolerance (1e-2 vs the framework, 1e-3 batch invariance, 0.15 FP16).
* FP16 ONNX vs FP32 ONNX: score maps 2e-2, offsets 5e-2, pose 1.0 px (float16
  keeps ~3 significant digits; the pose bound is an eighth of a stride-8 cell).

The pose difference is taken over points whose score-map peak is unambiguous:
when the two models pick different cells and the reference scores of those
cells differ by less than twice the measured score-map difference (capped at
twice the score-map tolerance), the peak is a near-tie that either model may
resolve either way; such points are counted
(``ambiguous_peaks``) and left out of ``pose_max_px``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rtpose.metadata import ModelMetadata, count_repeats


@dataclass(frozen=True)
class Tolerance:
    scoremap: float
    locref: float
    pose_px: float

    @property
    def paf(self) -> float:
        """Part-affinity fields are raw regression maps like the offsets: the same bound."""
        return self.locref


FP32_TOLERANCE = Tolerance(scoremap=1e-3, locref=1e-2, pose_px=0.5)
FP16_TOLERANCE = Tolerance(scoremap=0.1, locref=0.15, pose_px=1.0)
#: One frame alone vs the same frame in a batch of others, same model and optimisation level: only
#: the kernels' blocking differs (measured 0 to ~1e-6), while a node mixing frames moves score maps
#: by 1e-2 to 1e-1 and poses by pixels.
BATCH_TOLERANCE = Tolerance(scoremap=1e-4, locref=1e-3, pose_px=0.01)


@dataclass(frozen=True)
class ParityFigures:
    """Largest differences between a reference and an ONNX model over all check frames and ORT levels."""

    reference: str  # "tensorflow" or "onnx-fp32"
    scoremap_max_abs: float
    locref_max_abs: float | None  # raw offset units; None without location refinement
    pose_max_px: float
    ambiguous_peaks: int
    points: int  # frames x bodyparts compared
    frames: int
    frame_sizes: tuple[str, ...]  # "HxW"
    ort_levels: tuple[str, ...]
    tolerance: Tolerance
    paf_max_abs: float | None = None  # part-affinity fields (multi-animal models); None without them
    identity_max_abs: float | None = None  # identity maps after the sigmoid (identity head); None without one

    def failures(self) -> list[str]:
        tol = self.tolerance
        out = []
        if not self.scoremap_max_abs <= tol.scoremap:  # `not <=` also catches NaN
            out.append(f"score maps differ by {self.scoremap_max_abs:.3g} (tolerance {tol.scoremap:g})")
        if self.locref_max_abs is not None and not self.locref_max_abs <= tol.locref:
            out.append(f"offsets differ by {self.locref_max_abs:.3g} (tolerance {tol.locref:g})")
        if not self.pose_max_px <= tol.pose_px:
            out.append(f"poses differ by {self.pose_max_px:.3g} px (tolerance {tol.pose_px:g} px)")
        if self.paf_max_abs is not None and not self.paf_max_abs <= tol.paf:
            out.append(f"part-affinity fields differ by {self.paf_max_abs:.3g} (tolerance {tol.paf:g})")
        if self.identity_max_abs is not None and not self.identity_max_abs <= tol.paf:
            out.append(f"identity maps (sigmoid) differ by {self.identity_max_abs:.3g} (tolerance {tol.paf:g})")
        return out

    @property
    def ok(self) -> bool:
        return not self.failures()

    def as_extra(self, prefix: str) -> dict[str, str]:
        paf = {} if self.paf_max_abs is None else {f"{prefix}.paf_max_abs": f"{self.paf_max_abs:.3g}"}
        if self.identity_max_abs is not None:
            paf[f"{prefix}.identity_max_abs"] = f"{self.identity_max_abs:.3g}"
        return paf | {
            f"{prefix}.reference": self.reference,
            f"{prefix}.scoremap_max_abs": f"{self.scoremap_max_abs:.3g}",
            f"{prefix}.locref_max_abs": "" if self.locref_max_abs is None else f"{self.locref_max_abs:.3g}",
            f"{prefix}.pose_max_px": f"{self.pose_max_px:.3g}",
            f"{prefix}.ambiguous_peaks": str(self.ambiguous_peaks),
            f"{prefix}.frames": f"{self.frames} ({count_repeats(self.frame_sizes)})",
            f"{prefix}.ort_levels": ",".join(self.ort_levels),
            f"{prefix}.tolerance": (f"scoremap {self.tolerance.scoremap:g}, locref {self.tolerance.locref:g}, "
                                    f"pose {self.tolerance.pose_px:g} px"),
        }

    def summary(self) -> str:
        locref = "n/a" if self.locref_max_abs is None else f"{self.locref_max_abs:.2e}"
        if self.ambiguous_peaks:
            counted = (f"{self.points - self.ambiguous_peaks} of {self.points} points "
                       f"({self.ambiguous_peaks} near-tie peak(s) left out)")
        else:
            counted = f"{self.points} points"
        paf = "" if self.paf_max_abs is None else f", PAFs {self.paf_max_abs:.2e}"
        paf += "" if self.identity_max_abs is None else f", identity maps {self.identity_max_abs:.2e}"
        return (f"vs {self.reference}: score maps {self.scoremap_max_abs:.2e}, offsets {locref}{paf}, "
                f"pose {self.pose_max_px:.3f} px over {counted} "
                f"[{self.frames} frame(s) {', '.join(sorted(set(self.frame_sizes)))}; ORT levels "
                f"{', '.join(self.ort_levels)}] -> {'OK' if self.ok else 'FAILED'}")


@dataclass(frozen=True)
class ExportReport:
    """The result of one export: where it went, what was found, how faithful it is."""

    out: Path
    source: str
    source_kind: str  # "dlc" | "savedmodel" | "keras" | "keras-model" | "onnx" (re-checked)
    variant: str
    variant_note: str
    metadata: ModelMetadata
    parity: ParityFigures | None  # the FP32 ONNX model vs TensorFlow; None for a re-checked ONNX file
    parity_fp16: ParityFigures | None = None  # the FP16 model vs the FP32 ONNX model
    fp16: bool = False
    opset: int = 17
    graph_fixes: tuple[str, ...] = field(default_factory=tuple)
    batch_invariance: ParityFigures | None = None  # the model on frames alone vs inside batches
    per_frame_rewrites: tuple[str, ...] = field(default_factory=tuple)  # batch-mixing nodes made per-frame
    parity_uint8: ParityFigures | None = None  # the uint8 BGR-input model on the same frames as uint8 BGR
    decode_check: str = ""  # --decode-in-graph: the in-graph decode vs rtpose.decode on the check frames
    detector_check: str = ""  # top-down models: the detector stage vs the framework's detector

    def summary(self) -> str:
        lines = [
            f"source:   {self.source} ({self.source_kind})",
            f"variant:  {self.variant}: {self.variant_note}",
            f"model:    {len(self.metadata.bodyparts)} bodyparts {', '.join(self.metadata.bodyparts)}; "
            f"stride {self.metadata.stride:g}; locref_stdev {self.metadata.locref_stdev:g}; "
            f"outputs {self.metadata.scoremap_output}"
            + (f", {self.metadata.locref_output}" if self.metadata.locref_output else "")
            + (f", {self.metadata.paf_output}" if self.metadata.paf_output else ""),
        ]
        meta = self.metadata
        if meta.topdown is not None:
            td = meta.topdown
            lines.append(f"animals:  top-down, up to {td.max_individuals} of {meta.layout.n_animals} individuals "
                         f"{', '.join(meta.layout.individuals)}; detector {td.detector_type} "
                         f"({td.detector_variant}); {td.crop_width}x{td.crop_height} crops, margin {td.margin}")
        elif meta.layout is not None:
            lines.append(f"animals:  {meta.layout.n_animals} individuals {', '.join(meta.layout.individuals)}; "
                         f"PAF output {meta.paf_output} with {len(meta.assembly.graph)} limbs "
                         + ", ".join(f"{meta.bodyparts[i]}-{meta.bodyparts[j]}" for i, j in meta.assembly.graph))
        if self.detector_check:
            lines.append(f"check detector {self.detector_check}")
        if self.parity is not None:
            lines.append(f"check FP32 {'pose stage ' if meta.topdown is not None else ''}{self.parity.summary()}")
        if self.parity_fp16 is not None:
            lines.append(f"check FP16 {self.parity_fp16.summary()}")
        if self.parity_uint8 is not None:
            lines.append(f"check uint8 BGR input {self.parity_uint8.summary()}")
        if self.batch_invariance is not None:
            lines.append(f"check batch {self.batch_invariance.summary()}")
        if self.decode_check:
            lines.append(f"check decode in graph (output {self.metadata.pose_output}): {self.decode_check}")
        if self.per_frame_rewrites:
            lines.append(f"batch:    {len(self.per_frame_rewrites)} training-mode batch norm(s) rewritten to "
                         "per-frame statistics (InstanceNormalization), as DeepLabCut computes one frame at a time")
        if self.graph_fixes:
            lines.append(f"graph:    {len(self.graph_fixes)} padding rewrite(s) for onnxruntime "
                         f"(exactly equivalent; see docs/export.md)")
        lines.append(f"wrote:    {self.out} (opset {self.opset}{', float16 weights' if self.fp16 else ''})")
        return "\n".join(lines)
