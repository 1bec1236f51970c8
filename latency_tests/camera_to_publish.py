"""Camera -> publish: capture stamp to arrival in a subscriber in another process.

A live pipeline (newest-frame policy) runs a model on a camera-like source
(pre-rendered synthetic frames released at 30 FPS; each frame is stamped by
the capture thread) and publishes every pose with the ZeroMQ publisher sink
on ipc://. A subscriber in a separate process (:class:`rtpose.client.PoseClient`)
records when each message arrives (``CLOCK_MONOTONIC`` is system-wide, so
the capture and arrival stamps are comparable). Reports capture->arrival
p50/p99/max, split into capture->send (the engine, including the network)
and send->arrival (ZeroMQ).

Model: ``--model``, else the bundled model, else the analytic test model.

    .venv/bin/python latency_tests/camera_to_publish.py [--quick] [--model M]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cli, finish, md_table, resolve_model, start_subscriber, stop_subscriber  # noqa: E402

from rtpose.benchmark.replay import ReplaySource  # noqa: E402
from rtpose.benchmark.summary import summarize  # noqa: E402

TITLE = "Camera to publish: capture to arrival in another process"
SIZE = (640, 480)
FPS = 30.0


def measure(model_path: Path, frames: int, *, size=SIZE, fps: float = FPS) -> dict:
    with tempfile.TemporaryDirectory(prefix="rtpose-c2p-") as tmp:
        address = f"ipc://{tmp}/poses.sock"
        proc, conn = start_subscriber(address)  # fork first: no threads or ZeroMQ contexts here yet
        try:
            from rtpose.model import OnnxPoseModel
            from rtpose.pipeline import Pipeline, PipelineConfig
            from rtpose.sinks.zmq_pub import ZmqPublisherSink

            model = OnnxPoseModel(model_path, providers=["cpu"])
            w, h = size
            Pipeline([ReplaySource(w, h, 20, distinct=2)], model, config=PipelineConfig(live=False)).run()  # warm-up
            publisher = ZmqPublisherSink(address)
            if not publisher.wait_for_subscriber(10_000):
                raise RuntimeError("the subscriber did not subscribe within 10 s")
            pipeline = Pipeline([ReplaySource(w, h, frames, fps=fps, paced=True)], model, sinks=[publisher],
                                config=PipelineConfig(live=True))
            summary = pipeline.run()
        finally:
            rows, counters = stop_subscriber(proc, conn)
    t_cap, t_send, t_recv = rows[:, 0], rows[:, 1], rows[:, 2]
    return {
        "size": f"{size[0]}x{size[1]}", "fps": fps, "captured": summary.captured, "processed": summary.processed,
        "dropped": summary.dropped, "received": int(len(rows)), "subscriber": counters,
        "published": summary.sinks.get("zmq", {}).get("sent"),
        "ms": {"capture_to_arrival": summarize((t_recv - t_cap) * 1e-6),
               "capture_to_send": summarize((t_send - t_cap) * 1e-6),
               "send_to_arrival": summarize((t_recv - t_send) * 1e-6),
               "inference": summary.latency_ms["inference"]},
    }


def run(quick: bool = False, model=None) -> dict:
    model_path, label = resolve_model(model)
    frames = 90 if quick else 900
    r = measure(model_path, frames)
    print(f"{label}, {r['size']} at {r['fps']:.0f} FPS: captured {r['captured']}, processed {r['processed']}, "
          f"dropped {r['dropped']}, received {r['received']}")
    for name, s in r["ms"].items():
        print(f"  {name:<20} p50 {s['p50']:8.3f} ms  p90 {s['p90']:8.3f}  p99 {s['p99']:8.3f}  max {s['max']:8.3f}")
    table = md_table(["span", "p50 (ms)", "p90", "p99", "max"],
                     [[name, f"{s['p50']:.3f}", f"{s['p90']:.3f}", f"{s['p99']:.3f}", f"{s['max']:.3f}"]
                      for name, s in r["ms"].items()])
    note = (f"\n\nModel: {label}; {r['size']} frames at {r['fps']:.0f} FPS, live mode; {r['processed']} of "
            f"{r['captured']} frames processed ({r['dropped']} dropped by the newest-frame policy), "
            f"{r['received']} received by the subscriber process.")
    e2e = r["ms"]["capture_to_arrival"]
    verdict = (f"capture to arrival in another process: p50 {e2e['p50']:.2f} ms, p99 {e2e['p99']:.2f} ms, max "
               f"{e2e['max']:.2f} ms, of which ZeroMQ (send to arrival) p50 "
               f"{r['ms']['send_to_arrival']['p50'] * 1e3:.0f} µs")
    print(verdict)
    return {"title": TITLE, "status": "ok", "model": label, **r, "markdown": table + note, "verdict": verdict}


def main(argv=None) -> dict:
    args = cli(__doc__.splitlines()[0], argv)
    return finish(run(quick=args.quick, model=args.model), args)


if __name__ == "__main__":
    main()
