"""Identity tracking cost and quality on the synthetic source: ``python -m rtpose.benchmark.tracking``.

For 1, 2, 3 and 4 animals (``synthetic:640x480@30,animals=N``, paths that cross unless
``--no-crossings``), detections are simulated from the ground truth (:mod:`rtpose.multianimal.simulate`:
jitter, missing and outlier keypoints, keypoints hidden under another animal not detected, shuffled
order, one animal absent for 0.5 s and one for 3 s) and tracked by
:class:`~rtpose.multianimal.tracking.IdentityTracker`. Prints, per animal count, the tracker's cost
per frame (median and 99th percentile of ``update``, µs, after warm-up) and CLEAR-MOT identity
switches per 1000 frames (:mod:`rtpose.multianimal.metrics`), scored by slot (what rules and sinks
see) and by track id (every new track after a long absence counts), with misses and MOTP. The
correspondence is exact (each slot's detection row is known to come from one animal); the
distance-matched count (``max_distance_px`` 30) is printed beside it for comparison.

Timing is of one thread on whatever machine runs it: say how loaded it was.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from rtpose.benchmark.sysinfo import cpu_model, usable_cores
from rtpose.drivers.sources import SyntheticSource
from rtpose.multianimal.metrics import clear_mot
from rtpose.multianimal.simulate import simulate_detections, source_of_slots
from rtpose.multianimal.tracking import IdentityTracker, warmup

#: "Realistic" detection noise: DeepLabCut-like errors of a few pixels, some keypoints lost, a few far off.
NOISE = {"jitter_px": 3.0, "p_missing": 0.05, "p_outlier": 0.02, "outlier_px": 25.0}


def run_one(n_animals: int, seed: int, frames: int, fps: float, crossings: bool, noise: dict) -> dict:
    src = SyntheticSource(640, 480, fps, seed=seed, animals=n_animals, crossings=crossings)
    idx = np.arange(frames)
    truth, visible = src.animal_truth_many(idx), src.visible_many(idx)
    absent = np.zeros((frames, n_animals), bool)
    absent[int(20 * fps):int(20.5 * fps), 0] = True  # 0.5 s away: keeps its slot and track
    absent[int(40 * fps):int(43 * fps), n_animals - 1] = True  # 3 s away: its track ends, a new one starts
    det, source = simulate_detections(truth, visible, seed=seed, absent=absent, return_source=True, **noise)
    tk = IdentityTracker(n_animals, truth.shape[2])
    out = np.empty((frames, n_animals, truth.shape[2], 3))
    ids = np.empty((frames, n_animals), np.int64)
    cost_ns = np.empty(frames, np.int64)
    for f in range(frames):
        t0 = time.perf_counter_ns()
        tk.update(int(round(f * 1e9 / fps)), det[f], out[f], ids[f])
        cost_ns[f] = time.perf_counter_ns() - t0
    present = visible.any(-1) & ~absent
    slots = np.where(ids >= 0, np.arange(n_animals)[None, :], -1)
    holds = source_of_slots(det, source, out)
    by_slot = clear_mot(truth, out, slots, 15.0, gt_present=present, hyp_truth=holds)
    by_track = clear_mot(truth, out, ids, 15.0, gt_present=present, hyp_truth=holds)
    by_distance = clear_mot(truth, out, slots, 30.0, gt_present=present)
    hidden = float(1 - visible.mean())
    return {"animals": n_animals, "seed": seed, "frames": frames, "crossings": crossings,
            "update_us_p50": float(np.percentile(cost_ns, 50) / 1e3),
            "update_us_p99": float(np.percentile(cost_ns, 99) / 1e3),
            "slot_switches": by_slot.id_switches, "track_switches": by_track.id_switches,
            "slot_switches_by_distance": by_distance.id_switches, "tracks_started": tk.tracks_started,
            "misses": by_slot.misses, "false_positives": by_slot.false_positives, "objects": by_slot.objects,
            "motp_px": by_slot.motp_px, "hidden_keypoint_fraction": hidden}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--animals", type=int, nargs="+", default=[1, 2, 3, 4])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--no-crossings", action="store_true")
    ap.add_argument("--clean", action="store_true", help="1 px jitter only instead of the realistic noise")
    ap.add_argument("--json", help="also write every run's figures here")
    args = ap.parse_args(argv)
    warmup()
    noise = {"jitter_px": 1.0} if args.clean else NOISE
    frames = int(args.seconds * args.fps)
    runs = []
    print(f"{frames} frames per run at {args.fps:g} FPS, seeds 0-{args.seeds - 1}, crossings={not args.no_crossings}, "
          f"noise={noise}")
    print(f"machine: {cpu_model()}, {usable_cores()} usable cores, load average {os.getloadavg()[0]:.1f} at start "
          "(timings are of one thread; compare within one run)")
    print("animals | update p50 µs | p99 µs | slot switches /1000 frames | track-id switches /1000 | "
          "slot switches by distance /1000 | misses % | MOTP px")
    for n in args.animals:
        rs = [run_one(n, s, frames, args.fps, not args.no_crossings, noise) for s in range(args.seeds)]
        runs += rs
        total = sum(r["frames"] for r in rs)
        print(f"{n} | {np.median([r['update_us_p50'] for r in rs]):.1f} | {np.median([r['update_us_p99'] for r in rs]):.1f} | "
              f"{1000 * sum(r['slot_switches'] for r in rs) / total:.2f} ({sum(r['slot_switches'] for r in rs)}) | "
              f"{1000 * sum(r['track_switches'] for r in rs) / total:.2f} ({sum(r['track_switches'] for r in rs)}) | "
              f"{1000 * sum(r['slot_switches_by_distance'] for r in rs) / total:.2f} | "
              f"{100 * sum(r['misses'] for r in rs) / max(1, sum(r['objects'] for r in rs)):.2f} | "
              f"{np.mean([r['motp_px'] for r in rs]):.2f}")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(runs, fh, indent=1)


if __name__ == "__main__":
    main()
