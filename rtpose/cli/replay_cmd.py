"""``rtpose replay``: run a recorded session's poses through a rules file, offline.

Each recorded frame goes through the same rules engine as live, at its recorded
time (``t_frame_ns`` of ``<stem>_timing.csv``), with its recorded measured and
predicted pose. Writes the trigger events (``<out>_events.csv``, the layout of
a recording's events file) and the output commands the rules would have sent
(``<out>_actions.csv``), and compares the events with those the recording holds:
tune zones, thresholds, hysteresis and refractory periods on yesterday's session.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from ..errors import ConfigError, RecordingError

ACTION_COLUMNS = ("t_ns", "frame", "stream", "kind", "rule", "channel", "duration_ms")


def register(sub) -> None:
    p = sub.add_parser("replay", help="run a recording's poses through a rules file (offline rule tuning)",
                       description=__doc__)
    p.add_argument("recording", metavar="RECORDING.h5", help="a recording of rtpose run --record (or rtpose analyze)")
    p.add_argument("--rules", required=True, metavar="RULES.yaml", help="the rules to replay (docs/rules.md)")
    p.add_argument("--out", default=None, metavar="PREFIX",
                   help="write PREFIX_events.csv and PREFIX_actions.csv (default: beside the recording, "
                        "<stem>_replay_events.csv and <stem>_replay_actions.csv)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from ..recording.reader import read_recording
    from ..recording.recorder import ANIMAL_EVENT_COLUMN, EVENT_COLUMNS, event_row, refuse_existing
    from ..rules import load_rules
    from ..rules.offline import replay_rules

    rec = read_recording(args.recording)
    if rec.t_frame_ns is None:
        raise RecordingError(f"{rec.paths.timing_csv.name} is missing beside {Path(args.recording).name}: replay needs "
                             "the recorded frame times (speeds, min_duration_ms and refractory_ms depend on them); "
                             "give a recording of rtpose run --record or rtpose analyze")
    stage = load_rules(args.rules, rec.bodyparts, layout=rec.layout)
    prefix = Path(args.out) if args.out else rec.paths.h5.with_name(rec.paths.h5.stem + "_replay")
    events_csv = prefix.with_name(prefix.name + "_events.csv")
    actions_csv = prefix.with_name(prefix.name + "_actions.csv")
    if events_csv.resolve() == rec.paths.events_csv.resolve():
        raise ConfigError(f"--out {prefix} would replace the recording's own {events_csv.name}; choose another --out")
    refuse_existing([events_csv, actions_csv], args.overwrite)
    if rec.predicted is None:
        print(f"note: {rec.paths.predicted_csv.name} is missing: rules with pose: predicted see the measured pose")
    result = replay_rules(stage, rec.bodyparts, frame_index=rec.frame, stream=rec.stream, t_frame_ns=rec.t_frame_ns,
                          pose=rec.pose, predicted=rec.predicted, layout=rec.layout, track_id=rec.track_id)
    animals = rec.layout is not None  # multi-animal: which slot each event and action is about
    extra = (ANIMAL_EVENT_COLUMN,) if animals else ()
    with open(events_csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(EVENT_COLUMNS + extra)
        w.writerows(event_row(e, animals) for e in result.events)
    with open(actions_csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(ACTION_COLUMNS + extra)
        w.writerows((a.t_ns, a.frame_index, a.stream, a.kind, a.rule, a.channel, a.duration_ms)
                    + ((a.animal,) if animals else ()) for a in result.actions)
    fired = [e for e in result.events if e.detail == "on"]
    print(f"replayed {result.frames} frames of {rec.paths.h5.name} through {args.rules}: "
          f"{len(fired)} firings, {len(result.actions)} actions")
    for rule in stage.engine.rules:
        n = sum(1 for e in fired if e.name == rule.name)
        print(f"   {rule.name}: fired {n} times")
    print(f"   events:  {events_csv}\n   actions: {actions_csv}")
    print("   " + compare_with_recorded(result.events, rec.events))
    return 0


def trigger_rows(events) -> list[tuple]:
    """(t_ns, frame, stream, name, detail) of the trigger events, from Event objects or an events table."""
    if events is None:
        return []
    if hasattr(events, "itertuples"):
        table = events[events["kind"] == "trigger"]
        return [(int(r.t_ns), int(r.frame), int(r.stream), str(r.name), str(r.detail))
                for r in table.itertuples(index=False)]
    return [(int(e.t_ns), int(e.frame_index), int(e.stream), e.name, e.detail) for e in events if e.kind == "trigger"]


def compare_with_recorded(replayed, recorded_table) -> str:
    """One line: do the replayed trigger events equal the recording's own?"""
    ours, theirs = trigger_rows(replayed), trigger_rows(recorded_table)
    if recorded_table is None:
        return "the recording has no events file to compare with"
    if not theirs:
        return "the recording holds no trigger events (it ran without rules, or none fired)"
    if ours == theirs:
        return f"identical to the {len(theirs)} trigger events recorded live"
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if a != b:
            return (f"differs from the recorded trigger events at #{i + 1}: replayed {a[3]} {a[4]} at frame {a[1]}, "
                    f"recorded {b[3]} {b[4]} at frame {b[1]} (other rules than live, or another recording?)")
    return (f"replayed {len(ours)} trigger events, the recording holds {len(theirs)}; the first "
            f"{min(len(ours), len(theirs))} agree")
