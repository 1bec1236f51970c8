"""Execution providers: which one runs the model, with which options, and why (fallbacks included).

ONNX Runtime falls back silently: a session asked for CUDA on a machine whose
CUDA/cuDNN libraries are missing is created on the CPU, with only a log line on
stderr. So the provider that really runs is read back from
``session.get_providers()[0]``, ONNX Runtime's own stderr lines during session
creation are kept as the reason (and passed on to stderr), and the result is a
:class:`ProviderChoice` the run summary and the recording's settings show.

TensorRT options (:func:`tensorrt_options`): FP16 on request, an engine cache on
disk in one directory per :func:`engine_cache_key` (model hash, shape profile,
TensorRT and ONNX Runtime versions, precision), a timing cache shared by all
keys, and explicit min/opt/max shape profiles (:class:`ShapeProfile`) for the
frame size and batch the pipeline was prepared for. CUDA options
(:func:`cuda_options`): CUDA graphs on request.

Pure functions and small records; the session itself is created by
:class:`rtpose.model.OnnxPoseModel`.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .errors import MissingDependencyError, ModelError

#: Provider short names accepted by ``providers=`` and the CLI, best first.
PROVIDER_NAMES = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
GPU_PROVIDERS = (TENSORRT, CUDA)


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


def choose_providers(requested: Sequence[str] | None, available: Sequence[str] | None = None) -> list[str]:
    """Map short names (``cpu``, ``cuda``, ``tensorrt``) to ORT providers, best first.

    ``None`` or ``["auto"]`` means: every available one of TensorRT, CUDA, CPU.
    """
    available = list(available) if available is not None else available_providers()
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


def short_name(provider: str) -> str:
    for short, full in PROVIDER_NAMES.items():
        if full == provider:
            return short
    return provider


# --------------------------------------------------------------------------- fallbacks
@dataclass(frozen=True)
class ProviderChoice:
    """What was asked for, what runs, and why they differ."""

    requested: tuple[str, ...]  # ORT provider names, best first ("auto" resolved)
    provider: str  # session.get_providers()[0]: what really runs
    auto: bool = True  # no explicit --providers
    reason: str = ""  # why the first requested one is not the one running ("" when it is)

    @property
    def fallback(self) -> bool:
        return bool(self.requested) and self.provider != self.requested[0]

    def describe(self) -> str:
        """One line for the run summary: ``CUDAExecutionProvider (fell back from TensorRT: <reason>)``."""
        if not self.fallback:
            return self.provider
        return f"{self.provider} (fell back from {self.requested[0]}: {self.reason or 'ONNX Runtime gave no reason'})"

    def to_json(self) -> dict:
        return {"provider": self.provider, "requested": list(self.requested), "auto": self.auto,
                "fallback": self.fallback, "reason": self.reason}


#: Words in ONNX Runtime's stderr lines that explain a provider fallback.
_REASON_WORDS = ("ep error", "fail", "error", "cannot", "not found", "unable", "require", "cuda", "tensorrt", "cudnn")


def fallback_reason(log_text: str, requested: Sequence[str], provider: str) -> str:
    """The lines of ONNX Runtime's session-creation stderr that say why ``requested[0]`` did not take."""
    if not requested or provider == requested[0]:
        return ""
    lines = [ln.strip() for ln in log_text.splitlines() if ln.strip()]
    hits = [ln for ln in lines if any(w in ln.lower() for w in _REASON_WORDS)]
    if hits:
        return " | ".join(hits[:3])[:600]
    return (f"ONNX Runtime created the session on {provider} without an error; typically the CUDA, cuDNN or "
            "TensorRT libraries it needs are missing or of another major version (see `rtpose info`)")


@contextlib.contextmanager
def captured_stderr(sink: list):
    """Capture file descriptor 2 (where ONNX Runtime's C++ logger writes) into ``sink`` (one string),
    and pass everything on to the real stderr afterwards, so nothing is lost."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real fd 2 (embedded interpreters)
        sink.append("")
        yield sink
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield sink
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode("utf-8", "replace")
            sink.append(text)
            if text:
                sys.stderr.write(text)
                sys.stderr.flush()


# --------------------------------------------------------------------------- TensorRT
@dataclass(frozen=True)
class ShapeProfile:
    """A TensorRT optimisation profile for the NHWC input: batch and frame size ranges."""

    input_name: str
    min_batch: int
    opt_batch: int
    max_batch: int
    min_hw: tuple[int, int]
    opt_hw: tuple[int, int]
    max_hw: tuple[int, int]

    def __post_init__(self) -> None:
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise ModelError(f"TensorRT profile batches must satisfy 1 <= min <= opt <= max, got "
                             f"{self.min_batch}/{self.opt_batch}/{self.max_batch}")
        for a, b in ((self.min_hw, self.opt_hw), (self.opt_hw, self.max_hw)):
            if not (a[0] <= b[0] and a[1] <= b[1]):
                raise ModelError(f"TensorRT profile sizes must grow from min to opt to max, got "
                                 f"{self.min_hw}/{self.opt_hw}/{self.max_hw}")

    @classmethod
    def for_run(cls, input_name: str, max_batch: int, height: int, width: int, *, min_hw: tuple[int, int] | None = None,
                fixed_batch: bool = False) -> "ShapeProfile":
        """Batches 1..max_batch (``fixed_batch``: exactly max_batch, e.g. under CUDA graphs), optimised for
        the full batch; frames of ``height x width`` (or from ``min_hw`` up to it, for dynamic cropping)."""
        lo = max_batch if fixed_batch else 1
        return cls(input_name, lo, max_batch, max_batch, min_hw or (height, width), (height, width), (height, width))

    def _shape(self, batch: int, hw: tuple[int, int]) -> str:
        return f"{self.input_name}:{batch}x{hw[0]}x{hw[1]}x3"

    def options(self) -> dict[str, str]:
        """ONNX Runtime's ``trt_profile_{min,opt,max}_shapes`` provider options."""
        return {
            "trt_profile_min_shapes": self._shape(self.min_batch, self.min_hw),
            "trt_profile_opt_shapes": self._shape(self.opt_batch, self.opt_hw),
            "trt_profile_max_shapes": self._shape(self.max_batch, self.max_hw),
        }

    def describe(self) -> str:
        o = self.options()
        return f"min {o['trt_profile_min_shapes']}, opt {o['trt_profile_opt_shapes']}, max {o['trt_profile_max_shapes']}"


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def engine_cache_key(model_sha256: str, profile: ShapeProfile, *, trt_version: str, ort_version: str,
                     fp16: bool, cuda_graph: bool = False) -> str:
    """The engine cache directory name: a TensorRT engine is only valid for the same model, shape profile,
    TensorRT (and ONNX Runtime) version and precision; anything else gets a directory of its own."""
    fields = {"model": model_sha256, "profile": profile.options(), "tensorrt": trt_version,
              "onnxruntime": ort_version, "fp16": bool(fp16), "cuda_graph": bool(cuda_graph)}
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]
    return f"{model_sha256[:12]}-b{profile.max_batch}-{profile.opt_hw[1]}x{profile.opt_hw[0]}-" \
           f"{'fp16' if fp16 else 'fp32'}-trt{trt_version}-{digest}"


def cache_root() -> Path:
    return Path(os.environ.get("RTPOSE_CACHE_DIR", Path.home() / ".cache" / "rtpose"))


def tensorrt_options(cache_dir: Path, profile: ShapeProfile | None, *, fp16: bool, cuda_graph: bool = False,
                     device_id: int = 0) -> dict[str, str]:
    """TensorRT provider options: engine cache in ``cache_dir`` (one directory per key), the shared timing
    cache beside it, precision, explicit shape profile, CUDA graphs."""
    opts = {
        "device_id": str(device_id),
        "trt_fp16_enable": "True" if fp16 else "False",
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": str(cache_dir),
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": str(cache_dir.parent / "timing"),
        "trt_cuda_graph_enable": "True" if cuda_graph else "False",
    }
    if profile is not None:
        opts.update(profile.options())
    return opts


def cuda_options(*, cuda_graph: bool = False, device_id: int = 0) -> dict[str, str]:
    return {"device_id": str(device_id), "enable_cuda_graph": "1" if cuda_graph else "0"}


def engine_files(cache_dir: Path) -> list[Path]:
    """Engines ONNX Runtime's TensorRT provider wrote into ``cache_dir`` (``*.engine``)."""
    return sorted(cache_dir.glob("*.engine")) if cache_dir.is_dir() else []


def write_cache_description(cache_dir: Path, fields: dict) -> None:
    """``key.json`` beside the engines: what the directory name stands for, for a human clearing caches."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    (cache_dir / "key.json").write_text(json.dumps(fields, indent=2, sort_keys=True) + "\n")


#: libnvinfer names tried for the TensorRT version, newest first.
_NVINFER = ("libnvinfer.so.11", "libnvinfer.so.10", "libnvinfer.so.9", "libnvinfer.so.8", "libnvinfer.so", "nvinfer.dll")


def tensorrt_version(loader=ctypes.CDLL) -> str:
    """TensorRT's version from ``getInferLibVersion()`` of the loaded libnvinfer (``"10.9.0"``), or
    ``"unknown"`` when no libnvinfer can be loaded (then the cache key still separates precision and
    profile, and ONNX Runtime refuses engines it cannot deserialise)."""
    for name in _NVINFER:
        try:
            lib = loader(name)
            version = int(lib.getInferLibVersion())
        except (OSError, AttributeError, TypeError, ValueError):
            continue
        # TensorRT >= 10: major * 10000 + minor * 100 + patch; earlier: major * 1000 + minor * 100 + patch
        if version >= 100000:
            return f"{version // 10000}.{version // 100 % 100}.{version % 100}"
        return f"{version // 1000}.{version // 100 % 10}.{version % 100}"
    return "unknown"


__all__ = ["PROVIDER_NAMES", "ProviderChoice", "ShapeProfile", "available_providers", "cache_root",
           "captured_stderr", "choose_providers", "cuda_options", "engine_cache_key", "engine_files",
           "fallback_reason", "file_sha256", "import_onnxruntime", "short_name", "tensorrt_options",
           "tensorrt_version", "write_cache_description"]
