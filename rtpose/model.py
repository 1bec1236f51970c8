"""Pose models: a small backend protocol and its ONNX Runtime implementation.

A backend owns a preallocated input batch ``(max_batch, H, W, 3)`` and output
buffers; the pipeline copies frames into :attr:`PoseBackend.input_buffer`
(with :meth:`PoseBackend.load_frame`, which also converts BGR to the model's
colour order) and calls :meth:`PoseBackend.run`, which returns views of the
preallocated score maps ``(n, h, w, K)`` and offsets ``(n, h, w, K, 2)``.

:class:`OnnxPoseModel` picks execution providers automatically (TensorRT >
CUDA > CPU) unless told otherwise (:mod:`rtpose.providers`: options, fallback
reasons), and binds inputs/outputs to the preallocated NumPy buffers
(IOBinding), so a steady-state run allocates no frame-sized memory. On a GPU
those buffers are page-locked (:mod:`rtpose.pinned`) and, under CUDA graphs,
the input and outputs are OrtValues on the GPU updated in place. A model
exported with ``--decode-in-graph`` returns poses (:meth:`OnnxPoseModel.run_poses`)
instead of maps: only ``(B, K, 3)`` values cross the bus.
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path
from typing import Callable, Protocol, Sequence

import cv2
import numpy as np

from .clock import Clock, monotonic_ns
from .errors import ConfigError, ModelError, ModelInputError
from .metadata import ModelMetadata
from .pinned import PinnedMemory
from .small_inputs import SmallInputs
from .small_inputs import measure as measure_small_inputs
from .small_inputs import sizes as small_input_sizes
from .providers import (CPU, GPU_PROVIDERS, PROVIDER_NAMES, TENSORRT, ProviderChoice, ShapeProfile,
                        available_providers, cache_root, captured_stderr, choose_providers, cuda_options,
                        engine_cache_key, engine_files, fallback_reason, file_sha256, import_onnxruntime,
                        tensorrt_options, tensorrt_version, write_cache_description)

__all__ = ["OnnxPoseModel", "PoseBackend", "load_model", "session_options", "PROVIDER_NAMES", "available_providers",
           "choose_providers", "import_onnxruntime", "check_map_geometry", "check_score_range", "default_threads"]
_ORT_DTYPES = {"tensor(float)": np.float32, "tensor(uint8)": np.uint8}

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


def session_options(ort, threads: int, spinning: bool, fixed_dims: dict[str, int] | None = None):
    """ONNX Runtime session options as rtpose runs every model: ``threads`` intra-op threads, one inter-op
    thread, spinning as asked, all graph optimisations."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Spinning: idle intra-op threads busy-wait for the next piece of work instead of sleeping. Faster on
    # an idle machine, much slower when other processes want those cores (see DEFAULT_SPINNING).
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "1" if spinning else "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    for name, value in (fixed_dims or {}).items():  # symbolic dims made fixed (CUDA graphs)
        options.add_free_dimension_override_by_name(name, int(value))
    return options


def _stderr_line(message: str) -> None:
    print(f"rtpose: {message}", file=sys.stderr, flush=True)


#: ``io_binding`` modes: "host" binds preallocated (on a GPU: page-locked) NumPy buffers and ONNX Runtime
#: copies exactly the rows run over the bus; "device" binds OrtValues on the provider's device (fixed
#: addresses, what CUDA graphs need), updated in place from the host buffer each run.
IO_MODES = ("auto", "host", "device")
#: Full-batch runs when a GPU session is prepared: engine build / allocation, then CUDA graph capture.
WARMUP_RUNS = 3


class OnnxPoseModel:
    """An rtpose ONNX file on ONNX Runtime. See the module docstring.

    GPU options (ignored on the CPU provider):

    * ``trt_fp16``: let TensorRT run layers in float16 (``trt_fp16_enable``). For the CUDA provider,
      export an FP16 model instead (``rtpose export --fp16``).
    * ``cuda_graph``: capture the run once as a CUDA graph and replay it (``enable_cuda_graph`` /
      ``trt_cuda_graph_enable``). Needs fixed shapes: every run then computes the full prepared batch
      (a partial batch leaves stale rows that are not returned) at the prepared size. ``None`` (auto):
      on for GPU providers when the frame size is fixed and the batch may be padded (batch 1 or a
      batch-invariant model). Refused by ONNX Runtime (e.g. nodes on the CPU): run without, reported.
    * ``graph_decode``: use the in-graph decode of a model exported with ``--decode-in-graph``
      (poses straight from the model, the pipeline's decoder skipped). ``None`` (auto): whenever
      the file has it. False: fetch the maps and decode on the CPU (for comparisons).
    * ``io_binding``: see :data:`IO_MODES`; auto is "device" under CUDA graphs, else "host".
    * ``log``: where progress lines go (TensorRT engine builds); default stderr.

    :attr:`choice` (a :class:`~rtpose.providers.ProviderChoice`) says which provider runs, whether
    ONNX Runtime fell back from the requested one, and why; :meth:`execution` has everything for
    the run summary and the recording's settings.
    """

    def __init__(self, path: str | os.PathLike, *, providers: Sequence[str] | None = None, threads: int | None = None,
                 spinning: bool = DEFAULT_SPINNING, trt_fp16: bool = False, cuda_graph: bool | None = None,
                 graph_decode: bool | None = None, io_binding: str = "auto", device_id: int = 0,
                 small_inputs_on_one_thread: bool = True, log: Callable[[str], None] | None = None):
        if threads is not None and not (isinstance(threads, int) and threads >= 1):
            raise ConfigError(f"threads must be None (all usable cores) or a whole number >= 1, got {threads!r}")
        if io_binding not in IO_MODES:
            raise ConfigError(f"io_binding must be one of {', '.join(IO_MODES)}, got {io_binding!r}")
        ort = import_onnxruntime()
        self._ort = ort
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"model file {self.path} does not exist; give an rtpose .onnx file or a DeepLabCut exported-model folder")
        self._providers_requested = list(providers) if providers else None
        self.threads = threads or default_threads()
        self.spinning = bool(spinning)
        self.trt_fp16 = bool(trt_fp16)
        self.device_id = int(device_id)
        self._cuda_graph_wanted = cuda_graph
        self._io_wanted = io_binding
        self._small_wanted = bool(small_inputs_on_one_thread)
        #: dynamic cropping on the CPU: the single-threaded session for small inputs and its measurement
        #: (rtpose.small_inputs); None when not in use
        self._small_session = None
        self.small_inputs: SmallInputs | None = None
        self._log = log or _stderr_line
        auto = not providers or list(providers) == ["auto"]
        provider_list = choose_providers(providers)
        self.session, log_text = self._new_session(provider_list, [self._provider_options(p) for p in provider_list])
        self.provider = self.session.get_providers()[0]
        self.choice = ProviderChoice(tuple(provider_list), self.provider, auto,
                                     fallback_reason(log_text, provider_list, self.provider))
        if not auto and self.provider not in provider_list:
            raise ModelError(
                f"asked for {provider_list[0]} but ONNX Runtime fell back to {self.provider} "
                f"({self.choice.reason}). Run `rtpose info` to see what is available."
            )
        self._provider_tail = provider_list[provider_list.index(self.provider):] if self.provider in provider_list \
            else [self.provider]
        self.on_gpu = self.provider in GPU_PROVIDERS
        self._cpu = self.session if not self.on_gpu else None  # the session the load-time checks run on
        self.metadata = ModelMetadata.from_props(self.session.get_modelmeta().custom_metadata_map, source=str(self.path))
        if self.metadata.topdown is not None:
            raise ModelError(f"{self.path} is a top-down model (a detector and a pose model): load it with "
                             "rtpose.model.load_model (rtpose.multianimal.topdown_model.TopDownModel)")
        self._check_signature()
        has_graph_decode = self._pose_output is not None
        if graph_decode and not has_graph_decode:
            raise ConfigError(f"{self.path} does not decode inside its graph; export it with "
                              "`rtpose export --decode-in-graph` or leave graph decoding on auto")
        #: poses come straight from the model (``run_poses``); the pipeline skips its decoder
        self.decodes_in_graph = has_graph_decode and graph_decode is not False
        self._probe(*self._probe_size())
        self.input_buffer = np.zeros((0, 0, 0, 3), self._input_dtype)
        self._input_flat = self.input_buffer.reshape(-1)
        self._rgb_flat = np.zeros(0, np.uint8)
        self._max_input_hw: tuple[int, int] | None = None
        self._map_shapes: dict[tuple[int, int], tuple[int, int]] = {}
        self._scmap = self._locref = self._paf = None
        self._scmap_flat = self._locref_flat = self._paf_flat = None
        self._unique_maps: list[np.ndarray] = []  # unique-part maps, then identity maps (multi-animal), prepared size
        self._poses = np.zeros((0, self.metadata.num_bodyparts, 3), np.float64)
        # IOBindings by (rows, poses, input height, input width): they point into the buffers prepare() allocated,
        # which stay put until the next prepare(), so a dynamic crop's sizes each keep theirs
        self._bindings: dict[tuple[int, bool, int, int], object] = {}
        self._device = None  # _DeviceIO under io_binding="device"
        self._swap_rb = self.metadata.input_color == "RGB"
        self._pinned = PinnedMemory(reason="not on a GPU") if not self.on_gpu else None
        #: decided by prepare(): CUDA graphs in use, and why not when they are not
        self.cuda_graph = False
        self.cuda_graph_note = "" if self.on_gpu else "CPU provider"
        self.io_binding = "host"
        self.engine_note = ""  # TensorRT: built (N s) / loaded from cache, and where
        self.build_s: float | None = None
        self.settings = self._settings_line()

    # -- sessions ------------------------------------------------------------
    def _session_options(self, fixed_dims: dict[str, int] | None = None, threads: int | None = None):
        return session_options(self._ort, threads or self.threads, self.spinning, fixed_dims)

    def _new_session(self, provider_list, provider_args, fixed_dims=None, threads: int | None = None):
        """An InferenceSession, and what explains a fallback: ONNX Runtime's stderr lines while creating it
        (a provider library that does not load) and the errors of providers that failed to initialise
        (ONNX Runtime's own retry, which only prints them, is off: the next provider is tried here)."""
        captured: list[str] = []
        errors: list[str] = []
        providers, args = list(provider_list), list(provider_args)
        while True:
            try:
                with captured_stderr(captured):
                    session = self._ort.InferenceSession(
                        str(self.path), sess_options=self._session_options(fixed_dims, threads), providers=providers,
                        provider_options=args, enable_fallback=0)
                break
            except Exception as exc:  # ORT raises its own exception types
                if len(providers) > 1 and providers[0] != CPU:
                    errors.append(f"EP Error: {providers[0]} failed: {exc}")
                    providers, args = providers[1:], args[1:]
                    continue
                if errors or providers[0] != CPU:
                    raise ModelError(f"{self.path}: ONNX Runtime cannot create a {providers[0]} session ({exc}); "
                                     + "; ".join(errors)) from exc
                raise ModelError(f"{self.path} is not a loadable ONNX model ({exc}); re-export it with `rtpose export`") from exc
        return session, "\n".join(errors + ["".join(captured)])

    def _cpu_session(self):
        """The CPU session the load-time checks run on (on a GPU: created once, beside the GPU session, so a
        check never builds a TensorRT engine for a test size)."""
        if self._cpu is None:
            self._cpu, _ = self._new_session([CPU], [{}])
        return self._cpu

    def _provider_options(self, provider: str, profile: ShapeProfile | None = None,
                          cuda_graph: bool = False) -> dict[str, str]:
        if provider == TENSORRT:
            cache = self._engine_cache_dir(profile, cuda_graph)
            return tensorrt_options(cache, profile, fp16=self.trt_fp16, cuda_graph=cuda_graph,
                                    device_id=self.device_id)
        if provider == "CUDAExecutionProvider":
            return cuda_options(cuda_graph=cuda_graph, device_id=self.device_id)
        return {}

    def _engine_cache_dir(self, profile: ShapeProfile | None, cuda_graph: bool) -> Path:
        root = cache_root() / "tensorrt"
        if profile is None:  # the load-time session: no engine is built for it (dynamic shapes, no run)
            (root / "unprofiled").mkdir(parents=True, exist_ok=True)
            return root / "unprofiled"
        sha = getattr(self, "_model_sha256", None) or file_sha256(self.path)
        self._model_sha256 = sha
        trt = tensorrt_version()
        ort_version = getattr(self._ort, "__version__", "unknown")
        key = engine_cache_key(sha, profile, trt_version=trt, ort_version=ort_version, fp16=self.trt_fp16,
                               cuda_graph=cuda_graph)
        folder = root / key
        write_cache_description(folder, {"model": str(self.path), "model_sha256": sha, "profile": profile.options(),
                                         "tensorrt": trt, "onnxruntime": ort_version, "fp16": self.trt_fp16,
                                         "cuda_graph": cuda_graph})
        return folder

    def _settings_line(self) -> str:
        """What the run summary prints about how the model runs."""
        if not self.on_gpu:
            parts = [f"{self.threads} CPU thread{'s' if self.threads != 1 else ''}, spinning "
                     f"{'on' if self.spinning else 'off'}"]
        else:
            parts = [f"CUDA graph {'on' if self.cuda_graph else 'off'}"
                     + (f" ({self.cuda_graph_note})" if self.cuda_graph_note and not self.cuda_graph else ""),
                     f"I/O {self.io_binding}-bound"]
            if self.provider == TENSORRT:
                parts.append("TensorRT FP16" if self.trt_fp16 else "TensorRT FP32")
        if self.decodes_in_graph:
            parts.append("decode in graph")
        if self.small_inputs is not None and self.small_inputs.max_px:
            parts.append(self.small_inputs.describe())
        return ", ".join(parts)

    def execution(self) -> dict:
        """How the model runs, for the run summary and the recording's settings (JSON-able)."""
        return {
            **self.choice.to_json(),
            "precision": self.metadata.extra.get("precision", "fp32") + (" + TensorRT fp16" if self.trt_fp16 and
                                                                         self.provider == TENSORRT else ""),
            "cuda_graph": self.cuda_graph, "cuda_graph_note": self.cuda_graph_note,
            "io_binding": self.io_binding,
            "readback": self._device.readback if self._device is not None else "",
            "pinned_host_memory": (self._pinned.pinned_bytes > 0) if self._pinned is not None else False,
            "pinned_note": "" if self._pinned is None or self._pinned.pinned_bytes else self._pinned.reason,
            "decode_in_graph": self.decodes_in_graph,
            "tensorrt_engine": self.engine_note,
            "build_s": self.build_s,
            "small_inputs": self.small_inputs.to_json() if self.small_inputs is not None else None,
        }

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
        self._input_dims = list(inp.shape)
        self._static_batch = inp.shape[0] if isinstance(inp.shape[0], int) else None
        self._static_hw = tuple(inp.shape[1:3]) if all(isinstance(d, int) for d in inp.shape[1:3]) else None
        wanted = [meta.scoremap_output] + ([meta.locref_output] if meta.location_refinement else [])
        missing = [w for w in wanted if w not in outputs]
        if missing:
            raise ModelError(f"{self.path}: outputs {missing} named in the metadata are not in the graph (it has {list(outputs)}); re-export the model")
        if meta.paf_output and meta.paf_output not in outputs:
            raise ModelError(f"{self.path}: the metadata names the part-affinity-field output {meta.paf_output!r} but "
                             f"the graph has {list(outputs)}; re-export the model")
        if meta.paf_output:
            wanted.append(meta.paf_output)
        if meta.unique_scoremap_output:  # a multi-animal model's unique-part head (its own stride)
            missing = [n for n in (meta.unique_scoremap_output, meta.unique_locref_output) if n not in outputs]
            if missing:
                raise ModelError(f"{self.path}: the metadata names the unique-part outputs {missing} but the graph has "
                                 f"{list(outputs)}; re-export the model")
            wanted += [meta.unique_scoremap_output, meta.unique_locref_output]
        if meta.identity_output:  # DeepLabCut's identity head: raw maps at its own stride, last
            if meta.identity_output not in outputs:
                raise ModelError(f"{self.path}: the metadata names the identity output {meta.identity_output!r} but "
                                 f"the graph has {list(outputs)}; re-export the model")
            wanted.append(meta.identity_output)
        self._output_names = wanted
        self._pose_output = None
        if meta.pose_output:
            out = outputs.get(meta.pose_output)
            if out is None or out.type != "tensor(double)" or len(out.shape) != 3:
                raise ModelError(f"{self.path}: the metadata names the in-graph decode output {meta.pose_output!r}, "
                                 f"but the graph has {out.type + ' ' + str(out.shape) if out else 'no such output'}; "
                                 "re-export it with `rtpose export --decode-in-graph`")
            self._pose_output = meta.pose_output

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

    def prepare(self, max_batch: int, height: int, width: int, *, variable_size: bool = False) -> None:
        """Preallocate input/output buffers for batches of up to ``max_batch`` frames of this size.

        :meth:`set_input_size` may later switch to any smaller size (dynamic cropping) within the
        same buffers; say so with ``variable_size`` (GPU providers then build for the range of sizes
        and run without CUDA graphs)."""
        stride = int(self.metadata.stride)
        if height < stride or width < stride:
            raise ModelInputError(f"frames of {width}x{height} are smaller than the model stride {stride}")
        if self._static_batch is not None and max_batch > self._static_batch:
            raise ModelInputError(f"{self.path} takes batches of exactly {self._static_batch}; use --batch {self._static_batch} or re-export with a dynamic batch")
        self._check_size(height, width)
        if self._pinned is not None:
            self._pinned.unpin_all()  # before the buffers it locked are replaced
        self._input_flat = np.zeros(max_batch * height * width * 3, self._input_dtype)
        self.input_buffer = self._input_flat.reshape(max_batch, height, width, 3)
        self._rgb_flat = np.zeros(height * width * 3, np.uint8)
        self._max_input_hw = (height, width)
        self._variable_size = bool(variable_size)
        h, w = self._probe(height, width)
        k = self.metadata.num_bodyparts
        self._scmap_flat = np.zeros(max_batch * h * w * k, np.float32)
        self._locref_flat = np.zeros(max_batch * h * w * 2 * k, np.float32) if self.metadata.location_refinement else None
        self._paf_flat = (np.zeros(max_batch * h * w * self._paf_channels, np.float32) if self.metadata.paf_output
                          else None)
        self._unique_maps = [np.zeros((max_batch, *shape), np.float32) for shape in self._unique_shapes]
        self._poses = np.zeros((max_batch, k, 3), np.float64)
        self._map_shapes = {(height, width): (h, w)}
        self._bindings.clear()
        self._device = None
        self._use_maps(h, w)
        self._small_session, self.small_inputs = None, None
        if self.on_gpu:
            self._prepare_gpu(max_batch, height, width)
        elif self._io_wanted == "device":
            self._setup_device_io()
        elif variable_size and self._small_wanted and self.threads > 1:
            self._prepare_small_inputs(height, width)
        self.settings = self._settings_line()

    def _prepare_small_inputs(self, height: int, width: int, clock: Clock = monotonic_ns) -> None:
        """Dynamic cropping on a multi-threaded CPU session: a single-threaded session for the sizes where it
        measures faster (:mod:`rtpose.small_inputs`)."""
        one, _ = self._new_session([CPU], [{}], threads=1)
        name = self.metadata.input_name

        def runner(session):
            return lambda h, w: session.run(self._output_names, {name: np.zeros((1, h, w, 3), self._input_dtype)})

        self.small_inputs = measure_small_inputs(runner(one), runner(self.session),
                                                 small_input_sizes(height, width, int(self.metadata.stride)),
                                                 self.threads, clock=clock)
        self._small_session = one if self.small_inputs.max_px else None

    def _session_for(self, n: int):
        """The session rows ``[:n]`` of the current input size run on (small inputs: one thread)."""
        if self._small_session is not None:
            h, w = self.input_buffer.shape[1:3]
            if n * h * w <= self.small_inputs.max_px:
                return self._small_session
        return self.session

    # -- GPU ---------------------------------------------------------------
    def _graph_decision(self, max_batch: int) -> tuple[bool, str]:
        """Whether to run under CUDA graphs, and why not."""
        want = self._cuda_graph_wanted
        if want is False:
            return False, "off as asked"
        why_not = ""
        if self._variable_size:
            why_not = "frame size changes (dynamic cropping)"
        elif max_batch > 1 and not self.metadata.batch_invariant:
            why_not = "partial batches would be padded, but the model does not declare itself batch-invariant"
        if why_not and want:
            raise ConfigError(f"CUDA graphs need fixed shapes, but the {why_not}; run without --cuda-graph")
        return (not why_not), why_not

    def _fixed_dims(self, max_batch: int, height: int, width: int) -> dict[str, int]:
        """Symbolic input dims made fixed for a CUDA-graph session (``batch``, ``height``, ``width``)."""
        dims = {}
        for d, value in zip(self._input_dims[:3], (max_batch, height, width)):
            if isinstance(d, str) and d:
                dims[d] = value
        return dims

    def _prepare_gpu(self, max_batch: int, height: int, width: int) -> None:
        """(Re)create the GPU session for this batch and size: TensorRT profile and engine cache, CUDA
        graphs, page-locked host buffers; warm it up, reporting a TensorRT engine build as it happens."""
        graph, self.cuda_graph_note = self._graph_decision(max_batch)
        stride = int(self.metadata.stride)
        profile = None
        if self.provider == TENSORRT:
            profile = ShapeProfile.for_run(self.metadata.input_name, max_batch, height, width, fixed_batch=graph,
                                           min_hw=(stride, stride) if self._variable_size else None)
        self._profile = profile
        fixed = self._fixed_dims(max_batch, height, width) if graph else None
        session, note = self._gpu_session(profile, graph, fixed)
        if session is None and graph:  # ONNX Runtime refused CUDA graphs for this graph: run without
            graph, self.cuda_graph_note = False, note
            if profile is not None:
                profile = self._profile = ShapeProfile.for_run(self.metadata.input_name, max_batch, height, width)
            session, note = self._gpu_session(profile, False, None)
        if session is None:
            raise ModelError(f"{self.path}: ONNX Runtime cannot create a {self.provider} session for batch {max_batch} "
                             f"at {width}x{height}: {note}")
        self.session = session
        self.cuda_graph = graph
        if self._pinned is None:
            self._pinned = PinnedMemory()
        for buf in (self._input_flat, self._scmap_flat, self._locref_flat, self._poses):
            if buf is not None:
                self._pinned.pin(buf)
        try:
            self._warm_up(max_batch, profile)
        except Exception as exc:  # noqa: BLE001 - ORT's own types: a CUDA graph that cannot be captured
            if not graph:
                raise ModelError(f"{self.path}: the first {self.provider} run at batch {max_batch}, {width}x{height} "
                                 f"failed: {exc}") from exc
            self.cuda_graph, self.cuda_graph_note = False, f"capture failed: {exc}"[:300]
            if profile is not None:
                profile = self._profile = ShapeProfile.for_run(self.metadata.input_name, max_batch, height, width)
            session, note = self._gpu_session(profile, False, None)
            if session is None:
                raise ModelError(f"{self.path}: ONNX Runtime cannot create a {self.provider} session: {note}") from exc
            self.session = session
            self._bindings.clear()
            self._warm_up(max_batch, profile)

    def _warm_up(self, max_batch: int, profile) -> None:
        """Bind the I/O, then run the full batch a few times: the first run builds the TensorRT engine (or
        loads it from the cache) and lets ONNX Runtime allocate, a CUDA graph is captured on a later one.
        The engine build is announced before and timed after: never a silent minute-long stall."""
        self.io_binding = "device" if self.cuda_graph or self._io_wanted == "device" else "host"
        self._device = None
        if self.io_binding == "device":
            self._setup_device_io()
        cache = self._engine_cache_dir(profile, self.cuda_graph) if profile is not None else None
        cached = bool(cache and engine_files(cache))
        if cache is not None:
            self._log(("loading the cached TensorRT engine" if cached else
                       "building TensorRT engine, first run only (can take minutes)") +
                      f" for {profile.describe()}{', FP16' if self.trt_fp16 else ''}; cache {cache} ...")
        t0 = time.perf_counter()
        for _ in range(WARMUP_RUNS):
            self._run_rows(max_batch, poses=self.decodes_in_graph)
        self.build_s = time.perf_counter() - t0
        if cache is not None:
            self.engine_note = (f"{'loaded from cache' if cached else 'built'} in {self.build_s:.1f} s, "
                                f"{profile.describe()}, cache {cache}")
            self._log(f"TensorRT engine {'loaded' if cached else 'built'}: took {self.build_s:.1f} s")

    def _gpu_session(self, profile, graph: bool, fixed):
        """A GPU session (None and the reason when ONNX Runtime refuses it); a fallback to another provider
        is recorded in :attr:`choice`."""
        providers = self._provider_tail
        args = [self._provider_options(p, profile, graph) for p in providers]
        try:
            session, log_text = self._new_session(providers, args, fixed)
        except ModelError as exc:
            return None, str(exc.__cause__ or exc)
        got = session.get_providers()[0]
        if got != self.provider:
            if graph:
                return None, (f"with CUDA graphs on, ONNX Runtime fell back to {got}: "
                              f"{fallback_reason(log_text, providers, got)}")
            self.choice = ProviderChoice(self.choice.requested, got, self.choice.auto,
                                         fallback_reason(log_text, self.choice.requested, got))
            self.provider = got
            self.on_gpu = got in GPU_PROVIDERS
        return session, ""

    def _setup_device_io(self) -> None:
        """Bind OrtValues on the provider's device ('cuda', or 'cpu' on the CPU provider) for the full batch."""
        self._device = _DeviceIO(self._ort, self.session, self._device_type(), self.device_id, self.metadata.input_name,
                                 self.input_buffer, self._device_outputs())
        self.io_binding = "device"

    def _device_type(self) -> str:
        """OrtValue device of the provider: 'cuda' for CUDA and TensorRT, 'cpu' for the CPU provider."""
        return "cpu" if self.provider == CPU else "cuda"

    def _device_outputs(self) -> list[tuple[str, np.ndarray]]:
        if self.decodes_in_graph:
            return [(self._pose_output, self._poses)]
        return list(zip(self._output_names, self._map_buffers()))

    def _map_buffers(self) -> list[np.ndarray]:
        """The preallocated output arrays, in ``_output_names`` order: score maps, offsets, PAFs, unique-part
        score maps and offsets."""
        return ([self._scmap] + ([self._locref] if self._locref is not None else [])
                + ([self._paf] if self._paf is not None else []) + self._unique_maps)

    @property
    def _paf_channels(self) -> int:
        """2E: x and y of each limb of a multi-animal model's graph (0 for single-animal models)."""
        return 2 * len(self.metadata.assembly.graph) if self.metadata.assembly is not None else 0

    def _probe(self, height: int, width: int) -> tuple[int, int]:
        """Run a fixed pseudo-random frame of this size and check what comes out against the metadata:
        output shapes, score-map size against input size / stride, scores in 0..1, finite offsets.
        Returns the score-map size. Done at load (at the model's own size, or PROBE_SIZE) and again by
        :meth:`prepare` for the frame size, so a model that does not fit its metadata never runs a frame.
        Runs on the CPU (on a GPU provider: a CPU session of the same file), so no engine is built for it."""
        batch = self._static_batch or 1
        test_frames = np.random.default_rng(0).integers(0, 256, (batch, height, width, 3)).astype(self._input_dtype)
        try:
            probe = self._cpu_session().run(self._output_names, {self.metadata.input_name: test_frames})
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
        if self.metadata.paf_output:
            paf = probe[self._output_names.index(self.metadata.paf_output)]
            if paf.shape[1:] != (h, w, self._paf_channels):
                raise ModelError(f"{self.path}: part-affinity fields have shape {paf.shape}, expected (batch, {h}, {w}, "
                                 f"{self._paf_channels}) for the {self._paf_channels // 2} limbs of its graph")
            if not np.all(np.isfinite(paf)):
                raise ModelError(f"{self.path}: the part-affinity fields of a test frame are not all finite; the "
                                 "model is broken: re-export it with `rtpose export`")
        self._unique_shapes = []
        if self.metadata.unique_scoremap_output:
            u = self.metadata.layout.n_unique
            us, ul = (probe[self._output_names.index(name)] for name in
                      (self.metadata.unique_scoremap_output, self.metadata.unique_locref_output))
            if us.shape[3:] != (u,) or ul.shape != (*us.shape[:3], 2 * u) or not np.all(np.isfinite(ul)):
                raise ModelError(f"{self.path}: unique-part outputs have shapes {us.shape} and {ul.shape}, expected "
                                 f"(batch, h, w, {u}) and (batch, h, w, {2 * u}) with finite offsets; re-export the model")
            self._unique_shapes = [us.shape[1:], ul.shape[1:]]
        if self.metadata.identity_output:  # its maps join the extra heads' buffers (prepared size), last
            idm = probe[self._output_names.index(self.metadata.identity_output)]
            a = self.metadata.layout.n_animals
            if idm.ndim != 4 or idm.shape[3] != a or not np.all(np.isfinite(idm)):
                raise ModelError(f"{self.path}: identity maps have shape {idm.shape}, expected (batch, h, w, {a}) "
                                 "finite maps, one per individual; re-export the model")
            self._unique_shapes.append(idm.shape[1:])
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
        e2 = self._paf_channels
        self._paf = self._paf_flat[: b * h * w * e2].reshape(b, h, w, e2) if self._paf_flat is not None else None

    def set_input_size(self, height: int, width: int) -> None:
        """Switch the model input to ``(height, width)``, at most the prepared size (dynamic cropping).

        The input and output arrays become views of the buffers :meth:`prepare` allocated. The
        first run at a size not seen before lets ONNX Runtime allocate its outputs once, to learn
        the score-map size; later runs at that size write into the preallocated buffers."""
        if self.input_buffer.shape[1:3] == (height, width):
            return
        if self._max_input_hw is None:
            raise ModelError("call prepare() before set_input_size()")
        if self._device is not None:
            raise ModelInputError(f"the model runs with device-bound I/O{' under CUDA graphs' if self.cuda_graph else ''}"
                                  f" at {self._max_input_hw[1]}x{self._max_input_hw[0]} only; prepare it with "
                                  "variable_size=True for dynamic cropping")
        max_h, max_w = self._max_input_hw
        stride = int(self.metadata.stride)
        if not (stride <= height <= max_h and stride <= width <= max_w):
            raise ModelInputError(f"input size {width}x{height} is outside {stride}x{stride} .. {max_w}x{max_h} "
                                  "(the stride .. the prepared size)")
        self._check_size(height, width)
        b = self.input_buffer.shape[0]
        self.input_buffer = self._input_flat[: b * height * width * 3].reshape(b, height, width, 3)
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

    def _binding(self, n: int, poses: bool):
        """IOBinding of rows ``[:n]`` to the preallocated host buffers: the poses, or the maps."""
        key = (n, poses, *self.input_buffer.shape[1:3])
        binding = self._bindings.get(key)
        if binding is None:  # the session for these rows at this size never changes until the next prepare()
            binding = self._session_for(n).io_binding()
            buf = self.input_buffer
            binding.bind_input(self.metadata.input_name, "cpu", 0, buf.dtype, [n, *buf.shape[1:]], buf.ctypes.data)
            outs = [(self._pose_output, self._poses)] if poses else list(zip(self._output_names, self._map_buffers()))
            for name, out in outs:
                binding.bind_output(name, "cpu", 0, out.dtype, [n, *out.shape[1:]], out.ctypes.data)
            self._bindings[key] = binding
        return binding

    def _check_n(self, n: int) -> None:
        if self._max_input_hw is None:
            raise ModelError("call prepare() before run()")
        if not 0 < n <= self.input_buffer.shape[0]:
            raise ModelInputError(f"batch of {n} frames; the model was prepared for 1..{self.input_buffer.shape[0]}")

    def _run_rows(self, n: int, *, poses: bool) -> None:
        if self._device is not None:
            if poses != self.decodes_in_graph:
                raise ModelError(f"{self.path}: with device-bound I/O the model returns "
                                 f"{'poses (run_poses)' if self.decodes_in_graph else 'maps (run)'} only")
            self._device.run()  # the full prepared batch: fixed shapes
        elif poses:
            self._session_for(n).run_with_iobinding(self._binding(n, True))
        elif self._scmap is None:
            self._run_new_size(n)
        else:
            self._session_for(n).run_with_iobinding(self._binding(n, False))

    def run(self, n: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Run rows ``[:n]`` of the input batch; returns views of the preallocated outputs."""
        self._check_n(n)
        self._run_rows(n, poses=False)
        k = self.metadata.num_bodyparts
        locref = None
        if self._locref is not None:
            locref = self._locref[:n].reshape(n, *self._locref.shape[1:3], k, 2)
        return self._scmap[:n], locref

    def run_animals(self, n: int) -> tuple[np.ndarray, ...]:
        """Run rows ``[:n]`` of a multi-animal model; returns views of the preallocated outputs: score maps
        ``(n, h, w, K)``, offsets ``(n, h, w, 2K)``, part-affinity fields ``(n, h, w, 2E)`` and, for a model
        with unique body parts, their head's score maps and offsets (at that head's own stride), float32, as
        :class:`rtpose.multianimal.decoder.MultiAnimalDecoder` takes them; last, for a model with DeepLabCut's
        identity head, its raw maps ``(n, h'', w'', A)`` (:mod:`rtpose.multianimal.identity`)."""
        if not self.metadata.multianimal:
            raise ModelError(f"{self.path} is a single-animal model: use run()")
        self._check_n(n)
        self._run_rows(n, poses=False)
        return (self._scmap[:n], self._locref[:n], self._paf[:n], *(m[:n] for m in self._unique_maps))

    def run_poses(self, n: int) -> np.ndarray:
        """Run rows ``[:n]`` of a model that decodes inside its graph; returns a view ``(n, K, 3)`` float64
        of x, y, likelihood in model-input pixels (what :class:`rtpose.decode.Decoder` gives for the maps)."""
        if not self.decodes_in_graph:
            raise ModelError(f"{self.path} does not decode inside its graph (or graph_decode=False); use run() and "
                             "rtpose.decode, or export it with `rtpose export --decode-in-graph`")
        self._check_n(n)
        self._run_rows(n, poses=True)
        return self._poses[:n]

    def _run_new_size(self, n: int) -> None:
        """First run at an input size not seen before: ONNX Runtime allocates the outputs; remember their size."""
        outs = self._session_for(n).run(self._output_names, {self.metadata.input_name: self.input_buffer[:n]})
        h, w = outs[0].shape[1:3]
        self._map_shapes[tuple(self.input_buffer.shape[1:3])] = (h, w)
        self._use_maps(h, w)
        for buf, out in zip(self._map_buffers(), outs):
            buf[:n] = out

    def infer(self, frames_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Convenience for scripts: run a (B, H, W, 3) uint8 BGR array (prepares as needed)."""
        self._load_all(frames_bgr)
        return self.run(frames_bgr.shape[0])

    def infer_poses(self, frames_bgr: np.ndarray) -> np.ndarray:
        """:meth:`infer` for a model that decodes inside its graph: ``(B, K, 3)`` poses."""
        self._load_all(frames_bgr)
        return self.run_poses(frames_bgr.shape[0])

    def _load_all(self, frames_bgr: np.ndarray) -> None:
        if frames_bgr.ndim != 4 or frames_bgr.shape[3] != 3 or frames_bgr.dtype != np.uint8:
            raise ModelInputError(f"expected frames as (batch, height, width, 3) uint8 BGR, got {frames_bgr.shape} {frames_bgr.dtype}")
        b, h, w, _ = frames_bgr.shape
        if self.input_buffer.shape[0] < b or self.input_buffer.shape[1:3] != (h, w):
            self.prepare(b, h, w)
        for i in range(b):
            self.load_frame(i, frames_bgr[i])

    def __del__(self):
        pinned = getattr(self, "_pinned", None)
        if pinned is not None and pinned.available:
            try:
                pinned.unpin_all()
            except Exception:  # interpreter shutdown: the CUDA runtime may be gone already
                pass


class _DeviceIO:
    """Input and outputs bound as OrtValues on a device, allocated once for the full batch (fixed addresses,
    as CUDA graphs need). Per run: the host input buffer is copied in (``update_inplace``), the graph runs,
    the outputs are copied into the host buffers (``update_inplace`` from the device OrtValue into an
    OrtValue over the host NumPy memory; where this ONNX Runtime cannot copy that way,
    ``copy_outputs_to_cpu``, which allocates, and :attr:`readback` says so)."""

    def __init__(self, ort, session, device: str, device_id: int, input_name: str, host_input: np.ndarray,
                 outputs: list[tuple[str, np.ndarray]]):
        self._session = session
        self._host_input = host_input
        ov = ort.OrtValue
        self.device = device
        self.input = ov.ortvalue_from_shape_and_type(list(host_input.shape), host_input.dtype.type, device, device_id)
        self.outputs = [ov.ortvalue_from_shape_and_type(list(h.shape), h.dtype.type, device, device_id)
                        for _, h in outputs]
        self._hosts = [h for _, h in outputs]
        self._host_values = [ov.ortvalue_from_numpy(h) for h in self._hosts]  # over the host memory, no copy
        self.binding = session.io_binding()
        self.binding.bind_ortvalue_input(input_name, self.input)
        for (name, _), value in zip(outputs, self.outputs):
            self.binding.bind_ortvalue_output(name, value)
        self.readback = "update_inplace"
        try:  # can this ONNX Runtime copy device -> host into our memory?
            for host_value, dev in zip(self._host_values, self.outputs):
                host_value.update_inplace(dev)
        except Exception:  # noqa: BLE001 - ORT's own exception types
            self.readback = "copy_outputs_to_cpu"

    def run(self) -> None:
        self.input.update_inplace(self._host_input)
        self._session.run_with_iobinding(self.binding)
        if self.readback == "update_inplace":
            for host_value, dev in zip(self._host_values, self.outputs):
                host_value.update_inplace(dev)
        else:
            for host, value in zip(self._hosts, self.binding.copy_outputs_to_cpu()):
                np.copyto(host, value)


def load_model(spec: str | os.PathLike | None = None, *, providers: Sequence[str] | None = None,
               threads: int | None = None, spinning: bool = DEFAULT_SPINNING, **gpu) -> OnnxPoseModel:
    """Load a model from an .onnx file, a DeepLabCut exported-model folder or a DeepLabCut 3
    ``.pt`` (exported once into a cache, needs the ``export`` or ``export-torch`` extra) or,
    with ``None``, the bundled model. ``gpu``: the GPU options of :class:`OnnxPoseModel`
    (``trt_fp16``, ``cuda_graph``, ``graph_decode``, ``io_binding``, ``device_id``, ``log``).
    A top-down multi-animal file (a detector and a pose model) gives a
    :class:`~rtpose.multianimal.topdown_model.TopDownModel`."""
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
    from .multianimal.topdown_model import TopDownModel, is_topdown_file

    if is_topdown_file(path):  # a detector and a pose model in one file: two sessions
        return TopDownModel(path, providers=providers, threads=threads, spinning=spinning, **gpu)
    return OnnxPoseModel(path, providers=providers, threads=threads, spinning=spinning, **gpu)
