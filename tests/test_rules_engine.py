"""The pure rule evaluator on synthetic, seeded trajectories (t_ns, pose) — no clocks, no I/O."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rtpose.results import PoseBatch, StreamInfo
from rtpose.rules import (AllOf, AnyOf, Circle, Distance, High, Not, Polygon, Pulse, Rectangle, Rule,
                          RuleEngine, RulesStage, SendEvent, Speed, Zone, custom_rule, make_condition, parse_rules)
from rtpose.errors import ConfigError

BP = ("snout", "leftear", "rightear", "tailbase")
FRAME_NS = 33_333_333  # 30 fps
CENTER = (320.0, 240.0)


def trajectory(radii, *, seed=0, jitter_ns=0, lik=0.99):
    """Snout at distance radii[i] from CENTER (random angle per frame), tailbase 100 px left of it.

    Returns (t_ns int array, poses (N, 4, 3)). Timestamps are 30 fps plus seeded jitter.
    """
    rng = np.random.default_rng(seed)
    n = len(radii)
    t = np.arange(n, dtype=np.int64) * FRAME_NS
    if jitter_ns:
        t = t + rng.integers(-jitter_ns, jitter_ns + 1, n)
    angles = rng.uniform(0, 2 * np.pi, n)
    poses = np.zeros((n, len(BP), 3))
    poses[:, 0, 0] = CENTER[0] + np.asarray(radii) * np.cos(angles)
    poses[:, 0, 1] = CENTER[1] + np.asarray(radii) * np.sin(angles)
    poses[:, 3, 0] = poses[:, 0, 0] - 100
    poses[:, 3, 1] = poses[:, 0, 1]
    poses[:, 1:3, :2] = poses[:, :1, :2] + 5
    poses[:, :, 2] = lik
    return t, poses


def run(engine, t, poses, predicted=None, stream=0):
    """Evaluate every frame; returns (list of (frame, rule, on) changes, list of actions, per-frame states)."""
    changes, actions, states = [], [], []
    for i in range(len(t)):
        actions += engine.evaluate(int(t[i]), i, poses[i], None if predicted is None else predicted[i], stream=stream)
        changes += [(i, rule, on) for rule, on in engine.last_changes]
        states.append(dict(engine.stream_states(stream)))
    return changes, actions, states


def zone_rule(name="zone", r_enter=50.0, r_stay=None, **kw):
    stay = None if r_stay is None else Zone("snout", Circle(CENTER, r_stay))
    kw.setdefault("actions", (Pulse(0, 10.0),))
    return Rule(name, Zone("snout", Circle(CENTER, r_enter)), stay, **kw)


# --- geometry -------------------------------------------------------------------------
def test_shapes_contain_points():
    assert Circle((0, 0), 5).contains(3, 4) and not Circle((0, 0), 5).contains(3.1, 4)
    r = Rectangle((10, 20), (0, 0))  # corners in any order
    assert r.contains(0, 0) and r.contains(10, 20) and r.contains(5, 5) and not r.contains(11, 5)
    # Concave "L": the notch at (7, 7) is outside.
    poly = Polygon(((0, 0), (10, 0), (10, 4), (4, 4), (4, 10), (0, 10)))
    assert poly.contains(2, 8) and poly.contains(8, 2)
    assert not poly.contains(7, 7) and not poly.contains(-1, 5) and not poly.contains(11, 2)


# --- hysteresis -----------------------------------------------------------------------
def chatter_radii(seed=3):
    """Far → hovering around r=50 (47..53, seeded) for 90 frames → straight out to 100."""
    rng = np.random.default_rng(seed)
    return [100, 80, 60] + list(50 + rng.uniform(-3, 3, 90)) + [55, 58, 62, 70, 100]


def test_zone_hysteresis_no_chatter_at_boundary():
    t, poses = trajectory(chatter_radii(), seed=1)
    changes, actions, states = run(RuleEngine([zone_rule(r_enter=50, r_stay=60)], BP), t, poses)
    first_inside = next(i for i in range(len(t)) if math.dist(poses[i, 0, :2], CENTER) <= 50)
    leave = next(i for i in range(first_inside, len(t)) if math.dist(poses[i, 0, :2], CENTER) > 60)
    assert changes == [(first_inside, "zone", True), (leave, "zone", False)]
    assert [a.kind for a in actions] == ["pulse"] and actions[0].frame_index == first_inside
    assert all(s["zone"] for s in states[first_inside:leave]) and not states[leave]["zone"]


def test_without_hysteresis_the_same_path_chatters():
    # The control for the test above: with stay == enter the boundary hovering toggles the rule.
    t, poses = trajectory(chatter_radii(), seed=1)
    changes, actions, _ = run(RuleEngine([zone_rule(r_enter=50)], BP), t, poses)
    assert sum(on for _, _, on in changes) > 5
    assert len(actions) == sum(on for _, _, on in changes)


# --- timing -----------------------------------------------------------------------------
def test_minimum_duration():
    # In for 5 frames (133 ms held), out, in for 20 frames (633 ms), out.
    radii = [100] * 3 + [10] * 5 + [100] * 5 + [10] * 20 + [100] * 3
    t, poses = trajectory(radii, seed=2)
    changes, actions, _ = run(RuleEngine([zone_rule(min_duration_ms=300)], BP), t, poses)
    second_onset = 3 + 5 + 5
    fire = next(i for i in range(second_onset, len(t)) if t[i] - t[second_onset] >= 300_000_000)
    assert fire == second_onset + 10  # 9 frames are 299.99997 ms: one more is needed
    assert changes == [(fire, "zone", True), (second_onset + 20, "zone", False)]
    assert [(a.kind, a.frame_index) for a in actions] == [("pulse", fire)]


def test_refractory_period_is_respected():
    # Enter every 10 frames (333 ms), stay in 5 frames; refractory 500 ms.
    radii = ([10] * 5 + [100] * 5) * 8
    t, poses = trajectory(radii, seed=4)
    changes, actions, _ = run(RuleEngine([zone_rule(refractory_ms=500)], BP), t, poses)
    fired = [i for i, _, on in changes if on]
    assert fired == [0, 20, 40, 60]  # entries at 333 ms after a fire are skipped, 667 ms ones fire
    assert [a.frame_index for a in actions] == fired
    assert all(a.kind == "pulse" and a.channel == 0 and a.duration_ms == 10.0 for a in actions)
    # every fire is >= 500 ms after the previous one
    assert all(t[b] - t[a] >= 500_000_000 for a, b in zip(fired, fired[1:]))


def test_episode_starting_in_refractory_does_not_fire_later():
    # Fire at frame 0, out at 3, back in at 6 (200 ms) and stay 2 s: that episode never fires.
    radii = [10] * 3 + [100] * 3 + [10] * 60
    t, poses = trajectory(radii, seed=5)
    changes, _, states = run(RuleEngine([zone_rule(refractory_ms=500)], BP), t, poses)
    assert changes == [(0, "zone", True), (3, "zone", False)]
    assert not any(s["zone"] for s in states[6:])


# --- combinations and three-valued logic --------------------------------------------------
def one_frame(snout=(320, 240, 0.99), tail=(220, 240, 0.99)):
    pose = np.zeros((4, 3))
    pose[0], pose[3] = snout, tail
    pose[1:3] = (0, 0, 0.99)
    return pose


def state_after(cond, pose, **kw):
    engine = RuleEngine([Rule("r", cond, **kw)], BP)
    engine.evaluate(0, 0, pose)
    return engine.states["r"]


IN_ZONE = Zone("snout", Circle(CENTER, 50))
OUT_ZONE = Zone("snout", Circle((0, 0), 10))
TAIL_IN = Zone("tailbase", Rectangle((200, 200), (240, 280)))


@pytest.mark.parametrize("cond, expected", [
    (AllOf((IN_ZONE, TAIL_IN)), True),
    (AllOf((IN_ZONE, OUT_ZONE)), False),
    (AnyOf((OUT_ZONE, TAIL_IN)), True),
    (AnyOf((OUT_ZONE, Not(IN_ZONE))), False),
    (AnyOf((OUT_ZONE, AllOf((IN_ZONE, AnyOf((OUT_ZONE, TAIL_IN)))))), True),  # nested
    (Not(OUT_ZONE), True),
])
def test_all_any_not(cond, expected):
    assert state_after(cond, one_frame()) is expected


def test_unknown_bodypart_makes_conditions_unknown_not_true():
    hidden_tail = one_frame(tail=(220, 240, 0.1))  # under the 0.6 threshold
    assert state_after(AnyOf((IN_ZONE, TAIL_IN)), hidden_tail) is True  # True OR unknown = True
    assert state_after(AllOf((IN_ZONE, TAIL_IN)), hidden_tail) is False  # True AND unknown = unknown
    assert state_after(Not(TAIL_IN), hidden_tail) is False  # NOT unknown = unknown, not True
    assert state_after(Not(TAIL_IN), hidden_tail, min_likelihood=0.05) is False  # visible: tail is in
    nan_snout = one_frame(snout=(np.nan, 240, 0.99))
    assert state_after(Not(OUT_ZONE), nan_snout) is False


def test_likelihood_gating_and_exit_on_low_likelihood():
    radii = [10] * 10
    t, poses = trajectory(radii, seed=6)
    poses[:3, 0, 2] = 0.3  # snout in the zone but not trusted for 3 frames
    poses[7:, 0, 2] = 0.3  # and lost again later
    changes, _, _ = run(RuleEngine([zone_rule(min_likelihood=0.6)], BP), t, poses)
    assert changes == [(3, "zone", True), (7, "zone", False)]
    changes, _, _ = run(RuleEngine([zone_rule(min_likelihood=0.2)], BP), t, poses)
    assert changes == [(0, "zone", True)]


# --- speed and distance -------------------------------------------------------------------
def test_speed_uses_timestamps_not_frame_counts():
    rng = np.random.default_rng(7)
    n = 60
    # Irregular frame times (20..46 ms apart); positions follow the time exactly:
    # 300 px/s for the first 30 frames, then 50 px/s.
    t = np.cumsum(rng.integers(20_000_000, 46_000_000, n)).astype(np.int64)
    x = np.empty(n)
    x[0] = 100.0
    for i in range(1, n):
        v = 300.0 if i < 30 else 50.0
        x[i] = x[i - 1] + v * (t[i] - t[i - 1]) * 1e-9
    poses = np.zeros((n, 4, 3))
    poses[:, :, 2] = 0.99
    poses[:, 0, 0], poses[:, 0, 1] = x, 240.0
    fast = Rule("fast", Speed("snout", above=200.0), actions=(High(2),))
    slow = Rule("slow", Speed("snout", below=100.0))
    band = Rule("band", Speed("snout", above=40.0, below=60.0))
    changes, actions, states = run(RuleEngine([fast, slow, band], BP), t, poses)
    assert not any(states[0].values())  # no previous frame: speed unknown
    assert all(s["fast"] and not s["slow"] and not s["band"] for s in states[1:30])
    assert all(s["slow"] and s["band"] and not s["fast"] for s in states[30:])
    assert [(a.kind, a.channel, a.frame_index) for a in actions] == [("high", 2, 1), ("low", 2, 30)]


def test_distance_between_bodyparts():
    n = 20
    t = np.arange(n, dtype=np.int64) * FRAME_NS
    poses = np.zeros((n, 4, 3))
    poses[:, :, 2] = 0.99
    poses[:, 0, 0] = 100 + 10 * np.arange(n)  # snout moves away from the tailbase at x=0
    near = Rule("near", Distance("snout", "tailbase", below=150.0))
    far = Rule("far", Distance("tailbase", "snout", above=250.0))
    _, _, states = run(RuleEngine([near, far], BP), t, poses)
    assert [s["near"] for s in states] == [100 + 10 * i < 150 for i in range(n)]
    assert [s["far"] for s in states] == [100 + 10 * i > 250 for i in range(n)]


# --- predicted vs measured, streams, actions -----------------------------------------------
def test_predicted_vs_measured_pose():
    t, measured = trajectory([100] * 5 + [10] * 5, seed=8)
    predicted = measured.copy()
    predicted[2:, 0, :2] = CENTER  # the prediction is already in the zone 3 frames earlier
    rules = [zone_rule("on_pred", pose="predicted"), zone_rule("on_meas", pose="measured")]
    changes, _, _ = run(RuleEngine(rules, BP), t, measured, predicted)
    assert changes == [(2, "on_pred", True), (5, "on_meas", True)]


def test_streams_have_independent_state():
    engine = RuleEngine([zone_rule(refractory_ms=500)], BP)
    t, inside = trajectory([10] * 4, seed=9)
    _, outside = trajectory([100] * 4, seed=9)
    for i in range(4):
        engine.evaluate(int(t[i]), i, inside[i], stream=0)
        engine.evaluate(int(t[i]), i, outside[i], stream=1)
    assert engine.stream_states(0) == {"zone": True} and engine.stream_states(1) == {"zone": False}
    assert engine.states == {"zone": True}  # on in any stream
    actions = engine.evaluate(int(t[3]) + FRAME_NS, 4, inside[0], stream=1)  # stream 1's own refractory
    assert [(a.kind, a.stream) for a in actions] == [("pulse", 1)]


def test_high_low_and_event_actions():
    t, poses = trajectory([100] * 2 + [10] * 3 + [100] * 2, seed=10)
    rule = zone_rule(actions=(Pulse(1, 5.0), High(3), SendEvent()))
    _, actions, _ = run(RuleEngine([rule], BP), t, poses)
    assert [(a.kind, a.channel, a.frame_index, a.rule) for a in actions] == [
        ("pulse", 1, 2, "zone"), ("high", 3, 2, "zone"), ("event", 0, 2, "zone"), ("low", 3, 5, "zone")]
    assert actions[0].duration_ms == 5.0 and actions[0].t_ns == int(t[2])


def test_engine_rejects_unknown_bodyparts_and_duplicates():
    with pytest.raises(ConfigError, match="rule 'r'.*'nose'.*snout, leftear"):
        RuleEngine([Rule("r", Zone("nose", Circle((0, 0), 1)))], BP)
    with pytest.raises(ConfigError, match="unique.*zone"):
        RuleEngine([zone_rule(), zone_rule()], BP)


# --- custom python conditions --------------------------------------------------------------
def test_custom_function_gets_the_timing_machinery():
    calls = []

    def snout_right_of_tail(pose, t_ns, bodyparts):
        calls.append((t_ns, bodyparts))
        assert not pose.flags.writeable
        return pose[bodyparts.index("snout"), 0] > pose[bodyparts.index("tailbase"), 0]

    n = 30
    t = np.arange(n, dtype=np.int64) * FRAME_NS
    poses = np.zeros((n, 4, 3))
    poses[:, 0, 0] = 50.0
    poses[10:, 0, 0] = 150.0  # snout passes the tail (x=100) at frame 10
    poses[:, 3, 0] = 100.0
    rule = Rule("custom", make_condition(snout_right_of_tail), min_duration_ms=200, actions=(Pulse(0, 10),))
    changes, _, _ = run(RuleEngine([rule], BP), t, poses)
    assert changes == [(17, "custom", True)]  # 7 frames (233 ms) after frame 10: 6 are 199.99998 ms
    assert calls[0] == (0, BP) and len(calls) == n


def test_custom_class_has_params_and_state_per_stream():
    class Counter:
        def __init__(self, every):
            self.every, self.n = every, 0

        def condition(self, pose, t_ns, bodyparts):
            self.n += 1
            return self.n % self.every == 0

    rule = Rule("every3", make_condition(Counter, {"every": 3}))
    engine = RuleEngine([rule], BP)
    pose = one_frame()
    fired = {0: [], 1: []}
    for i in range(6):
        for s in (0, 1) if i < 3 else (0,):
            engine.evaluate(i * FRAME_NS, i, pose, stream=s)
            fired[s] += [i for _, on in engine.last_changes if on]
    assert fired == {0: [2, 5], 1: [2]}


def test_custom_rule_registry_from_yaml():
    @custom_rule("tail_left")
    def tail_left(pose, t_ns, bodyparts, limit=300):
        return pose[3, 0] < limit

    rules = parse_rules({"rules": [{"name": "r", "enter": {"python": {"name": "tail_left", "params": {"limit": 250}}}}]}, BP)
    engine = RuleEngine(rules, BP)
    engine.evaluate(0, 0, one_frame(tail=(240, 0, 1)))
    assert engine.states["r"]
    engine2 = RuleEngine(rules, BP)
    engine2.evaluate(0, 0, one_frame(tail=(260, 0, 1)))
    assert not engine2.states["r"]


def test_custom_rule_returning_none_is_unknown():
    rule = Rule("r", Not(make_condition(lambda pose, t_ns, bodyparts: None)))
    engine = RuleEngine([rule], BP)
    engine.evaluate(0, 0, one_frame())
    assert engine.states["r"] is False


# --- the pipeline stage ------------------------------------------------------------------------
def test_rules_stage_fills_the_batch():
    stage = RulesStage.from_rules([zone_rule(actions=(Pulse(0, 10), SendEvent()))], BP)
    stage.open([StreamInfo("cam", 640, 480, 30.0, BP)])
    t, poses = trajectory([100, 10, 10, 100], seed=11)
    batch = PoseBatch(4, 4)
    batch.n = 4
    batch.frame_index[:] = np.arange(4) + 100
    batch.t_frame_ns[:] = t
    batch.pose[:] = poses
    batch.predicted[:] = poses
    stage.process(batch)
    assert [(a.kind, a.frame_index) for a in batch.actions] == [("pulse", 101), ("event", 101)]
    assert [(e.kind, e.name, e.detail, e.frame_index, e.t_ns) for e in batch.events] == [
        ("trigger", "zone", "on", 101, int(t[1])), ("trigger", "zone", "off", 103, int(t[3]))]
    assert batch.trigger_states == {"zone": False}
    batch.clear()
    batch.n = 1
    batch.frame_index[0] = 104
    batch.t_frame_ns[0] = int(t[3]) + FRAME_NS
    batch.predicted[0] = poses[1]
    batch.pose[0] = poses[0]  # measured is outside, predicted inside: the rule uses predicted
    stage.process(batch)
    assert batch.trigger_states == {"zone": True} and len(batch.actions) == 2


def test_rules_stage_refuses_streams_with_other_bodyparts():
    stage = RulesStage.from_rules([zone_rule()], BP)
    with pytest.raises(ConfigError, match="stream 'cam'.*nose"):
        stage.open([StreamInfo("cam", 640, 480, 30.0, ("nose", "tail"))])
