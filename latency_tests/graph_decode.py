"""Decode in the graph vs maps + the Numba decoder, on the CPU: is the in-graph decode slower or faster here?

The bundled model with the decode added (``rtpose export ... --decode-in-graph``) against the same file
run for its maps (``graph_decode=False``) and decoded by :class:`rtpose.decode.Decoder`, on real openfield
frames, per batch: model run (+ decode). Rounds alternate the two so that machine load hits both alike;
the ratio is the figure to read. On a GPU the point of the in-graph decode is the bus (96 bytes of poses
instead of 230 KB of maps per frame): latency_tests/gpu_check.py measures that.

    .venv/bin/python latency_tests/graph_decode.py [--quick]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cli, finish, md_table, time_calls, video_frames  # noqa: E402

TITLE = "Decode in the graph vs maps + Numba decode (CPU)"


def run(quick: bool = False, model=None) -> dict:
    from rtpose import models
    from rtpose.benchmark.summary import summarize
    from rtpose.decode import Decoder
    from rtpose.decode import warmup as warmup_decode
    from rtpose.exporters.decode_in_graph import add_to_file, same_bits
    from rtpose.model import OnnxPoseModel

    warmup_decode()
    frames = video_frames(8)
    src = Path(model) if model else models.default_model_path()
    rows = []
    with tempfile.TemporaryDirectory(prefix="rtpose-graph-decode-") as tmp:
        path, _ = add_to_file(src, Path(tmp) / "decode.onnx")
        for (h, w), batch in (((480, 640), 1), ((240, 320), 1), ((240, 320), 4)):
            small = np.stack([f[:h, :w] for f in frames[:batch]])
            graph = OnnxPoseModel(path)
            maps = OnnxPoseModel(path, graph_decode=False)
            for m in (graph, maps):
                m.prepare(batch, h, w)
                for i in range(batch):
                    m.load_frame(i, small[i])
            meta = maps.metadata
            decoder = Decoder(meta.stride, meta.locref_stdev, meta.num_bodyparts, batch, clip_scores=meta.clip_scores)
            out = np.empty((batch, meta.num_bodyparts, 3))

            def with_maps():
                scmap, locref = maps.run(batch)
                decoder.decode(scmap, locref, out, batch)

            def in_graph():
                graph.run_poses(batch)

            with_maps()
            same = bool(same_bits(graph.run_poses(batch), out).all())
            n = 10 if quick else 60
            a, b = [], []
            for _ in range(3 if quick else 5):  # alternating rounds
                a.append(time_calls(in_graph, n))
                b.append(time_calls(with_maps, n))
            ga, gb = summarize(np.concatenate(a) * 1e-6), summarize(np.concatenate(b) * 1e-6)
            rows.append({"size": f"{w}x{h}", "batch": batch, "identical": same, "graph_ms": ga, "maps_ms": gb,
                         "ratio_p50": ga["p50"] / gb["p50"]})
            print(f"{w}x{h} batch {batch}: in graph p50 {ga['p50']:.2f} ms, maps + Numba {gb['p50']:.2f} ms, "
                  f"ratio {ga['p50'] / gb['p50']:.3f}; poses bit-identical: {same}", flush=True)
    table = md_table(["size", "batch", "in graph p50 (ms)", "p99", "maps + Numba p50 (ms)", "p99", "ratio p50",
                      "bit-identical"],
                     [[r["size"], r["batch"], f"{r['graph_ms']['p50']:.2f}", f"{r['graph_ms']['p99']:.2f}",
                       f"{r['maps_ms']['p50']:.2f}", f"{r['maps_ms']['p99']:.2f}", f"{r['ratio_p50']:.3f}",
                       "yes" if r["identical"] else "NO"] for r in rows], "lrrrrrrl")
    verdict = ", ".join(f"{r['size']} b{r['batch']}: {r['ratio_p50']:.2f}x" for r in rows)
    return {"title": TITLE, "status": "ok", "rows": rows, "markdown": table, "verdict": f"in graph / maps: {verdict}"}


def main(argv=None) -> dict:
    args = cli(__doc__.splitlines()[0], argv)
    return finish(run(quick=args.quick, model=args.model), args)


if __name__ == "__main__":
    main()
