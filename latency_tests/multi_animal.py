"""Several animals: per-frame cost of the network, of DeepLabCut's assembly and of identity tracking, and
identity switches, for 1, 2 and 4 animals through the real pipeline.

For each animal count N the synthetic source draws N mice (paths that cross, bodies overlapping when
they meet) and the pipeline runs offline (lossless, batch 1, every frame) with a multi-animal model:

* default: the analytic multi-animal test model (``tests/analytic_animals.py``: colour score maps,
  offsets and heading part-affinity fields; it really finds the synthetic mice, so assembly and
  tracking work on real peaks and identity switches can be counted against the known identities);
* ``--topdown``: the analytic top-down test model (``tests/analytic_topdown.py``: a detector stage that finds
  the mice's colour spots, and a pose stage on 112x112 crops), so the per-frame cost of the detector, of
  DeepLabCut's crops (one per animal), of the pose stage on all crops in one call, of decoding and of
  tracking are reported apart for 1, 2 and 4 animals;
* ``--model M.onnx``: any multi-animal rtpose model (e.g. a DeepLabCut 3 PAF or top-down export): its network
  cost is then the real one; identity switches are only counted when it finds the synthetic mice.

Reported per N: the pipeline's stage latencies (p50/p99 of ``inference`` and of ``decode``, which holds
assembly and tracking), the mean assembly and tracking cost per frame (``AnimalStep``, timed apart; for
top-down models detector, crop, pose, decode and tracking, ``TopDownStep``),
animals found per frame, and identity switches per 1000 frames (CLEAR-MOT on the track ids, mean keypoint
distance <= 20 px; rtpose.multianimal.metrics). Asserts nothing; on a shared machine say so.

    .venv/bin/python latency_tests/multi_animal.py [--quick] [--topdown | --model M.onnx] [--frames 600]
        [--animals 1,2,4]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, cli, finish, md_table  # noqa: E402

#: Mean keypoint distance (px) under which a slot is taken to hold an animal (the mice are ~90 px long).
MATCH_PX = 20.0


def analytic_model(n_animals: int, folder: Path) -> Path:
    sys.path.insert(0, str(REPO / "tests"))
    from analytic_animals import build_analytic_animals_model

    return build_analytic_animals_model(folder / f"mice{n_animals}.onnx", n_animals)


def analytic_topdown_model(n_animals: int, folder: Path) -> Path:
    sys.path.insert(0, str(REPO / "tests"))
    from analytic_topdown import build_analytic_topdown_model

    return build_analytic_topdown_model(folder / f"mice{n_animals}_td.onnx", n_animals)


#: The per-frame costs a multi-animal step reports (AnimalStep: bottom-up; TopDownStep: top-down).
COSTS = ("assembly", "detector", "crop", "pose", "decode", "tracking")


def run_one(model_path: Path, n_animals: int, frames: int, out: Path, threads: int | None) -> dict:
    from rtpose.drivers.sources.synthetic import SyntheticSource
    from rtpose.model import load_model
    from rtpose.multianimal.metrics import clear_mot
    from rtpose.pipeline import Pipeline, PipelineConfig
    from rtpose.recording import RecorderSink
    from rtpose.recording.reader import read_recording

    src = SyntheticSource(640, 480, animals=n_animals, seed=0, n_frames=frames)
    model = load_model(model_path, threads=threads)
    summary = Pipeline([src], model, sinks=[RecorderSink(out)],
                       config=PipelineConfig(live=False, batch_size=1)).run()
    rec = read_recording(out)
    truth = src.animal_truth_many(range(frames)) if n_animals > 1 else src.truth_many(range(frames))[:, None]
    visible = src.visible_many(range(frames)) if n_animals > 1 else np.ones(truth.shape[:3], bool)
    gt = np.where(visible[..., None], truth, np.nan)
    mot = clear_mot(gt, rec.layout.animals(rec.pose), rec.track_id, MATCH_PX, gt_present=visible.any(-1))
    lat = summary.latency_ms
    return {
        "animals": n_animals, "frames": frames, "slots": rec.layout.n_animals,
        "inference_p50_ms": lat["inference"]["p50"], "inference_p99_ms": lat["inference"]["p99"],
        "decode_p50_ms": lat["decode"]["p50"], "decode_p99_ms": lat["decode"]["p99"],
        **{f"{c}_ms_per_frame": summary.animals[f"{c}_ms_per_frame"] for c in COSTS
           if f"{c}_ms_per_frame" in summary.animals},
        "animals_per_frame": summary.animals["animals_per_frame"],
        "found_fraction": mot.matches / max(mot.objects, 1), "motp_px": mot.motp_px,
        "id_switches": mot.id_switches, "id_switches_per_1000_frames": mot.id_switches_per_1000_frames,
    }


def main(argv=None) -> dict:
    def extra(p):
        p.add_argument("--frames", type=int, default=600, help="frames per animal count (default 600 = 20 s)")
        p.add_argument("--animals", default="1,2,4", help="animal counts (default 1,2,4)")
        p.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads (default: rtpose's)")
        p.add_argument("--topdown", action="store_true",
                       help="the analytic top-down model (detector + pose stage on crops) instead of the bottom-up one")

    args = cli("Per-frame cost of assembly and tracking, and identity switches, for several animals", argv, extra)
    from rtpose.benchmark.sysinfo import system_info

    frames = 90 if args.quick else args.frames
    counts = [int(c) for c in args.animals.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="rtpose-animals-") as tmp:
        folder = Path(tmp)
        for n in counts:
            make = analytic_topdown_model if args.topdown else analytic_model
            model = Path(args.model) if args.model else make(n, folder)
            row = run_one(model, n, frames, folder / f"run{n}.h5", args.threads)
            rows.append(row)
            costs = " + ".join(f"{c} {row[f'{c}_ms_per_frame']:.3f}" for c in COSTS if f"{c}_ms_per_frame" in row)
            print(f"{n} animals: inference p50 {row['inference_p50_ms']:.2f} ms, decode p50 {row['decode_p50_ms']:.3f} ms "
                  f"(ms/frame: {costs}), {row['animals_per_frame']:.2f} animals/frame, "
                  f"found {100 * row['found_fraction']:.1f} %, "
                  f"{row['id_switches']} identity switches ({row['id_switches_per_1000_frames']:.1f} per 1000 frames)",
                  flush=True)
    costs = [c for c in COSTS if f"{c}_ms_per_frame" in rows[0]]
    table = md_table(["animals", "inference p50 / p99 (ms)", "decode p50 / p99 (ms)",
                      *[f"{c} (ms/frame)" for c in costs], "animals found", "switches / 1000 frames"],
                     [[r["animals"], f"{r['inference_p50_ms']:.2f} / {r['inference_p99_ms']:.2f}",
                       f"{r['decode_p50_ms']:.3f} / {r['decode_p99_ms']:.3f}",
                       *[f"{r[f'{c}_ms_per_frame']:.3f}" for c in costs],
                       f"{100 * r['found_fraction']:.1f} %", f"{r['id_switches_per_1000_frames']:.1f}"] for r in rows])
    print(table)
    default = "analytic top-down (tests/analytic_topdown.py)" if args.topdown else "analytic (tests/analytic_animals.py)"
    return finish({"model": args.model or default, "rows": rows, "table": table,
                   "system": system_info()}, args)


if __name__ == "__main__":
    main()
