"""Rules on multi-animal poses: animal selection (any / all / name / track id), relations between
animals (distance from/to, follow), per-animal timers, which animal in actions and events, and the
loader's messages. Constructed flat (A*K + U, 3) poses and injected times; no clocks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from rtpose.errors import ConfigError
from rtpose.multianimal.layout import AnimalLayout
from rtpose.results import PoseBatch, StreamInfo
from rtpose.rules import (AllOf, Circle, Distance, Follow, High, Not, Pulse, Rectangle, Rule, RuleEngine, RulesStage,
                          SendEvent, Speed, Zone, load_rule_file, parse_rules)

LAYOUT = AnimalLayout(("mouse1", "mouse2", "mouse3"), ("snout", "tailbase"), ("lever",))
FLAT = LAYOUT.flat_names()
FRAME_NS = 33_333_333  # 30 fps
ZONE = Circle((100.0, 100.0), 20.0)
LEVER = (500.0, 50.0)


def frame(lik=0.99, lever=LEVER, **animals):
    """Flat pose; ``mouse1=((sx, sy), (tx, ty))`` gives snout and tailbase; absent animals are NaN.
    A part given as None is NaN; a part given as (x, y, lik) has its own likelihood."""
    pose = np.full((LAYOUT.n_flat, 3), np.nan)
    view = LAYOUT.animals(pose)
    for name, parts in animals.items():
        s = LAYOUT.individuals.index(name)
        for k, p in enumerate(parts):
            if p is not None:
                view[s, k] = (p[0], p[1], p[2] if len(p) > 2 else lik)
    if lever is not None:
        LAYOUT.unique(pose)[0] = (lever[0], lever[1], lik)
    return pose


IN, OUT = ((100.0, 100.0), (100.0, 140.0)), ((300.0, 300.0), (300.0, 340.0))


def engine(*rules):
    return RuleEngine(rules, FLAT, layout=LAYOUT)


def run(eng, frames, track_ids=None):
    """Evaluate frames i at t = i * FRAME_NS; returns [(frame, rule, on, animal)], [actions]."""
    changes, actions = [], []
    for i, pose in enumerate(frames):
        ids = None if track_ids is None else np.asarray(track_ids[i], np.int64)
        actions += eng.evaluate(i * FRAME_NS, i, pose, track_ids=ids)
        changes += [(i, r, on, a) for (r, on), a in zip(eng.last_changes, eng.last_change_animals)]
    return changes, actions


# --- any (the default): each animal on its own --------------------------------------------------
def test_any_is_the_default_and_each_animal_fires_and_ends_on_its_own():
    rule = Rule("zone", Zone("snout", ZONE), actions=(Pulse(0, 10.0), High(1), SendEvent()))
    frames = [frame(mouse1=OUT, mouse2=OUT),
              frame(mouse1=OUT, mouse2=IN),     # mouse2 (slot 1) enters
              frame(mouse1=IN, mouse2=IN),      # mouse1 (slot 0) too: its own firing
              frame(mouse1=IN, mouse2=OUT),     # mouse2 leaves: only its episode ends
              frame(mouse1=OUT, mouse2=OUT)]
    eng = engine(rule)
    changes, actions = run(eng, frames)
    assert changes == [(1, "zone", True, 1), (2, "zone", True, 0), (3, "zone", False, 1), (4, "zone", False, 0)]
    assert [(a.kind, a.frame_index, a.animal) for a in actions] == [
        ("pulse", 1, 1), ("high", 1, 1), ("event", 1, 1), ("pulse", 2, 0), ("high", 2, 0), ("event", 2, 0),
        ("low", 3, 1), ("low", 4, 0)]
    assert eng.states == {"zone": False}


def test_trigger_state_is_on_while_any_animal_is_on():
    eng = engine(Rule("zone", Zone("snout", ZONE)))
    eng.evaluate(0, 0, frame(mouse1=IN, mouse3=IN))
    assert eng.states == {"zone": True} and eng.stream_states() == {"zone": True}
    assert eng.animal_states() == {"zone": (0, 2)}
    eng.evaluate(FRAME_NS, 1, frame(mouse1=OUT, mouse3=IN))
    assert eng.states == {"zone": True} and eng.animal_states() == {"zone": (2,)}
    eng.evaluate(2 * FRAME_NS, 2, frame(mouse1=OUT, mouse3=OUT))
    assert eng.states == {"zone": False} and eng.animal_states() == {"zone": ()}


def test_refractory_and_min_duration_are_per_animal():
    rule = Rule("zone", Zone("snout", ZONE), min_duration_ms=100, refractory_ms=1000, actions=(Pulse(0, 5.0),))
    # mouse1 in from frame 0, out at 6, back in at 8 (inside its refractory period);
    # mouse2 enters at frame 2, during mouse1's refractory period: it has its own.
    m1 = [IN] * 6 + [OUT] * 2 + [IN] * 10
    m2 = [OUT] * 2 + [IN] * 16
    changes, actions = run(engine(rule), [frame(mouse1=a, mouse2=b) for a, b in zip(m1, m2)])
    # 100 ms after engaging: 3 frames are 99.99999 ms, so the 4th frame after onset fires.
    assert changes == [(4, "zone", True, 0), (6, "zone", False, 0), (6, "zone", True, 1)]
    assert [(a.frame_index, a.animal) for a in actions] == [(4, 0), (6, 1)]


def test_an_animal_leaving_the_frame_ends_its_episode():
    rule = Rule("zone", Zone("snout", ZONE), actions=(High(3),))
    changes, actions = run(engine(rule), [frame(mouse2=IN), frame(mouse2=IN), frame()])
    assert changes == [(0, "zone", True, 1), (2, "zone", False, 1)]
    assert [(a.kind, a.animal) for a in actions] == [("high", 1), ("low", 1)]


# --- all, a name, a track id ---------------------------------------------------------------
def test_all_needs_every_animal_present_and_says_no_animal():
    rule = Rule("all_in", Zone("snout", ZONE), animal="all", actions=(Pulse(0, 5.0),))
    frames = [frame(mouse1=IN, mouse2=OUT),
              frame(mouse1=IN, mouse2=IN),          # mouse3 absent (NaN slot): does not block
              frame(mouse1=IN, mouse2=IN, mouse3=OUT),  # mouse3 appears outside: ends
              frame()]                               # nobody: unknown, never true
    changes, actions = run(engine(rule), frames)
    assert changes == [(1, "all_in", True, -1), (2, "all_in", False, -1)]
    assert [(a.kind, a.animal) for a in actions] == [("pulse", -1)]


def test_all_with_an_unseen_animal_is_unknown_not_true():
    rule = Rule("all_in", Zone("snout", ZONE), animal="all")
    hidden = ((100.0, 100.0, 0.1), (100.0, 140.0))  # snout in the zone but under min_likelihood
    changes, _ = run(engine(rule), [frame(mouse1=IN, mouse2=hidden)])
    assert changes == []


def test_a_named_animal():
    rule = Rule("m1", Zone("snout", ZONE), animal="mouse1", actions=(SendEvent(),))
    frames = [frame(mouse1=OUT, mouse2=IN), frame(mouse1=IN, mouse2=IN)]
    changes, actions = run(engine(rule), frames)
    assert changes == [(1, "m1", True, 0)]
    assert [(a.kind, a.animal) for a in actions] == [("event", 0)]


def test_a_track_id_follows_its_slot():
    rule = Rule("t7", Zone("snout", ZONE), animal=7, actions=(High(0),))
    frames = [frame(mouse1=IN, mouse2=OUT),   # track 7 is in slot 1 (outside)
              frame(mouse1=OUT, mouse2=IN),   # now inside: fires for slot 1
              frame(mouse1=IN, mouse2=OUT),   # the tracker moved track 7 to slot 0, still inside
              frame(mouse1=IN, mouse2=OUT)]   # track 7 gone: ends
    ids = [(3, 7, -1), (3, 7, -1), (7, 3, -1), (3, 4, -1)]
    changes, actions = run(engine(rule), frames, ids)
    assert changes == [(1, "t7", True, 1), (3, "t7", False, 1)]
    assert [(a.kind, a.frame_index, a.animal) for a in actions] == [("high", 1, 1), ("low", 3, 1)]


def test_track_ids_decide_which_slots_hold_an_animal():
    # Slot 2 carries stale coordinates but track id -1: 'all' ignores it.
    rule = Rule("all_in", Zone("snout", ZONE), animal="all")
    changes, _ = run(engine(rule), [frame(mouse1=IN, mouse3=OUT)], [(1, -1, -1)])
    assert changes == [(0, "all_in", True, -1)]


def test_speed_per_animal_is_unknown_across_a_track_change():
    rule = Rule("fast", Speed("snout", above=100.0), actions=(Pulse(0, 5.0),))
    a = ((100.0, 100.0), (100.0, 140.0))
    b = ((110.0, 100.0), (110.0, 140.0))  # 10 px in 33 ms = 300 px/s
    changes, _ = run(engine(rule), [frame(mouse1=a, mouse2=a), frame(mouse1=b, mouse2=b)], [(1, 2, -1), (1, 9, -1)])
    assert changes == [(1, "fast", True, 0)]  # slot 1 is a new animal (track 9): no speed for it yet


# --- unique bodyparts --------------------------------------------------------------------------
def test_rules_on_unique_bodyparts_are_not_about_an_animal():
    rule = Rule("lever", Zone("lever", Rectangle((490, 40), (510, 60))), actions=(Pulse(2, 5.0),))
    eng = engine(rule)
    actions = eng.evaluate(0, 0, frame(mouse1=IN))
    assert [(a.kind, a.animal) for a in actions] == [("pulse", -1)]


def test_distance_between_an_animals_part_and_a_unique_part():
    near_lever = ((495.0, 55.0), (495.0, 95.0))
    rule = Rule("at_lever", Distance("snout", "lever", below=20.0), actions=(SendEvent(),))
    changes, _ = run(engine(rule), [frame(mouse1=IN, mouse3=near_lever)])
    assert changes == [(0, "at_lever", True, 2)]


# --- relations between animals ------------------------------------------------------------------
def test_distance_from_own_snout_to_another_animals_tailbase():
    # sniffing: my snout within 30 px of another animal's tailbase
    rule = Rule("sniff", Distance("snout", "tailbase", below=45.0, animal="self", b_animal="other"),
                actions=(Pulse(0, 5.0),))
    m1 = ((200.0, 200.0), (200.0, 240.0))
    m2 = ((205.0, 255.0), (205.0, 295.0))  # m2's snout is 15.8 px from m1's tailbase
    changes, actions = run(engine(rule), [frame(mouse1=m1, mouse2=m2)])
    assert changes == [(0, "sniff", True, 1)]  # only mouse2 sniffs; its own tailbase (40 px) does not count
    assert [a.animal for a in actions] == [1]
    # the control: with the own tailbase both animals' snouts are within 45 px
    own = Rule("own", Distance("snout", "tailbase", below=45.0, animal="self", b_animal="self"))
    changes, _ = run(engine(own), [frame(mouse1=m1, mouse2=m2)])
    assert changes == [(0, "own", True, 0), (0, "own", True, 1)]


def test_distance_any_pair_and_a_named_pair():
    m1 = ((200.0, 200.0), (200.0, 240.0))
    m2 = ((205.0, 255.0), (205.0, 295.0))
    far = ((400.0, 400.0), (400.0, 440.0))
    close_any = Rule("close", Distance("snout", "tailbase", below=30.0, animal="any", b_animal="other"))
    named = Rule("m1_to_m3", Distance("snout", "tailbase", below=30.0, animal="mouse1", b_animal="mouse3"))
    eng = engine(close_any, named)
    eng.evaluate(0, 0, frame(mouse1=m1, mouse2=m2, mouse3=far))
    assert eng.states == {"close": True, "m1_to_m3": False}
    assert eng.animal_states() == {"close": (-1,), "m1_to_m3": ()}  # no condition reads the rule's animal


def test_relation_three_valued_logic():
    m1 = ((200.0, 200.0), (200.0, 240.0))
    unseen_tail = ((205.0, 255.0), (205.0, 295.0, 0.1))
    far = ((400.0, 400.0), (400.0, 440.0))
    near = Distance("snout", "tailbase", below=30.0, animal="mouse1", b_animal="other")
    # mouse1's snout is far from mouse3's tailbase and mouse2's is unseen: unknown, so neither
    # 'near' nor 'not near' holds.
    eng = engine(Rule("near", near), Rule("not_near", Not(near)))
    eng.evaluate(0, 0, frame(mouse1=m1, mouse2=unseen_tail, mouse3=far))
    assert eng.states == {"near": False, "not_near": False}
    # without mouse2, 'no other animal near' is known
    eng2 = engine(Rule("near", near), Rule("not_near", Not(near)))
    eng2.evaluate(0, 0, frame(mouse1=m1, mouse3=far))
    assert eng2.states == {"near": False, "not_near": True}


FOLLOW = Follow("snout", "tailbase", within=40.0, min_speed=50.0, max_angle_deg=45.0, heading=("tailbase", "snout"))


def chase(n, *, gap=25.0, v_follow=(150.0, 0.0), v_lead=(150.0, 0.0)):
    """mouse1 leads heading +x; mouse2 behind it, its snout ``gap`` px from mouse1's tailbase."""
    frames = []
    for i in range(n):
        t = i * FRAME_NS * 1e-9
        lx, ly = 300.0 + v_lead[0] * t, 200.0 + v_lead[1] * t
        fx, fy = 300.0 - 60.0 - gap + v_follow[0] * t, 200.0 + v_follow[1] * t
        frames.append(frame(mouse1=((lx, ly), (lx - 60.0, ly)), mouse2=((fx, fy), (fx - 60.0, fy))))
    return frames


def test_follow_fires_for_the_follower_after_min_duration():
    rule = Rule("follow", FOLLOW, min_duration_ms=200, actions=(SendEvent(),))
    changes, actions = run(engine(rule), chase(12))
    # Frame 0 has no speed yet; engaged at frame 1; 200 ms later (6 frames = 199.99998 ms, so 7).
    assert changes == [(8, "follow", True, 1)]
    assert [(a.kind, a.animal) for a in actions] == [("event", 1)]


@pytest.mark.parametrize("kw", [dict(gap=60.0),                     # too far behind
                                dict(v_follow=(0.0, 150.0)),        # moving sideways (90 degrees off)
                                dict(v_follow=(30.0, 0.0)),         # too slow
                                dict(v_follow=(-150.0, 0.0), v_lead=(-150.0, 0.0))])  # both backwards
def test_follow_needs_proximity_speed_and_direction(kw):
    changes, _ = run(engine(Rule("follow", FOLLOW)), chase(5, **kw))
    assert changes == []


def test_follow_with_a_named_leader_and_any_follower():
    named = Rule("chases_m3", Follow("snout", "tailbase", 40.0, 50.0, 45.0, ("tailbase", "snout"), leader="mouse3"))
    anyone = Rule("someone_follows",
                  Follow("snout", "tailbase", 40.0, 50.0, 45.0, ("tailbase", "snout"), animal="any"))
    eng = engine(named, anyone)
    run(eng, chase(3))
    assert eng.states == {"chases_m3": False, "someone_follows": True}
    assert eng.animal_states() == {"chases_m3": (), "someone_follows": (-1,)}


def test_condition_level_animal_inside_a_per_animal_rule():
    # "I am in the zone while mouse3 is at the lever": per animal, mouse3's state is a shared fact.
    at_lever = ((495.0, 55.0), (495.0, 95.0))
    both = Rule("both", AllOf((Zone("snout", ZONE), Distance("snout", "lever", below=20.0, animal="mouse3"))),
                actions=(SendEvent(),))
    changes, _ = run(engine(both), [frame(mouse1=IN, mouse3=OUT), frame(mouse1=IN, mouse3=at_lever)])
    assert changes == [(1, "both", True, 0)]  # mouse3 is not in the zone itself: only mouse1 fires


def test_condition_level_any_other_all():
    other_in = Rule("other_in", Zone("snout", ZONE, animal="other"), actions=(SendEvent(),))
    any_in = Rule("any_in", Zone("snout", ZONE, animal="any"))
    all_in = Rule("all_in", Zone("snout", ZONE, animal="all"))
    eng = engine(other_in, any_in, all_in)
    changes, actions = run(eng, [frame(mouse1=IN, mouse2=OUT)])
    # other_in is per animal: mouse2 sees another animal (mouse1) in the zone, mouse1 does not
    assert changes == [(0, "other_in", True, 1), (0, "any_in", True, -1)]
    # nobody there: 'some animal' is false (so its negation holds), 'every animal' unknown (neither holds)
    eng = engine(Rule("none_in", Not(Zone("snout", ZONE, animal="any"))),
                 Rule("not_all_in", Not(Zone("snout", ZONE, animal="all"))), all_in)
    eng.evaluate(0, 0, frame())
    assert eng.states == {"none_in": True, "not_all_in": False, "all_in": False}


# --- the pipeline stage ---------------------------------------------------------------------------
def test_stage_passes_track_ids_and_events_name_the_animal():
    stage = RulesStage.from_rules([Rule("t7", Zone("snout", ZONE), animal=7, actions=(Pulse(0, 5.0),))], FLAT,
                                  layout=LAYOUT)
    stage.open([StreamInfo("cam", 640, 480, 30.0, FLAT)])
    batch = PoseBatch(2, LAYOUT.n_flat)
    batch.track_id = np.array([[7, 1, -1], [1, 7, -1]], np.int64)  # (B, A), as a multi-animal batch carries it
    batch.n = 2
    batch.frame_index[:] = (10, 11)
    batch.t_frame_ns[:] = (0, FRAME_NS)
    batch.pose[0] = frame(mouse1=OUT, mouse2=IN)
    batch.pose[1] = frame(mouse1=OUT, mouse2=IN)
    batch.predicted[:] = batch.pose
    stage.process(batch)
    assert [(a.kind, a.frame_index, a.animal) for a in batch.actions] == [("pulse", 11, 1)]
    assert [(e.name, e.detail, e.frame_index, e.animal) for e in batch.events] == [("t7", "on", 11, 1)]


def test_single_animal_actions_and_events_say_no_animal():
    bp = ("snout", "tailbase")
    stage = RulesStage.from_rules([Rule("z", Zone("snout", ZONE), actions=(Pulse(0, 5.0),))], bp)
    stage.open([StreamInfo("cam", 640, 480, 30.0, bp)])
    batch = PoseBatch(1, 2)
    batch.n = 1
    batch.pose[0] = ((100, 100, 0.99), (0, 0, 0.99))
    batch.predicted[0] = batch.pose[0]
    stage.process(batch)
    assert [a.animal for a in batch.actions] == [-1] and [e.animal for e in batch.events] == [-1]


# --- rules files -----------------------------------------------------------------------------------
WORKED_EXAMPLE = """
version: 1
defaults:
  pose: predicted
  min_likelihood: 0.6
rules:
  - name: mouse1_in_zone
    animal: mouse1
    enter: {zone: {bodypart: snout, circle: {center: [100, 100], radius: 20}}}
    stay:  {zone: {bodypart: snout, circle: {center: [100, 100], radius: 30}}}
    refractory_ms: 500
    actions: [{pulse: {channel: 0, ms: 10}}]
  - name: following
    enter:
      follow: {bodypart: snout, leader_bodypart: tailbase, within: 40, min_speed: 50,
               max_angle_deg: 45, heading: [tailbase, snout]}
    min_duration_ms: 200
    actions: [event]
  - name: sniffing
    enter:
      distance: {from: {bodypart: snout}, to: {animal: other, bodypart: tailbase}, below: 30}
    actions: [event]
  - name: anyone_at_lever
    enter: {distance: {between: [snout, lever], animal: any, below: 20}}
    actions: [{high: {channel: 2}}]
"""


def write(tmp_path, text):
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return path


def test_worked_example_loads_and_runs(tmp_path):
    rules = load_rule_file(write(tmp_path, WORKED_EXAMPLE), FLAT, LAYOUT)
    m1, following, sniffing, lever = rules
    assert m1.animal == "mouse1" and following.animal is None
    assert following.enter == Follow("snout", "tailbase", 40.0, 50.0, 45.0, ("tailbase", "snout"))
    assert sniffing.enter == Distance("snout", "tailbase", None, 30.0, "self", "other")
    assert lever.enter == Distance("snout", "lever", None, 20.0, "any")
    eng = engine(*rules)
    changes, actions = run(eng, chase(12))
    assert ("following", True, 1) in [(r, on, a) for _, r, on, a in changes]
    # mouse2's snout is 25 px behind mouse1's tailbase: it sniffs too
    assert {(a.rule, a.animal) for a in actions} == {("following", 1), ("sniffing", 1)}
    assert engine(*rules).evaluate(0, 0, frame(mouse1=IN))[0].animal == 0


def test_the_docs_worked_example_parses():
    text = (Path(__file__).resolve().parents[1] / "docs" / "rules.md").read_text()
    block = text.split("## Several animals", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    rules = parse_rules(yaml.safe_load(block), FLAT, layout=LAYOUT)
    assert [r.name for r in rules] == ["mouse1_in_zone", "following", "sniffing", "all_away_from_lever"]
    in_zone = ((120.0, 250.0), (120.0, 290.0))
    eng = engine(*rules)
    # mouse2 in the zone: nothing; mouse1 in it: the pulse, for slot 0. Both away from the lever: line 2 high.
    first = eng.evaluate(0, 0, frame(mouse2=in_zone, mouse3=OUT))
    assert [(a.rule, a.kind, a.animal) for a in first] == [("all_away_from_lever", "high", -1)]
    second = eng.evaluate(FRAME_NS, 1, frame(mouse1=in_zone, mouse2=in_zone, mouse3=OUT))
    assert [(a.rule, a.kind, a.channel, a.animal) for a in second] == [("mouse1_in_zone", "pulse", 0, 0)]


@pytest.mark.parametrize("rule_yaml, field, message", [
    ("animal: mouse9\n    enter: {zone: {bodypart: snout, circle: {center: [1, 2], radius: 3}}}",
     "animal", "unknown animal 'mouse9'; use any, all, an individual (mouse1, mouse2, mouse3) or a track id"),
    ("animal: other\n    enter: {zone: {bodypart: snout, circle: {center: [1, 2], radius: 3}}}",
     "animal", "animal 'other' is not allowed here; use any, all"),
    ("animal: -2\n    enter: {zone: {bodypart: snout, circle: {center: [1, 2], radius: 3}}}",
     "animal", "track id -2 must be >= 0"),
    ("animal: mouse1\n    enter: {zone: {bodypart: lever, circle: {center: [1, 2], radius: 3}}}",
     "animal", "no condition reads the rule's animal"),
    ("enter: {zone: {bodypart: snot, circle: {center: [1, 2], radius: 3}}}", "enter.zone.bodypart",
     "unknown bodypart 'snot'; the model's bodyparts are snout, tailbase (on every animal) and lever (unique"),
    ("enter: {zone: {bodypart: mouse1.snout, circle: {center: [1, 2], radius: 3}}}", "enter.zone.bodypart",
     "(write animal: mouse1, bodypart: snout)"),
    ("enter: {zone: {bodypart: lever, animal: mouse1, circle: {center: [1, 2], radius: 3}}}",
     "enter.zone.animal", "'lever' is a unique bodypart"),
    ("enter: {speed: {bodypart: snout, animal: rat, above: 3}}", "enter.speed.animal",
     "unknown animal 'rat'; use self, any, all, other, an individual (mouse1, mouse2, mouse3)"),
    ("enter: {distance: {from: {animal: other, bodypart: snout}, to: {animal: other, bodypart: tailbase}, below: 3}}",
     "enter.distance.to.animal", "'other' on both sides"),
    ("enter: {distance: {from: snout, to: {animal: all, bodypart: tailbase}, below: 3}}",
     "enter.distance.to.animal", "animal 'all' is not allowed here; use self, any, other"),
    ("enter: {distance: {from: {animal: other, bodypart: snout}, to: lever, below: 3}}",
     "enter.distance.from.animal", "'lever' is a unique bodypart"),
    ("enter: {distance: {from: snout, to: snout, below: 3}}", "enter.distance", "the same animal's 'snout'"),
    ("enter: {distance: {from: snout, below: 3}}", "enter.distance.to", "missing"),
    ("enter: {distance: {from: snout, to: tailbase, animal: mouse1, below: 3}}", "enter.distance.animal",
     "give each side its own animal"),
    ("enter: {follow: {bodypart: snout, leader_bodypart: lever, within: 4, min_speed: 5, max_angle_deg: 45, "
     "heading: [tailbase, snout]}}", "enter.follow.leader_bodypart", "'lever' is a unique bodypart"),
    ("enter: {follow: {bodypart: snout, leader_bodypart: tailbase, within: 4, min_speed: 5, max_angle_deg: 45}}",
     "enter.follow.heading", "missing"),
    ("enter: {follow: {bodypart: snout, leader_bodypart: tailbase, within: 4, min_speed: 5, max_angle_deg: 200, "
     "heading: [tailbase, snout]}}", "enter.follow.max_angle_deg", "<= 180"),
    ("enter: {follow: {leader: any, bodypart: snout, leader_bodypart: tailbase, within: 4, min_speed: 5, "
     "max_angle_deg: 45, heading: [tailbase, snout]}}", "enter.follow.leader", "animal 'any' is not allowed here"),
    ("enter: {follow: {bodypart: snout, leader_bodypart: tailbase, within: 4, min_speed: 5, max_angle_deg: 45, "
     "heading: [snout, snout]}}", "enter.follow.heading", "twice"),
])
def test_errors_name_file_rule_field_and_valid_names(tmp_path, rule_yaml, field, message):
    path = write(tmp_path, f"rules:\n  - name: bad_rule\n    {rule_yaml}\n")
    with pytest.raises(ConfigError) as info:
        load_rule_file(path, FLAT, LAYOUT)
    text = str(info.value)
    assert text.startswith(f"{path}: rule 'bad_rule': {field}: "), text
    assert message in text, text


@pytest.mark.parametrize("rule_yaml, field, message", [
    ("animal: any\n    enter: {zone: {bodypart: snout, circle: {center: [1, 2], radius: 3}}}",
     "animal", "this model tracks a single animal; 'animal' is for multi-animal models, remove it"),
    ("enter: {zone: {bodypart: snout, animal: mouse1, circle: {center: [1, 2], radius: 3}}}",
     "enter.zone.animal", "single animal"),
    ("enter: {follow: {bodypart: snout, leader_bodypart: tailbase, within: 4, min_speed: 5, max_angle_deg: 45, "
     "heading: [tailbase, snout]}}", "enter.follow", "needs a multi-animal model"),
])
def test_animal_keys_in_a_single_animal_model(tmp_path, rule_yaml, field, message):
    path = write(tmp_path, f"rules:\n  - name: bad_rule\n    {rule_yaml}\n")
    with pytest.raises(ConfigError) as info:
        load_rule_file(path, ("snout", "tailbase"))
    assert str(info.value).startswith(f"{path}: rule 'bad_rule': {field}: ") and message in str(info.value)


def test_defaults_animal_applies_only_to_rules_about_an_animal(tmp_path):
    text = """
defaults: {animal: mouse2}
rules:
  - {name: m, enter: {zone: {bodypart: snout, circle: {center: [1, 2], radius: 3}}}}
  - {name: lever, enter: {zone: {bodypart: lever, circle: {center: [1, 2], radius: 3}}}}
"""
    m, lever = load_rule_file(write(tmp_path, text), FLAT, LAYOUT)
    assert (m.animal, lever.animal) == ("mouse2", None)
    with pytest.raises(ConfigError, match=r"defaults.animal: unknown animal 'mouse7'"):
        load_rule_file(write(tmp_path, text.replace("mouse2", "mouse7")), FLAT, LAYOUT)


def test_engine_checks_rules_built_in_python():
    with pytest.raises(ConfigError, match="rule 'r': unknown animal 'rat'; use any, all, an individual"):
        engine(Rule("r", Zone("snout", ZONE), animal="rat"))
    with pytest.raises(ConfigError, match="rule 'r': unknown bodypart 'nose'; the model's bodyparts are snout, "
                                          r"tailbase \(on every animal\)"):
        engine(Rule("r", Zone("nose", ZONE)))
    with pytest.raises(ConfigError, match="rule 'r': 'other' means other than .* on one side only"):
        engine(Rule("r", Distance("snout", "tailbase", below=3.0, animal="other", b_animal="other")))
    with pytest.raises(ConfigError, match="not the multi-animal layout's"):
        RuleEngine([], ("snout", "tailbase"), layout=LAYOUT)
    with pytest.raises(ValueError, match=r"track_ids must be a \(3,\) array"):
        engine(Rule("r", Zone("snout", ZONE))).evaluate(0, 0, frame(), track_ids=np.zeros(2, np.int64))
