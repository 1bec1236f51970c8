"""rtpose side by side with DeepLabCut-Live: same DeepLabCut model folders, same frames.

DeepLabCut-Live needs numpy < 2 and TensorFlow < 2.16, which cannot live in
rtpose's environment (and is never a dependency of rtpose), so this script
creates a separate virtual environment for it once (Python 3.11,
deeplabcut-live 1.1.0, tensorflow 2.15.1, numpy 1.26.4, torch 2.13.0, which
DLC-Live imports at start-up) and runs it there (``dlclive_worker.py``). If the
environment cannot be created (no python3.11, no network), it says why and
skips.

For each DeepLabCut exported-model folder (``pose_cfg.yaml`` + frozen ``.pb``;
``--model A,B`` for your own folders instead):

* the tiny DeepLabCut-format graphs built by ``tests/dlc_graphs.py``
  (MobileNetV2- and ResNet-style, seeded, calibrated; MobileNetV2 also with
  training-mode batch norm);
* the real DeepLabCut 3.0.2 TF exports of ``tests/fixtures/dlc_real``
  (MobileNetV2-0.35, EfficientNet-B0, ResNet-50 built by DeepLabCut's own
  network builders, random init; see its README);
* any DeepLabCut-format export of the bundled model found under
  ``examples/train_openfield/`` (a folder holding ``pose_cfg.yaml``);

and DeepLabCut 3 (PyTorch) exports given with ``--dlc3 PATH...`` (or
``RTPOSE_DLC3_EXPORTS``, paths separated by ``:``; an ``exported-models-pytorch/DLC_...``
folder or its ``.pt``; ``examples/dlc3_openfield/make_models.py`` makes real ones),
compared with DLC-Live's PyTorch runner (``DLCLive(pt, model_type="pytorch",
device="cpu")``) in a second environment (deeplabcut-live[pytorch] 1.1.0, torch
2.14.1, torchvision 0.29.1; ``RTPOSE_DLCLIVE_TORCH_VENV``, default
~/.cache/rtpose/dlclive-torch-venv); ``--only-dlc3`` leaves the TF models out;

it exports the folder to ONNX with rtpose (``rtpose.exporters.export_model``),
then times, on the same real openfield frames (640x480 BGR, as OpenCV reads them):

* DLC-Live: ``get_pose(frame)`` per frame (colour conversion, TF session or PyTorch forward, decode);
* rtpose: ``load_frame`` + ``run`` + ``Decoder.decode`` per frame (colour
  conversion, ONNX Runtime, decode) - the pipeline's own calls - and, for
  throughput, the same at batch 8.

Each comparison runs under three load conditions made by the script itself
(``--loads``, default ``idle,one,all``): idle; one core kept busy by another
process; every usable core kept busy (``python -c "while True: pass"``
processes started for the condition and killed by their own PIDs after it).
The *unplanned load* column is the CPU other programs used meanwhile: it must
be ~0 for the figures to mean anything (run on a quiet machine).

``--settings`` (default ``full``) adds DeepLabCut-Live's matching settings on
both sides: ``resize`` (``resize=0.5`` / ``--resize 0.5``) and ``dynamic``
(``dynamic=(True, 0.5, 10)`` / ``--dynamic-crop 0.5,10``; rtpose grows its box
to the stride, so poses agree only approximately there); and ``int8``: rtpose's
INT8 twin of the export (``rtpose export --int8``, calibrated on 32 frames of
the openfield video, gated on its 100 labelled frames; timed even when the gate
refuses it, and the row says so) against DLC-Live's FP32 at full frame.
Batch-8 throughput is measured on the full frame only.

It prints per-frame latency p50/p99 for each and their ratio, throughput, and
pose agreement (mean/max pixel distance, max likelihood difference), for rtpose
one frame at a time and at batch 8 (which must give the same poses).
Goal: rtpose <= 0.5x DLC-Live's per-frame latency on CPU, agreement < 0.05 px.

    .venv/bin/python latency_tests/dlc_live_side_by_side/run.py [--quick] [--frames N] [--loads idle,one,all]
        [--settings full,resize,dynamic,int8] [--dlc3 PATH...] [--only-dlc3]

Environment: RTPOSE_DLCLIVE_VENV (default ~/.cache/rtpose/dlclive-venv),
RTPOSE_DLCLIVE_PYTHON (default: python3.11 on PATH).
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from _common import REPO, busy_cores, cli, finish, load_conditions, md_table  # noqa: E402

from rtpose.benchmark.summary import summarize  # noqa: E402
from rtpose.benchmark.sysinfo import OtherLoad  # noqa: E402

TITLE = "Side by side with DeepLabCut-Live (CPU, same model folder, same frames)"
GOAL_RATIO, GOAL_PX = 0.5, 0.05
DLCLIVE_PINS = ("deeplabcut-live==1.1.0", "tensorflow==2.15.1", "numpy==1.26.4")
TORCH_PIN = "torch==2.13.0"
#: DLC-Live's PyTorch runner for DeepLabCut 3 models (torch 2.13 does not import with DeepLabCut 3.0.2's code)
DLCLIVE_TORCH_PINS = ("deeplabcut-live[pytorch]==1.1.0", "torch==2.14.1", "torchvision==0.29.1")
WORKER = HERE / "dlclive_worker.py"
BATCH = 8
#: A keypoint's maximum is "ambiguous" when another cell's score is within this of it: far above the
#: TF/ONNX Runtime score differences (the "max likelihood diff" column), so either side may pick either cell.
AMBIGUOUS = 1e-5


#: Matching settings: (name, DLC-Live worker arguments, rtpose Framing arguments).
SETTINGS = {
    "full": ("full frame", [], {}),
    "resize": ("resize 0.5", ["--resize", "0.5"], {"resize": 0.5}),
    "dynamic": ("dynamic crop (0.5, 10 px)", ["--dynamic", "0.5,10"], {"dynamic": (0.5, 10.0)}),
    # rtpose's INT8 twin of the export against DLC-Live's FP32, full frame (the gate's verdict is in the label)
    "int8": ("rtpose INT8 vs DLC-Live FP32, full frame", [], {"int8": True}),
}


def int8_twin(onnx_path: Path, out: Path) -> tuple[Path, str]:
    """rtpose's INT8 (QDQ) twin of ``onnx_path``, calibrated on 32 frames of the openfield video and gated on
    its 100 labelled frames (``rtpose export --int8``); written even when the gate fails (to time it), the
    returned note says which."""
    from rtpose.exporters.int8 import quantize_int8

    data = Path(os.environ.get("RTPOSE_OPENFIELD", REPO.parent / "shared" / "data" / "openfield"))
    labels = data / "labeled" if (data / "labeled").is_dir() else REPO / "tests" / "data" / "openfield" / "labeled"
    video = data / "m3v1mp4.mp4" if (data / "m3v1mp4.mp4").is_file() else REPO / "rtpose" / "data" / "m3v1mp4.mp4"
    report = quantize_int8(onnx_path, out, calibrate=video, labels=labels, calibration_frames=32, refuse=False)
    return out, f"INT8 gate {'passed' if report.gate.passed else 'FAILED'}: {report.gate.summary()}"


def settings(names: str | None = None) -> list[tuple[str, list[str], dict]]:
    chosen = [n.strip() for n in (names or "full").split(",") if n.strip()]
    unknown = [n for n in chosen if n not in SETTINGS]
    if unknown:
        raise SystemExit(f"unknown setting(s) {unknown}; choose from {', '.join(SETTINGS)}")
    return [SETTINGS[n] for n in chosen]


class Skip(Exception):
    """The comparison cannot run here; the message says why and what to do."""


# ----------------------------------------------------------------------------- environment

def venv_dir() -> Path:
    return Path(os.environ.get("RTPOSE_DLCLIVE_VENV", Path.home() / ".cache" / "rtpose" / "dlclive-venv"))


def _run(cmd, what: str, timeout: float = 1800) -> None:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-8:])
        raise Skip(f"{what} failed (exit {proc.returncode}):\n{tail}")


def torch_venv_dir() -> Path:
    return Path(os.environ.get("RTPOSE_DLCLIVE_TORCH_VENV", Path.home() / ".cache" / "rtpose" / "dlclive-torch-venv"))


def _works(python: Path, probe: str = "import dlclive, numpy; assert numpy.__version__ < '2'") -> bool:
    if not python.is_file():
        return False
    proc = subprocess.run([str(python), "-c", probe],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    return proc.returncode == 0


def ensure_venv(venv: Path | None = None) -> Path:
    """The DLC-Live environment's python, creating the environment if needed; raises Skip."""
    venv = venv or venv_dir()
    python = venv / "bin" / "python"
    if _works(python):
        return python
    base = os.environ.get("RTPOSE_DLCLIVE_PYTHON") or shutil.which("python3.11")
    if not base:
        raise Skip("DeepLabCut-Live 1.1.0 with TensorFlow 2.15 needs Python 3.11, and no python3.11 was found "
                   "(set RTPOSE_DLCLIVE_PYTHON to one)")
    print(f"creating the DeepLabCut-Live environment in {venv} (once; a few minutes) ...", flush=True)
    if venv.exists():
        shutil.rmtree(venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    _run([base, "-m", "venv", venv], "creating the virtual environment")
    pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    _run(pip + ["--upgrade", "pip"], "upgrading pip")
    _run(pip + [TORCH_PIN], f"pip install {TORCH_PIN} (DLC-Live imports torch at start-up)")
    _run(pip + list(DLCLIVE_PINS), "pip install " + " ".join(DLCLIVE_PINS))
    if not _works(python):
        raise Skip(f"the environment in {venv} was created but `import dlclive` fails in it")
    return python


def ensure_torch_venv(venv: Path | None = None) -> Path:
    """The python of DLC-Live's PyTorch environment, creating it if needed; raises Skip."""
    venv = venv or torch_venv_dir()
    python = venv / "bin" / "python"
    probe = "import dlclive, torch; from dlclive.pose_estimation_pytorch.runner import PyTorchRunner"
    if _works(python, probe):
        return python
    base = os.environ.get("RTPOSE_DLCLIVE_PYTHON") or shutil.which("python3.11") or sys.executable
    print(f"creating DLC-Live's PyTorch environment in {venv} (once; a few minutes) ...", flush=True)
    if venv.exists():
        shutil.rmtree(venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    _run([base, "-m", "venv", venv], "creating the virtual environment")
    _run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *DLCLIVE_TORCH_PINS],
         "pip install " + " ".join(DLCLIVE_TORCH_PINS))
    if not _works(python, probe):
        raise Skip(f"the environment in {venv} was created but importing DLC-Live's PyTorch runner fails in it")
    return python


def dlc3_exports(paths) -> list[tuple[str, Path]]:
    """(label, .pt) for DeepLabCut 3 exports given as folders or .pt files."""
    out = []
    for p in map(Path, paths):
        pts = sorted(p.glob("*.pt")) if p.is_dir() else [p]
        if len(pts) != 1 or not pts[0].is_file():
            raise Skip(f"{p}: not a DeepLabCut 3 exported-model folder with one .pt, nor a .pt file")
        out.append((f"DeepLabCut 3 {p.name if p.is_dir() else p.stem} (PyTorch)", pts[0]))
    return out


# ----------------------------------------------------------------------------- inputs

def openfield_frames(n: int) -> np.ndarray:
    """The first ``n`` frames of the openfield video, BGR uint8 (N, 480, 640, 3)."""
    from rtpose.data import read_video_frames

    candidates = [Path(os.environ.get("RTPOSE_OPENFIELD", REPO.parent / "shared" / "data" / "openfield")) / "m3v1mp4.mp4",
                  REPO / "rtpose" / "data" / "m3v1mp4.mp4"]
    video = next((p for p in candidates if p.is_file()), None)
    if video is None:
        raise Skip(f"the openfield video is not at {' or '.join(map(str, candidates))}")
    frames = read_video_frames(video, n)
    if len(frames) < n:
        raise Skip(f"{video} gave only {len(frames)} frames")
    return frames


def model_folders(tmp: Path, only=None) -> list[tuple[str, Path]]:
    """(label, DeepLabCut exported-model folder) pairs to compare on; ``only``: just these folders."""
    if only:
        return [(f"`{Path(f).name}`", Path(f)) for f in only]
    sys.path.insert(0, str(REPO / "tests"))
    try:
        from dlc_graphs import make_dlc_export_folder
        import dlc_real
    except ImportError as exc:
        raise Skip(f"building the DeepLabCut-format test graphs needs TensorFlow in rtpose's environment "
                   f"(`pip install 'rtpose[export]'`): {exc}") from exc
    folders = [("tiny MobileNetV2-style graph (tests/dlc_graphs.py)", make_dlc_export_folder(tmp, "mobilenet")),
               ("tiny MobileNetV2-style graph, training-mode batch norm (tests/dlc_graphs.py)",
                make_dlc_export_folder(tmp, "mobilenet-trainbn")),
               ("tiny ResNet-style graph (tests/dlc_graphs.py)", make_dlc_export_folder(tmp, "resnet"))]
    for net in dlc_real.NETS:
        folders.append((f"DeepLabCut 3.0.2 TF {net}, random init (tests/fixtures/dlc_real)",
                        dlc_real.materialize(net, tmp / f"real-{net}")))
    for cfg in sorted((REPO / "examples" / "train_openfield").rglob("pose_cfg.yaml")):
        if any(cfg.parent.glob("*.pb")):
            folders.append((f"bundled model, DeepLabCut format ({cfg.parent.relative_to(REPO)})", cfg.parent))
    return folders


# ----------------------------------------------------------------------------- the two sides

def run_dlclive(python: Path, folder: Path, frames_file: Path, out: Path, warmup: int, extra_args=(),
                model_type: str = "base") -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1"}
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([str(python), str(WORKER), str(folder), str(frames_file), str(out), "--warmup", str(warmup),
                           "--model-type", model_type, *extra_args],
                          capture_output=True, text=True, env=env, timeout=3600)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"DeepLabCut-Live failed on {folder}:\n{tail}")
    with np.load(out) as z:
        return {"poses": z["poses"], "times_ns": z["times_ns"], "total_ns": int(z["total_ns"]),
                "versions": [str(v) for v in z["versions"]]}


def run_rtpose(onnx_path: Path, frames: np.ndarray, warmup: int, framing_args: dict | None = None) -> dict:
    from rtpose.decode import Decoder
    from rtpose.model import OnnxPoseModel

    model = OnnxPoseModel(onnx_path, providers=["cpu"])
    meta = model.metadata
    n, h, w, _ = frames.shape
    if framing_args:
        return _run_rtpose_framed(model, frames, warmup, framing_args)
    model.prepare(BATCH, h, w)
    dec = Decoder(meta.stride, meta.locref_stdev, meta.num_bodyparts, BATCH, clip_scores=meta.clip_scores)
    out = np.zeros((BATCH, meta.num_bodyparts, 3), np.float64)
    clock = time.perf_counter_ns

    def one(frame):
        model.load_frame(0, frame)
        scmap, locref = model.run(1)
        dec.decode(scmap, locref, out, 1)
        return scmap

    poses, ambiguous, times, total = _per_frame(one, out, frames, warmup)
    # throughput at batch 8 (offline analysis), same calls
    for _ in range(2):
        for j in range(BATCH):
            model.load_frame(j, frames[j])
        dec.decode(*model.run(BATCH), out, BATCH)
    batch_poses = np.full_like(poses, np.nan)  # poses at batch 8: must equal the per-frame ones
    t0 = clock()
    done = 0
    while done + BATCH <= n:
        for j in range(BATCH):
            model.load_frame(j, frames[done + j])
        dec.decode(*model.run(BATCH), out, BATCH)
        batch_poses[done:done + BATCH] = out
        done += BATCH
    batch_fps = done / ((clock() - t0) * 1e-9) if done else float("nan")
    return {"poses": poses, "batch_poses": batch_poses, "ambiguous": ambiguous, "times_ns": times, "total_ns": total,
            "batch_fps": batch_fps, "provider": model.provider,
            "threads": model.threads, "spinning": "on" if model.spinning else "off"}


def _run_rtpose_framed(model, frames: np.ndarray, warmup: int, framing_args: dict) -> dict:
    """Per frame as the live pipeline does it with --resize/--dynamic-crop: FrameLoader (crop view, resize into
    its buffer, load_frame), run, decode, back to full-frame pixels, next dynamic box."""
    from rtpose.decode import Decoder
    from rtpose.framing import DynamicCrop, Framing
    from rtpose.preprocess import FrameLoader
    from rtpose.results import PoseBatch

    meta = model.metadata
    n, h, w, _ = frames.shape
    dynamic = framing_args.get("dynamic")
    framing = Framing(resize=framing_args.get("resize", 1.0), dynamic=DynamicCrop(*dynamic) if dynamic else None)
    loader = FrameLoader(model, framing, w, h, 1)
    loader.prepare_model(1)
    dec = Decoder(meta.stride, meta.locref_stdev, meta.num_bodyparts, 1)
    batch = PoseBatch(1, meta.num_bodyparts)

    def one(frame):
        loader.load(0, 0, frame, batch.crop_box[0])
        scmap, locref = model.run(1)
        dec.decode(scmap, locref, batch.pose, 1)
        loader.to_full_frame(batch, 1)
        loader.observe(batch, 1)
        return scmap

    poses, ambiguous, times, total = _per_frame(one, batch.pose, frames, warmup)
    return {"poses": poses, "batch_poses": np.full_like(poses, np.nan), "ambiguous": ambiguous, "times_ns": times,
            "total_ns": total, "batch_fps": float("nan"), "provider": model.provider, "threads": model.threads,
            "spinning": "on" if model.spinning else "off"}


def _per_frame(one, pose_out: np.ndarray, frames: np.ndarray, warmup: int):
    """Time ``one(frame)`` (which leaves the frame's pose in ``pose_out[0]`` and returns its score maps) on every
    frame after ``warmup`` untimed calls: (poses, ambiguous-maximum flags, per-frame ns, total ns)."""
    n, k = len(frames), pose_out.shape[1]
    poses = np.zeros((n, k, 3), np.float64)
    ambiguous = np.zeros((n, k), bool)  # another cell's score is within AMBIGUOUS of the maximum
    times = np.zeros(n, np.int64)
    clock = time.perf_counter_ns
    for i in range(warmup):
        one(frames[i % n])
    t_all = clock()
    for i in range(n):
        t0 = clock()
        scmap = one(frames[i])
        times[i] = clock() - t0
        poses[i] = pose_out[0]
        ambiguous[i] = (scmap[0] >= scmap[0].max(axis=(0, 1)) - AMBIGUOUS).sum(axis=(0, 1)) > 1
    return poses, ambiguous, times, clock() - t_all


def _pool(a: dict, b: dict) -> dict:
    """Two runs of one side as one: both runs' per-frame times; poses (and flags) of the first run,
    which must equal the second's."""
    if not np.array_equal(a["poses"], b["poses"]):
        raise RuntimeError("two runs of the same model on the same frames gave different poses")
    out = dict(a)
    out["times_ns"] = np.concatenate([a["times_ns"], b["times_ns"]])
    out["total_ns"] = a["total_ns"] + b["total_ns"]
    if "batch_fps" in a:
        out["batch_fps"] = (a["batch_fps"] + b["batch_fps"]) / 2
    return out


def compare(label: str, dlc: dict, rt: dict, size: str) -> dict:
    d_ms = dlc["times_ns"] * 1e-6
    r_ms = rt["times_ns"] * 1e-6
    dp, rp = dlc["poses"], rt["poses"]
    if dp.shape != rp.shape:
        raise RuntimeError(f"{label}: DLC-Live poses {dp.shape} vs rtpose {rp.shape}")
    px = np.hypot(dp[..., 0] - rp[..., 0], dp[..., 1] - rp[..., 1])
    dlik = np.abs(dp[..., 2] - rp[..., 2])
    # Where several cells score within AMBIGUOUS of the maximum (a saturated sigmoid gives many exact 1.0s),
    # "first maximum" depends on float rounding: TF and ONNX Runtime may legitimately pick different cells.
    clear = ~rt["ambiguous"]
    px_clear = px[clear] if clear.any() else np.zeros(1)
    batched = ~np.isnan(rt["batch_poses"][..., 0])  # frames that made up whole batches of 8
    bp = rt["batch_poses"][batched]
    px_batch = np.hypot(dp[batched][..., 0] - bp[..., 0], dp[batched][..., 1] - bp[..., 1])
    px_batch_clear = px_batch[clear[batched]] if clear[batched].any() else np.zeros(1)
    s_d, s_r = summarize(d_ms), summarize(r_ms)
    return {
        "model": label, "frames": len(dp), "size": size,
        "dlclive_ms": s_d, "rtpose_ms": s_r,
        "ratio_p50": s_r["p50"] / s_d["p50"], "ratio_p99": s_r["p99"] / s_d["p99"],
        "dlclive_fps": len(d_ms) / (dlc["total_ns"] * 1e-9), "rtpose_fps": len(r_ms) / (rt["total_ns"] * 1e-9),
        "rtpose_batch_fps": rt["batch_fps"],
        "px_mean": float(px.mean()), "px_max": float(px.max()), "px_frac_over_goal": float((px > GOAL_PX).mean()),
        "ambiguous_fraction": float(rt["ambiguous"].mean()), "px_max_unambiguous": float(px_clear.max()),
        "px_mean_unambiguous": float(px_clear.mean()),
        "likelihood_max_diff": float(dlik.max()), "likelihood_mean_diff": float(dlik.mean()),
        "batch_px_mean": float(px_batch.mean()) if px_batch.size else float("nan"),
        "batch_px_max_unambiguous": float(px_batch_clear.max()),
        "batch_equals_single": bool(np.array_equal(bp, rp[batched])),
        "dlclive_versions": dlc["versions"], "rtpose_provider": rt["provider"], "rtpose_threads": rt["threads"],
        "rtpose_spinning": rt["spinning"],
    }


def run(quick: bool = False, model=None, frames: int | None = None, loads: str | None = None,
        setting_names: str | None = None, dlc3=(), only_dlc3: bool = False) -> dict:
    n = frames or (40 if quick else 300)
    warmup = 5 if quick else 20
    dlc3 = list(dlc3) or [p for p in os.environ.get("RTPOSE_DLC3_EXPORTS", "").split(":") if p]
    try:
        python = None if only_dlc3 else ensure_venv()
        torch_models = dlc3_exports(dlc3)
        torch_python = ensure_torch_venv() if torch_models else None
        images = openfield_frames(n)
    except Skip as exc:
        print(f"skipped: {exc}")
        return {"title": TITLE, "status": "skipped", "reason": str(exc)}
    from rtpose.exporters import export_model

    rows = []
    with tempfile.TemporaryDirectory(prefix="rtpose-dlclive-") as tmp_name:
        tmp = Path(tmp_name)
        frames_file = tmp / "frames.npy"
        np.save(frames_file, images)
        try:
            folders = [] if only_dlc3 else [(label, f, python, "base") for label, f in model_folders(tmp, only=model)]
        except Skip as exc:
            print(f"skipped: {exc}")
            return {"title": TITLE, "status": "skipped", "reason": str(exc)}
        folders += [(label, pt, torch_python, "pytorch") for label, pt in torch_models]
        size = f"{images.shape[2]}x{images.shape[1]}"
        conditions = load_conditions(loads)
        chosen = settings(setting_names)
        for i, (label, folder, live_python, model_type) in enumerate(folders):
            print(f"== {label}: {folder}", flush=True)
            onnx_path = tmp / f"model{i}.onnx"
            export_model(folder, onnx_path)
            twins: dict[str, tuple[Path, str]] = {}
            for (setting, dlc_args, rt_args), (load_label, busy) in itertools.product(chosen, conditions):
                rt_args, path = dict(rt_args), onnx_path
                if rt_args.pop("int8", False):
                    if "int8" not in twins:
                        twins["int8"] = int8_twin(onnx_path, tmp / f"model{i}-int8.onnx")
                        print(f"   {twins['int8'][1]}", flush=True)
                    path = twins["int8"][0]
                # A-B-B-A order, so that a change of machine load during the run hits both sides alike
                with busy_cores(busy), OtherLoad() as other:
                    dlc_a = run_dlclive(live_python, folder, frames_file, tmp / f"dlclive{i}a.npz", warmup, dlc_args,
                                        model_type)
                    rt_a = run_rtpose(path, images, warmup, rt_args)
                    rt_b = run_rtpose(path, images, warmup, rt_args)
                    dlc_b = run_dlclive(live_python, folder, frames_file, tmp / f"dlclive{i}b.npz", warmup, dlc_args,
                                        model_type)
                r = compare(label, _pool(dlc_a, dlc_b), _pool(rt_a, rt_b), size)
                r["setting"], r["load"], r["busy_cores"] = setting, load_label, busy
                if path != onnx_path:
                    r["int8_gate"] = twins["int8"][1]
                # the DLC-Live worker's CPU counts as this script's own once it has been waited for
                r["unplanned_load_cores"] = other.cores - busy
                rows.append(r)
                _print_row(r)
    idle = {(r["model"], r["setting"]): r for r in rows if r["busy_cores"] == 0}
    for r in rows:
        base = idle.get((r["model"], r["setting"]))
        r["rtpose_p99_vs_idle"] = r["rtpose_ms"]["p99"] / base["rtpose_ms"]["p99"] if base else float("nan")
        r["dlclive_p99_vs_idle"] = r["dlclive_ms"]["p99"] / base["dlclive_ms"]["p99"] if base else float("nan")
    rows_idle = [r for r in rows if r["busy_cores"] == 0 and r["setting"] == "full frame"] or rows
    met = [r for r in rows_idle if r["ratio_p50"] <= GOAL_RATIO and r["px_max_unambiguous"] < GOAL_PX
           and r["batch_equals_single"]]
    verdict = (f"idle: rtpose <= {GOAL_RATIO}x DLC-Live per-frame latency (p50) with agreement < {GOAL_PX} px: met for "
               f"{len(met)}/{len(rows_idle)} models (" + "; ".join(
                   f"{r['model'].split(' (')[0]}: ratio {r['ratio_p50']:.2f}, max {r['px_max']:.1e} px" for r in rows_idle)
               + ")")
    loaded = [r for r in rows if r["busy_cores"] > 0]
    if loaded:
        verdict += ("; under load (p99 ratio rtpose/DLC-Live, rtpose p99 vs its idle p99): " + "; ".join(
            f"{r['model'].split(' (')[0]}, {r['setting']}, {r['load']}: {r['ratio_p99']:.2f}, "
            f"{r['rtpose_p99_vs_idle']:.2f}x" for r in loaded))
    other_settings = [r for r in rows if r["busy_cores"] == 0 and r["setting"] != "full frame"]
    if other_settings:
        verdict += ("; idle at matching settings (p50 ratio rtpose/DLC-Live): " + "; ".join(
            f"{r['model'].split(' (')[0]}, {r['setting']}: {r['ratio_p50']:.2f}" for r in other_settings))
    gated = [r for r in rows if "int8_gate" in r and r["busy_cores"] == 0]
    if gated:
        verdict += ("; INT8 (goal <= 0.25x DLC-Live FP32 with the gate passed): " + "; ".join(
            f"{r['model'].split(' (')[0]}: ratio {r['ratio_p50']:.2f}, {r['int8_gate'].split(':')[0]}" for r in gated))
    print(verdict)
    table = md_table(
        ["model", "setting", "load", "DLC-Live p50 (ms)", "p99", "rtpose p50 (ms)", "p99", "ratio p50", "ratio p99",
         "rtpose p99 vs idle", "DLC-Live p99 vs idle", "unplanned load (cores)", "DLC-Live FPS",
         "rtpose FPS", f"rtpose FPS batch {BATCH}", "mean px diff", "max px diff", "max likelihood diff",
         "ambiguous maxima", "max px diff, unambiguous", f"batch {BATCH}: max px diff, unambiguous",
         f"batch {BATCH} = batch 1"],
        [[r["model"], r["setting"], r["load"], f"{r['dlclive_ms']['p50']:.2f}", f"{r['dlclive_ms']['p99']:.2f}",
          f"{r['rtpose_ms']['p50']:.2f}", f"{r['rtpose_ms']['p99']:.2f}", f"{r['ratio_p50']:.2f}",
          f"{r['ratio_p99']:.2f}", f"{r['rtpose_p99_vs_idle']:.2f}", f"{r['dlclive_p99_vs_idle']:.2f}",
          f"{r['unplanned_load_cores']:.2f}", f"{r['dlclive_fps']:.1f}",
          f"{r['rtpose_fps']:.1f}", f"{r['rtpose_batch_fps']:.1f}", f"{r['px_mean']:.1e}", f"{r['px_max']:.1e}",
          f"{r['likelihood_max_diff']:.1e}", f"{100 * r['ambiguous_fraction']:.1f}%", f"{r['px_max_unambiguous']:.1e}",
          f"{r['batch_px_max_unambiguous']:.1e}", "yes" if r["batch_equals_single"] else "NO"]
         for r in rows], "lll" + "r" * 19)
    note = (f"\n\n{n} openfield frames ({rows[0]['size'] if rows else '?'}), {warmup} warm-up frames, each side run "
            "twice in the order DLC-Live, rtpose, rtpose, DLC-Live (latencies pooled over both runs) under each load: "
            "idle, one core busy, every core busy (busy loops started and killed by the script); "
            f"\"ambiguous\": another cell scores within {AMBIGUOUS:g} of the maximum; "
            + (f"{rows[0]['dlclive_versions']}; rtpose on {rows[0]['rtpose_provider']} with "
               f"{rows[0]['rtpose_threads']} threads, spinning {rows[0]['rtpose_spinning']}." if rows else ""))
    return {"title": TITLE, "status": "ok", "rows": rows, "markdown": table + note, "verdict": verdict,
            "goal_met": len(met) == len(rows_idle) and bool(rows_idle)}


def _print_row(r: dict) -> None:
    print(f"   [{r['setting']}; {r['load']}; unplanned load {r['unplanned_load_cores']:.2f} cores]", flush=True)
    print(f"   DLC-Live  p50 {r['dlclive_ms']['p50']:8.2f} ms  p99 {r['dlclive_ms']['p99']:8.2f} ms  "
          f"{r['dlclive_fps']:7.1f} FPS")
    print(f"   rtpose    p50 {r['rtpose_ms']['p50']:8.2f} ms  p99 {r['rtpose_ms']['p99']:8.2f} ms  "
          f"{r['rtpose_fps']:7.1f} FPS  (batch {BATCH}: {r['rtpose_batch_fps']:.1f} FPS)")
    print(f"   ratio rtpose/DLC-Live: p50 {r['ratio_p50']:.2f}  p99 {r['ratio_p99']:.2f}")
    print(f"   agreement: mean {r['px_mean']:.2e} px, max {r['px_max']:.2e} px "
          f"({100 * r['px_frac_over_goal']:.2f}% of keypoints > {GOAL_PX} px), "
          f"likelihood max diff {r['likelihood_max_diff']:.1e}")
    print(f"   rtpose at batch {BATCH} vs DLC-Live: mean {r['batch_px_mean']:.2e} px, max (unambiguous) "
          f"{r['batch_px_max_unambiguous']:.2e} px; batch {BATCH} poses identical to batch 1: "
          f"{r['batch_equals_single']}")
    print(f"   {100 * r['ambiguous_fraction']:.1f}% of keypoints have an ambiguous maximum (another cell within "
          f"{AMBIGUOUS:g}); "
          f"without them: mean {r['px_mean_unambiguous']:.2e} px, max {r['px_max_unambiguous']:.2e} px", flush=True)




def main(argv=None) -> dict:
    def extra(p):
        p.add_argument("--frames", type=int, default=None, help="frames to compare on")
        p.add_argument("--loads", default=None, help="load conditions: idle,one,all (default: all three)")
        p.add_argument("--settings", default=None,
                       help="matching settings: full,resize,dynamic,int8 (default: full)")
        p.add_argument("--dlc3", nargs="+", default=[], metavar="PATH",
                       help="DeepLabCut 3 exports (exported-models-pytorch/DLC_... folders or .pt files)")
        p.add_argument("--only-dlc3", action="store_true", help="compare only the --dlc3 models")

    args = cli(__doc__.splitlines()[0], argv, extra=extra)
    folders = args.model.split(",") if args.model else None
    return finish(run(quick=args.quick, model=folders, frames=args.frames, loads=args.loads,
                      setting_names=args.settings, dlc3=args.dlc3, only_dlc3=args.only_dlc3), args)


if __name__ == "__main__":
    main()
