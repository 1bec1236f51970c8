"""Camera -> trigger: capture stamp to the trigger byte's arrival at the (emulated) device.

A live pipeline runs a model on a camera-like source (pre-rendered synthetic
frames released at 30 FPS, stamped by the capture thread). A stage decides a
pulse for every frame (as a rule would) and the trigger sink sends it through
the real serial path (framing, writer thread, acknowledgements) to the pty
device emulator (``rtpose.drivers.outputs``), which stamps each command's
arrival when it reads the bytes from the pty (``CLOCK_MONOTONIC``). Pulses are
matched to frames in order; the pulse length (1-8 ms, from the frame index)
checks the matching.

Run twice: alone, and with the ZeroMQ publisher placed *before* the trigger
sink and a slow subscriber in another process (it sleeps 200 ms per message,
so the publisher's queue fills and ZeroMQ drops its messages): the trigger
latency should not change.

Model: ``--model``, else the bundled model, else the analytic test model.

    .venv/bin/python latency_tests/camera_to_trigger.py [--quick] [--model M]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cli, finish, md_table, resolve_model, start_subscriber, stop_subscriber  # noqa: E402

from rtpose.benchmark.replay import ReplaySource  # noqa: E402
from rtpose.benchmark.summary import summarize  # noqa: E402
from rtpose.results import Action  # noqa: E402

TITLE = "Camera to trigger: capture to the byte's arrival at the emulated device"
SIZE = (640, 480)
FPS = 30.0
SLOW_SUBSCRIBER_DELAY_S = 0.2


class PulseEveryFrame:
    """Stage: one pulse action per frame (length 1 + frame % 8 ms); remembers each frame's capture stamp."""

    name = "pulse_every_frame"

    def __init__(self, frames: int):
        self.t_capture_ns = np.zeros(frames, np.int64)
        self.order: list[int] = []

    def open(self, streams) -> None:
        pass

    def process(self, batch) -> None:
        for i in range(batch.n):
            fi = int(batch.frame_index[i])
            self.t_capture_ns[fi] = batch.t_capture_ns[i]
            self.order.append(fi)
            batch.actions.append(Action("pulse", rule="latency", t_ns=int(batch.t_capture_ns[i]), frame_index=fi,
                                        channel=0, duration_ms=float(1 + fi % 8)))


def measure(model, frames: int, *, slow_subscriber: bool, size=SIZE, fps: float = FPS) -> dict:
    from rtpose.drivers.outputs import protocol as p
    from rtpose.drivers.outputs.emulated import EmulatedSerialOutput
    from rtpose.pipeline import Pipeline, PipelineConfig
    from rtpose.sinks.trigger import TriggerSink
    from rtpose.sinks.zmq_pub import ZmqPublisherSink

    w, h = size
    stage = PulseEveryFrame(frames)
    output = EmulatedSerialOutput()
    sinks = []
    sub = None
    with tempfile.TemporaryDirectory(prefix="rtpose-c2t-") as tmp:
        publisher = None
        if slow_subscriber:
            address = f"ipc://{tmp}/poses.sock"
            publisher = ZmqPublisherSink(address, sndhwm=10)
            sub = start_subscriber(address, delay_s=SLOW_SUBSCRIBER_DELAY_S, rcvhwm=10)
            if not publisher.wait_for_subscriber(10_000):
                raise RuntimeError("the slow subscriber did not subscribe within 10 s")
            sinks.append(publisher)
        trigger = TriggerSink(output)
        sinks.append(trigger)
        try:
            pipeline = Pipeline([ReplaySource(w, h, frames, fps=fps, paced=True)], model, sinks=sinks,
                                stages=[stage], config=PipelineConfig(live=True))
            summary = pipeline.run()
        finally:
            sub_rows, sub_counters = stop_subscriber(*sub) if sub else (None, None)
    pulses = [c for c in output.emulator.commands if c.command == p.CMD_PULSE]
    n = min(len(pulses), len(stage.order))
    order = np.array(stage.order[:n], np.int64)
    arrival = np.array([c.t_arrival_ns for c in pulses[:n]], np.int64)
    payload = np.array([c.payload for c in pulses[:n]], np.int64)
    mismatched = int((payload != 1 + order % 8).sum())
    lat_ms = (arrival - stage.t_capture_ns[order]) * 1e-6
    result = {
        "slow_subscriber": slow_subscriber, "size": f"{w}x{h}", "fps": fps, "captured": summary.captured,
        "processed": summary.processed, "dropped": summary.dropped, "pulses_decided": len(stage.order),
        "pulses_received": len(pulses), "mismatched": mismatched, "trigger": summary.sinks.get("trigger", {}),
        "ms": {"capture_to_device": summarize(lat_ms), "inference": summary.latency_ms["inference"]},
    }
    if slow_subscriber:
        result["publisher"] = summary.sinks.get("zmq", {})
        result["subscriber"] = {"received": int(len(sub_rows)), **(sub_counters or {})}
    return result


def run(quick: bool = False, model=None) -> dict:
    from rtpose.model import OnnxPoseModel
    from rtpose.pipeline import Pipeline, PipelineConfig

    model_path, label = resolve_model(model)
    onnx = OnnxPoseModel(model_path, providers=["cpu"])
    Pipeline([ReplaySource(*SIZE, 20, distinct=2)], onnx, config=PipelineConfig(live=False)).run()  # warm-up
    frames = 90 if quick else 900
    rows = []
    for slow in (False, True):
        r = measure(onnx, frames, slow_subscriber=slow)
        rows.append(r)
        s = r["ms"]["capture_to_device"]
        what = "with a slow ZeroMQ subscriber" if slow else "trigger only"
        print(f"{what}: {r['processed']}/{r['captured']} frames processed, {r['pulses_received']}/"
              f"{r['pulses_decided']} pulses arrived ({r['mismatched']} mismatched)  capture->device p50 "
              f"{s['p50']:.3f} ms  p90 {s['p90']:.3f}  p99 {s['p99']:.3f}  max {s['max']:.3f}", flush=True)
        if slow:
            print(f"   publisher: {r['publisher']}; subscriber: {r['subscriber']}")
    table = md_table(["variant", "pulses", "p50 (ms)", "p90", "p99", "max", "inference p50", "ZeroMQ messages"],
                     [["with slow subscriber" if r["slow_subscriber"] else "trigger only",
                       f"{r['pulses_received']}/{r['pulses_decided']}",
                       *(f"{r['ms']['capture_to_device'][k]:.3f}" for k in ("p50", "p90", "p99", "max")),
                       f"{r['ms']['inference']['p50']:.3f}",
                       (f"{r['subscriber']['received']} received of {r['publisher'].get('sent')} sent"
                        if r["slow_subscriber"] else "—")] for r in rows], "llrrrrrl")
    a, b = (r["ms"]["capture_to_device"] for r in rows)
    note = (f"\n\nModel: {label}; {SIZE[0]}x{SIZE[1]} frames at {FPS:.0f} FPS, live mode, one pulse per processed "
            f"frame, device emulated on a pty; the slow subscriber sleeps {SLOW_SUBSCRIBER_DELAY_S * 1e3:.0f} ms per "
            "message (ZeroMQ high-water mark 10).")
    verdict = (f"capture to device p50 {a['p50']:.2f} ms / p99 {a['p99']:.2f} ms alone, {b['p50']:.2f} / "
               f"{b['p99']:.2f} ms with a slow subscriber attached (p50 ratio {b['p50'] / a['p50']:.2f})")
    print(verdict)
    return {"title": TITLE, "status": "ok", "model": label, "rows": rows, "markdown": table + note,
            "verdict": verdict}


def main(argv=None) -> dict:
    args = cli(__doc__.splitlines()[0], argv)
    return finish(run(quick=args.quick, model=args.model), args)


if __name__ == "__main__":
    main()
