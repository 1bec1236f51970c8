"""Helpers shared by the latency test scripts (not a test themselves).

* :func:`time_calls` - per-call wall times of a function (``perf_counter_ns``);
* :class:`ZeroCostModel` - a :class:`~rtpose.model.PoseBackend` whose ``run`` costs
  nothing: it returns preallocated score maps with one peak per body part, so a
  pipeline around it measures everything except the network;
* :func:`build_test_model` - the hand-built analytic ONNX model from ``tests/``
  (it really finds the synthetic mouse), for scripts that need a real network;
* :func:`cli` - the common ``--quick`` / ``--model`` / ``--json`` options of ``main()``;
* :func:`busy_cores` / :func:`load_conditions` - CPU load made by the script itself (busy-loop
  processes started and killed by their own PIDs), to measure latency on a busy machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rtpose.benchmark.report import json_safe
from rtpose.model import OnnxPoseModel

REPO = Path(__file__).resolve().parents[1]


def time_calls(fn, n: int, *, warmup: int = 3) -> np.ndarray:
    """Call ``fn()`` ``warmup + n`` times; return the last ``n`` durations in ns."""
    for _ in range(warmup):
        fn()
    out = np.empty(n, np.int64)
    clock = time.perf_counter_ns
    for i in range(n):
        t0 = clock()
        fn()
        out[i] = clock() - t0
    return out


class ZeroCostModel(OnnxPoseModel):
    """A real :class:`~rtpose.model.OnnxPoseModel` (on a tiny all-zero ONNX graph, so ``prepare`` and
    ``load_frame`` - colour conversion and copy into the float32 RGB input - are exactly the engine's)
    whose ``run`` skips the network and returns preallocated score maps: body part ``k`` peaks at cell
    ``(k, k)`` with score 0.9, offsets are zero."""

    def __init__(self, num_bodyparts: int = 4, stride: int = 8, folder: str | Path | None = None):
        sys.path.insert(0, str(REPO / "tests"))
        from analytic_model import build_zero_model

        folder = Path(folder or tempfile.mkdtemp(prefix="rtpose-zero-"))
        super().__init__(build_zero_model(folder / "zero.onnx", num_bodyparts, stride), providers=["cpu"])
        self.provider = "ZeroCost (no network)"
        self._maps: tuple[np.ndarray, np.ndarray] | None = None

    def prepare(self, max_batch: int, height: int, width: int, **kw) -> None:
        super().prepare(max_batch, height, width, **kw)
        h, w = self.map_shape
        k = self.metadata.num_bodyparts
        scmap = np.full((max_batch, h, w, k), 0.01, np.float32)
        for j in range(k):
            scmap[:, min(j, h - 1), min(j, w - 1), j] = 0.9
        self._maps = (scmap, np.zeros((max_batch, h, w, k, 2), np.float32))

    def run(self, n: int):
        scmap, locref = self._maps
        return scmap[:n], locref[:n]


def video_frames(n: int) -> np.ndarray:
    """The first ``n`` frames of the bundled openfield video (640x480), BGR uint8 ``(n, 480, 640, 3)``."""
    from rtpose.data import demo_video_frames

    return demo_video_frames(n)


def build_test_model(folder: str | Path | None = None) -> Path:
    """Write the analytic head/body/tail model (tests/analytic_model.py) and return its path."""
    sys.path.insert(0, str(REPO / "tests"))
    from analytic_model import build_analytic_model

    folder = Path(folder or tempfile.mkdtemp(prefix="rtpose-latency-"))
    return build_analytic_model(folder / "analytic.onnx")


def cli(description: str, argv=None, extra=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="fewer samples (a smoke run)")
    p.add_argument("--model", default=None, help="model to use where the test needs one")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the result as JSON")
    if extra:
        extra(p)
    return p.parse_args(argv)


def finish(result: dict, args: argparse.Namespace) -> dict:
    if args.json:
        Path(args.json).write_text(json.dumps(json_safe(result), indent=2) + "\n")
    return result


def md_table(header, rows, align=None) -> str:
    align = align or "l" + "r" * (len(header) - 1)
    marks = ["---:" if a == "r" else "---" for a in align]
    return "\n".join(["| " + " | ".join(header) + " |", "| " + " | ".join(marks) + " |"]
                     + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows])


def resolve_model(model=None) -> tuple[Path, str]:
    """(path, label): ``model`` if given, else the bundled model, else the analytic test model."""
    if model:
        return Path(model), f"`{model}`"
    from rtpose.errors import ModelError
    from rtpose.models import default_model_path

    try:
        return default_model_path(), "bundled openfield model"
    except ModelError:
        return build_test_model(), "analytic test model (tests/analytic_model.py; the bundled model is missing)"


def subscriber_process(conn, address: str, delay_s: float = 0.0, rcvhwm: int = 1000) -> None:
    """Child process body: receive rtpose pose messages with :class:`rtpose.client.PoseClient` until the
    parent sends "stop" on ``conn``; then send back (t_capture_ns, t_send_ns, t_recv_ns, frame) arrays and
    the client's counters. ``delay_s`` > 0 makes it a slow subscriber (it sleeps after every message)."""
    import time as _time

    from rtpose.client import PoseClient, ReceiveTimeout

    rows = []
    with PoseClient(address, rcvhwm=rcvhwm) as client:
        conn.send("connected")
        while True:
            if conn.poll(0):
                conn.recv()
                break
            try:
                msg = client.recv(timeout_ms=50)
            except ReceiveTimeout:
                continue
            if hasattr(msg, "t_capture_ns"):
                rows.append((msg.t_capture_ns, msg.t_send_ns, msg.t_recv_ns, msg.frame_index))
                if delay_s:
                    _time.sleep(delay_s)
        counters = {"received": client.received, "dropped": getattr(client, "dropped", 0),
                    "skipped": getattr(client, "skipped", 0)}
    arr = np.array(rows, np.int64).reshape(-1, 4)
    conn.send((arr, counters))


def start_subscriber(address: str, delay_s: float = 0.0, rcvhwm: int = 1000):
    """Fork a :func:`subscriber_process`; returns (process, connection). Fork before this process starts
    threads or opens ZeroMQ contexts of its own."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=subscriber_process, args=(child, address, delay_s, rcvhwm), daemon=True)
    proc.start()
    if not parent.poll(30) or parent.recv() != "connected":
        raise RuntimeError("the subscriber process did not start")
    return proc, parent


def stop_subscriber(proc, conn, timeout_s: float = 30.0):
    conn.send("stop")
    if not conn.poll(timeout_s):
        proc.kill()
        raise RuntimeError("the subscriber process did not report")
    rows, counters = conn.recv()
    proc.join(5)
    return rows, counters


#: A busy loop in its own interpreter: the process started is the loop itself (no shell in between), so
#: killing its PID ends the load.
BUSY_LOOP = [sys.executable, "-c", "while True: pass"]


@contextlib.contextmanager
def busy_cores(n: int):
    """Keep ``n`` cores busy with busy-loop processes for the duration of the block; yields their PIDs.

    Each process is killed by its own PID and reaped on exit, whatever happens in the block."""
    procs = []
    try:
        for _ in range(n):
            procs.append(subprocess.Popen(BUSY_LOOP, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait(timeout=30)


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def load_conditions(names: str | None = None) -> list[tuple[str, int]]:
    """``(label, busy cores)``: idle, one core busy, every usable core busy (``names``: a comma-separated
    subset of ``idle,one,all``)."""
    cores = usable_cores()
    known = {"idle": ("idle", 0), "one": ("1 core busy", 1), "all": (f"all {cores} cores busy", cores)}
    chosen = [n.strip() for n in (names or "idle,one,all").split(",") if n.strip()]
    unknown = [n for n in chosen if n not in known]
    if unknown:
        raise SystemExit(f"unknown load condition(s) {unknown}; choose from idle, one, all")
    return [known[n] for n in chosen]
