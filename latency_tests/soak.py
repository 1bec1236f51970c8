"""Soak: the whole closed loop for N minutes; nothing may be lost, nothing may grow.

A live pipeline runs for ``--minutes``: the synthetic mouse released at its
frame rate as a camera, the analytic model that really finds it, a zone rule
that pulses a TTL line and publishes an event each time the body enters the
left of the arena, the serial path to the pty device emulator, ZeroMQ
publishing (ipc://) to a live subscriber in another process, and a recording.
At the end it checks, exactly:

* accounting: captured = processed + dropped;
* the recording: the .h5, .csv, _predicted.csv and _timing.csv files each hold
  one row per processed frame;
* the subscriber received every pose published (no seq gap, nothing skipped);
* triggers: rule firings (recorded trigger events) = pulses the device
  received = pulses acknowledged = event messages the subscriber received;
* threads and file descriptors are the same at the end as after warm-up;

and reports memory after warm-up (the first ``--warmup-minutes``): resident
set size (RSS), what glibc's malloc holds (in use and free, from
``mallinfo2``), and with ``--tracemalloc`` the Python heap, sampled every
``--sample-s`` seconds, with the growth and its linear trend per hour.

    .venv/bin/python latency_tests/soak.py --minutes 60 [--json soak.json]
    .venv/bin/python latency_tests/soak.py --minutes 0.5     # what the test suite runs

It exits with status 1 when a check fails. Memory is reported, never
asserted by the tests (it depends on the machine); docs/reliability.md has
measured figures.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import multiprocessing as mp
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import build_test_model  # noqa: E402

TITLE = "Soak: the whole closed loop for a long run"
SIZE = (320, 240)
FPS = 30.0
X_ENTER, X_EXIT = 155.0, 165.0  # the body enters the left part at x < 155 and leaves it at x > 165 (hysteresis)
RULES = f"""
version: 1
defaults: {{pose: measured, min_likelihood: 0.0}}
rules:
  - name: left
    enter: {{zone: {{bodypart: body, rectangle: [[0, 0], [{X_ENTER}, 240]]}}}}
    stay: {{zone: {{bodypart: body, rectangle: [[0, 0], [{X_EXIT}, 240]]}}}}
    actions: [{{pulse: {{channel: 0, ms: 10}}}}, event]
"""


# ---------------------------------------------------------------- the subscriber (another process)
def _subscriber(conn, address: str) -> None:
    """Receive poses and events; answer "count" with the counts so far, "stop" with the final ones."""
    from rtpose.client import EventMessage, PoseClient, ReceiveTimeout

    counts = {"poses": 0, "events": 0, "event_frames": [], "gaps": 0, "skipped": 0}
    with PoseClient(address, events=True, rcvhwm=100_000) as client:
        conn.send("connected")
        while True:
            try:
                msg = client.recv(timeout_ms=20)
                if isinstance(msg, EventMessage):
                    counts["events"] += 1
                    counts["event_frames"].append(msg.frame_index)
                else:
                    counts["poses"] += 1
            except ReceiveTimeout:
                pass
            counts["gaps"], counts["skipped"] = client.dropped, client.skipped
            if conn.poll(0):
                request = conn.recv()
                conn.send(counts)
                if request == "stop":
                    return


class _AwaitSubscriber:
    """A sink listed before the publisher: when the run ends, its close() waits until the subscriber
    has everything the publisher sent (the publisher drops what is still queued when it closes)."""

    name = "await_subscriber"

    def __init__(self, conn, publisher, timeout_s: float = 300.0):
        self.conn, self.publisher, self.timeout_s = conn, publisher, timeout_s

    def open(self, streams) -> None:
        pass

    def write(self, batch) -> None:
        pass

    def close(self) -> None:
        deadline = time.monotonic() + self.timeout_s  # a bound on a wait for a condition, never a measurement
        while time.monotonic() < deadline:
            self.conn.send("count")
            counts = self.conn.recv()
            if (counts["poses"] + counts["gaps"] + counts["skipped"] >= self.publisher.sent
                    and counts["events"] >= self.publisher.events_sent):
                return
            time.sleep(0.05)  # polling another process's counter, not synchronising on time

    def summary(self) -> dict:
        return {}


# ---------------------------------------------------------------- process measurements
class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def _mallinfo():
    """glibc's view of the heap: bytes in use and free inside malloc's arenas, and mmapped blocks (None off glibc)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        fn = libc.mallinfo2
    except (OSError, AttributeError):
        return None
    fn.restype = _MallInfo2
    m = fn()
    return {"in_use": m.uordblks + m.hblkhd, "free_in_arenas": m.fordblks, "arena": m.arena, "mmapped": m.hblkhd}


def _rss() -> dict:
    """Resident memory, and its parts: anonymous (heaps, stacks) and file-backed (code and data of
    the libraries, paged in as they are first used), from /proc/self/status."""
    parts = {"VmRSS": "rss", "RssAnon": "rss_anon", "RssFile": "rss_file"}
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in parts:
                out[parts[key]] = int(value.split()[0]) * 1024
    return out


def _fds(transient_folder: Path | None) -> int:
    """Open file descriptors, less those on files inside ``transient_folder`` (the recorder opens
    and closes its files for every chunk, on its own thread: a sample may catch one open)."""
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if transient_folder is None or not target.startswith(str(transient_folder) + os.sep):
            n += 1
    return n


def sample(t_s: float, tracing: bool, transient_folder: Path | None = None) -> dict:
    row = {"t_s": round(t_s, 1), **_rss(), "threads": len(os.listdir("/proc/self/task")),
           "python_threads": threading.active_count(), "fds": _fds(transient_folder)}
    malloc = _mallinfo()
    if malloc:
        row.update({f"malloc_{k}": v for k, v in malloc.items()})
    if tracing:
        import tracemalloc

        row["python_heap"] = tracemalloc.get_traced_memory()[0]
    return row


def _growth(samples: list[dict], key: str, warmup_s: float) -> dict | None:
    after = [s for s in samples if s["t_s"] >= warmup_s and key in s]
    if len(after) < 2:
        return None
    t = np.array([s["t_s"] for s in after])
    v = np.array([s[key] for s in after], float)
    slope = float(np.polyfit(t, v, 1)[0]) if np.ptp(t) > 0 else 0.0
    return {"after_warmup": int(v[0]), "end": int(v[-1]), "min": int(v.min()), "max": int(v.max()),
            "growth": int(v[-1] - v[0]), "growth_pct": float(100 * (v[-1] - v[0]) / v[0]) if v[0] else 0.0,
            "trend_per_hour": slope * 3600}


# ---------------------------------------------------------------- the run
def run_soak(minutes: float, *, warmup_minutes: float | None = None, sample_s: float = 10.0, model=None,
             out: str | None = None, tracing: bool = False, size=SIZE, fps: float = FPS, progress=print,
             trim_every_s: float | None = None) -> dict:
    import pandas as pd

    duration_s = minutes * 60.0
    warmup_s = (min(300.0, duration_s / 4) if warmup_minutes is None else warmup_minutes * 60.0)
    folder = Path(out) if out else Path(tempfile.mkdtemp(prefix="rtpose-soak-"))
    folder.mkdir(parents=True, exist_ok=True)
    ipc_dir = tempfile.mkdtemp(prefix="rtsoak", dir="/tmp")  # short: ipc paths are limited to ~100 bytes
    address = f"ipc://{ipc_dir}/poses"

    # The subscriber is forked before this process starts any thread or ZeroMQ context.
    ctx = mp.get_context("fork")
    conn, child_conn = ctx.Pipe()
    subscriber = ctx.Process(target=_subscriber, args=(child_conn, address), name="rtpose-soak-subscriber")
    subscriber.start()
    child_conn.close()  # the child's end lives in the child
    if not conn.poll(60) or conn.recv() != "connected":
        subscriber.kill()
        raise RuntimeError("the subscriber process did not start")

    from rtpose.drivers.outputs import protocol as p
    from rtpose.drivers.outputs.emulated import EmulatedSerialOutput
    from rtpose.drivers.sources.synthetic import SyntheticSource
    from rtpose.model import OnnxPoseModel
    from rtpose.pipeline import Pipeline, PipelineConfig
    from rtpose.recording import RecorderSink, read_dlc_table
    from rtpose.rules import load_rules
    from rtpose.sinks.trigger import TriggerSink
    from rtpose.sinks.zmq_pub import ZmqPublisherSink

    if tracing:
        import tracemalloc

        tracemalloc.start()
    model_path = Path(model) if model else build_test_model(folder)
    onnx = OnnxPoseModel(model_path, providers=["cpu"])
    rules_file = folder / "rules.yaml"
    rules_file.write_text(RULES)
    # The pipeline's one-time JIT warm-up (Numba's LLVM keeps a native thread once it has compiled or
    # loaded a kernel) happens before the baseline: it belongs to the process, not to a run.
    from rtpose.decode import warmup as warmup_decode
    from rtpose.kalman import warmup as warmup_kalman

    warmup_decode()
    warmup_kalman()
    baseline = sample(0.0, tracing)  # before the run opens anything
    output = EmulatedSerialOutput()
    publisher = ZmqPublisherSink(address)
    recorder = RecorderSink(folder / "soak.h5")
    sinks = [TriggerSink(output), _AwaitSubscriber(conn, publisher), publisher, recorder]
    try:
        if not publisher.wait_for_subscriber(60_000):
            raise RuntimeError("the subscriber did not subscribe within 60 s")
        source = SyntheticSource(width=size[0], height=size[1], fps=fps, seed=0, paced=True)
        pipeline = Pipeline([source], onnx, stages=[load_rules(rules_file, onnx.metadata.bodyparts)], sinks=sinks,
                            config=PipelineConfig(live=True, status_interval_s=1.0))
    except BaseException:
        for sink in sinks:
            sink.close()
        subscriber.kill()
        subscriber.join()
        raise
    samples: list[dict] = []
    next_sample = [0.0]
    next_trim = [trim_every_s or 0.0]
    snapshots = []  # tracemalloc: one after warm-up, compared with one at the end, to name what grew

    def on_status(st) -> None:
        if trim_every_s and st.elapsed_s >= next_trim[0]:  # an experiment: is the growth free memory malloc keeps?
            next_trim[0] += trim_every_s
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        if tracing and not snapshots and st.elapsed_s >= warmup_s:
            import tracemalloc

            snapshots.append(tracemalloc.take_snapshot())
        if st.elapsed_s >= next_sample[0]:
            next_sample[0] += sample_s
            counts = {"captured": st.captured, "processed": st.processed, "dropped": st.dropped}
            samples.append(sample(st.elapsed_s, tracing, folder.resolve()) | counts)
            s = samples[-1]
            progress(f"  {st.elapsed_s:7.0f} s  captured {st.captured:7d}  processed {st.processed:7d}  dropped "
                     f"{st.dropped:6d}  RSS {s['rss'] / 2**20:7.1f} MiB  threads {s['threads']}  fds {s['fds']}")
        if st.elapsed_s >= duration_s:
            pipeline.stop()

    progress(f"soak: {minutes:g} min, {size[0]}x{size[1]} at {fps:g} FPS, warm-up {warmup_s:.0f} s, "
             f"files in {folder}")
    try:
        summary = pipeline.run(on_status=on_status)
    finally:
        conn.send("stop")
        sub = conn.recv() if conn.poll(120) else None
        subscriber.join(30)
        if subscriber.is_alive():
            subscriber.kill()
            subscriber.join()
    gc.collect()
    final = sample(summary.duration_s, tracing)
    conn.close()
    os.rmdir(ipc_dir)  # the publisher removed its socket file
    python_growth = []
    if tracing and snapshots:
        import tracemalloc

        diff = tracemalloc.take_snapshot().compare_to(snapshots[0], "lineno")
        python_growth = [{"where": str(d.traceback), "growth": d.size_diff, "count_growth": d.count_diff}
                         for d in sorted(diff, key=lambda d: -d.size_diff)[:8]]

    paths = recorder.paths[0]
    rows = {"h5": len(read_dlc_table(paths.h5)), "csv": len(read_dlc_table(paths.csv)),
            "predicted_csv": len(pd.read_csv(paths.predicted_csv, header=[0, 1, 2], index_col=0)),
            "timing_csv": len(pd.read_csv(paths.timing_csv))}
    events = pd.read_csv(paths.events_csv)
    fired = events[(events.kind == "trigger") & (events.name == "left") & (events.detail == "on")]
    pulses = [c for c in output.emulator.commands if c.command == p.CMD_PULSE]
    trigger = summary.sinks["trigger"]
    zmq = summary.sinks["zmq"]
    counts = {
        "captured": summary.captured, "processed": summary.processed, "dropped": summary.dropped,
        "rows": rows, "published": zmq["sent"], "received": sub["poses"] if sub else None,
        "gaps": sub["gaps"] if sub else None, "skipped": sub["skipped"] if sub else None,
        "rule_fired": len(fired), "pulses_received": len(pulses),
        "pulses_acked": trigger["acked"] - sum(c.command == p.CMD_ALL_LOW for c in output.emulator.commands),
        "pulses_failed": trigger["failed"], "events_published": zmq["events_sent"],
        "events_received": sub["events"] if sub else None,
    }
    after = [s for s in samples if s["t_s"] >= warmup_s]
    checks = {
        "captured = processed + dropped": summary.captured == summary.processed + summary.dropped,
        "every file holds one row per processed frame": set(rows.values()) == {summary.processed},
        "the subscriber received every pose": (sub is not None and sub["poses"] == zmq["sent"] == summary.processed
                                               and sub["gaps"] == 0 and sub["skipped"] == 0),
        "rule firings = pulses received = acked = events received": (
            sub is not None and len(fired) == len(pulses) == counts["pulses_acked"] == zmq["events_sent"]
            == sub["events"] and sub["event_frames"] == fired["frame"].tolist() and trigger["failed"] == 0
            and len(fired) > 0),
        "threads flat after warm-up": len({s["threads"] for s in after}) == 1,
        "file descriptors flat after warm-up": len({s["fds"] for s in after}) == 1,
        "every thread and file descriptor of the run released at its end": (
            (final["threads"], final["fds"]) == (baseline["threads"], baseline["fds"])),
    }
    memory = {key: _growth(samples, key, warmup_s)
              for key in ("rss", "rss_anon", "rss_file", "malloc_in_use", "malloc_free_in_arenas", "malloc_mmapped", "python_heap")}
    result = {
        "title": TITLE, "minutes": minutes, "warmup_s": warmup_s,
        "size": f"{size[0]}x{size[1]}", "fps": fps, "duration_s": summary.duration_s, "counts": counts,
        "checks": checks, "ok": all(checks.values()), "memory": {k: v for k, v in memory.items() if v},
        "threads": sorted({s["threads"] for s in after}), "fds": sorted({s["fds"] for s in after}),
        "before_and_after": {"threads": [baseline["threads"], final["threads"]], "fds": [baseline["fds"], final["fds"]]},
        "python_growth_by_line": python_growth,
        "samples": samples, "files": str(folder), "environment": {
            k: os.environ[k] for k in ("MALLOC_ARENA_MAX",) if k in os.environ} | (
            {"malloc_trim_every_s": trim_every_s} if trim_every_s else {}),
    }
    return result


def report(result: dict) -> str:
    c = result["counts"]
    lines = [f"soak {result['minutes']:g} min ({result['duration_s']:.0f} s):",
             f"  captured {c['captured']} = processed {c['processed']} + dropped {c['dropped']}",
             f"  rows {c['rows']}",
             f"  poses published {c['published']}, received {c['received']} (gaps {c['gaps']}, skipped {c['skipped']})",
             f"  rule fired {c['rule_fired']}, pulses received {c['pulses_received']}, acked {c['pulses_acked']} "
             f"(failed {c['pulses_failed']}), events published {c['events_published']}, received "
             f"{c['events_received']}",
             f"  threads after warm-up {result['threads']}, fds {result['fds']}; before the run and after it: "
             f"threads {result['before_and_after']['threads']}, fds {result['before_and_after']['fds']}"]
    for key, g in result["memory"].items():
        lines.append(f"  {key}: {g['after_warmup'] / 2**20:.1f} MiB after warm-up -> {g['end'] / 2**20:.1f} MiB "
                     f"({g['growth'] / 2**20:+.2f} MiB, {g['growth_pct']:+.2f} %; trend {g['trend_per_hour'] / 2**20:+.2f}"
                     f" MiB/h; range {g['min'] / 2**20:.1f}-{g['max'] / 2**20:.1f})")
    if result.get("python_growth_by_line"):
        lines.append("  Python allocations that grew most after warm-up (tracemalloc):")
        lines += [f"    {g['growth'] / 1024:+9.1f} KiB {g['count_growth']:+6d} blocks  {g['where']}"
                  for g in result["python_growth_by_line"]]
    lines += [f"  [{'ok' if ok else 'FAILED'}] {name}" for name, ok in result["checks"].items()]
    return "\n".join(lines)


def run(quick: bool = False, model=None) -> dict:
    """For ``rtpose benchmark --suite latency --tests soak``: 2 minutes (quick: 1)."""
    result = run_soak(1 if quick else 2, model=model)
    result["status"] = "ok" if result["ok"] else "failed"
    result["markdown"] = "```\n" + report(result) + "\n```"
    result["verdict"] = "exact accounting, flat threads and fds: " + ("met" if result["ok"] else "NOT met")
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, required=True, help="how long to run (the documented soak: 60)")
    p.add_argument("--warmup-minutes", type=float, default=None,
                   help="memory is compared from this point on (default: a quarter of the run, at most 5 minutes)")
    p.add_argument("--sample-s", type=float, default=10.0, help="seconds between samples (default: %(default)s)")
    p.add_argument("--model", default=None, help="an rtpose .onnx model (default: the analytic test model, "
                                                 "which finds the synthetic mouse, so the rule really fires)")
    p.add_argument("--out", default=None, help="folder for the recording (default: a temporary folder)")
    p.add_argument("--tracemalloc", action="store_true",
                   help="also trace the Python heap and name the lines whose allocations grew after warm-up "
                        "(slower; the traces and the warm-up snapshot live in this process, so RSS is inflated: "
                        "use it to attribute growth, not to measure RSS)")
    p.add_argument("--json", default=None, metavar="FILE", help="write the result, samples included, as JSON")
    p.add_argument("--malloc-trim-s", type=float, default=None, metavar="S",
                   help="experiment: call glibc's malloc_trim(0) every S seconds (returns the free memory malloc "
                        "keeps in its arenas to the system)")
    args = p.parse_args(argv)
    if args.minutes <= 0 or args.sample_s <= 0:
        p.error("--minutes and --sample-s must be positive")
    result = run_soak(args.minutes, warmup_minutes=args.warmup_minutes, sample_s=args.sample_s, model=args.model,
                      out=args.out, tracing=args.tracemalloc, progress=lambda m: print(m, flush=True),
                      trim_every_s=args.malloc_trim_s)
    print(report(result), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str) + "\n")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
