"""Parallel video decoding (`rtpose analyze --readers N`): decode-only FPS by readers, and analyze FPS.

Alternates, in fresh processes, round after round (the order reversed every other round):

* **decode only**: every frame of the bundled openfield video (``--frames`` first ones) read into one
  buffer, as the capture thread does: 1 reader is the default source (``VideoFileSource``), N > 1
  ``ParallelVideoSource`` with N threads;
* **analyze**: ``rtpose analyze`` of the same frames with the automatic ``--readers`` and with
  ``--readers N`` for each N of ``--analyze-readers``; its sustained FPS (the summary's throughput line).

Prints every round with the 1-minute load average before it, the medians and the ratios to the first
variant. On a shared machine report the figures as loaded. Asserts nothing.

    .venv/bin/python latency_tests/video_readers.py [--quick] [--rounds 3] [--frames 2330]
        [--readers 1,2] [--analyze-readers 2] [--threads N]
"""

from __future__ import annotations

import json
import os
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


def decode_only(readers: int, frames: int) -> dict:
    """Child process: read ``frames`` frames with ``readers`` threads into one buffer."""
    from rtpose.data import demo_video_path
    from rtpose.drivers.sources.parallel_video import ParallelVideoSource
    from rtpose.drivers.sources.video import VideoFileSource

    path = demo_video_path()
    src = VideoFileSource(path, paced=False) if readers == 1 else ParallelVideoSource(path, readers)
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    with src:
        buf = np.empty(src.frame_shape, np.uint8)
        n = 0
        while n < frames and src.read_into(buf):
            n += 1
    elapsed = time.perf_counter() - t0
    return {"readers": readers, "frames": n, "seconds": elapsed, "fps": n / elapsed,
            "cpu_s": time.process_time() - cpu0}


def run_decode(readers: int, frames: int) -> dict:
    code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r}); "
            f"import video_readers as v; print(json.dumps(v.decode_only({readers}, {frames})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_analyze(readers: int | None, frames: int, threads: int | None, out_dir: Path) -> dict:
    from rtpose.data import demo_video_path

    cmd = [sys.executable, "-m", "rtpose", "analyze", str(demo_video_path()), "--out-dir", str(out_dir),
           "--overwrite", "--quiet", "--frame-range", f":{frames}"]
    if readers is not None:
        cmd += ["--readers", str(readers)]
    if threads:
        cmd += ["--threads", str(threads)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"rtpose analyze failed ({done.returncode}): {done.stderr[-2000:]}")
    m = THROUGHPUT.search(done.stdout)
    used = re.search(r"decoding: readers=(\d+)", done.stdout)
    return {"readers": int(used.group(1)) if used else None, "frames": int(m.group(1)), "fps": float(m.group(3))}


def main(argv=None) -> dict:
    def extra(p):
        p.add_argument("--rounds", type=int, default=3)
        p.add_argument("--frames", type=int, default=2330, help="frames of the openfield video per measurement")
        p.add_argument("--readers", default="1,2", help="reader counts for decode only")
        p.add_argument("--analyze-readers", default="2", help="--readers values of analyze besides the default "
                                                              "('' for none)")
        p.add_argument("--threads", type=int, default=None, help="inference threads of analyze")
        p.add_argument("--no-analyze", action="store_true")

    args = cli(__doc__.splitlines()[0], argv, extra)
    if args.quick:
        args.rounds, args.frames = 1, 600
    readers = [int(r) for r in args.readers.split(",")]
    analyze_variants = [None] + ([] if args.no_analyze else [int(r) for r in args.analyze_readers.split(",") if r])
    if args.no_analyze:
        analyze_variants = []
    rounds = []
    with tempfile.TemporaryDirectory(prefix="rtpose-readers-") as tmp:
        for r in range(args.rounds):
            order = readers if r % 2 == 0 else readers[::-1]
            row = {"round": r + 1, "load_1min": os.getloadavg()[0], "decode": {}, "analyze": {}}
            for n in order:
                row["decode"][n] = run_decode(n, args.frames)
            for variant in (analyze_variants if r % 2 == 0 else analyze_variants[::-1]):
                row["analyze"][variant or "auto"] = run_analyze(variant, args.frames, args.threads, Path(tmp))
            row["load_1min_after"] = os.getloadavg()[0]
            rounds.append(row)
            print(f"round {r + 1} (load {row['load_1min']:.1f} -> {row['load_1min_after']:.1f}): decode "
                  + ", ".join(f"{n} reader(s) {d['fps']:.0f} FPS ({d['cpu_s'] / d['seconds']:.2f} cores)"
                              for n, d in sorted(row["decode"].items()))
                  + ("; analyze " + ", ".join(f"--readers {k} ({a['readers']} used) {a['fps']:.1f} FPS"
                                              for k, a in row["analyze"].items()) if row["analyze"] else ""),
                  flush=True)
    med = lambda xs: float(np.median(xs))  # noqa: E731
    decode = {n: med([r["decode"][n]["fps"] for r in rounds]) for n in readers}
    ratios = {n: med([r["decode"][n]["fps"] / r["decode"][readers[0]]["fps"] for r in rounds]) for n in readers}
    table = [(f"decode only, {n} reader(s)", f"{decode[n]:.0f}", f"{ratios[n]:.2f}") for n in readers]
    analyze = {}
    if analyze_variants:
        keys = [v or "auto" for v in analyze_variants]
        analyze = {k: med([r["analyze"][k]["fps"] for r in rounds]) for k in keys}
        a_ratios = {k: med([r["analyze"][k]["fps"] / r["analyze"]["auto"]["fps"] for r in rounds]) for k in keys}
        table += [(f"analyze --readers {k}", f"{analyze[k]:.1f}", f"{a_ratios[k]:.2f}") for k in keys]
    result = {"rounds": rounds, "frames": args.frames, "decode_fps": decode, "decode_ratio": ratios,
              "analyze_fps": analyze, "cores": len(os.sched_getaffinity(0))}
    print()
    print(md_table(["", "FPS (median of rounds)", "ratio to the first (median of per-round ratios)"], table))
    return finish(result, args)


if __name__ == "__main__":
    main()
