"""GPU check: one prepared run that measures rtpose on an NVIDIA GPU and writes one JSON + Markdown report.

What it measures (each step guarded by a time budget; what the budget cuts is listed as not measured):

1. correctness on the GPU: the in-graph decode against the Numba decoder on the maps of the same GPU run
   (mismatching points), FP16 against FP32 poses, uint8 BGR input against float input;
2. live latency, frame in the ring (capture stamp) -> trigger write (the trigger output's ``send``,
   where a serial output hands the bytes to its writer thread; a stamping null output stands in, as
   the serial emulator needs pyserial), p50/p99, one camera at batch 1 and four synthetic cameras
   batched, for the bundled model and a ResNet-50-sized DeepLabCut-format model;
3. offline throughput (``rtpose analyze``'s lossless pipeline, no recording) on real openfield frames
   held in memory, CUDA vs TensorRT, FP32 vs FP16, batch 1-64, for both models;
4. the ``analyze``-equivalent figure: the openfield video decoded by OpenCV again and again (read 9 times:
   20970 frames, what a concatenated file gives) through the same pipeline with ``rtpose analyze``'s
   automatic number of decoding threads (``--readers auto``: up to 4 on a GPU machine), and the decode
   alone with 1 reader and with that number;
5. NVDEC (``rtpose analyze --decode nvdec``, when PyNvVideoCodec is installed beside onnxruntime-gpu): the
   decode alone, the ``analyze``-equivalent figure decoded by NVDEC, and how NVDEC's frames differ from
   OpenCV's (pixels, and the bundled model's poses on both).

Goals it reports against: >= 3000 FPS offline with the bundled model; live p99 <= 4 ms (bundled) and
<= 6 ms (ResNet-50-sized).

The ResNet-50-sized model is generated here in ONNX with random weights (DeepLabCut's ResNet-50 layout:
bottlenecks 3-4-6-3, output stride 16 with a dilated last stage, a stride-2 transposed convolution per
head: score maps K and offsets 2K at stride 8), since TensorFlow is not on the GPU machine.

Needs: numpy, numba, onnx, opencv; onnxruntime-gpu (``--ort-path DIR``: a folder it was installed into
with ``pip install --no-deps --target DIR``). Not needed: pyzmq, pyserial, pandas, PyYAML (the run
records whether the rtpose modules it used imported any of them).

    python latency_tests/gpu_check.py --ort-path /tmp/ort --out /tmp/gpu-check      # on the GPU machine
    python latency_tests/gpu_check.py --cpu-smoke --out /tmp/smoke                    # here: tiny, CPU provider

How to get it onto the device machine: docs/performance.md ("GPU check").
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
GOALS = {"offline_fps_bundled": 3000.0, "live_p99_ms_bundled": 4.0, "live_p99_ms_resnet": 6.0}
SIZE = (480, 640)  # H, W
VIDEO_REPEATS = 9  # 9 x 2330 = 20970 frames >= 20000
class OpenCvAsNvdec:
    """A stand-in for PyNvVideoCodec's decoder (``rtpose.drivers.sources.nvdec.HostFrameDecoder``): with
    ``--cpu-smoke`` NVDEC's steps run on it (OpenCV decodes, frames are handed over as RGB), so that their code
    has run here before it meets a GPU."""

    version = "stand-in (OpenCV)"

    def __init__(self, path):
        import cv2

        self._cv2, self.cap = cv2, cv2.VideoCapture(str(path))
        self.width, self.height = int(self.cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self.cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.fps, self.num_frames = float(self.cap.get(cv2.CAP_PROP_FPS)), int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT))

    def next_batch(self, n):
        out = []
        while len(out) < n:
            ok, bgr = self.cap.read()
            if not ok:
                break
            out.append(self._cv2.cvtColor(bgr, self._cv2.COLOR_BGR2RGB))
        return out

    def close(self):
        self.cap.release()


# --------------------------------------------------------------------------- imports without an install
def mount_repo() -> None:
    """Make ``rtpose`` importable from this checkout without installing it: ``rtpose.exporters`` and
    ``rtpose.drivers`` live in ``exporters/`` and ``drivers/`` (pyproject's package-dir), mounted here."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    import rtpose

    for sub, folder in (("exporters", "exporters"), ("drivers", "drivers")):
        name = f"rtpose.{sub}"
        if name in sys.modules:
            continue
        if importlib.util.find_spec(name) is not None:
            continue
        spec = importlib.util.spec_from_file_location(name, REPO / folder / "__init__.py",
                                                      submodule_search_locations=[str(REPO / folder)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        setattr(rtpose, sub, module)


# --------------------------------------------------------------------------- report
class Report:
    """The result, rewritten to JSON and Markdown after every step (a cut-short run still leaves one)."""

    def __init__(self, out: Path, smoke: bool):
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self.data: dict = {"title": "rtpose GPU check", "smoke": smoke, "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                           "goals": GOALS, "environment": {}, "models": {}, "correctness": [], "live": [],
                           "offline": [], "analyze": [], "skipped": [], "errors": []}

    def add(self, section: str, row) -> None:
        self.data[section].append(row)
        self.save()

    def save(self) -> None:
        self.data["verdict"] = verdict(self.data)
        (self.out / "gpu_check.json").write_text(json.dumps(self.data, indent=2, default=str) + "\n")
        (self.out / "gpu_check.md").write_text(markdown(self.data))


class Budget:
    def __init__(self, seconds: float):
        self.t0 = time.monotonic()
        self.deadline = self.t0 + seconds

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0


def verdict(d: dict) -> dict:
    """Each goal: the best measured figure and met / missed / not measured."""
    out = {}
    best = [r for r in d["offline"] + d["analyze"] if r.get("model") == "bundled" and r.get("fps")]
    analyze = [r for r in d["analyze"] if r.get("model") == "bundled" and r.get("fps") and r.get("source") == "video"]
    if best:
        top = max(best, key=lambda r: r["fps"])
        out["offline_fps_bundled_engine"] = {"value": top["fps"], "where": top["label"],
                                             "met": top["fps"] >= GOALS["offline_fps_bundled"]}
    else:
        out["offline_fps_bundled_engine"] = {"value": None, "met": None}
    if analyze:
        top = max(analyze, key=lambda r: r["fps"])
        out["offline_fps_bundled_analyze_video"] = {"value": top["fps"], "where": top["label"],
                                                    "met": top["fps"] >= GOALS["offline_fps_bundled"]}
    else:
        out["offline_fps_bundled_analyze_video"] = {"value": None, "met": None}
    for model, goal in (("bundled", GOALS["live_p99_ms_bundled"]), ("resnet50", GOALS["live_p99_ms_resnet"])):
        for cams in (1, 4):
            rows = [r for r in d["live"] if r.get("model") == model and r.get("cameras") == cams and r.get("p99_ms")]
            key = f"live_p99_ms_{model}_{cams}cam"
            if rows:
                top = min(rows, key=lambda r: r["p99_ms"])
                out[key] = {"value": top["p99_ms"], "where": top["label"], "met": top["p99_ms"] <= goal}
            else:
                out[key] = {"value": None, "met": None}
    return out


def _fmt(v, digits=2):
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def markdown(d: dict) -> str:
    lines = [f"# {d['title']}{' (CPU smoke run: figures mean nothing)' if d['smoke'] else ''}", "",
             f"Started {d['started']}; elapsed {_fmt(d.get('elapsed_s'), 0)} s.", ""]
    env = d["environment"]
    if env:
        lines += ["## Environment", ""] + [f"- {k}: {v}" for k, v in env.items()] + [""]
    lines += ["## Goals", "", "| goal | target | best measured | where | met |", "|---|---:|---:|---|---|"]
    targets = {"offline_fps_bundled_engine": ">= 3000 FPS", "offline_fps_bundled_analyze_video": ">= 3000 FPS",
               "live_p99_ms_bundled_1cam": "<= 4 ms", "live_p99_ms_bundled_4cam": "<= 4 ms",
               "live_p99_ms_resnet50_1cam": "<= 6 ms", "live_p99_ms_resnet50_4cam": "<= 6 ms"}
    for key, v in d.get("verdict", {}).items():
        met = {True: "yes", False: "**no**", None: "not measured"}[v.get("met")]
        lines.append(f"| {key} | {targets.get(key, '')} | {_fmt(v.get('value'))} | {v.get('where', '—')} | {met} |")
    lines.append("")
    if d["models"]:
        lines += ["## Models", ""] + [f"- {k}: {v}" for k, v in d["models"].items()] + [""]
    if d["correctness"]:
        lines += ["## Correctness on the device", "", "| check | model | provider | result |", "|---|---|---|---|"]
        lines += [f"| {r['check']} | {r['model']} | {r['label']} | {r['result']} |" for r in d["correctness"]]
        lines.append("")
    if d["live"]:
        lines += ["## Live: frame in ring -> trigger write (ms)", "",
                  "| model | run | cameras | frames | p50 | p99 | max | inference p50 | dropped |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| {r['model']} | {r['label']} | {r['cameras']} | {r.get('n', '—')} | {_fmt(r.get('p50_ms'), 3)} | "
                  f"{_fmt(r.get('p99_ms'), 3)} | {_fmt(r.get('max_ms'), 3)} | {_fmt(r.get('inference_p50_ms'), 3)} | "
                  f"{r.get('dropped', '—')} |" for r in d["live"]]
        lines.append("")
    for section, title in (("offline", "Offline throughput, frames in memory (FPS)"),
                           ("analyze", "analyze-equivalent: the openfield video decoded by OpenCV (FPS)")):
        if d[section]:
            lines += [f"## {title}", "", "| model | run | batch | frames | FPS | setup s |", "|---|---|---:|---:|---:|---:|"]
            lines += [f"| {r['model']} | {r['label']} | {r.get('batch', '—')} | {r.get('frames', '—')} | "
                      f"{_fmt(r.get('fps'), 0)} | {_fmt(r.get('setup_s'), 1)} |" for r in d[section]]
            lines.append("")
    if d["skipped"]:
        lines += ["## Not measured (time budget or unavailable)", ""] + [f"- {s}" for s in d["skipped"]] + [""]
    if d["errors"]:
        lines += ["## Errors", ""] + [f"- {e['step']}: {e['error']}" for e in d["errors"]] + [""]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- models
def save_model(model, meta, path: Path) -> Path:
    """Write ``model`` with ``meta`` as its rtpose metadata (what the exporter's writer does, without
    importing the exporter's TensorFlow-side modules and their YAML dependency)."""
    import onnx

    del model.metadata_props[:]
    for key, value in meta.to_props().items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


def resnet50_dlc(num_bodyparts: int = 4, *, width_div: int = 1, seed: int = 0):
    """A DeepLabCut-layout ResNet-50 (random weights) in ONNX: NHWC float32 RGB 0-255 in, (B, h, w, K)
    sigmoid score maps and (B, h, w, 2K) offsets out at stride 8. ``width_div`` shrinks every layer's
    channels (the CPU smoke run)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from rtpose.metadata import ModelMetadata

    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    counter = [0]

    def uid(p):
        counter[0] += 1
        return f"{p}{counter[0]}"

    def const(arr, p="c"):
        name = uid(p)
        inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def conv(x, cin, cout, k, stride=1, dilation=1, relu=True, gain=1.0):
        w = (rng.standard_normal((cout, cin, k, k)) * gain * np.sqrt(2.0 / (cin * k * k))).astype(np.float32)
        b = np.zeros(cout, np.float32)
        pad = dilation * (k - 1) // 2
        y = uid("conv")
        nodes.append(helper.make_node("Conv", [x, const(w, "w"), const(b, "b")], [y], kernel_shape=[k, k],
                                      strides=[stride, stride], dilations=[dilation, dilation], pads=[pad] * 4))
        if relu:
            r = uid("relu")
            nodes.append(helper.make_node("Relu", [y], [r]))
            return r
        return y

    def bottleneck(x, cin, mid, cout, stride, dilation):
        y = conv(x, cin, mid, 1)
        y = conv(y, mid, mid, 3, stride=stride, dilation=dilation)
        y = conv(y, mid, cout, 1, relu=False, gain=0.2)  # small residual branch: bounded activations in FP16
        short = x if (cin == cout and stride == 1) else conv(x, cin, cout, 1, stride=stride, relu=False, gain=0.5)
        s, r = uid("add"), uid("relu")
        nodes.append(helper.make_node("Add", [y, short], [s]))
        nodes.append(helper.make_node("Relu", [s], [r]))
        return r

    c = lambda n: max(4, n // width_div)  # noqa: E731
    k = num_bodyparts
    x = "image_nchw"
    nodes.append(helper.make_node("Transpose", ["image"], [x], perm=[0, 3, 1, 2]))
    mean = const(np.array([123.68, 116.78, 103.94], np.float32).reshape(1, 3, 1, 1), "mean")
    nodes.append(helper.make_node("Sub", [x, mean], ["centred"]))
    nodes.append(helper.make_node("Mul", ["centred", const(np.array(1 / 64, np.float32), "scale")], ["scaled"]))
    y = conv("scaled", 3, c(64), 7, stride=2)
    nodes.append(helper.make_node("MaxPool", [y], ["pool"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]))
    y, cin = "pool", c(64)
    for mid, cout, blocks, stride, dilation in ((64, 256, 3, 1, 1), (128, 512, 4, 2, 1), (256, 1024, 6, 2, 1),
                                                (512, 2048, 3, 1, 2)):
        for i in range(blocks):
            y = bottleneck(y, cin, c(mid), c(cout), stride if i == 0 else 1, dilation)
            cin = c(cout)
    heads = {}
    for name, ch in (("scoremap", k), ("locref", 2 * k)):
        w = (rng.standard_normal((cin, ch, 4, 4)) * np.sqrt(1.0 / (cin * 4))).astype(np.float32)
        d = uid("deconv")
        nodes.append(helper.make_node("ConvTranspose", [y, const(w, "w"), const(np.zeros(ch, np.float32), "b")], [d],
                                      kernel_shape=[4, 4], strides=[2, 2], pads=[1, 1, 1, 1]))
        heads[name] = d
    nodes.append(helper.make_node("Sigmoid", [heads["scoremap"]], ["scores_nchw"]))
    nodes.append(helper.make_node("Transpose", ["scores_nchw"], ["scoremap"], perm=[0, 2, 3, 1]))
    nodes.append(helper.make_node("Transpose", [heads["locref"]], ["locref"], perm=[0, 2, 3, 1]))
    graph = helper.make_graph(
        nodes, "resnet50_dlc_random",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", "height", "width", 3])],
        [helper.make_tensor_value_info("scoremap", TensorProto.FLOAT, ["batch", "map_height", "map_width", k]),
         helper.make_tensor_value_info("locref", TensorProto.FLOAT, ["batch", "map_height", "map_width", 2 * k])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    params = sum(int(np.prod(i.dims)) for i in inits)
    meta = ModelMetadata(bodyparts=tuple(f"part{i}" for i in range(k)), stride=8.0, locref_stdev=7.2801,
                         extra={"batch_invariant": "true", "source": "gpu_check random ResNet-50 (DeepLabCut layout)",
                                "parameters": str(params), "precision": "fp32"})
    return model, meta


def variants(name: str, model, meta, folder: Path, check_batches) -> dict[str, Path]:
    """fp32 / fp16, float / uint8 BGR input, maps / decode in graph, each checked where the exporter checks."""
    import onnx

    from rtpose.exporters import decode_in_graph as dig
    from rtpose.exporters import fp16 as fp16_mod
    from rtpose.exporters import uint8_input

    out = {}
    for precision in ("fp32", "fp16"):
        m = model if precision == "fp32" else fp16_mod.to_float16(model, name)
        m_meta = dataclasses.replace(meta, extra=dict(meta.extra, precision=precision,
                                                      fp16="true" if precision == "fp16" else "false"))
        out[f"{precision}-maps"] = save_model(onnx.ModelProto.FromString(m.SerializeToString()), m_meta,
                                              folder / f"{name}-{precision}-maps.onnx")
        d, d_meta = dig.add_checked(m, m_meta, source=name, batches=check_batches(meta.input_color == "RGB", False))
        out[f"{precision}-decode"] = save_model(d, d_meta, folder / f"{name}-{precision}-decode.onnx")
        u = uint8_input.to_uint8_bgr(m, input_color=meta.input_color, input_range=meta.input_range)
        u_meta = dataclasses.replace(m_meta, input_color="BGR")
        ud, ud_meta = dig.add_checked(u, u_meta, source=name, batches=check_batches(False, True))
        out[f"{precision}-uint8-decode"] = save_model(ud, ud_meta, folder / f"{name}-{precision}-uint8-decode.onnx")
    return out


# --------------------------------------------------------------------------- sources and sinks
def make_sources():
    from rtpose.drivers.sources.base import FrameSource, SourceInfo
    from rtpose.drivers.sources.parallel_video import ParallelVideoSource
    from rtpose.drivers.sources.video import VideoFileSource

    class MemoryFrames(FrameSource):
        """Real frames held in memory, cycled; ``fps`` paced from a start time shared by all cameras of a run
        (synchronised cameras), else as fast as read."""

        def __init__(self, frames: np.ndarray, n_frames: int, *, fps: float | None = None, start: dict | None = None,
                     name: str = "memory"):
            super().__init__(name)
            self.frames, self.n_frames, self.fps_paced = frames, n_frames, fps
            self.start = start if start is not None else {}
            self.i = 0

        def _do_open(self):
            self.i = 0
            h, w = self.frames.shape[1:3]
            return SourceInfo(width=w, height=h, fps=self.fps_paced or 30.0, n_frames=self.n_frames,
                              live=self.fps_paced is not None)

        def _do_read_into(self, out):
            if self.i >= self.n_frames:
                return False
            if self.fps_paced:
                t0 = self.start.setdefault("t0", time.monotonic_ns())
                wait = t0 + int(self.i * 1e9 / self.fps_paced) - time.monotonic_ns()
                if wait > 0:
                    time.sleep(wait / 1e9)
            np.copyto(out, self.frames[self.i % len(self.frames)])
            self.i += 1
            return True

    class LoopedVideo(FrameSource):
        """The openfield video decoded again and again until ``n_frames`` (a concatenated file, unwritten),
        by ``readers`` decoding threads (``rtpose analyze --readers``; 1: the plain video source)."""

        def __init__(self, path, n_frames: int, readers: int = 1, nvdec=None):
            """``nvdec``: decode with NVDEC through this decoder factory (None: OpenCV)."""
            super().__init__(f"video-looped:{path}")
            self.path, self.n_frames, self.readers, self.nvdec = path, n_frames, readers, nvdec
            self.inner = None
            self.i = 0

        def _video(self):
            if self.nvdec:
                from rtpose.drivers.sources.nvdec import NvdecVideoSource

                return NvdecVideoSource(self.path, decoder_factory=self.nvdec)
            if self.readers > 1:
                return ParallelVideoSource(self.path, self.readers)
            return VideoFileSource(self.path, paced=False)

        def _do_open(self):
            self.inner = self._video()
            info = self.inner.open()
            self.i = 0
            return SourceInfo(width=info.width, height=info.height, fps=info.fps, n_frames=self.n_frames, live=False)

        def _do_read_into(self, out):
            if self.i >= self.n_frames:
                return False
            if not self.inner.read_into(out):
                self.inner.close()
                self.inner = self._video()
                self.inner.open()
                if not self.inner.read_into(out):
                    return False
            self.i += 1
            return True

        def _do_close(self):
            if self.inner is not None:
                self.inner.close()

    return MemoryFrames, LoopedVideo


def make_trigger_parts(max_frames: int, cameras: int):
    from rtpose.drivers.outputs.null import NullOutput
    from rtpose.results import Action

    class StampingOutput(NullOutput):
        """A trigger output that stamps the moment each pulse is handed over (where a serial output queues
        the bytes for its writer thread)."""

        def __init__(self):
            super().__init__("stamping")
            self.t_send_ns = np.zeros((cameras, max_frames), np.int64)

        def _do_send(self, command, channel, payload, action):
            if action is not None:
                self.t_send_ns[action.stream, action.frame_index] = time.monotonic_ns()
            return super()._do_send(command, channel, payload, action)

    class PulseEveryFrame:
        name = "pulse_every_frame"

        def __init__(self):
            self.t_capture_ns = np.zeros((cameras, max_frames), np.int64)

        def open(self, streams):
            pass

        def process(self, batch):
            for i in range(batch.n):
                s, fi = int(batch.stream[i]), int(batch.frame_index[i])
                self.t_capture_ns[s, fi] = batch.t_capture_ns[i]
                batch.actions.append(Action("pulse", rule="gpu_check", t_ns=int(batch.t_capture_ns[i]),
                                            frame_index=fi, channel=0, duration_ms=1.0, stream=s))

    return StampingOutput, PulseEveryFrame


# --------------------------------------------------------------------------- measurements
def load(path, provider: str, *, trt_fp16=False, log=None, graph_decode=None, cuda_graph=None, io_binding="auto"):
    from rtpose.model import OnnxPoseModel

    return OnnxPoseModel(path, providers=[provider], trt_fp16=trt_fp16, log=log, graph_decode=graph_decode,
                         cuda_graph=cuda_graph, io_binding=io_binding)


def offline(model, source, batch: int) -> dict:
    """``source``: one source, or a list (several videos in one run, ``rtpose analyze --videos-at-once``)."""
    from rtpose.pipeline import Pipeline, PipelineConfig

    t0 = time.perf_counter()
    pipeline = Pipeline(source if isinstance(source, list) else [source], model, config=PipelineConfig(live=False, batch_size=batch, status_interval_s=3600))
    summary = pipeline.run()
    return {"fps": summary.fps, "frames": summary.processed, "duration_s": summary.duration_s,
            "wall_s": time.perf_counter() - t0, "execution": summary.execution, "settings": summary.model_settings}


def live(model, frames: np.ndarray, cameras: int, n: int, fps: float) -> dict:
    from rtpose.benchmark.summary import summarize
    from rtpose.pipeline import Pipeline, PipelineConfig
    from rtpose.sinks.trigger import TriggerSink

    MemoryFrames, _ = make_sources()
    StampingOutput, PulseEveryFrame = make_trigger_parts(n, cameras)
    start: dict = {}
    sources = [MemoryFrames(frames, n, fps=fps, start=start, name=f"camera{c}") for c in range(cameras)]
    output, stage = StampingOutput(), PulseEveryFrame()
    pipeline = Pipeline(sources, model, sinks=[TriggerSink(output)], stages=[stage],
                        config=PipelineConfig(live=True, batch_size=cameras, status_interval_s=3600))
    summary = pipeline.run()
    done = (output.t_send_ns > 0) & (stage.t_capture_ns > 0)
    lat_ms = (output.t_send_ns[done] - stage.t_capture_ns[done]) * 1e-6
    s = summarize(lat_ms)
    return {"n": int(done.sum()), "p50_ms": s["p50"], "p99_ms": s["p99"], "max_ms": s["max"],
            "inference_p50_ms": summary.latency_ms.get("inference", {}).get("p50"),
            "captured": summary.captured, "dropped": summary.dropped, "execution": summary.execution,
            "settings": summary.model_settings, "fps_per_camera": fps}


def correctness(models: dict, provider: str, frames: np.ndarray, label: str, trt_fp16=False) -> list[dict]:
    """On the device: the in-graph decode vs Numba on the same run's maps; FP16 vs FP32; uint8 vs float."""
    from rtpose.decode import Decoder
    from rtpose.exporters.decode_in_graph import same_bits

    rows = []
    dec_model = load(models["fp32-decode"], provider, trt_fp16=trt_fp16, log=lambda s: None)
    poses = dec_model.infer_poses(frames).copy()
    maps_model = load(models["fp32-decode"], provider, trt_fp16=trt_fp16, log=lambda s: None, graph_decode=False)
    scmap, locref = maps_model.infer(frames)
    meta = maps_model.metadata
    expected = np.empty_like(poses)
    Decoder(meta.stride, meta.locref_stdev, meta.num_bodyparts, len(frames)).decode(
        np.ascontiguousarray(scmap), np.ascontiguousarray(locref), expected)
    bad = int((~same_bits(poses, expected).all(axis=-1)).sum())
    diff = float(np.nanmax(np.abs(poses[..., :2] - expected[..., :2])))
    rows.append({"check": "decode in graph vs Numba on this device's maps", "label": label,
                 "result": f"{bad} of {poses.shape[0] * poses.shape[1]} points differ (max {diff:.3g} px)",
                 "mismatches": bad})
    u8 = load(models["fp32-uint8-decode"], provider, trt_fp16=trt_fp16, log=lambda s: None).infer_poses(frames)
    d8 = float(np.nanmax(np.abs(u8[..., :2] - poses[..., :2])))
    rows.append({"check": "uint8 BGR input vs float input (poses)", "label": label, "result": f"max {d8:.3g} px",
                 "max_px": d8})
    p16 = load(models["fp16-decode"], provider, log=lambda s: None).infer_poses(frames)
    d16 = np.abs(p16[..., :2] - poses[..., :2])
    rows.append({"check": "FP16 model vs FP32 model (poses)", "label": label,
                 "result": f"median {float(np.median(d16)):.3g} px, max {float(np.max(d16)):.3g} px",
                 "max_px": float(np.max(d16))})
    return rows


# --------------------------------------------------------------------------- CUDA libraries
def _tiny_model_bytes() -> bytes:
    import onnx
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "tiny",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m.SerializeToString()


def cuda_libraries(ort) -> dict:
    """Make the CUDA/cuDNN libraries findable for onnxruntime-gpu and say how: its ``preload_dlls()``
    (the nvidia-* pip packages), else importing torch (which loads its CUDA libraries globally). Then
    whether a CUDA session really runs on CUDA, and whether TensorRT's libraries load."""
    from rtpose.providers import captured_stderr

    out = {}
    try:
        ort.preload_dlls()
        out["preload_dlls"] = "ok"
    except Exception as exc:  # noqa: BLE001 - absent in older onnxruntime, or libraries missing
        out["preload_dlls"] = f"{type(exc).__name__}: {exc}"

    def session(providers):
        log: list[str] = []
        with captured_stderr(log):
            s = ort.InferenceSession(_tiny_model_bytes(), providers=providers)
        return s.get_providers()[0], "".join(log)[-600:]

    got, log = session(["CUDAExecutionProvider"])
    if got != "CUDAExecutionProvider":
        out["cuda_first_try"] = log.strip()
        try:
            import torch  # noqa: F401 - loads libcudart/cublas/cudnn with RTLD_GLOBAL

            out["torch_preload"] = f"torch {torch.__version__}"
        except Exception as exc:  # noqa: BLE001
            out["torch_preload"] = f"{type(exc).__name__}: {exc}"
        got, log = session(["CUDAExecutionProvider"])
    out["cuda_session"] = got if got == "CUDAExecutionProvider" else f"{got}: {log.strip()}"
    if "TensorrtExecutionProvider" in ort.get_available_providers():
        got, log = session(["TensorrtExecutionProvider"])
        out["tensorrt_session"] = got if got == "TensorrtExecutionProvider" else f"{got}: {log.strip()}"
    return out


def placement(path, provider_full: str) -> dict:
    """Which execution provider runs which nodes (ONNX Runtime >= 1.32 records it on request): the op types
    left on the CPU decide whether CUDA graphs can be captured and how many copies cross the bus."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.add_session_config_entry("session.record_ep_graph_assignment_info", "1")
    sess = ort.InferenceSession(str(path), so, providers=[provider_full])
    if not hasattr(sess, "get_provider_graph_assignment_info"):
        return {"placement": f"not reported by onnxruntime {ort.__version__}"}
    counts: dict[str, dict[str, int]] = {}
    for sub in sess.get_provider_graph_assignment_info():
        ops = counts.setdefault(sub.ep_name, {})
        for node in sub.get_nodes():
            ops[node.op_type] = ops.get(node.op_type, 0) + 1
    return {ep: {"nodes": sum(ops.values()), "ops": dict(sorted(ops.items()))} for ep, ops in counts.items()}


# --------------------------------------------------------------------------- main
def environment(args) -> dict:
    import onnxruntime as ort

    env = {"python": platform.python_version(), "numpy": np.__version__, "onnxruntime": ort.__version__,
           "onnxruntime_file": ort.__file__, "available_providers": ", ".join(ort.get_available_providers()),
           "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()}
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        env["gpu"] = smi.stdout.strip() or smi.stderr.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        env["gpu"] = f"nvidia-smi unavailable ({exc})"
    return env


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="gpu-check-out", help="folder for gpu_check.json / gpu_check.md")
    p.add_argument("--ort-path", default=None, help="folder onnxruntime-gpu was installed into (pip --target)")
    p.add_argument("--budget-s", type=float, default=420.0, help="stop starting new steps after this (default 420)")
    p.add_argument("--cpu-smoke", action="store_true", help="tiny frame counts on the CPU provider (tests)")
    args = p.parse_args(argv)
    if args.ort_path:
        sys.path.insert(0, str(Path(args.ort_path).resolve()))
    mount_repo()
    os.environ.setdefault("RTPOSE_CACHE_DIR", str(Path(tempfile.gettempdir()) / "rtpose-gpu-check-cache"))
    smoke = args.cpu_smoke
    from rtpose.drivers.sources.nvdec import PyNvVideoCodecDecoder

    nvdec = OpenCvAsNvdec if smoke else PyNvVideoCodecDecoder  # NVDEC's decoder, or the smoke run's stand-in
    budget = Budget(args.budget_s)
    report = Report(Path(args.out), smoke)
    logs: list[str] = []

    def log(msg: str) -> None:
        print(msg, flush=True)
        logs.append(msg)

    def step(section_or_none, what: str, estimate_s: float, fn):
        """Run ``fn`` if the budget allows; errors are recorded, never fatal."""
        if budget.left() < estimate_s:
            report.data["skipped"].append(f"{what} (time budget: {budget.left():.0f} s left, needs ~{estimate_s:.0f} s)")
            report.save()
            return None
        log(f"[{budget.elapsed():6.1f} s] {what}")
        try:
            row = fn()
        except Exception as exc:  # noqa: BLE001 - report and go on
            report.data["errors"].append({"step": what, "error": f"{type(exc).__name__}: {exc}",
                                          "traceback": traceback.format_exc()[-2000:]})
            report.save()
            log(f"   failed: {type(exc).__name__}: {exc}")
            return None
        if section_or_none and row is not None:
            for r in (row if isinstance(row, list) else [row]):
                report.add(section_or_none, r)
        return row

    import onnxruntime as ort

    env = environment(args)
    report.data["environment"] = env
    report.save()
    available = ort.get_available_providers()
    providers = ["cpu"]
    if not smoke:
        libs = cuda_libraries(ort)
        report.data["environment"]["cuda_libraries"] = libs
        providers = []
        if libs.get("cuda_session") == "CUDAExecutionProvider":
            providers.append("cuda")
        else:
            report.data["skipped"].append(f"CUDA: sessions fall back ({libs.get('cuda_session')})")
        if libs.get("tensorrt_session") == "TensorrtExecutionProvider" and providers:
            providers.append("tensorrt")
        elif "TensorrtExecutionProvider" in available:
            report.data["skipped"].append(f"TensorRT: its sessions fall back ({libs.get('tensorrt_session')}); "
                                          "every TensorRT figure is unmeasured")
        report.save()
    if not providers:
        report.data["skipped"].append("everything on the GPU: this onnxruntime has no CUDA/TensorRT provider "
                                      f"({', '.join(available)})")
        report.save()
        return report.data

    # ---- models
    work = Path(tempfile.mkdtemp(prefix="rtpose-gpu-check-"))
    import onnx

    from rtpose import models as bundled_models
    from rtpose.data import demo_video_frames
    from rtpose.exporters.frames import synthetic_frames
    from rtpose.metadata import ModelMetadata

    h, w = (96, 128) if smoke else SIZE
    real = demo_video_frames(8 if smoke else 256)
    if smoke:
        import cv2

        real = np.stack([cv2.resize(f, (w, h)) for f in real])

    def check_batches(rgb_float: bool, uint8: bool):
        frames = synthetic_frames(((h, w),) * 2, seed=7)
        b = np.stack(frames)
        if uint8:
            return [np.ascontiguousarray(np.clip(np.rint(b), 0, 255).astype(np.uint8)[..., ::-1])]
        return [b if rgb_float else np.ascontiguousarray(b[..., ::-1])]

    model_sets: dict[str, dict[str, Path]] = {}

    def build_bundled():
        proto = onnx.load(str(bundled_models.default_model_path()))
        meta = ModelMetadata.from_props({p.key: p.value for p in proto.metadata_props}, source="bundled")
        model_sets["bundled"] = variants("bundled", proto, meta, work, check_batches)
        report.data["models"]["bundled"] = f"{bundled_models.default_model_path().name}: {meta.extra.get('architecture')}"

    def build_resnet():
        proto, meta = resnet50_dlc(width_div=8 if smoke else 1)
        model_sets["resnet50"] = variants("resnet50", proto, meta, work, check_batches)
        report.data["models"]["resnet50"] = (f"random-weight DeepLabCut-layout ResNet-50, {int(meta.extra['parameters']):,} "
                                             f"parameters{' (channels / 8 for the smoke run)' if smoke else ''}")

    step(None, "build the bundled model's variants (fp32/fp16 x maps/decode/uint8+decode)", 5, build_bundled)
    step(None, "generate the ResNet-50-sized model and its variants", 20, build_resnet)

    MemoryFrames, LoopedVideo = make_sources()
    from rtpose.data import demo_video_path

    live_n = 20 if smoke else 1000
    live_fps = 50.0 if smoke else 200.0
    sweep_frames = 16 if smoke else 4096
    video_frames = 64 if smoke else VIDEO_REPEATS * 2330
    from rtpose.drivers.sources.parallel_video import default_readers

    auto_readers = default_readers(os.cpu_count() or 1, 1)  # rtpose analyze --readers auto with a GPU provider
    gpu = "cpu" if smoke else "cuda"
    gpu_name = "CPU" if smoke else "CUDA"
    trt = "tensorrt" in providers

    def engine_s(provider, name):  # rough set-up cost: TensorRT engine builds dominate
        if provider != "tensorrt":
            return 8
        return 120 if name == "resnet50" else 45

    def live_step(name, provider, label, key, trt16, cams):
        def run():
            model = load(model_sets[name][key], provider, trt_fp16=trt16, log=log)
            r = live(model, real, cams, live_n if cams == 1 else live_n // 2, live_fps)
            return dict(r, model=name, label=f"{label} ({key})", cameras=cams, setup_s=model.build_s)
        return ("live", f"live {name} {label} {cams} camera(s)", live_n / live_fps + engine_s(provider, name), run)

    def offline_step(name, provider, label, key, trt16, b):
        def run():
            t0 = time.perf_counter()
            model = load(model_sets[name][key], provider, trt_fp16=trt16, log=log)
            model.prepare(b, *real.shape[1:3])  # engine built and warmed up before the clock starts
            setup = time.perf_counter() - t0
            frames = sweep_frames if name == "bundled" else sweep_frames // 4  # the ResNet is ~10x slower
            r = offline(model, MemoryFrames(real, max(frames, 4 * b)), b)
            return dict(r, model=name, label=f"{label} ({key})", batch=b, setup_s=setup, key=key, provider=provider,
                        trt_fp16=trt16)
        return ("offline", f"offline {name} {label} batch {b}", 5 + engine_s(provider, name), run)

    def maps_step(b):
        def run():
            model = load(model_sets["bundled"]["fp16-maps"], gpu, log=log)
            r = offline(model, MemoryFrames(real, max(sweep_frames, 4 * b)), b)
            return dict(r, model="bundled", label=f"{gpu_name} FP16 (fp16-maps: float input, maps + Numba decode)",
                        batch=b)
        return ("offline", f"offline bundled maps variant batch {b}", 10, run)

    def binding_step(b, io_binding):
        """CUDA graphs off: host-bound (page-locked) vs device-bound I/O, against the default (graphs on)."""
        def run():
            model = load(model_sets["bundled"]["fp16-uint8-decode"], gpu, log=log, cuda_graph=False,
                         io_binding=io_binding)
            r = offline(model, MemoryFrames(real, max(sweep_frames, 4 * b)), b)
            return dict(r, model="bundled", label=f"{gpu_name} FP16 (fp16-uint8-decode), CUDA graph off, "
                                                  f"{io_binding}-bound I/O", batch=b)
        return ("offline", f"offline bundled batch {b}, CUDA graph off, {io_binding}-bound", 10, run)

    def decode_only(readers, nvdec=None):
        def run():
            src = LoopedVideo(demo_video_path(), video_frames, readers, nvdec)
            info = src.open()
            buf = np.empty((info.height, info.width, 3), np.uint8)
            t0 = time.perf_counter()
            n = 0
            while src.read_into(buf):
                n += 1
            src.close()
            dt = time.perf_counter() - t0
            label = "NVDEC decode alone" if nvdec else f"OpenCV decode alone ({readers} reader{'s' if readers > 1 else ''})"
            return {"model": "none", "label": label, "frames": n, "fps": n / dt, "source": "video-decode-only",
                    "readers": readers, "decode": "nvdec" if nvdec else "cpu"}
        return run

    def nvdec_analyze():
        pick = best_bundled()
        model = load(model_sets["bundled"][pick["key"]], pick["provider"], trt_fp16=pick["trt_fp16"], log=log)
        r = offline(model, LoopedVideo(demo_video_path(), 32 if smoke else video_frames, 1, nvdec), pick["batch"])
        return dict(r, model="bundled", label=f"{pick['label']}, NVDEC decoding", batch=pick["batch"], source="video",
                    readers=1, decode="nvdec")

    def nvdec_fidelity():
        """NVDEC's frames against OpenCV's: pixel differences, and the bundled model's poses on both."""
        from rtpose.data import read_video_frames
        from rtpose.drivers.sources.nvdec import NvdecVideoSource

        n = 8 if smoke else 200
        cpu = read_video_frames(demo_video_path(), n)
        src = NvdecVideoSource(demo_video_path(), decoder_factory=nvdec)
        src.open()
        gpu = np.empty_like(cpu)
        got = 0
        while got < len(cpu) and src.read_into(gpu[got]):
            got += 1
        src.close()
        diff = np.abs(gpu[:got].astype(np.int16) - cpu[:got].astype(np.int16))
        pick = best_bundled()
        model = load(model_sets["bundled"][pick["key"]], pick["provider"], trt_fp16=pick["trt_fp16"], log=lambda s: None)
        p_cpu, p_gpu = (np.concatenate([model.infer_poses(f[i:i + 8]).copy() for i in range(0, got, 8)])
                        for f in (cpu[:got], gpu[:got]))
        d = np.hypot(*(p_gpu[..., :2] - p_cpu[..., :2]).transpose(2, 0, 1))
        return {"check": "NVDEC frames vs OpenCV's (openfield video)", "model": "bundled", "label": pick["label"],
                "result": (f"{got} frames: pixels mean |diff| {float(diff.mean()):.3g}, max {int(diff.max())} levels; "
                           f"poses mean {float(np.mean(d)):.3g} px, p99 {float(np.percentile(d, 99)):.3g} px, "
                           f"max {float(np.max(d)):.3g} px"),
                "frames": got, "pixel_mean_abs": float(diff.mean()), "pixel_max_abs": int(diff.max()),
                "pose_mean_px": float(np.mean(d)), "pose_max_px": float(np.max(d))}

    def best_bundled():
        """The fastest offline configuration of the bundled model measured so far."""
        best = [r for r in report.data["offline"] if r["model"] == "bundled" and "key" in r]
        if not best:
            raise RuntimeError("no offline figure for the bundled model to pick the configuration from")
        return max(best, key=lambda r: r["fps"])

    def analyze_step(tag):
        def run():
            pick = best_bundled()
            done = [r for r in report.data["analyze"] if r.get("label") == pick["label"] and r.get("batch") == pick["batch"]]
            if done:
                return None
            model = load(model_sets["bundled"][pick["key"]], pick["provider"], trt_fp16=pick["trt_fp16"], log=log)
            r = offline(model, LoopedVideo(demo_video_path(), 32 if smoke else video_frames, auto_readers), pick["batch"])
            return dict(r, model="bundled", label=pick["label"], batch=pick["batch"], source="video",
                        readers=auto_readers)
        return ("analyze", f"analyze-equivalent ({tag}): {video_frames} video frames, best configuration so far",
                5 if smoke else 60, run)

    def videos_at_once_step(videos):
        def run():
            pick = best_bundled()
            model = load(model_sets["bundled"][pick["key"]], pick["provider"], trt_fp16=pick["trt_fp16"], log=log)
            each = max((32 if smoke else video_frames) // videos, 1)
            r = offline(model, [LoopedVideo(demo_video_path(), each, 1) for _ in range(videos)], pick["batch"])
            return dict(r, model="bundled", label=f"{pick['label']}, {videos} videos at once (1 reader each)",
                        batch=pick["batch"], source="video", readers=1, videos_at_once=videos)
        return ("analyze", f"analyze-equivalent: {video_frames} video frames as {videos} videos at once",
                5 if smoke else 60, run)

    def correctness_step(name, provider, label, trt16=False):
        def run():
            return [dict(r, model=name) for r in correctness(model_sets[name], provider, real[:4], label, trt16)]
        return ("correctness", f"correctness {name} on {label}", 10 if provider != "tensorrt" else 150, run)

    names = [n for n in ("bundled", "resnet50") if n in model_sets]
    fp16, fp32 = ("fp16-uint8-decode", False), ("fp32-uint8-decode", False)
    t16, t32 = ("fp32-uint8-decode", True), ("fp32-uint8-decode", False)
    batches = (1, 4) if smoke else (1, 8, 32, 64)
    def placement_step(name, key):
        def run():
            full = "CPUExecutionProvider" if smoke else "CUDAExecutionProvider"
            return {"check": "nodes per execution provider", "model": name, "label": f"{gpu_name} ({key})",
                    "result": json.dumps(placement(model_sets[name][key], full)),
                    "placement": placement(model_sets[name][key], full)}
        return ("correctness", f"node placement {name} {key}", 10, run)

    plan = [correctness_step(n, gpu, gpu_name) for n in names]  # 1. correctness
    plan += [placement_step(n, "fp16-uint8-decode") for n in names]
    plan += [live_step(n, gpu, f"{gpu_name} FP16", *fp16, c) for n in names for c in (1, 4)]  # 2. live, FP16
    plan += [offline_step("bundled", gpu, f"{gpu_name} FP16", *fp16, b) for b in sorted(batches, reverse=True)
             if "bundled" in names]  # 3. offline, FP16
    plan += [maps_step(b) for b in ((4, 1) if smoke else (64, 1)) if "bundled" in names]
    plan += [binding_step(b, io) for b in (1, max(batches)) for io in ("host", "device") if "bundled" in names]
    plan += [("analyze", "video decode alone, 1 reader", 5 if smoke else 40, decode_only(1)),
             ("analyze", f"video decode alone, {auto_readers} readers (analyze's automatic choice)", 5 if smoke else 40,
              decode_only(auto_readers)),
             analyze_step("CUDA"), videos_at_once_step(4)]  # 4.
    if smoke or importlib.util.find_spec("PyNvVideoCodec") is not None:  # 5. NVDEC
        plan += [("analyze", "video decode alone, NVDEC", 5 if smoke else 30, decode_only(1, nvdec=nvdec)),
                 ("analyze", f"analyze-equivalent: {video_frames} video frames decoded by NVDEC", 5 if smoke else 40,
                  nvdec_analyze),
                 ("correctness", "NVDEC frames vs OpenCV's", 5 if smoke else 20, nvdec_fidelity)]
    else:
        report.data["skipped"].append("NVDEC (--decode nvdec): PyNvVideoCodec is not installed; put its wheel "
                                      "(pynvvideocodec-*-cp312-*.whl) in PARTS_DIR beside onnxruntime-gpu's")
    if trt:  # 5. the TensorRT figures that matter most
        plan += [live_step("bundled", "tensorrt", "TensorRT FP16", *t16, 1),
                 offline_step("bundled", "tensorrt", "TensorRT FP16", *t16, 64)]
        plan += [live_step("resnet50", "tensorrt", "TensorRT FP16", *t16, 1)] if "resnet50" in names else []
    plan += [live_step(n, gpu, f"{gpu_name} FP32", *fp32, c) for n in names for c in (1, 4)]  # 6. FP32, ResNet
    plan += [offline_step("bundled", gpu, f"{gpu_name} FP32", *fp32, b) for b in (max(batches), 1) if "bundled" in names]
    plan += [offline_step("resnet50", gpu, f"{gpu_name} {p}", *v, b) for p, v in (("FP16", fp16), ("FP32", fp32))
             for b in ((4, 1) if smoke else (64, 16, 1)) if "resnet50" in names]
    if trt:  # 7. more TensorRT, and its correctness
        plan += [live_step(n, "tensorrt", "TensorRT FP16", *t16, 4) for n in names]
        plan += [offline_step("resnet50", "tensorrt", "TensorRT FP16", *t16, 64)] if "resnet50" in names else []
        plan += [analyze_step("best overall")]
        plan += [correctness_step("bundled", "tensorrt", "TensorRT FP16", True)]
        plan += [live_step("bundled", "tensorrt", "TensorRT FP32", *t32, 1),
                 offline_step("bundled", "tensorrt", "TensorRT FP32", *t32, 64)]
        plan += [offline_step("bundled", "tensorrt", "TensorRT FP16", *t16, b) for b in (1, 8, 32)]
    plan += [offline_step("bundled", gpu, f"{gpu_name} FP32", *fp32, b) for b in (8, 32) if "bundled" in names
             and not smoke]  # 8. the rest of the sweep
    for section, what, estimate, fn in plan:
        step(section, what, estimate, fn)
    report.data["environment"]["imported_zmq_or_serial"] = ", ".join(sorted(
        {m.split(".")[0] for m in sys.modules if m.split(".")[0] in ("zmq", "serial")})) or "none"
    report.data["elapsed_s"] = budget.elapsed()
    report.data["log"] = logs[-200:]
    report.save()
    print(markdown(report.data))
    return report.data


if __name__ == "__main__":
    main()
