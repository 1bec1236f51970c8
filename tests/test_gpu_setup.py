"""GPU execution set-up, tested on the CPU: provider options (TensorRT cache key and shape profiles),
fallback reporting with a provider that does not take, page-locked buffers with a fake CUDA runtime,
the whole GPU preparation path with a session that reports TensorRT, and device-bound IOBinding with
'cpu' OrtValues. What only a GPU can show is measured by latency_tests/gpu_check.py."""

from __future__ import annotations

import os

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime", reason="needs onnxruntime (pip install 'rtpose[cpu]')")

from rtpose import model as model_mod  # noqa: E402
from rtpose import models, providers  # noqa: E402
from rtpose.errors import ConfigError, ModelError, ModelInputError  # noqa: E402
from rtpose.model import OnnxPoseModel  # noqa: E402
from rtpose.pinned import PinnedMemory  # noqa: E402
from rtpose.providers import ProviderChoice, ShapeProfile  # noqa: E402

BUNDLED = models.default_model_path()


# --------------------------------------------------------------------------- pure option construction
def test_shape_profile_options():
    p = ShapeProfile.for_run("image", 8, 480, 640)
    assert p.options() == {"trt_profile_min_shapes": "image:1x480x640x3", "trt_profile_opt_shapes": "image:8x480x640x3",
                           "trt_profile_max_shapes": "image:8x480x640x3"}
    fixed = ShapeProfile.for_run("image", 4, 480, 640, fixed_batch=True)
    assert fixed.options()["trt_profile_min_shapes"] == "image:4x480x640x3"
    dyn = ShapeProfile.for_run("image", 1, 480, 640, min_hw=(8, 8))
    assert dyn.options()["trt_profile_min_shapes"] == "image:1x8x8x3"
    with pytest.raises(ModelError, match="min <= opt <= max"):
        ShapeProfile("image", 2, 1, 4, (8, 8), (8, 8), (8, 8))
    with pytest.raises(ModelError, match="grow from min"):
        ShapeProfile("image", 1, 1, 1, (480, 640), (240, 320), (480, 640))


def test_engine_cache_key_separates_everything_an_engine_depends_on():
    p = ShapeProfile.for_run("image", 8, 480, 640)
    base = dict(trt_version="10.9.0", ort_version="1.31.1", fp16=False)
    key = providers.engine_cache_key("ab" * 32, p, **base)
    assert key == providers.engine_cache_key("ab" * 32, p, **base)  # stable
    assert key.startswith("abababababab-b8-640x480-fp32-trt10.9.0-")
    others = {
        providers.engine_cache_key("cd" * 32, p, **base),
        providers.engine_cache_key("ab" * 32, ShapeProfile.for_run("image", 4, 480, 640), **base),
        providers.engine_cache_key("ab" * 32, ShapeProfile.for_run("image", 8, 240, 320), **base),
        providers.engine_cache_key("ab" * 32, p, **{**base, "trt_version": "10.10.0"}),
        providers.engine_cache_key("ab" * 32, p, **{**base, "ort_version": "1.32.0"}),
        providers.engine_cache_key("ab" * 32, p, **{**base, "fp16": True}),
        providers.engine_cache_key("ab" * 32, p, **base, cuda_graph=True),
    }
    assert key not in others and len(others) == 7


def test_tensorrt_and_cuda_options(tmp_path):
    p = ShapeProfile.for_run("image", 2, 480, 640)
    opts = providers.tensorrt_options(tmp_path / "key", p, fp16=True, cuda_graph=False)
    assert opts["trt_engine_cache_enable"] == "True" and opts["trt_engine_cache_path"] == str(tmp_path / "key")
    assert opts["trt_timing_cache_path"] == str(tmp_path / "timing")
    assert opts["trt_fp16_enable"] == "True" and opts["trt_cuda_graph_enable"] == "False"
    assert opts["trt_profile_opt_shapes"] == "image:2x480x640x3"
    assert providers.cuda_options(cuda_graph=True) == {"device_id": "0", "enable_cuda_graph": "1"}


def test_tensorrt_version_from_libnvinfer():
    class Lib:
        def __init__(self, v):
            self.getInferLibVersion = lambda: v

    def loader(version):
        def load(name):
            if version is None:
                raise OSError(f"{name}: cannot open shared object file")
            return Lib(version)
        return load

    assert providers.tensorrt_version(loader(100900)) == "10.9.0"
    assert providers.tensorrt_version(loader(8601)) == "8.6.1"
    assert providers.tensorrt_version(loader(None)) == "unknown"


# --------------------------------------------------------------------------- fallback reporting
def test_fallback_reason_and_description():
    log = ("2026-11-30 [W:onnxruntime:Default, provider_bridge_ort.cc:2167] Failed to load library "
           "libonnxruntime_providers_cuda.so with error: libcublasLt.so.13: cannot open shared object file\n")
    reason = providers.fallback_reason(log, ["CUDAExecutionProvider", "CPUExecutionProvider"], "CPUExecutionProvider")
    assert "libcublasLt.so.13" in reason
    assert providers.fallback_reason(log, ["CPUExecutionProvider"], "CPUExecutionProvider") == ""
    silent = providers.fallback_reason("", ["CUDAExecutionProvider"], "CPUExecutionProvider")
    assert "without an error" in silent
    choice = ProviderChoice(("CUDAExecutionProvider", "CPUExecutionProvider"), "CPUExecutionProvider", True, reason)
    assert choice.fallback and "fell back from CUDAExecutionProvider" in choice.describe()
    assert choice.to_json()["fallback"] is True
    assert not ProviderChoice(("CPUExecutionProvider",), "CPUExecutionProvider").fallback


def test_captured_stderr_keeps_and_passes_on_fd2(capfd):
    sink: list[str] = []
    with providers.captured_stderr(sink):
        os.write(2, b"[W:onnxruntime] Failed to create CUDAExecutionProvider\n")
    assert "Failed to create CUDAExecutionProvider" in sink[0]
    assert "Failed to create CUDAExecutionProvider" in capfd.readouterr().err  # passed on, not swallowed


class CudaThatDoesNotTake:
    """onnxruntime-gpu on a machine without working CUDA: the session is created on the CPU, and ONNX
    Runtime's only trace is a line on stderr (measured: /work/shared/notes/stack-facts.md)."""

    def __init__(self, real):
        self.real = real

    def __call__(self, path, sess_options=None, providers=None, provider_options=None, **kw):
        if any(p != "CPUExecutionProvider" for p in providers):
            os.write(2, b"[W:onnxruntime:Default] Failed to create CUDAExecutionProvider. Require cuDNN 9.* and "
                        b"CUDA 13.*\n")
        return self.real(path, sess_options=sess_options, providers=["CPUExecutionProvider"], **kw)


@pytest.fixture
def cuda_listed(monkeypatch, tmp_path):
    monkeypatch.setenv("RTPOSE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(providers, "available_providers",
                        lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", CudaThatDoesNotTake(ort.InferenceSession))


def test_auto_fallback_is_reported_with_its_reason(cuda_listed, capfd):
    m = OnnxPoseModel(BUNDLED, threads=1)
    assert m.provider == "CPUExecutionProvider" and m.choice.fallback
    assert m.choice.requested[0] == "TensorrtExecutionProvider"
    assert "Failed to create CUDAExecutionProvider" in m.choice.reason
    ex = m.execution()
    assert ex["fallback"] and ex["provider"] == "CPUExecutionProvider" and "cuDNN" in ex["reason"]


def test_explicit_provider_that_does_not_take_is_an_error_with_the_reason(cuda_listed):
    with pytest.raises(ModelError, match="fell back to CPUExecutionProvider .*Failed to create CUDA"):
        OnnxPoseModel(BUNDLED, providers=["cuda"], threads=1)


def test_a_provider_failing_to_initialise_falls_to_the_next_with_its_error(monkeypatch, tmp_path):
    """ONNX Runtime's own retry only prints the error (to stdout); rtpose tries the next provider itself."""
    real = ort.InferenceSession
    monkeypatch.setenv("RTPOSE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(providers, "available_providers",
                        lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"])

    def trt_init_fails(path, sess_options=None, providers=None, provider_options=None, **kw):
        assert kw.get("enable_fallback") == 0
        if providers[0] == "TensorrtExecutionProvider":
            raise RuntimeError("TensorRT EP failed to create engine from network for fused node")
        return CudaThatDoesNotTake(real)(path, sess_options=sess_options, providers=providers, **kw)

    monkeypatch.setattr(ort, "InferenceSession", trt_init_fails)
    m = OnnxPoseModel(BUNDLED, threads=1)
    assert m.choice.fallback and m.provider == "CPUExecutionProvider"
    assert "TensorrtExecutionProvider failed: TensorRT EP failed to create engine" in m.choice.reason


def test_run_summary_and_recording_settings_show_the_fallback(cuda_listed):
    from rtpose.cli.report import format_summary
    from rtpose.drivers.sources.synthetic import SyntheticSource
    from rtpose.pipeline import Pipeline, PipelineConfig

    m = OnnxPoseModel(BUNDLED, threads=1)
    p = Pipeline([SyntheticSource(64, 48, 30.0)], m, config=PipelineConfig(live=False, max_frames=2))
    summary = p.run()
    assert summary.execution["fallback"] and "Failed to create CUDAExecutionProvider" in summary.execution["reason"]
    text = format_summary(summary, p.stats.format_table())
    assert "provider fallback: asked for TensorrtExecutionProvider, running on CPUExecutionProvider" in text
    from rtpose.cli.common import run_settings

    assert run_settings(m, None)["execution"]["fallback"] is True


# --------------------------------------------------------------------------- page-locked memory
class FakeCudart:
    def __init__(self, status=0):
        self.calls = []
        self.status = status

    def cudaHostRegister(self, ptr, size, flags):
        self.calls.append(("register", ptr.value, size.value, flags.value))
        return self.status

    def cudaHostUnregister(self, ptr):
        self.calls.append(("unregister", ptr.value))
        return 0


def test_pinned_memory_registers_and_unregisters_exact_ranges():
    cudart = FakeCudart()
    pin = PinnedMemory(cudart)
    a = np.zeros(1000, np.uint8)
    assert pin.pin(a) and pin.pin(a)  # the second is a no-op
    assert cudart.calls == [("register", a.ctypes.data, 1000, 0)] and pin.pinned_bytes == 1000
    with pytest.raises(ValueError, match="C-contiguous"):
        pin.pin(np.zeros((4, 4))[:, ::2])
    pin.unpin_all()
    assert cudart.calls[-1] == ("unregister", a.ctypes.data) and pin.pinned_bytes == 0
    failing = PinnedMemory(FakeCudart(status=2))
    assert not failing.pin(a) and "CUDA error 2" in failing.reason
    none = PinnedMemory(None, reason="no CUDA runtime library could be loaded")
    assert not none.available and not none.pin(a)


def test_cudart_lookup_reports_why_it_failed():
    from rtpose.pinned import load_cudart

    def loader(name):
        raise OSError(f"{name}: cannot open shared object file")

    lib, reason = load_cudart(loader)
    assert lib is None and "libcudart.so.13" in reason


# --------------------------------------------------------------------------- the GPU path with a fake TensorRT session
class ReportsTensorRT:
    """A real CPU session that reports TensorRT as its provider and records what it was created with."""

    created: list = []

    def __init__(self, real):
        self.real = real

    def __call__(self, path, sess_options=None, providers=None, provider_options=None, **kw):
        ReportsTensorRT.created.append((list(providers), [dict(o) for o in provider_options or []],
                                        sess_options))
        session = self.real(path, sess_options=sess_options, providers=["CPUExecutionProvider"], **kw)
        if providers[0] == "CPUExecutionProvider":
            return session
        return _Reporting(session, list(providers))


class _Reporting:
    def __init__(self, session, providers):
        self._s, self._p = session, providers

    def get_providers(self):
        return self._p

    def __getattr__(self, name):
        return getattr(self._s, name)


@pytest.fixture
def fake_tensorrt(monkeypatch, tmp_path):
    ReportsTensorRT.created = []
    monkeypatch.setenv("RTPOSE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(providers, "available_providers",
                        lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", ReportsTensorRT(ort.InferenceSession))
    monkeypatch.setattr(model_mod, "tensorrt_version", lambda: "10.9.0")
    cudart = FakeCudart()
    monkeypatch.setattr(model_mod, "PinnedMemory", lambda *a, **kw: PinnedMemory(cudart))
    # the OrtValues of device-bound I/O live on 'cpu' here (this onnxruntime has no CUDA device)
    monkeypatch.setattr(OnnxPoseModel, "_device_type", lambda self: "cpu")
    return tmp_path / "cache", cudart


def test_tensorrt_preparation_profiles_cache_build_report_and_cuda_graph(fake_tensorrt):
    cache, cudart = fake_tensorrt
    lines: list[str] = []
    m = OnnxPoseModel(BUNDLED, providers=["tensorrt", "cuda"], threads=1, trt_fp16=True, log=lines.append)
    assert m.provider == "TensorrtExecutionProvider" and m.on_gpu and not m.choice.fallback
    m.prepare(1, 480, 640)
    providers_used, options, sess_options = ReportsTensorRT.created[-1]
    assert providers_used == ["TensorrtExecutionProvider", "CUDAExecutionProvider"]
    trt = options[0]
    assert trt["trt_profile_min_shapes"] == trt["trt_profile_max_shapes"] == "image:1x480x640x3"
    assert trt["trt_fp16_enable"] == "True" and trt["trt_cuda_graph_enable"] == "True"
    assert options[1]["enable_cuda_graph"] == "1"
    key_dir = cache / "tensorrt" / os.path.basename(trt["trt_engine_cache_path"])
    assert key_dir.parent == cache / "tensorrt" and (key_dir / "key.json").is_file()
    assert "-b1-640x480-fp16-trt10.9.0-" in key_dir.name
    assert lines[0].startswith("building TensorRT engine, first run only") and "image:1x480x640x3" in lines[0]
    assert lines[1].startswith("TensorRT engine built: took ") and lines[1].endswith(" s")
    assert m.cuda_graph and m.io_binding == "device" and m.build_s is not None
    assert "CUDA graph on" in m.settings and "TensorRT FP16" in m.settings
    # the input, maps and poses buffers are page-locked
    registered = {c[1] for c in cudart.calls if c[0] == "register"}
    assert m._input_flat.ctypes.data in registered and m._scmap_flat.ctypes.data in registered
    # a second process with the same model and settings finds the engine in its key's directory
    (key_dir / "TensorrtExecutionProvider_TRTKernel_graph_x.engine").write_bytes(b"engine")
    lines.clear()
    m2 = OnnxPoseModel(BUNDLED, providers=["tensorrt", "cuda"], threads=1, trt_fp16=True, log=lines.append)
    m2.prepare(1, 480, 640)
    assert lines[0].startswith("loading the cached TensorRT engine") and "loaded from cache" in m2.engine_note
    # results through the device-bound path equal the plain CPU model's
    cpu = OnnxPoseModel(BUNDLED, providers=["cpu"], threads=1)
    frame = np.random.default_rng(0).integers(0, 256, (1, 480, 640, 3), dtype=np.uint8)
    # (fixed dims let ONNX Runtime optimise differently: float rounding, not exact equality)
    np.testing.assert_allclose(m.infer(frame)[0], cpu.infer(frame)[0], atol=1e-5)


def test_variable_sizes_and_unbatchable_models_run_without_cuda_graphs(fake_tensorrt):
    m = OnnxPoseModel(BUNDLED, providers=["tensorrt"], threads=1, log=lambda s: None)
    m.prepare(1, 480, 640, variable_size=True)
    trt = ReportsTensorRT.created[-1][1][0]
    assert trt["trt_profile_min_shapes"] == "image:1x8x8x3" and trt["trt_cuda_graph_enable"] == "False"
    assert not m.cuda_graph and "dynamic cropping" in m.cuda_graph_note and m.io_binding == "host"
    m.set_input_size(240, 320)  # dynamic cropping still works (host-bound)
    assert m.run(1)[0].shape[1:3] == (30, 40)
    with pytest.raises(ConfigError, match="CUDA graphs need fixed shapes"):
        OnnxPoseModel(BUNDLED, providers=["tensorrt"], threads=1, cuda_graph=True,
                      log=lambda s: None).prepare(1, 480, 640, variable_size=True)


def test_cuda_graph_refused_by_onnxruntime_runs_without_and_says_why(fake_tensorrt, monkeypatch):
    real = ort.InferenceSession

    def refuse_graphs(path, sess_options=None, providers=None, provider_options=None, **kw):
        if any(o.get("trt_cuda_graph_enable") == "True" for o in provider_options or []):
            raise RuntimeError("This session cannot use the graph capture feature as requested by the user as all "
                               "compute graph nodes have not been partitioned to the CUDA EP")
        return real(path, sess_options=sess_options, providers=providers, provider_options=provider_options, **kw)

    monkeypatch.setattr(ort, "InferenceSession", refuse_graphs)
    m = OnnxPoseModel(BUNDLED, providers=["tensorrt"], threads=1, log=lambda s: None)
    m.prepare(2, 240, 320)
    assert not m.cuda_graph and "graph capture feature" in m.cuda_graph_note
    assert m.execution()["cuda_graph"] is False and "graph capture" in m.execution()["cuda_graph_note"]


# --------------------------------------------------------------------------- device-bound IOBinding on 'cpu'
def test_device_bound_io_on_cpu_ortvalues_matches_host_bound(tmp_path):
    from rtpose.exporters import decode_in_graph as dig

    frames = np.random.default_rng(1).integers(0, 256, (3, 240, 320, 3), dtype=np.uint8)
    host = OnnxPoseModel(BUNDLED, providers=["cpu"], threads=1)
    dev = OnnxPoseModel(BUNDLED, providers=["cpu"], threads=1, io_binding="device")
    h_sc, h_lr = host.infer(frames)
    d_sc, d_lr = dev.infer(frames)
    assert dev.io_binding == "device" and dev._device.readback == "update_inplace"
    np.testing.assert_array_equal(h_sc, d_sc)
    np.testing.assert_array_equal(h_lr, d_lr)
    ptr = d_sc.__array_interface__["data"][0]
    assert dev.run(2)[0].__array_interface__["data"][0] == ptr  # the same host buffers, run after run
    with pytest.raises(ModelInputError, match="device-bound I/O"):
        dev.set_input_size(120, 160)
    path, _ = dig.add_to_file(BUNDLED, tmp_path / "decode.onnx")
    poses_dev = OnnxPoseModel(path, providers=["cpu"], threads=1, io_binding="device").infer_poses(frames).copy()
    poses_host = OnnxPoseModel(path, providers=["cpu"], threads=1).infer_poses(frames)
    assert dig.same_bits(poses_dev, poses_host).all()
