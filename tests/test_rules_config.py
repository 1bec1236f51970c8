"""Rules files: YAML parsing, validation errors (file, rule, field), custom Python rules, the examples."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
import pytest

from rtpose.errors import ConfigError
from rtpose.rules import (AllOf, Circle, Polygon, Pulse, Rectangle, RulesStage, SendEvent, Speed, Zone, load_rule_file,
                          load_rules)
from rtpose.rules.conditions import Custom

BP = ("snout", "leftear", "rightear", "tailbase")
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "zone_trigger"


def write(tmp_path: Path, text: str, name: str = "rules.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


FULL = """
version: 1
defaults: {pose: measured, min_likelihood: 0.8}
rules:
  - name: in_box
    enter:
      any:
        - zone: {bodypart: snout, rectangle: [[0, 0], [100, 50]]}
        - zone: {bodypart: leftear, polygon: [[0, 0], [10, 0], [0, 10]]}
    stay:
      all:
        - zone: {bodypart: snout, circle: {center: [50, 25], radius: 80}}
        - not: {speed: {bodypart: snout, above: 500}}
    min_duration_ms: 20
    refractory_ms: 1000
    actions:
      - pulse: {channel: 2, ms: 5}
      - high: {channel: 3}
      - event
  - name: stretched
    pose: predicted
    min_likelihood: 0.1
    enter: {distance: {between: [snout, tailbase], above: 120.5}}
"""


def test_full_file_parses_into_rules(tmp_path):
    rules = load_rule_file(write(tmp_path, FULL), BP)
    a, b = rules
    assert (a.name, a.pose, a.min_likelihood, a.min_duration_ms, a.refractory_ms) == ("in_box", "measured", 0.8, 20.0, 1000.0)
    assert a.enter.conditions[0] == Zone("snout", Rectangle((0.0, 0.0), (100.0, 50.0)))
    assert a.enter.conditions[1] == Zone("leftear", Polygon(((0, 0), (10, 0), (0, 10))))
    assert isinstance(a.stay, AllOf) and a.stay.conditions[0] == Zone("snout", Circle((50.0, 25.0), 80.0))
    assert a.stay.conditions[1].condition == Speed("snout", above=500.0)
    assert a.actions[0] == Pulse(2, 5.0) and a.actions[2] == SendEvent()
    assert (b.pose, b.min_likelihood, b.enter.above, b.actions) == ("predicted", 0.1, 120.5, ())


@pytest.mark.parametrize("rule_yaml, field, message", [
    ("enter: {zone: {bodypart: snot, circle: {center: [1, 2], radius: 3}}}",
     "enter.zone.bodypart", "unknown bodypart 'snot'; the model's bodyparts are snout, leftear, rightear, tailbase"),
    ("enter: {zone: {bodypart: snout, circle: {center: [1, 2], radius: 3}}}\n    colour: red",
     "colour", "unknown key 'colour'"),
    ("enter: {zone: {bodypart: snout, circle: {center: [1, 2]}}}", "enter.zone.circle", "needs center"),
    ("enter: {zone: {bodypart: snout, circle: {center: [1, 2], radius: -3}}}", "enter.zone.circle.radius", "> 0"),
    ("enter: {zone: {bodypart: snout, polygon: [[0, 0], [1, 1]]}}", "enter.zone.polygon", "at least three vertices"),
    ("enter: {zone: {bodypart: snout, polygon: [[0, 0], [1, 1], [2]]}}", "enter.zone.polygon[2]", "point [x, y]"),
    ("enter: {zone: {bodypart: snout, rectangle: [[0, 0], [0, 5]]}}", "enter.zone.rectangle", "no area"),
    ("enter: {zone: {bodypart: snout}}", "enter.zone", "exactly one shape"),
    ("enter: {zone: {bodypart: snout, hexagon: 3}}", "enter.zone.hexagon", "unknown key"),
    ("enter: {inside: {bodypart: snout}}", "enter.inside", "unknown condition 'inside'"),
    ("enter: {zone: {bodypart: snout, circle: {center: [0, 0], radius: 1}}, speed: {bodypart: snout, above: 1}}",
     "enter", "exactly one of"),
    ("enter: {speed: {bodypart: snout}}", "enter.speed", "needs 'above' and/or 'below'"),
    ("enter: {speed: {bodypart: snout, above: 10, below: 5}}", "enter.speed", "less than below"),
    ("enter: {speed: {bodypart: snout, above: fast}}", "enter.speed.above", "must be a number"),
    ("enter: {distance: {between: [snout, snout], below: 3}}", "enter.distance.between", "twice"),
    ("enter: {distance: {between: [snout, ear], below: 3}}", "enter.distance.between[1]", "unknown bodypart 'ear'"),
    ("enter: {all: []}", "enter.all", "non-empty list"),
    ("enter: {any: [{not: {zone: {bodypart: tail, circle: {center: [0, 0], radius: 1}}}}]}",
     "enter.any[0].not.zone.bodypart", "unknown bodypart 'tail'"),
    ("enter: {speed: {bodypart: snout, above: 1}}\n    pose: future", "pose", "use one of predicted, measured"),
    ("enter: {speed: {bodypart: snout, above: 1}}\n    min_likelihood: 2", "min_likelihood", "<= 1"),
    ("enter: {speed: {bodypart: snout, above: 1}}\n    refractory_ms: -1", "refractory_ms", ">= 0"),
    ("enter: {speed: {bodypart: snout, above: 1}}\n    actions: [{pulse: {channel: 0}}]", "actions[0].pulse.ms", "missing"),
    ("enter: {speed: {bodypart: snout, above: 1}}\n    actions: [{pulse: {channel: -1, ms: 3}}]",
     "actions[0].pulse.channel", ">= 0"),
    ("enter: {speed: {bodypart: snout, above: 1}}\n    actions: [{buzz: {channel: 1}}]", "actions[0].buzz", "unknown action"),
    ("enter: {speed: {bodypart: snout, above: 1}}\n    actions: [{high: {channel: 1, ms: 3}}]",
     "actions[0].high.ms", "unknown key"),
    ("enter: {python: no_such_rule}", "enter.python", "no custom rule registered as 'no_such_rule'"),
    ("enter: {python: 'missing.py:f'}", "enter.python", "does not exist"),
    ("enter: {python: 'no_such_module_xyz:f'}", "enter.python", "cannot import module 'no_such_module_xyz'"),
])
def test_validation_errors_name_file_rule_and_field(tmp_path, rule_yaml, field, message):
    path = write(tmp_path, f"rules:\n  - name: bad_rule\n    {rule_yaml}\n")
    with pytest.raises(ConfigError) as info:
        load_rule_file(path, BP)
    text = str(info.value)
    assert text.startswith(f"{path}: rule 'bad_rule': {field}: "), text
    assert message in text


@pytest.mark.parametrize("text, message", [
    ("rules: [", "not valid YAML"),
    ("- name: x", "mapping with a 'rules:' list"),
    ("rules: []", "non-empty list"),
    ("version: 2\nrules: [{name: a, enter: {speed: {bodypart: snout, above: 1}}}]", "version: is 2"),
    ("rule: []", "unknown key 'rule'"),
    ("defaults: {pose: later}\nrules: [{name: a, enter: {speed: {bodypart: snout, above: 1}}}]", "defaults.pose"),
    ("rules:\n  - {name: a, enter: {speed: {bodypart: snout, above: 1}}}\n  - {name: a, enter: {speed: {bodypart: snout, above: 2}}}",
     "rule 'a': name: duplicate rule name (rule #1"),
    ("rules: [{enter: {speed: {bodypart: snout, above: 1}}}]", "rule #1: name: every rule needs a name"),
    ("rules: [{name: a}]", "rule 'a': enter: missing"),
    ("rules: [{name: 'has space', enter: {speed: {bodypart: snout, above: 1}}}]", "letters, digits"),
])
def test_file_level_errors(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=None) as info:
        load_rule_file(path, BP)
    assert str(info.value).startswith(str(path)) and message in str(info.value), str(info.value)


def test_missing_file_says_so(tmp_path):
    with pytest.raises(ConfigError, match="does not exist.*--rules"):
        load_rules(tmp_path / "nope.yaml", BP)


def test_python_rule_from_module_next_to_the_rules_file(tmp_path):
    (tmp_path / "lab_rules_mod_a.py").write_text(textwrap.dedent("""
        def snout_left(pose, t_ns, bodyparts, x_max=100):
            return pose[bodyparts.index("snout"), 0] < x_max
    """))
    path = write(tmp_path, """
        rules:
          - name: left
            enter: {python: {name: "lab_rules_mod_a:snout_left", params: {x_max: 50}}}
            actions: [{pulse: {channel: 0, ms: 1}}]
    """)
    stage = load_rules(path, BP)
    cond = stage.engine.rules[0].enter
    assert isinstance(cond, Custom)
    pose = np.zeros((4, 3))
    pose[0, 0] = 40
    assert stage.engine.evaluate(0, 0, pose)[0].kind == "pulse"


def test_python_rule_signature_checked_at_load(tmp_path):
    (tmp_path / "lab_bad.py").write_text("def f(pose):\n    return True\n")
    path = write(tmp_path, "rules: [{name: r, enter: {python: 'lab_bad.py:f'}}]")
    with pytest.raises(ConfigError, match=r"rule 'r': enter.python: custom rule 'lab_bad.py:f': function cannot be called"):
        load_rule_file(path, BP)
    path = write(tmp_path, "rules: [{name: r, enter: {python: {name: 'lab_bad.py:f', params: {x: 1}}}}]")
    with pytest.raises(ConfigError, match="cannot be called"):
        load_rule_file(path, BP)


# --- the shipped examples ----------------------------------------------------------------------
def frames_on_circle(radii, center=(120.0, 250.0)):
    poses = np.zeros((len(radii), 4, 3))
    poses[:, :, 2] = 0.99
    poses[:, 0, 0] = center[0] + np.asarray(radii, float)
    poses[:, 0, 1] = center[1]
    poses[:, 3, 0] = poses[:, 0, 0] + 80
    poses[:, 3, 1] = center[1]
    return poses


def test_zone_trigger_example(tmp_path):
    stage = load_rules(EXAMPLES / "rules.yaml", BP)
    engine = stage.engine
    # In at frame 2, hover across r=50..58 (inside the r=60 exit circle) until 10, out at 10,
    # back in at 12 (400 ms after the pulse: refractory), out, back in at 30 (1 s later).
    radii = [100, 70, 45, 52, 48, 55, 49, 58, 47, 51, 65, 100, 40, 40, 80] + [100] * 15 + [30, 30]
    fired = []
    for i, pose in enumerate(frames_on_circle(radii)):
        for a in engine.evaluate(i * 33_333_333, i, pose, pose):
            fired.append((i, a.kind, a.channel, a.duration_ms))
    assert fired == [(2, "pulse", 0, 10.0), (2, "event", 0, 0.0), (30, "pulse", 0, 10.0), (30, "event", 0, 0.0)]


def test_custom_rule_example():
    stage = load_rules(EXAMPLES / "rules_custom.yaml", BP)
    engine = stage.engine
    # Running straight at the target at 150 px/s from the right, tail behind the snout.
    n = 12
    poses = np.zeros((n, 4, 3))
    poses[:, :, 2] = 0.99
    poses[:, 0, 0] = 500 - 5 * np.arange(n)  # 5 px per 33.3 ms frame = 150 px/s
    poses[:, 0, 1] = 250
    poses[:, 3, 0] = poses[:, 0, 0] + 80
    poses[:, 3, 1] = 250
    poses[8:, 3, 1] = 250 - 80 * math.tan(math.radians(60))  # body turns 60 degrees away: heading fails
    kinds = []
    for i in range(n):
        kinds += [(i, a.kind, a.channel) for a in engine.evaluate(i * 33_333_333, i, poses[i])]
    # Speed is known from frame 1; held >= 100 ms at frame 5 (frame 4 is 99.99999 ms after 1).
    assert kinds == [(5, "high", 1), (8, "low", 1)]
