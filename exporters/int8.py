"""Statically quantised INT8 models (QDQ), calibrated on real frames, gated on accuracy against FP32.

:func:`quantize_int8` takes an rtpose FP32 ONNX file and writes its INT8 twin:

1. **Calibration:** frames from a video (evenly spaced) or image files go
   through rtpose's own input conversion (``OnnxPoseModel.load_frame``) and
   ONNX Runtime's static quantiser (``onnxruntime.quantization.quantize_static``,
   QDQ format, uint8 activations, int8 per-channel weights, MinMax ranges)
   records the activation ranges on them.
2. **Gate:** FP32 and INT8 both predict poses (DeepLabCut's decode) on
   labelled frames (a DeepLabCut ``CollectedData_*.csv`` beside its images).
   The INT8 model is kept only if its poses move on average by at most
   :data:`MAX_MEAN_SHIFT_PX` from FP32's and its PCK@5 (fraction of labelled
   keypoints within 5 px of the label) is not lower than FP32's; otherwise
   :class:`~rtpose.errors.ExportError` with the figures, and nothing is written.
3. The metadata records the precision, the quantisation, the calibration
   frames and the gate's figures (``rtpose.extra.precision``, ``.int8.*``,
   ``.gate.*``).
"""

from __future__ import annotations

import csv
import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rtpose.errors import ExportError
from rtpose.metadata import ModelMetadata

from . import deps

#: The gate (issue 11): mean pose shift INT8 vs FP32 at most this, PCK@PCK_PX not lower than FP32's.
MAX_MEAN_SHIFT_PX = 0.3
PCK_PX = 5.0
DEFAULT_CALIBRATION_FRAMES = 64
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class GateFigures:
    """FP32 vs INT8 on labelled frames."""

    frames: int
    keypoints: int  # labelled keypoints counted in PCK
    mean_shift_px: float  # mean distance INT8 pose - FP32 pose, over every keypoint of every frame
    max_shift_px: float
    pck_fp32: float
    pck_int8: float
    max_mean_shift_px: float = MAX_MEAN_SHIFT_PX
    pck_px: float = PCK_PX

    @property
    def passed(self) -> bool:
        return self.mean_shift_px <= self.max_mean_shift_px and self.pck_int8 >= self.pck_fp32

    def summary(self) -> str:
        return (f"mean pose shift {self.mean_shift_px:.3f} px (max {self.max_shift_px:.2f} px; gate "
                f"<= {self.max_mean_shift_px:g} px), PCK@{self.pck_px:g} INT8 {self.pck_int8:.3f} vs FP32 "
                f"{self.pck_fp32:.3f} (gate: not lower), on {self.frames} labelled frames ({self.keypoints} "
                f"keypoints) -> {'passed' if self.passed else 'FAILED'}")

    def as_extra(self) -> dict[str, str]:
        return {"gate.passed": "true" if self.passed else "false", "gate.frames": str(self.frames),
                "gate.keypoints": str(self.keypoints), "gate.mean_shift_px": f"{self.mean_shift_px:.4f}",
                "gate.max_shift_px": f"{self.max_shift_px:.3f}", "gate.pck_fp32": f"{self.pck_fp32:.4f}",
                "gate.pck_int8": f"{self.pck_int8:.4f}",
                "gate.rule": f"mean shift <= {self.max_mean_shift_px:g} px and PCK@{self.pck_px:g} not lower"}


@dataclass(frozen=True)
class Int8Report:
    out: Path
    source: str
    calibration: str
    gate: GateFigures
    metadata: ModelMetadata

    def summary(self) -> str:
        return "\n".join([f"source:   {self.source} (FP32)", f"calibration: {self.calibration}",
                          f"gate:     {self.gate.summary()}", f"wrote:    {self.out} (INT8, QDQ)"])


# ----------------------------------------------------------------------------- inputs

def read_frames(spec, limit: int = DEFAULT_CALIBRATION_FRAMES) -> tuple[list[np.ndarray], str]:
    """BGR uint8 frames from a video (``limit`` evenly spaced) or image files/folders; and a description."""
    import cv2

    paths = [Path(p) for p in (spec if isinstance(spec, (list, tuple)) else [spec])]
    if len(paths) == 1 and paths[0].suffix.lower() in VIDEO_SUFFIXES:
        video = paths[0]
        cap = cv2.VideoCapture(str(video))
        try:
            total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            if not cap.isOpened() or total <= 0:
                raise ExportError(f"{video}: cannot read this video for calibration; give another video or images")
            wanted = set(np.linspace(0, total - 1, min(limit, total)).round().astype(int).tolist())
            frames, i = [], 0
            while len(frames) < len(wanted):
                ok = cap.grab()
                if not ok:
                    break
                if i in wanted:
                    ok, frame = cap.retrieve()
                    if ok:
                        frames.append(frame)
                i += 1
        finally:
            cap.release()
        if not frames:
            raise ExportError(f"{video}: no frames could be read for calibration")
        return frames, f"{len(frames)} frames of {video.name}, evenly spaced"
    files = []
    for p in paths:
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            files.append(p)
        else:
            raise ExportError(f"{p}: not a video, image or folder; give --calibrate VIDEO or IMAGES")
    if not files:
        raise ExportError(f"no images found in {', '.join(map(str, paths))} for calibration")
    if len(files) > limit:
        files = [files[int(i)] for i in np.linspace(0, len(files) - 1, limit).round()]
    frames = []
    for f in files:
        img = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if img is None:
            raise ExportError(f"{f}: cannot be read as an image")
        frames.append(img)
    return frames, f"{len(frames)} images ({files[0].parent.name}/...)"


def read_labels(csv_path, bodyparts) -> tuple[list[np.ndarray], np.ndarray, list[str]]:
    """A DeepLabCut ``CollectedData_*.csv`` (or the folder holding one) and its images (found by file name
    beside it) -> BGR frames, ``(N, K, 2)`` labels in ``bodyparts`` order (NaN: unlabelled), image names."""
    import cv2

    path = Path(csv_path)
    if path.is_dir():
        found = sorted(path.glob("CollectedData_*.csv"))
        if not found:
            raise ExportError(f"{path}: no CollectedData_*.csv (DeepLabCut labels) in this folder")
        path = found[0]
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except OSError as exc:
        raise ExportError(f"{path}: cannot read the labels ({exc})") from exc
    if len(rows) < 4 or rows[1][:1] != ["bodyparts"] or rows[2][:1] != ["coords"]:
        raise ExportError(f"{path}: not a DeepLabCut CollectedData CSV (rows scorer, bodyparts, coords, then one "
                          "row per image)")
    columns = {(bp, c): col for col, (bp, c) in enumerate(zip(rows[1][1:], rows[2][1:]), start=1)}
    missing = [bp for bp in bodyparts if (bp, "x") not in columns or (bp, "y") not in columns]
    if missing:
        raise ExportError(f"{path}: no labels for the model's bodyparts {missing} (it labels "
                          f"{sorted({bp for bp, _ in columns})})")
    frames, labels, names = [], [], []
    for row in rows[3:]:
        if not row or not row[0].strip():
            continue
        name = Path(row[0].replace("\\", "/")).name
        img = cv2.imread(str(path.parent / name), cv2.IMREAD_COLOR)
        if img is None:
            raise ExportError(f"{path.parent / name}: labelled image not found or unreadable (images must lie "
                              "beside the CSV)")
        xy = np.full((len(bodyparts), 2), np.nan)
        for k, bp in enumerate(bodyparts):
            for j, c in enumerate("xy"):
                cell = row[columns[(bp, c)]].strip() if columns[(bp, c)] < len(row) else ""
                try:
                    xy[k, j] = float(cell)
                except ValueError:
                    pass
        frames.append(img)
        labels.append(xy)
        names.append(name)
    if not frames:
        raise ExportError(f"{path}: no labelled images")
    return frames, np.stack(labels), names


# ----------------------------------------------------------------------------- gate

def predict(model_path, frames) -> np.ndarray:
    """``(N, K, 3)`` poses, one frame at a time, through rtpose's own input conversion and decode."""
    from rtpose.decode import Decoder
    from rtpose.model import OnnxPoseModel

    model = OnnxPoseModel(model_path, providers=["cpu"])
    meta = model.metadata
    dec = Decoder(meta.stride, meta.locref_stdev, meta.num_bodyparts, 1)
    out = np.zeros((len(frames), meta.num_bodyparts, 3))
    for i, frame in enumerate(frames):
        if model.input_buffer.shape[1:3] != frame.shape[:2]:
            model.prepare(1, frame.shape[0], frame.shape[1])
        model.load_frame(0, frame)
        scmap, locref = model.run(1)
        dec.decode(scmap, locref, out[i:i + 1], 1)
    return out


def gate(fp32: np.ndarray, int8: np.ndarray, labels: np.ndarray, *, max_mean_shift_px: float = MAX_MEAN_SHIFT_PX,
         pck_px: float = PCK_PX) -> GateFigures:
    """The accuracy gate's figures from FP32 and INT8 poses ``(N, K, 3)`` and labels ``(N, K, 2)``. Pure."""
    shift = np.hypot(int8[..., 0] - fp32[..., 0], int8[..., 1] - fp32[..., 1])
    labelled = ~np.isnan(labels).any(axis=-1)

    def pck(poses):
        err = np.hypot(poses[..., 0] - labels[..., 0], poses[..., 1] - labels[..., 1])
        return float((err[labelled] <= pck_px).mean()) if labelled.any() else float("nan")

    return GateFigures(frames=int(fp32.shape[0]), keypoints=int(labelled.sum()),
                       mean_shift_px=float(np.nanmean(shift)), max_shift_px=float(np.nanmax(shift)),
                       pck_fp32=pck(fp32), pck_int8=pck(int8), max_mean_shift_px=max_mean_shift_px, pck_px=pck_px)


# ----------------------------------------------------------------------------- quantisation

#: Operators passed through when tracing an output back to the layer that computes it.
_PASS_THROUGH = {"Transpose", "Sigmoid", "Pad", "Slice", "Reshape", "Identity", "Cast", "Squeeze", "Unsqueeze"}


def output_heads(model) -> list[str]:
    """Names of the nodes that compute the model's outputs: for each output, the nodes from it back to (and
    including) the first Conv/ConvTranspose/MatMul/Gemm. Quantising them costs the most accuracy per
    millisecond saved (the offsets need sub-pixel precision), so they stay float."""
    producer = {o: n for n in model.graph.node for o in n.output}
    heads = []
    for out in model.graph.output:
        name = out.name
        while (node := producer.get(name)) is not None:
            heads.append(node.name)
            if node.op_type not in _PASS_THROUGH:
                break
            name = node.input[0]
    return heads


class _Frames:
    """onnxruntime.quantization's CalibrationDataReader over frames, converted as rtpose feeds the model."""

    def __init__(self, model_path, frames):
        from rtpose.model import OnnxPoseModel

        self._model = OnnxPoseModel(model_path, providers=["cpu"])
        self._frames = iter(frames)

    def get_next(self):
        frame = next(self._frames, None)
        if frame is None:
            return None
        m = self._model
        if m.input_buffer.shape[1:3] != frame.shape[:2]:
            m.prepare(1, frame.shape[0], frame.shape[1])
        m.load_frame(0, frame)
        return {m.metadata.input_name: m.input_buffer[:1].copy()}

    def rewind(self):  # pragma: no cover - not used by quantize_static's single pass
        raise NotImplementedError


def quantize_int8(fp32_path, out, *, calibrate, labels, calibration_frames: int = DEFAULT_CALIBRATION_FRAMES,
                  max_mean_shift_px: float = MAX_MEAN_SHIFT_PX, float_heads: bool = True,
                  calibration_method: str = "MinMax", refuse: bool = True) -> Int8Report:
    """Write the INT8 (QDQ) twin of the rtpose FP32 model ``fp32_path`` to ``out`` if it passes the gate.

    ``calibrate``: a video or image files/folders (real frames); ``labels``: a DeepLabCut
    ``CollectedData_*.csv`` (or its folder) with its images beside it. ``float_heads``: keep the
    layers that compute the outputs in float (:func:`output_heads`). ``refuse=False`` (benchmarks
    only, never the CLI: they time INT8 whatever its accuracy) writes a model that failed the gate
    too, its metadata saying so (``gate.passed: false``).
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from .api import _write

    onnx = deps.onnx()
    fp32_path, out = Path(fp32_path), Path(out)
    model = onnx.load(str(fp32_path))
    meta = ModelMetadata.from_props({p.key: p.value for p in model.metadata_props}, source=str(fp32_path))
    if meta.extra.get("precision", "fp32") != "fp32" or meta.extra.get("fp16") == "true":
        raise ExportError(f"{fp32_path} is not an FP32 model (precision {meta.extra.get('precision', 'fp16')}); "
                          "quantise the FP32 export")
    calib, calib_note = read_frames(calibrate, calibration_frames)
    frames, truth, _ = read_labels(labels, meta.bodyparts)
    with tempfile.TemporaryDirectory(prefix="rtpose-int8-") as tmp_name:
        tmp = Path(tmp_name)
        q_path, named_path = tmp / "int8.onnx", tmp / "fp32-named.onnx"
        for i, node in enumerate(model.graph.node):  # the quantiser excludes nodes by name: give every node one
            if not node.name:
                node.name = f"{node.op_type}_{i}"
        onnx.save(model, str(named_path))
        excluded = output_heads(model) if float_heads else []
        try:
            quantize_static(str(named_path), str(q_path), _Frames(fp32_path, calib), quant_format=QuantFormat.QDQ,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                            calibrate_method=getattr(CalibrationMethod, calibration_method), nodes_to_exclude=excluded)
        except Exception as exc:  # onnxruntime's quantiser raises assorted types
            raise ExportError(f"{fp32_path}: ONNX Runtime's static quantisation failed ({type(exc).__name__}: "
                              f"{exc}); please report this with the model") from exc
        figures = gate(predict(fp32_path, frames), predict(q_path, frames), truth,
                       max_mean_shift_px=max_mean_shift_px)
        if refuse and not figures.passed:
            raise ExportError(f"{fp32_path}: the INT8 model is refused by the accuracy gate: {figures.summary()}. "
                              "Nothing was written. Calibrate on more (or more typical) frames, or keep FP32.")
        quantized = onnx.load(str(q_path))
    extra = dict(meta.extra)
    extra.update({"precision": "int8", "int8.format": "QDQ static, uint8 activations, int8 per-channel weights",
                  "int8.calibration": calib_note, "int8.calibration_method": calibration_method,
                  "int8.float_nodes": ",".join(excluded),
                  "int8.fp32_source": fp32_path.name, **figures.as_extra()})
    int8_meta = dataclasses.replace(meta, extra=extra)
    _write(quantized, int8_meta, out, str(fp32_path), doc_string=f"rtpose INT8 (QDQ) quantisation of {fp32_path.name}")
    return Int8Report(out=out, source=str(fp32_path), calibration=calib_note, gate=figures, metadata=int8_meta)


__all__ = ["GateFigures", "Int8Report", "MAX_MEAN_SHIFT_PX", "PCK_PX", "gate", "quantize_int8", "read_frames",
           "read_labels"]
