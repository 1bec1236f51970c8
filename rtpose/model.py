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

import math
import os
from pathlib import Path
from typing import Protocol, Sequence

import cv2
import numpy as np

from .errors import ConfigError, MissingDependencyError, ModelError, ModelInputError
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

    def set_input_size(self, height: int, width: int) -> None: ...

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


#: Default for ONNX Runtime's intra-op thread spinning. Off: with one core kept busy by another process,
#: 2 spinning threads took 23.8 ms p50 on the bundled model vs 15.7 ms without spinning (idle: 11.1 vs
#: 13.5 ms; /work/shared/notes/stack-facts.md, docs/performance.md "Steady latency on a busy machine").
#: Rig PCs are never idle; a spinning pool fights the other processes for the cores it waits on.
DEFAULT_SPINNING = False


def default_threads() -> int:
    """Intra-op threads: the CPUs this process may use (at least 1)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


#: How far (in cells) a score map may differ from input size / stride: networks round up or down
#: at each strided layer (DeepLabCut's ResNets give ceil(H / stride), some exports one cell less).
MAP_SIZE_TOLERANCE_CELLS = 1
#: Height and width of the test frame a model with a dynamic input size is checked on when loaded.
PROBE_SIZE = 256
#: Score maps are probabilities (the sigmoid is inside the graph); this much rounding is tolerated.
SCORE_TOLERANCE = 1e-3


def check_map_geometry(path, stride: float, height: int, width: int, map_h: int, map_w: int) -> None:
    """Refuse (ModelError) score maps whose size does not match input size / stride: decoding with
    the metadata's stride would put poses outside the frame (e.g. x = 3876 on a 640-px frame)."""
    for name, size, cells in (("height", height, map_h), ("width", width, map_w)):
        expected = size / stride
        if not (math.floor(expected) - MAP_SIZE_TOLERANCE_CELLS <= cells <= math.ceil(expected) + MAP_SIZE_TOLERANCE_CELLS):
            raise ModelError(
                f"{path}: for {width}x{height} frames the score map is {map_w}x{map_h} cells, but the metadata's stride "
                f"{stride:g} means about {width / stride:.0f}x{height / stride:.0f}; poses would be decoded at wrong "
                f"places. The stride in the metadata does not fit the graph (its real stride is about {size / max(cells, 1):.3g}): "
                "re-export the model with the right stride (rtpose export --stride)"
            )


def check_score_range(path, scores: np.ndarray) -> None:
    """Refuse (ModelError) score maps that are not probabilities in 0..1 (e.g. logits without the sigmoid):
    they would be reported as likelihoods such as 220."""
    finite = bool(np.all(np.isfinite(scores)))
    lo, hi = (float(scores.min()), float(scores.max())) if finite else (float("nan"), float("nan"))
    if not finite or lo < -SCORE_TOLERANCE or hi > 1 + SCORE_TOLERANCE:
        raise ModelError(
            f"{path}: on a test frame the score maps range from {lo:.4g} to {hi:.4g}, but they must be probabilities "
            "in 0..1 (likelihoods). The graph probably lacks the final sigmoid: re-export it with `rtpose export`"
        )


class OnnxPoseModel:
    """An rtpose ONNX file on ONNX Runtime. See the module docstring."""

    def __init__(self, path: str | os.PathLike, *, providers: Sequence[str] | None = None, threads: int | None = None,
                 spinning: bool = DEFAULT_SPINNING):
        if threads is not None and not (isinstance(threads, int) and threads >= 1):
            raise ConfigError(f"threads must be None (all usable cores) or a whole number >= 1, got {threads!r}")
        ort = import_onnxruntime()
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"model file {self.path} does not exist; give an rtpose .onnx file or a DeepLabCut exported-model folder")
        self._providers_requested = list(providers) if providers else None
        options = ort.SessionOptions()
        self.threads = threads or default_threads()
        self.spinning = bool(spinning)
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        # Spinning: idle intra-op threads busy-wait for the next piece of work instead of sleeping. Faster on
        # an idle machine, much slower when other processes want those cores (see DEFAULT_SPINNING).
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.spinning else "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "1" if self.spinning else "0")
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
        #: what the run summary prints about how the model runs
        self.settings = (f"{self.threads} CPU thread{'s' if self.threads != 1 else ''}, spinning "
                         f"{'on' if self.spinning else 'off'}" if self.provider == "CPUExecutionProvider" else "")
        if self._providers_requested and self.provider != provider_list[0]:
            raise ModelError(
                f"asked for {provider_list[0]} but ONNX Runtime fell back to {self.provider} "
                "(missing CUDA/cuDNN/TensorRT libraries?). Run `rtpose info` to see what is available."
            )
        self.metadata = ModelMetadata.from_props(self.session.get_modelmeta().custom_metadata_map, source=str(self.path))
        self._check_signature()
        self._probe(*self._probe_size())
        self.input_buffer = np.zeros((0, 0, 0, 3), self._input_dtype)
        self._input_flat = self.input_buffer.reshape(-1)
        self._rgb_flat = np.zeros(0, np.uint8)
        self._max_input_hw: tuple[int, int] | None = None
        self._map_shapes: dict[tuple[int, int], tuple[int, int]] = {}
        self._scmap = self._locref = None
        self._scmap_flat = self._locref_flat = None
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
        self._static_hw = tuple(inp.shape[1:3]) if all(isinstance(d, int) for d in inp.shape[1:3]) else None
        wanted = [meta.scoremap_output] + ([meta.locref_output] if meta.location_refinement else [])
        missing = [w for w in wanted if w not in outputs]
        if missing:
            raise ModelError(f"{self.path}: outputs {missing} named in the metadata are not in the graph (it has {list(outputs)}); re-export the model")
        self._output_names = wanted

    def _probe_size(self) -> tuple[int, int]:
        """(height, width) for the load-time check: the graph's own size if fixed, else PROBE_SIZE."""
        shape = next(i.shape for i in self.session.get_inputs() if i.name == self.metadata.input_name)
        return tuple(d if isinstance(d, int) and d > 0 else PROBE_SIZE for d in shape[1:3])

    # -- PoseBackend -------------------------------------------------------
    @property
    def map_shape(self) -> tuple[int, int]:
        if self._scmap is None:
            raise ModelError("call prepare() (and, after set_input_size(), run()) before asking for the map shape")
        return self._scmap.shape[1], self._scmap.shape[2]

    def prepare(self, max_batch: int, height: int, width: int) -> None:
        """Preallocate input/output buffers for batches of up to ``max_batch`` frames of this size.

        :meth:`set_input_size` may later switch to any smaller size (dynamic cropping) within the
        same buffers."""
        stride = int(self.metadata.stride)
        if height < stride or width < stride:
            raise ModelInputError(f"frames of {width}x{height} are smaller than the model stride {stride}")
        if self._static_batch is not None and max_batch > self._static_batch:
            raise ModelInputError(f"{self.path} takes batches of exactly {self._static_batch}; use --batch {self._static_batch} or re-export with a dynamic batch")
        self._check_size(height, width)
        self._input_flat = np.zeros(max_batch * height * width * 3, self._input_dtype)
        self.input_buffer = self._input_flat.reshape(max_batch, height, width, 3)
        self._rgb_flat = np.zeros(height * width * 3, np.uint8)
        self._max_input_hw = (height, width)
        h, w = self._probe(height, width)
        k = self.metadata.num_bodyparts
        self._scmap_flat = np.zeros(max_batch * h * w * k, np.float32)
        self._locref_flat = np.zeros(max_batch * h * w * 2 * k, np.float32) if self.metadata.location_refinement else None
        self._map_shapes = {(height, width): (h, w)}
        self._bindings.clear()
        self._use_maps(h, w)

    def _probe(self, height: int, width: int) -> tuple[int, int]:
        """Run a fixed pseudo-random frame of this size and check what comes out against the metadata:
        output shapes, score-map size against input size / stride, scores in 0..1, finite offsets.
        Returns the score-map size. Done at load (at the model's own size, or PROBE_SIZE) and again by
        :meth:`prepare` for the frame size, so a model that does not fit its metadata never runs a frame."""
        batch = self._static_batch or 1
        test_frames = np.random.default_rng(0).integers(0, 256, (batch, height, width, 3)).astype(self._input_dtype)
        try:
            probe = self.session.run(self._output_names, {self.metadata.input_name: test_frames})
        except Exception as exc:  # ORT's own exception types
            raise ModelError(f"{self.path}: the model fails on a {width}x{height} test frame ({exc}); "
                             "re-export it with `rtpose export`") from exc
        k = self.metadata.num_bodyparts
        sc = probe[0]
        if sc.ndim != 4 or sc.shape[3] != k:
            raise ModelError(f"{self.path}: score maps have shape {sc.shape}, expected (batch, h, w, {k}) for bodyparts {self.metadata.bodyparts}")
        h, w = sc.shape[1:3]
        check_map_geometry(self.path, self.metadata.stride, height, width, h, w)
        if not self.metadata.clip_scores:  # DeepLabCut 3 heatmaps are raw; the decode clips the likelihood
            check_score_range(self.path, sc)
        elif not np.all(np.isfinite(sc)):
            raise ModelError(f"{self.path}: the score maps of a test frame are not all finite; the model is broken: "
                             "re-export it with `rtpose export`")
        if self.metadata.location_refinement:
            lr = probe[1]
            if lr.shape[1:] != (h, w, 2 * k):
                raise ModelError(f"{self.path}: offsets have shape {lr.shape}, expected (batch, {h}, {w}, {2 * k})")
            if not np.all(np.isfinite(lr)):
                raise ModelError(f"{self.path}: the location-refinement offsets of a test frame are not all finite; "
                                 "the model is broken: re-export it with `rtpose export`")
        return h, w

    def _check_size(self, height: int, width: int) -> None:
        if self._static_hw is not None and (height, width) != self._static_hw:
            h, w = self._static_hw
            raise ModelInputError(
                f"{self.path} was exported for {w}x{h} inputs only, not {width}x{height}; re-export it with a "
                "dynamic height and width (`rtpose export` does so by default), or drop --crop/--resize/"
                "--dynamic-crop and use frames of that size")

    def _use_maps(self, h: int, w: int) -> None:
        """Point the output views at ``(max_batch, h, w, ...)`` within the preallocated output memory."""
        b, k = self.input_buffer.shape[0], self.metadata.num_bodyparts
        if b * h * w * k > self._scmap_flat.size:
            raise ModelInputError(
                f"{self.path}: a {self.input_buffer.shape[2]}x{self.input_buffer.shape[1]} input gives "
                f"{w}x{h} score maps, larger than those of the prepared size; the model's map size does not "
                "grow with its input as expected")
        self._scmap = self._scmap_flat[: b * h * w * k].reshape(b, h, w, k)
        self._locref = (self._locref_flat[: b * h * w * 2 * k].reshape(b, h, w, 2 * k)
                        if self._locref_flat is not None else None)

    def set_input_size(self, height: int, width: int) -> None:
        """Switch the model input to ``(height, width)``, at most the prepared size (dynamic cropping).

        The input and output arrays become views of the buffers :meth:`prepare` allocated. The
        first run at a size not seen before lets ONNX Runtime allocate its outputs once, to learn
        the score-map size; later runs at that size write into the preallocated buffers."""
        if self.input_buffer.shape[1:3] == (height, width):
            return
        if self._max_input_hw is None:
            raise ModelError("call prepare() before set_input_size()")
        max_h, max_w = self._max_input_hw
        stride = int(self.metadata.stride)
        if not (stride <= height <= max_h and stride <= width <= max_w):
            raise ModelInputError(f"input size {width}x{height} is outside {stride}x{stride} .. {max_w}x{max_h} "
                                  "(the stride .. the prepared size)")
        self._check_size(height, width)
        b = self.input_buffer.shape[0]
        self.input_buffer = self._input_flat[: b * height * width * 3].reshape(b, height, width, 3)
        self._bindings.clear()
        maps = self._map_shapes.get((height, width))
        if maps is None:
            self._scmap = None  # learnt by the next run()
        else:
            self._use_maps(*maps)

    def load_frame(self, row: int, frame_bgr: np.ndarray) -> None:
        """Copy one BGR uint8 frame (a view is fine) into row ``row`` of the input batch (colour order converted)."""
        dst = self.input_buffer[row]
        if frame_bgr.shape != dst.shape:
            raise ModelInputError(f"frame has shape {frame_bgr.shape}, the model was prepared for {dst.shape}")
        if self._swap_rb:
            # OpenCV swaps channels into a contiguous uint8 scratch buffer (~0.2 ms at 640x480), then one
            # contiguous cast; a cast through the reversed channel view is ~10x slower in NumPy.
            scratch = self._rgb_flat[: dst.size].reshape(dst.shape)
            cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB, dst=scratch)
            frame_bgr = scratch
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
        if self._max_input_hw is None:
            raise ModelError("call prepare() before run()")
        if not 0 < n <= self.input_buffer.shape[0]:
            raise ModelInputError(f"batch of {n} frames; the model was prepared for 1..{self.input_buffer.shape[0]}")
        if self._scmap is None:
            self._run_new_size(n)
        else:
            self.session.run_with_iobinding(self._binding(n))
        k = self.metadata.num_bodyparts
        locref = None
        if self._locref is not None:
            locref = self._locref[:n].reshape(n, *self._locref.shape[1:3], k, 2)
        return self._scmap[:n], locref

    def _run_new_size(self, n: int) -> None:
        """First run at an input size not seen before: ONNX Runtime allocates the outputs; remember their size."""
        outs = self.session.run(self._output_names, {self.metadata.input_name: self.input_buffer[:n]})
        h, w = outs[0].shape[1:3]
        self._map_shapes[tuple(self.input_buffer.shape[1:3])] = (h, w)
        self._use_maps(h, w)
        self._scmap[:n] = outs[0]
        if self._locref is not None:
            self._locref[:n] = outs[1]

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
               threads: int | None = None, spinning: bool = DEFAULT_SPINNING) -> OnnxPoseModel:
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
    return OnnxPoseModel(path, providers=providers, threads=threads, spinning=spinning)
