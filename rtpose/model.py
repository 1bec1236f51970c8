"""Pose models: a small backend protocol and its ONNX Runtime implementation.

A backend owns a preallocated input batch ``(max_batch, H, W, 3)`` and output
buffers; the pipeline copies frames into :attr:`PoseBackend.input_buffer`
(with :meth:`PoseBackend.load_frame`, which also converts BGR to the model's
colour order) and calls :meth:`PoseBackend.run`, which returns views of the
preallocated score maps ``(n, h, w, K)`` and offsets ``(n, h, w, K, 2)``.

:class:`OnnxPoseModel` picks execution providers automatically (TensorRT >
CUDA > CPU) unless told otherwise, and binds inputs/outputs to the
preallocated NumPy buffers (IOBinding), so a steady-state run allocates no
frame-sized memory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, Sequence

import cv2
import numpy as np

from .errors import MissingDependencyError, ModelError, ModelInputError
from .metadata import ModelMetadata

#: Provider short names accepted by ``providers=`` and the CLI, best first.
PROVIDER_NAMES = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
_ORT_DTYPES = {"tensor(float)": np.float32, "tensor(uint8)": np.uint8}


class PoseBackend(Protocol):
    """What the pipeline needs from a model."""

    metadata: ModelMetadata
    provider: str
    input_buffer: np.ndarray

    def prepare(self, max_batch: int, height: int, width: int) -> None: ...

    def load_frame(self, row: int, frame_bgr: np.ndarray) -> None: ...

    def run(self, n: int) -> tuple[np.ndarray, np.ndarray | None]: ...

    @property
    def map_shape(self) -> tuple[int, int]: ...


def import_onnxruntime():
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise MissingDependencyError(
            "ONNX Runtime is not installed. Install exactly one of: "
            "`pip install 'rtpose[cpu]'` (CPU) or `pip install 'rtpose[gpu]'` (NVIDIA GPU)."
        ) from exc
    if not hasattr(ort, "InferenceSession"):
        raise MissingDependencyError(
            "the onnxruntime package is broken (typically onnxruntime and onnxruntime-gpu were both installed "
            "into one environment). Repair with `pip uninstall -y onnxruntime onnxruntime-gpu` and then "
            "`pip install 'rtpose[cpu]'` or `pip install 'rtpose[gpu]'`."
        )
    return ort


def available_providers() -> list[str]:
    return list(import_onnxruntime().get_available_providers())


def choose_providers(requested: Sequence[str] | None) -> list[str]:
    """Map short names (``cpu``, ``cuda``, ``tensorrt``) to ORT providers, best first.

    ``None`` or ``["auto"]`` means: every available one of TensorRT, CUDA, CPU.
    """
    available = available_providers()
    if not requested or list(requested) == ["auto"]:
        return [p for p in PROVIDER_NAMES.values() if p in available]
    chosen = []
    for name in requested:
        full = PROVIDER_NAMES.get(name.lower())
        if full is None:
            raise ModelError(f"unknown provider {name!r}; choose from {', '.join(PROVIDER_NAMES)} or auto")
        if full not in available:
            raise ModelError(
                f"provider {name} is not available in this onnxruntime (available: {', '.join(available)}). "
                "For GPUs install `pip install 'rtpose[gpu]'` (and not the CPU package)."
            )
        chosen.append(full)
    return chosen


def default_threads() -> int:
    """Intra-op threads: the CPUs this process may use (at least 1)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class OnnxPoseModel:
    """An rtpose ONNX file on ONNX Runtime. See the module docstring."""

    def __init__(self, path: str | os.PathLike, *, providers: Sequence[str] | None = None, threads: int | None = None):
        ort = import_onnxruntime()
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"model file {self.path} does not exist; give an rtpose .onnx file or a DeepLabCut exported-model folder")
        self._providers_requested = list(providers) if providers else None
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or default_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        provider_list = choose_providers(providers)
        provider_args = [self._provider_options(p) for p in provider_list]
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=options, providers=provider_list,
                                                provider_options=provider_args)
        except Exception as exc:  # ORT raises its own exception types for corrupt files
            raise ModelError(f"{self.path} is not a loadable ONNX model ({exc}); re-export it with `rtpose export`") from exc
        self.provider = self.session.get_providers()[0]
        if self._providers_requested and self.provider != provider_list[0]:
            raise ModelError(
                f"asked for {provider_list[0]} but ONNX Runtime fell back to {self.provider} "
                "(missing CUDA/cuDNN/TensorRT libraries?). Run `rtpose info` to see what is available."
            )
        self.metadata = ModelMetadata.from_props(self.session.get_modelmeta().custom_metadata_map, source=str(self.path))
        self._check_signature()
        self.input_buffer = np.zeros((0, 0, 0, 3), self._input_dtype)
        self._rgb_scratch = np.zeros((0, 0, 3), np.uint8)
        self._scmap = self._locref = None
        self._bindings: dict[int, object] = {}
        self._swap_rb = self.metadata.input_color == "RGB"

    @staticmethod
    def _provider_options(provider: str) -> dict[str, str]:
        if provider == "TensorrtExecutionProvider":
            cache = Path(os.environ.get("RTPOSE_CACHE_DIR", Path.home() / ".cache" / "rtpose")) / "tensorrt"
            cache.mkdir(parents=True, exist_ok=True)
            return {"trt_engine_cache_enable": "True", "trt_engine_cache_path": str(cache), "trt_fp16_enable": "False"}
        return {}

    def _check_signature(self) -> None:
        meta = self.metadata
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name: o for o in self.session.get_outputs()}
        if meta.input_name not in inputs:
            raise ModelError(f"{self.path}: metadata names input {meta.input_name!r} but the graph has {list(inputs)}; re-export the model")
        inp = inputs[meta.input_name]
        if len(inp.shape) != 4 or (isinstance(inp.shape[3], int) and inp.shape[3] != 3):
            raise ModelError(f"{self.path}: input {inp.name} has shape {inp.shape}; rtpose needs NHWC (batch, height, width, 3)")
        if inp.type not in _ORT_DTYPES:
            raise ModelError(f"{self.path}: input type {inp.type} unsupported; rtpose feeds float32 or uint8")
        self._input_dtype = _ORT_DTYPES[inp.type]
        self._static_batch = inp.shape[0] if isinstance(inp.shape[0], int) else None
        wanted = [meta.scoremap_output] + ([meta.locref_output] if meta.location_refinement else [])
        missing = [w for w in wanted if w not in outputs]
        if missing:
            raise ModelError(f"{self.path}: outputs {missing} named in the metadata are not in the graph (it has {list(outputs)}); re-export the model")
        self._output_names = wanted

    # -- PoseBackend -------------------------------------------------------
    @property
    def map_shape(self) -> tuple[int, int]:
        if self._scmap is None:
            raise ModelError("call prepare() before asking for the map shape")
        return self._scmap.shape[1], self._scmap.shape[2]

    def prepare(self, max_batch: int, height: int, width: int) -> None:
        """Preallocate input/output buffers for batches of up to ``max_batch`` frames of this size."""
        stride = int(self.metadata.stride)
        if height < stride or width < stride:
            raise ModelInputError(f"frames of {width}x{height} are smaller than the model stride {stride}")
        if self._static_batch is not None and max_batch > self._static_batch:
            raise ModelInputError(f"{self.path} takes batches of exactly {self._static_batch}; use --batch {self._static_batch} or re-export with a dynamic batch")
        self.input_buffer = np.zeros((max_batch, height, width, 3), self._input_dtype)
        self._rgb_scratch = np.zeros((height, width, 3), np.uint8)
        probe = self.session.run(self._output_names, {self.metadata.input_name: self.input_buffer[:1]})
        k = self.metadata.num_bodyparts
        sc = probe[0]
        if sc.ndim != 4 or sc.shape[3] != k:
            raise ModelError(f"{self.path}: score maps have shape {sc.shape}, expected (batch, h, w, {k}) for bodyparts {self.metadata.bodyparts}")
        h, w = sc.shape[1:3]
        self._scmap = np.zeros((max_batch, h, w, k), np.float32)
        if self.metadata.location_refinement:
            lr = probe[1]
            if lr.shape[1:] != (h, w, 2 * k):
                raise ModelError(f"{self.path}: offsets have shape {lr.shape}, expected (batch, {h}, {w}, {2 * k})")
            self._locref = np.zeros((max_batch, h, w, 2 * k), np.float32)
        else:
            self._locref = None
        self._bindings.clear()

    def load_frame(self, row: int, frame_bgr: np.ndarray) -> None:
        """Copy one BGR uint8 frame into row ``row`` of the input batch (colour order converted)."""
        dst = self.input_buffer[row]
        if frame_bgr.shape != dst.shape:
            raise ModelInputError(f"frame has shape {frame_bgr.shape}, the model was prepared for {dst.shape}")
        if self._swap_rb:
            # OpenCV swaps channels into a contiguous uint8 scratch buffer (~0.2 ms at 640x480), then one
            # contiguous cast; a cast through the reversed channel view is ~10x slower in NumPy.
            cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB, dst=self._rgb_scratch)
            frame_bgr = self._rgb_scratch
        np.copyto(dst, frame_bgr, casting="unsafe")

    def _binding(self, n: int):
        binding = self._bindings.get(n)
        if binding is None:
            binding = self.session.io_binding()
            buf = self.input_buffer
            binding.bind_input(self.metadata.input_name, "cpu", 0, buf.dtype, [n, *buf.shape[1:]], buf.ctypes.data)
            outs = [self._scmap] + ([self._locref] if self._locref is not None else [])
            for name, out in zip(self._output_names, outs):
                binding.bind_output(name, "cpu", 0, out.dtype, [n, *out.shape[1:]], out.ctypes.data)
            self._bindings[n] = binding
        return binding

    def run(self, n: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Run rows ``[:n]`` of the input batch; returns views of the preallocated outputs."""
        if self._scmap is None:
            raise ModelError("call prepare() before run()")
        if not 0 < n <= self.input_buffer.shape[0]:
            raise ModelInputError(f"batch of {n} frames; the model was prepared for 1..{self.input_buffer.shape[0]}")
        self.session.run_with_iobinding(self._binding(n))
        k = self.metadata.num_bodyparts
        locref = None
        if self._locref is not None:
            locref = self._locref[:n].reshape(n, *self._locref.shape[1:3], k, 2)
        return self._scmap[:n], locref

    def infer(self, frames_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Convenience for scripts: run a (B, H, W, 3) uint8 BGR array (prepares as needed)."""
        if frames_bgr.ndim != 4 or frames_bgr.shape[3] != 3 or frames_bgr.dtype != np.uint8:
            raise ModelInputError(f"expected frames as (batch, height, width, 3) uint8 BGR, got {frames_bgr.shape} {frames_bgr.dtype}")
        b, h, w, _ = frames_bgr.shape
        if self.input_buffer.shape[0] < b or self.input_buffer.shape[1:3] != (h, w):
            self.prepare(b, h, w)
        for i in range(b):
            self.load_frame(i, frames_bgr[i])
        return self.run(b)


def load_model(spec: str | os.PathLike | None = None, *, providers: Sequence[str] | None = None,
               threads: int | None = None) -> OnnxPoseModel:
    """Load a model from an .onnx file, a DeepLabCut exported-model folder or a DeepLabCut 3
    ``.pt`` (exported once into a cache, needs the ``export`` or ``export-torch`` extra) or,
    with ``None``, the bundled model."""
    if spec is None:
        from .models import default_model_path

        path = default_model_path()
    else:
        path = Path(spec)
        if path.is_dir() or path.suffix.lower() in (".pt", ".pth"):
            from .exporters.cache import ensure_onnx

            path = ensure_onnx(path)
        elif not path.exists():
            raise ModelError(f"model {path} does not exist; give an rtpose .onnx file, a DeepLabCut exported-model folder, or omit --model for the bundled one")
    return OnnxPoseModel(path, providers=providers, threads=threads)
