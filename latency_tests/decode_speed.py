"""Decode speed: the Numba decoder vs the NumPy reference vs one plain pass over the maps.

The decode must find, per image and body part, the first maximum of an
``h x w`` score map and gather its offsets. Its floor is reading the score maps
once; this script times, on the same random maps:

* ``numba``: :class:`rtpose.decode.Decoder` (the pipeline's decoder);
* ``numpy``: :func:`rtpose.decode.decode_reference` (DeepLabCut's formula in NumPy);
* ``max pass``: the faster of ``np.max(maps)`` (one reduction over every value)
  and ``maps.max(axis=(1, 2))`` (the per-channel maxima an argmax needs), i.e.
  the cost of one memory pass with NumPy's vectorised max.

Shapes: batch 1-16, 4-20 body parts, 60x80 and 120x160 maps (480x640 and
960x1280 frames at stride 8). Goal: Numba decode within 1.5x of the max pass.
Prints per-call p50/p99 in microseconds and the ratios; asserts nothing.

    .venv/bin/python latency_tests/decode_speed.py [--quick]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cli, finish, md_table, time_calls  # noqa: E402

from rtpose.benchmark.summary import summarize  # noqa: E402
from rtpose.decode import Decoder, decode_reference, warmup  # noqa: E402

TITLE = "Decode: Numba vs NumPy reference vs one max pass"
GOAL_RATIO = 1.5
BATCHES = (1, 4, 16)
PARTS = (4, 12, 20)
MAPS = ((60, 80), (120, 160))


def make_maps(b: int, h: int, w: int, k: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    scmap = rng.random((b, h, w, k), dtype=np.float32) * np.float32(0.2)
    for i in range(b):  # one clear peak per body part, at a random place
        for j in range(k):
            scmap[i, rng.integers(h), rng.integers(w), j] = np.float32(0.9 + 0.1 * rng.random())
    locref = rng.standard_normal((b, h, w, 2 * k), dtype=np.float32)
    return scmap, locref


def measure(b: int, h: int, w: int, k: int, n_calls: int) -> dict:
    scmap, locref = make_maps(b, h, w, k)
    dec = Decoder(8.0, 7.2801, k, b)
    out = np.empty((b, k, 3), np.float64)
    chan_max = np.empty((b, k), np.float32)
    ref = decode_reference(scmap, locref, 8.0, 7.2801)
    dec.decode(scmap, locref, out)
    if not np.array_equal(ref, out):
        raise AssertionError(f"Numba and NumPy decodes differ for B{b} K{k} {h}x{w}")
    samples = {
        "numba": time_calls(lambda: dec.decode(scmap, locref, out), n_calls),
        "numpy": time_calls(lambda: decode_reference(scmap, locref, 8.0, 7.2801), n_calls),
        "max_all": time_calls(lambda: np.max(scmap), n_calls),
        "max_per_channel": time_calls(lambda: np.max(scmap, axis=(1, 2), out=chan_max), n_calls),
    }
    s = {name: summarize(v * 1e-3) for name, v in samples.items()}  # µs
    base = "max_all" if s["max_all"]["p50"] <= s["max_per_channel"]["p50"] else "max_per_channel"
    return {
        "batch": b, "parts": k, "map": f"{h}x{w}", "scoremap_bytes": int(scmap.nbytes),
        "us": s, "baseline": base,
        "numba_over_max": s["numba"]["p50"] / s[base]["p50"],
        "numpy_over_numba": s["numpy"]["p50"] / s["numba"]["p50"],
    }


def run(quick: bool = False, model=None) -> dict:
    warmup()
    n_calls = 30 if quick else 200
    rows = []
    print(f"{'B':>3}{'K':>4}{'map':>9}{'numba p50':>11}{'p99':>9}{'numpy p50':>11}{'max p50':>10}"
          f"{'numba/max':>11}{'numpy/numba':>13}   (µs)")
    for h, w in MAPS:
        for k in PARTS:
            for b in BATCHES:
                r = measure(b, h, w, k, n_calls)
                rows.append(r)
                u = r["us"]
                print(f"{b:>3}{k:>4}{r['map']:>9}{u['numba']['p50']:>11.1f}{u['numba']['p99']:>9.1f}"
                      f"{u['numpy']['p50']:>11.1f}{u[r['baseline']]['p50']:>10.1f}"
                      f"{r['numba_over_max']:>11.2f}{r['numpy_over_numba']:>13.2f}", flush=True)
    ratios = np.array([r["numba_over_max"] for r in rows])
    met = int((ratios <= GOAL_RATIO).sum())
    verdict = (f"Numba decode within {GOAL_RATIO}x of one max pass in {met}/{len(rows)} shapes "
               f"(median ratio {np.median(ratios):.2f}, worst {ratios.max():.2f}); "
               f"Numba is {np.median([r['numpy_over_numba'] for r in rows]):.1f}x faster than the NumPy "
               f"reference (median).")
    print(verdict)
    table = md_table(
        ["B", "K", "map", "Numba p50 (µs)", "Numba p99", "NumPy p50", "max pass p50", "Numba / max", "NumPy / Numba"],
        [[r["batch"], r["parts"], r["map"], f"{r['us']['numba']['p50']:.1f}", f"{r['us']['numba']['p99']:.1f}",
          f"{r['us']['numpy']['p50']:.1f}", f"{r['us'][r['baseline']]['p50']:.1f}", f"{r['numba_over_max']:.2f}",
          f"{r['numpy_over_numba']:.1f}"] for r in rows])
    return {"title": TITLE, "status": "ok", "rows": rows, "goal_ratio": GOAL_RATIO, "shapes_meeting_goal": met,
            "median_ratio": float(np.median(ratios)), "worst_ratio": float(ratios.max()),
            "markdown": table, "verdict": verdict}


def main(argv=None) -> dict:
    args = cli(__doc__.splitlines()[0], argv)
    return finish(run(quick=args.quick, model=args.model), args)


if __name__ == "__main__":
    main()
