"""ZeroMQ alone: one-way PUB -> SUB latency over ipc:// and tcp:// loopback, across processes.

The publisher (this process) sends pose-sized msgpack messages (about 220
bytes: sequence number, send time, two float32 (K=4, 3) arrays) at a steady rate,
pacing with ``time.sleep`` (a busy-wait would hold the GIL and starve threads;
see the stack facts). A subscriber in a separate process stamps each arrival
with ``CLOCK_MONOTONIC`` (system-wide, so both processes share it) and sends the
one-way latencies back. Before measuring, the publisher repeats a hello message
until the subscriber has seen one (ZeroMQ's slow-joiner delay).

Goal: p50 < 100 µs, p99 < 300 µs. Prints percentiles; asserts nothing.

    .venv/bin/python latency_tests/zmq_alone.py [--quick]
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

import msgpack
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cli, finish, md_table  # noqa: E402

from rtpose.benchmark.summary import summarize  # noqa: E402

TITLE = "ZeroMQ alone: publish to receive, across processes"
GOAL_P50_US, GOAL_P99_US = 100.0, 300.0
RATE_HZ = 500.0


def _subscriber(conn, n: int) -> None:
    import zmq

    address = conn.recv()
    ctx = zmq.Context()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    sock.setsockopt(zmq.RCVHWM, 0)
    sock.connect(address)
    unpack = msgpack.unpackb
    lat = np.zeros(n, np.int64)
    seen = np.zeros(n, bool)
    greeted = False
    while True:
        frames = sock.recv_multipart()
        t = time.monotonic_ns()
        if frames[0] == b"hello":
            if not greeted:
                conn.send("ready")
                greeted = True
            continue
        if frames[0] == b"stop":
            break
        msg = unpack(frames[1])
        i = msg["seq"]
        if 0 <= i < n:
            lat[i] = t - msg["t_send_ns"]
            seen[i] = True
    conn.send((lat[seen], int(seen.sum())))
    sock.close(0)
    ctx.term()


def measure(transport: str, n: int, rate_hz: float = RATE_HZ) -> dict:
    import zmq

    parent, child = mp.get_context("fork").Pipe()
    proc = mp.get_context("fork").Process(target=_subscriber, args=(child, n), daemon=True)
    proc.start()  # fork before this process opens any ZeroMQ context
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.SNDHWM, 0)
    pub.setsockopt(zmq.LINGER, 1000)
    tmp = None
    if transport == "ipc":
        tmp = tempfile.mkdtemp(prefix="rtpose-zmq-")
        address = f"ipc://{tmp}/bench.sock"
        pub.bind(address)
    else:
        port = pub.bind_to_random_port("tcp://127.0.0.1")
        address = f"tcp://127.0.0.1:{port}"
    try:
        parent.send(address)
        while not parent.poll(0.01):  # hello until the subscriber is connected
            pub.send_multipart([b"hello", b""])
        parent.recv()
        pose = np.zeros((4, 3), np.float32)
        packer = msgpack.Packer(use_bin_type=True)
        msg = {"seq": 0, "t_send_ns": 0, "stream": 0, "frame": 0, "pose": pose.tobytes(), "pred": pose.tobytes(),
               "lat_ns": [0, 0, 0, 0, 0], "trig": []}
        period = 1.0 / rate_hz
        size = 0
        t_next = time.perf_counter()
        for i in range(n):
            msg["seq"] = i
            msg["frame"] = i
            msg["t_send_ns"] = time.monotonic_ns()
            payload = packer.pack(msg)
            size = len(payload)
            pub.send_multipart([b"pose", payload])
            t_next += period
            delay = t_next - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        pub.send_multipart([b"stop", b""])
        if not parent.poll(30):
            raise RuntimeError(f"the {transport} subscriber did not report within 30 s")
        lat_ns, received = parent.recv()
    finally:
        pub.close()
        ctx.term()
        proc.join(5)
        if tmp:
            for f in Path(tmp).iterdir():
                f.unlink()
            os.rmdir(tmp)
    s = summarize(lat_ns * 1e-3)
    return {"transport": transport, "address": address, "sent": n, "received": received, "bytes": size + 4,
            "rate_hz": rate_hz, "us": s}


def run(quick: bool = False, model=None) -> dict:
    n = 400 if quick else 3000
    rows = []
    for transport in ("ipc", "tcp"):
        r = measure(transport, n)
        rows.append(r)
        u = r["us"]
        print(f"{transport}: {r['received']}/{r['sent']} messages of {r['bytes']} B at {r['rate_hz']:.0f} Hz  "
              f"p50 {u['p50']:.0f} µs  p90 {u['p90']:.0f}  p99 {u['p99']:.0f}  max {u['max']:.0f}", flush=True)
    met = all(r["us"]["p50"] < GOAL_P50_US and r["us"]["p99"] < GOAL_P99_US for r in rows)
    verdict = (f"p50 < {GOAL_P50_US:.0f} µs and p99 < {GOAL_P99_US:.0f} µs: "
               + ("met" if met else "not met") + " ("
               + "; ".join(f"{r['transport']} p50 {r['us']['p50']:.0f} µs, p99 {r['us']['p99']:.0f} µs" for r in rows)
               + ")")
    print(verdict)
    table = md_table(["transport", "messages", "bytes", "p50 (µs)", "p90", "p99", "max"],
                     [[r["transport"], f"{r['received']}/{r['sent']}", r["bytes"], f"{r['us']['p50']:.0f}",
                       f"{r['us']['p90']:.0f}", f"{r['us']['p99']:.0f}", f"{r['us']['max']:.0f}"] for r in rows])
    return {"title": TITLE, "status": "ok", "rows": rows, "goal_met": met, "markdown": table, "verdict": verdict}


def main(argv=None) -> dict:
    args = cli(__doc__.splitlines()[0], argv)
    return finish(run(quick=args.quick, model=args.model), args)


if __name__ == "__main__":
    main()
