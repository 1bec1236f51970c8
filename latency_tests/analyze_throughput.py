"""`rtpose analyze` throughput against the model's pure ONNX Runtime throughput at its best batch.

Alternates, in fresh processes, round after round:

* **ORT alone**: the model's ``session.run`` on preloaded real frames (the
  bundled openfield video, already colour-converted and cast: no decoding, no
  copying, no decode of the maps), at each batch size of ``--batches``; the
  best batch's frames per second is the ceiling;
* **analyze**: ``rtpose analyze`` of the same video (``--frames N`` first
  frames through ``--frame-range``) at that best batch and at the provider's
  default batch, outputs to a temporary folder. *Sustained* FPS is what the
  command prints per video (frames / time from the first frame to the last
  written); *end-to-end* adds process start-up, model loading and closing.

Prints every round, the medians and the ratio analyze / ORT alone (goal, issue
12: sustained >= 0.9x, decoding and writing hidden). Processes alternate so
that a change in machine load hits both sides alike; on a shared machine
report the figures as loaded. Asserts nothing.

    .venv/bin/python latency_tests/analyze_throughput.py [--quick] [--model M.onnx] [--rounds 3]
        [--frames 2330] [--batches 1,2,4,8] [--threads N] [--providers cpu]
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cli, finish, md_table  # noqa: E402

THROUGHPUT = re.compile(r"throughput: (\d+) frames in ([0-9.]+) s = ([0-9.]+) FPS")


def ort_alone(model_spec: str | None, batch: int, frames: int, threads: int | None, providers: str) -> dict:
    """Child process: ``session.run`` through the engine's preallocated, bound buffers only."""
    from rtpose.cli.common import model_from_args
    from rtpose.data import demo_video_path
    import argparse
    import cv2

    args = argparse.Namespace(model=model_spec, providers=providers, threads=threads, spinning="off")
    model = model_from_args(args)
    cap = cv2.VideoCapture(str(demo_video_path()))
    ok, frame = cap.read()
    cap.release()
    h, w = frame.shape[:2]
    model.prepare(batch, h, w)
    for row in range(batch):
        model.load_frame(row, frame)
    for _ in range(3):
        model.run(batch)
    runs = max(1, frames // batch)
    t0 = time.perf_counter()
    for _ in range(runs):
        model.run(batch)
    elapsed = time.perf_counter() - t0
    return {"batch": batch, "frames": runs * batch, "seconds": elapsed, "fps": runs * batch / elapsed,
            "provider": model.provider}


def run_ort(args, batch: int) -> dict:
    code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r}); "
            f"import analyze_throughput as a; print(json.dumps(a.ort_alone({args.model!r}, {batch}, {args.frames}, "
            f"{args.threads!r}, {args.providers!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_analyze(args, batch: int | None, out_dir: Path) -> dict:
    from rtpose.data import demo_video_path

    cmd = [sys.executable, "-m", "rtpose", "analyze", str(demo_video_path()), "--out-dir", str(out_dir),
           "--overwrite", "--quiet", "--frame-range", f":{args.frames}", "--providers", args.providers]
    if batch is not None:
        cmd += ["--batch", str(batch)]
    if args.model:
        cmd += ["--model", args.model]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"rtpose analyze failed ({done.returncode}): {done.stderr[-2000:]}")
    m = THROUGHPUT.search(done.stdout)
    frames, seconds, fps = int(m.group(1)), float(m.group(2)), float(m.group(3))
    batch_used = re.search(r"offline \(lossless\), provider \S+ .*?batch (\d+)", done.stdout)
    return {"batch": int(batch_used.group(1)) if batch_used else batch, "frames": frames,
            "sustained_fps": fps, "end_to_end_fps": frames / wall, "wall_s": wall}


def main(argv=None) -> dict:
    def extra(p):
        p.add_argument("--rounds", type=int, default=3)
        p.add_argument("--frames", type=int, default=2330, help="frames of the openfield video per measurement")
        p.add_argument("--batches", default="1,2,4,8", help="batch sizes tried for ORT alone")
        p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all usable cores)")
        p.add_argument("--providers", default="cpu")

    args = cli(__doc__.splitlines()[0], argv, extra)
    if args.quick:
        args.rounds, args.frames, args.batches = 1, 300, "1,8"
    batches = [int(b) for b in args.batches.split(",")]
    rounds = []
    with tempfile.TemporaryDirectory(prefix="rtpose-throughput-") as tmp:
        for r in range(args.rounds):
            ort = {b: run_ort(args, b) for b in (batches if r % 2 == 0 else batches[::-1])}
            best = max(ort.values(), key=lambda o: o["fps"])
            analyze_best = run_analyze(args, best["batch"], Path(tmp))
            analyze_default = run_analyze(args, None, Path(tmp))
            row = {"round": r + 1, "ort": ort, "best_batch": best["batch"], "ort_best_fps": best["fps"],
                   "analyze_best": analyze_best, "analyze_default": analyze_default}
            rounds.append(row)
            print(f"round {r + 1}: ORT alone " + ", ".join(f"b{b} {o['fps']:.1f}" for b, o in sorted(ort.items()))
                  + f" FPS; analyze at b{best['batch']}: {analyze_best['sustained_fps']:.1f} sustained / "
                  f"{analyze_best['end_to_end_fps']:.1f} end-to-end; analyze default (b{analyze_default['batch']}): "
                  f"{analyze_default['sustained_fps']:.1f} / {analyze_default['end_to_end_fps']:.1f}", flush=True)
    med = lambda xs: float(np.median(xs))  # noqa: E731
    ort_best = med([r["ort_best_fps"] for r in rounds])
    result = {
        "rounds": rounds, "frames": args.frames,
        "ort_fps_by_batch": {b: med([r["ort"][b]["fps"] for r in rounds]) for b in batches},
        "ort_best_fps": ort_best,
        "analyze_best_sustained_fps": med([r["analyze_best"]["sustained_fps"] for r in rounds]),
        "analyze_default_sustained_fps": med([r["analyze_default"]["sustained_fps"] for r in rounds]),
        "analyze_default_end_to_end_fps": med([r["analyze_default"]["end_to_end_fps"] for r in rounds]),
    }
    result["ratio_sustained"] = result["analyze_default_sustained_fps"] / ort_best
    result["ratio_end_to_end"] = result["analyze_default_end_to_end_fps"] / ort_best
    print()
    print(md_table(["", "FPS (median of rounds)", "x ORT best"], [
        *[(f"ORT alone, batch {b}", f"{v:.1f}", f"{v / ort_best:.2f}") for b, v in result["ort_fps_by_batch"].items()],
        ("analyze at the best batch, sustained", f"{result['analyze_best_sustained_fps']:.1f}",
         f"{result['analyze_best_sustained_fps'] / ort_best:.2f}"),
        ("analyze, default batch, sustained", f"{result['analyze_default_sustained_fps']:.1f}",
         f"{result['ratio_sustained']:.2f}"),
        ("analyze, default batch, end-to-end", f"{result['analyze_default_end_to_end_fps']:.1f}",
         f"{result['ratio_end_to_end']:.2f}"),
    ]))
    print(f"\nratio analyze (default batch, sustained) / ORT alone (best batch): {result['ratio_sustained']:.2f} "
          "(goal >= 0.9)")
    return finish(result, args)


if __name__ == "__main__":
    main()
