"""Pipeline overhead: the full live pipeline with a zero-cost model.

Everything the engine does for a frame except the network: the capture thread
stamps each frame into the ring (newest-frame policy), the batcher wakes and
copies it into the model input (BGR->RGB, uint8->float32, as for a real
model), a :class:`_common.ZeroCostModel` returns preallocated score maps at no
cost, then the Numba decoder, the Kalman predictor, and two sinks (a copy of
the poses, and the ZeroMQ publisher on ipc://) run. The source replays
pre-rendered synthetic frames paced like a camera.

Goal: end-to-end (capture -> emitted) p99 < 1 ms. Prints per-stage
percentiles; asserts nothing.

    .venv/bin/python latency_tests/pipeline_overhead.py [--quick]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ZeroCostModel, cli, finish, md_table  # noqa: E402

from rtpose.benchmark.replay import ReplaySource  # noqa: E402
from rtpose.benchmark.summary import summarize  # noqa: E402
from rtpose.benchmark.sweep import CopySink, stage_samples  # noqa: E402
from rtpose.pipeline import Pipeline, PipelineConfig  # noqa: E402
from rtpose.sinks.zmq_pub import ZmqPublisherSink  # noqa: E402

TITLE = "Pipeline overhead: live pipeline with a zero-cost model"
GOAL_P99_MS = 1.0
STAGES = ("queue", "preprocess", "inference", "decode", "predict", "emit", "service", "end_to_end")
SIZES = ((320, 240), (640, 480))
FPS = 100.0


def measure(width: int, height: int, frames: int, fps: float = FPS) -> dict:
    model = ZeroCostModel(num_bodyparts=4)
    # warm-up: JIT-compiled decoder and Kalman kernels, first-use allocations
    Pipeline([ReplaySource(width, height, 30, distinct=2)], model, config=PipelineConfig(live=False)).run()
    with tempfile.TemporaryDirectory(prefix="rtpose-overhead-") as tmp:
        publisher = ZmqPublisherSink(f"ipc://{tmp}/poses.sock")
        source = ReplaySource(width, height, frames, fps=fps, paced=True)
        pipeline = Pipeline([source], model, sinks=[CopySink(), publisher], config=PipelineConfig(live=True))
        summary = pipeline.run()
    samples = stage_samples(pipeline.stats)
    return {"size": f"{width}x{height}", "fps": fps, "captured": summary.captured, "processed": summary.processed,
            "dropped": summary.dropped, "ms": {s: summarize(samples[s]) for s in STAGES}}


def run(quick: bool = False, model=None) -> dict:
    frames = 150 if quick else 1500
    rows = []
    for w, h in SIZES:
        r = measure(w, h, frames)
        rows.append(r)
        print(f"{r['size']} at {r['fps']:.0f} FPS: processed {r['processed']}/{r['captured']} (dropped {r['dropped']})")
        print(f"  {'stage (ms)':<12}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}")
        for s in STAGES:
            v = r["ms"][s]
            print(f"  {s:<12}{v['p50']:>9.3f}{v['p90']:>9.3f}{v['p99']:>9.3f}{v['max']:>9.3f}", flush=True)
    met = all(r["ms"]["end_to_end"]["p99"] < GOAL_P99_MS for r in rows)
    verdict = (f"end-to-end p99 < {GOAL_P99_MS:g} ms: {'met' if met else 'not met'} ("
               + "; ".join(f"{r['size']} p99 {r['ms']['end_to_end']['p99']:.3f} ms" for r in rows) + ")")
    print(verdict)
    table = md_table(["size", "stage", "p50 (ms)", "p90", "p99", "max"],
                     [[r["size"], s, f"{r['ms'][s]['p50']:.3f}", f"{r['ms'][s]['p90']:.3f}",
                       f"{r['ms'][s]['p99']:.3f}", f"{r['ms'][s]['max']:.3f}"] for r in rows for s in STAGES],
                     "llrrrr")
    note = (f"\n\n{rows[0]['processed']} frames per size at {FPS:.0f} FPS; dropped frames: "
            + ", ".join(f"{r['size']} {r['dropped']}" for r in rows) + ".")
    return {"title": TITLE, "status": "ok", "rows": rows, "goal_met": met, "markdown": table + note,
            "verdict": verdict}


def main(argv=None) -> dict:
    args = cli(__doc__.splitlines()[0], argv)
    return finish(run(quick=args.quick, model=args.model), args)


if __name__ == "__main__":
    main()
