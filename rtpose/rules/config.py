"""Reading rules files (YAML) into :class:`~rtpose.rules.rule.Rule` objects.

Every problem raises :class:`~rtpose.errors.ConfigError` naming the file, the
rule and the field (e.g. ``rules.yaml: rule 'poke': enter.zone.bodypart: unknown
bodypart 'snot' ...``). The format is documented in docs/rules.md.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import yaml

from ..errors import ConfigError
from . import custom
from .animals import OTHER, RULE_ANIMALS, SELF, PartIndex
from .conditions import (ENDPOINT_ANIMALS, FOLLOWER_ANIMALS, LEADER_ANIMALS, LEAF_ANIMALS, AllOf, AnyOf, Condition,
                         Distance, Follow, Not, Speed, Zone)
from .geometry import Circle, Polygon, Rectangle
from .rule import POSE_KINDS, ActionSpec, High, Pulse, Rule, SendEvent

FILE_VERSION = 1
TOP_KEYS = ("version", "defaults", "rules")
DEFAULT_KEYS = ("pose", "min_likelihood", "min_duration_ms", "refractory_ms", "animal")
RULE_KEYS = ("name", "description", "enter", "stay") + DEFAULT_KEYS + ("actions",)
CONDITION_KEYS = ("zone", "speed", "distance", "follow", "all", "any", "not", "python")
FOLLOW_KEYS = ("animal", "leader", "bodypart", "leader_bodypart", "within", "min_speed", "max_angle_deg", "heading")
SHAPE_KEYS = ("circle", "rectangle", "polygon")
ACTION_KEYS = ("pulse", "high", "event")
BUILTIN_DEFAULTS = {"pose": "predicted", "min_likelihood": 0.6, "min_duration_ms": 0.0, "refractory_ms": 0.0}


class _Where:
    """Builds error messages: '<file>: rule <name>: <field>: <problem>'."""

    def __init__(self, source: str, rule: str | None = None):
        self.source = source
        self.rule = rule

    def error(self, field: str, problem: str) -> ConfigError:
        parts = [self.source]
        if self.rule is not None:
            parts.append(f"rule {self.rule}")
        if field:
            parts.append(field)
        return ConfigError(": ".join(parts) + ": " + problem)


def load_rule_file(path: str | Path, bodyparts: Sequence[str], layout=None) -> list[Rule]:
    """Read and validate a YAML rules file against the model's ``bodyparts``.

    Multi-animal models: ``layout`` is the model's
    :class:`~rtpose.multianimal.layout.AnimalLayout` and ``bodyparts`` its flat names;
    rules name the layout's body parts and animals (docs/rules.md, "Several animals").
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"rules file {str(path)!r} does not exist; check the --rules path") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"rules file {str(path)!r} is not UTF-8 text (byte {exc.start}: {exc.object[exc.start:exc.start + 1]!r}); "
                          "save it as UTF-8 (any text editor can) or check that it is the rules file") from None
    except OSError as exc:
        raise ConfigError(f"cannot read rules file {str(path)!r}: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    return parse_rules(data, bodyparts, source=str(path), base_dir=path.resolve().parent, layout=layout)


def parse_rules(data: Any, bodyparts: Sequence[str], *, source: str = "<rules>",
                base_dir: Path | None = None, layout=None) -> list[Rule]:
    """Validate already-parsed YAML data (a mapping) and build the rules."""
    top = _Where(source)
    try:
        index = PartIndex(bodyparts, layout)
    except ConfigError as exc:
        raise top.error("", str(exc)) from None
    if not isinstance(data, dict):
        raise top.error("", "a rules file is a mapping with a 'rules:' list (see docs/rules.md)")
    _no_unknown_keys(data, TOP_KEYS, top, "")
    version = data.get("version", FILE_VERSION)
    if version != FILE_VERSION:
        raise top.error("version", f"is {version!r}; this rtpose reads rules files of version {FILE_VERSION}")
    defaults = dict(BUILTIN_DEFAULTS)
    user_defaults = data.get("defaults") or {}
    if not isinstance(user_defaults, dict):
        raise top.error("defaults", "must be a mapping")
    _no_unknown_keys(user_defaults, DEFAULT_KEYS, top, "defaults")
    defaults.update(_timing_fields(user_defaults, top, "defaults."))
    default_animal = None
    if "animal" in user_defaults:
        default_animal = _rule_animal(index, user_defaults["animal"], top, "defaults.animal")

    rules_data = data.get("rules")
    if not isinstance(rules_data, list) or not rules_data:
        raise top.error("rules", "must be a non-empty list of rules")
    parser = _Parser(index, base_dir)
    rules: list[Rule] = []
    seen: dict[str, int] = {}
    for i, rd in enumerate(rules_data):
        label = f"#{i + 1}"
        if isinstance(rd, dict) and isinstance(rd.get("name"), str):
            label = repr(rd["name"])
        where = _Where(source, label)
        if not isinstance(rd, dict):
            raise where.error("", "each rule is a mapping with name, enter and actions")
        _no_unknown_keys(rd, RULE_KEYS, where, "")
        name = rd.get("name")
        if not isinstance(name, str) or not name:
            raise where.error("name", "every rule needs a name (letters, digits, '_', '.', '-')")
        if name in seen:
            raise where.error("name", f"duplicate rule name (rule #{seen[name] + 1} has it too)")
        seen[name] = i
        if "enter" not in rd:
            raise where.error("enter", "missing; it is the condition that turns the rule on")
        fields = dict(defaults)
        fields.update(_timing_fields(rd, where, ""))
        enter = parser.condition(rd["enter"], where, "enter")
        stay = parser.condition(rd["stay"], where, "stay") if rd.get("stay") is not None else None
        actions = parser.actions(rd.get("actions", []), where)
        reads = enter.reads_rule_animal(index) or (stay is not None and stay.reads_rule_animal(index))
        animal = default_animal if reads else None
        if "animal" in rd:
            animal = _rule_animal(index, rd["animal"], where, "animal")
            if not reads:
                raise where.error("animal", "no condition reads the rule's animal (each names its own animal "
                                            "or a unique bodypart); remove it")
        try:
            rules.append(Rule(name=name, enter=enter, stay=stay, actions=actions, animal=animal, **fields))
        except ConfigError as exc:
            raise where.error("", str(exc)) from None
    return rules


def _timing_fields(d: dict, where: _Where, prefix: str) -> dict:
    out = {}
    if "pose" in d:
        if d["pose"] not in POSE_KINDS:
            raise where.error(prefix + "pose", f"is {d['pose']!r}; use one of {', '.join(POSE_KINDS)}")
        out["pose"] = d["pose"]
    if "min_likelihood" in d:
        out["min_likelihood"] = _number(d["min_likelihood"], where, prefix + "min_likelihood", lo=0.0, hi=1.0)
    for key in ("min_duration_ms", "refractory_ms"):
        if key in d:
            out[key] = _number(d[key], where, prefix + key, lo=0.0)
    return out


def _rule_animal(index: PartIndex, v: Any, where: _Where, field: str) -> str | int:
    try:
        index.selector(v, RULE_ANIMALS)
    except ConfigError as exc:
        raise where.error(field, str(exc)) from None
    return v


def _no_unknown_keys(d: dict, allowed: Sequence[str], where: _Where, field: str) -> None:
    unknown = [k for k in d if k not in allowed]
    if unknown:
        f = f"{field}.{unknown[0]}" if field else str(unknown[0])
        raise where.error(f, f"unknown key {unknown[0]!r}; allowed here: {', '.join(allowed)}")


def _number(v: Any, where: _Where, field: str, *, lo: float | None = None, hi: float | None = None,
            positive: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise where.error(field, f"must be a number, got {v!r}")
    if positive and not v > 0:
        raise where.error(field, f"must be > 0, got {v!r}")
    if lo is not None and v < lo:
        raise where.error(field, f"must be >= {lo:g}, got {v!r}")
    if hi is not None and v > hi:
        raise where.error(field, f"must be <= {hi:g}, got {v!r}")
    return float(v)


def _point(v: Any, where: _Where, field: str) -> tuple[float, float]:
    if not isinstance(v, (list, tuple)) or len(v) != 2:
        raise where.error(field, f"must be a point [x, y] in pixels, got {v!r}")
    return (_number(v[0], where, field + "[0]"), _number(v[1], where, field + "[1]"))


def _single_key(d: Any, allowed: Sequence[str], where: _Where, field: str, what: str) -> tuple[str, Any]:
    if isinstance(d, str) and d in allowed:
        return d, None
    if not isinstance(d, dict) or len(d) != 1:
        raise where.error(field, f"a {what} is a mapping with exactly one of: {', '.join(allowed)}; got {d!r}")
    (key, value), = d.items()
    if key not in allowed:
        raise where.error(f"{field}.{key}", f"unknown {what} {key!r}; use one of {', '.join(allowed)}")
    return key, value


class _Parser:
    def __init__(self, index: PartIndex, base_dir: Path | None):
        self.index = index
        self.base_dir = base_dir

    def bodypart(self, v: Any, where: _Where, field: str) -> str:
        if not isinstance(v, str):
            raise where.error(field, f"must be a bodypart name, got {v!r}")
        problem = self.index.part_problem(v)
        if problem is not None:
            raise where.error(field, problem)
        return v

    def animal(self, d: dict, where: _Where, field: str, allowed: Sequence[str], part: str | None = None):
        """The ``animal`` value of mapping ``d`` (None when absent), checked against the model."""
        if "animal" not in d:
            return None
        try:
            self.index.selector(d["animal"], allowed)
        except ConfigError as exc:
            raise where.error(field + ".animal", str(exc)) from None
        if part is not None and not self.index.is_animal_part(part):
            raise where.error(field + ".animal",
                              f"{part!r} is a unique bodypart (one per frame, no animal); remove 'animal'")
        return d["animal"]

    def endpoint(self, v: Any, where: _Where, field: str) -> tuple[str, Any]:
        """A distance's ``from`` / ``to``: a bodypart name or {bodypart, animal}."""
        if isinstance(v, str):
            return self.bodypart(v, where, field), None
        d = self.mapping(v, ("bodypart", "animal"), where, field)
        if "bodypart" not in d:
            raise where.error(field + ".bodypart", "missing")
        part = self.bodypart(d["bodypart"], where, field + ".bodypart")
        return part, self.animal(d, where, field, ENDPOINT_ANIMALS, part)

    def checked(self, cond: Condition, where: _Where, field: str) -> Condition:
        try:
            cond.check(self.index)
        except ConfigError as exc:
            raise where.error(field, str(exc)) from None
        return cond

    def mapping(self, v: Any, allowed: Sequence[str], where: _Where, field: str) -> dict:
        if not isinstance(v, dict):
            raise where.error(field, f"must be a mapping with keys from {', '.join(allowed)}; got {v!r}")
        _no_unknown_keys(v, allowed, where, field)
        return v

    def thresholds(self, d: dict, where: _Where, field: str, unit: str) -> tuple[float | None, float | None]:
        above = _number(d["above"], where, f"{field}.above", lo=0.0) if d.get("above") is not None else None
        below = _number(d["below"], where, f"{field}.below", lo=0.0) if d.get("below") is not None else None
        if above is None and below is None:
            raise where.error(field, f"needs 'above' and/or 'below' (in {unit})")
        if above is not None and below is not None and not above < below:
            raise where.error(field, f"above ({above:g}) must be less than below ({below:g}) or nothing can match")
        return above, below

    def condition(self, node: Any, where: _Where, field: str) -> Condition:
        key, v = _single_key(node, CONDITION_KEYS, where, field, "condition")
        f = f"{field}.{key}"
        if key == "zone":
            d = self.mapping(v, ("bodypart", "animal") + SHAPE_KEYS, where, f)
            if "bodypart" not in d:
                raise where.error(f + ".bodypart", "missing; which bodypart must be in the zone?")
            shapes = [s for s in SHAPE_KEYS if s in d]
            if len(shapes) != 1:
                raise where.error(f, f"needs exactly one shape of {', '.join(SHAPE_KEYS)}, got {shapes or 'none'}")
            part = self.bodypart(d["bodypart"], where, f + ".bodypart")
            return self.checked(Zone(part, self.shape(shapes[0], d[shapes[0]], where, f"{f}.{shapes[0]}"),
                                     self.animal(d, where, f, LEAF_ANIMALS, part)), where, f)
        if key == "speed":
            d = self.mapping(v, ("bodypart", "animal", "above", "below"), where, f)
            if "bodypart" not in d:
                raise where.error(f + ".bodypart", "missing")
            above, below = self.thresholds(d, where, f, "px/s")
            part = self.bodypart(d["bodypart"], where, f + ".bodypart")
            return self.checked(Speed(part, above, below, self.animal(d, where, f, LEAF_ANIMALS, part)), where, f)
        if key == "distance":
            d = self.mapping(v, ("between", "from", "to", "animal", "above", "below"), where, f)
            if "between" in d and ("from" in d or "to" in d):
                raise where.error(f, "use either between: [a, b] (one animal's two bodyparts) or from: / to: "
                                     "(each with its own animal), not both")
            if "between" not in d and ("from" in d or "to" in d):
                return self.relation(d, where, f)
            pair = d.get("between")
            if not isinstance(pair, list) or len(pair) != 2:
                raise where.error(f + ".between", f"must list two bodyparts, e.g. [snout, tailbase]; got {pair!r}")
            a = self.bodypart(pair[0], where, f + ".between[0]")
            b = self.bodypart(pair[1], where, f + ".between[1]")
            if a == b:
                raise where.error(f + ".between", f"names {a!r} twice; the distance would always be 0")
            above, below = self.thresholds(d, where, f, "px")
            animal = None
            if "animal" in d:
                animal = self.animal(d, where, f, LEAF_ANIMALS,
                                     a if self.index.is_animal_part(a) or not self.index.is_animal_part(b) else b)
            return self.checked(Distance(a, b, above, below, animal), where, f)
        if key == "follow":
            return self.follow(v, where, f)
        if key in ("all", "any"):
            if not isinstance(v, list) or not v:
                raise where.error(f, "must be a non-empty list of conditions")
            parts = tuple(self.condition(c, where, f"{f}[{i}]") for i, c in enumerate(v))
            return AllOf(parts) if key == "all" else AnyOf(parts)
        if key == "not":
            return Not(self.condition(v, where, f))
        # python
        if isinstance(v, str):
            ref, params = v, {}
        else:
            d = self.mapping(v, ("name", "params"), where, f)
            ref, params = d.get("name"), d.get("params") or {}
            if not isinstance(params, dict):
                raise where.error(f + ".params", "must be a mapping of keyword arguments")
        if not isinstance(ref, str) or not ref:
            raise where.error(f, "must name a custom rule: 'module:function', 'file.py:function' or a registered name")
        try:
            return custom.make_condition(custom.resolve(ref, self.base_dir), params, label=ref)
        except ConfigError as exc:
            raise where.error(f, str(exc)) from None

    def relation(self, d: dict, where: _Where, f: str) -> Condition:
        """``distance: {from: ..., to: ..., below/above}``: two bodyparts, each with its own animal."""
        for side in ("from", "to"):
            if side not in d:
                raise where.error(f"{f}.{side}", "missing; a distance with from: needs to: (and the other way round)")
        if "animal" in d:
            raise where.error(f + ".animal", "with from: / to: give each side its own animal, "
                                             "e.g. from: {animal: mouse1, bodypart: snout}")
        a, animal_a = self.endpoint(d["from"], where, f + ".from")
        b, animal_b = self.endpoint(d["to"], where, f + ".to")
        above, below = self.thresholds(d, where, f, "px")
        index = self.index
        if not index.multi_animal:
            if a == b:
                raise where.error(f, f"names {a!r} twice; the distance would always be 0")
            return Distance(a, b, above, below)
        for side, part, animal, opposite in (("from", a, animal_a, b), ("to", b, animal_b, a)):
            if animal == OTHER and not index.is_animal_part(opposite):
                raise where.error(f"{f}.{side}.animal", f"'other' means other than the animal on the opposite side, "
                                                        f"but {opposite!r} is a unique bodypart")
        if animal_a == OTHER and animal_b == OTHER:
            raise where.error(f + ".to.animal", "'other' on both sides; 'other' means other than the animal on the "
                                                "opposite side, so use it on one side only")
        if index.is_animal_part(a) and animal_a is None:
            animal_a = SELF
        if index.is_animal_part(b) and animal_b is None:
            animal_b = SELF
        if a == b and animal_a == animal_b:
            raise where.error(f, f"from and to are the same animal's {a!r} (distance 0); "
                                 "use animal: other on one side for another animal's")
        if not index.is_animal_part(b):  # a unique part on the 'to' side: it has no animal of its own
            return self.checked(Distance(a, b, above, below, animal_a), where, f)
        if not index.is_animal_part(a):  # the unique part first: swap so that b carries no animal
            return self.checked(Distance(b, a, above, below, animal_b), where, f)
        return self.checked(Distance(a, b, above, below, animal_a, animal_b), where, f)

    def follow(self, v: Any, where: _Where, f: str) -> Condition:
        d = self.mapping(v, FOLLOW_KEYS, where, f)
        if not self.index.multi_animal:
            raise where.error(f, "needs a multi-animal model (one animal cannot follow another)")
        for key in FOLLOW_KEYS[2:]:
            if key not in d:
                raise where.error(f"{f}.{key}", "missing; 'follow' needs bodypart, leader_bodypart, within (px), "
                                                "min_speed (px/s), max_angle_deg and heading: [back, front]")
        parts = {}
        for key in ("bodypart", "leader_bodypart"):
            parts[key] = self.bodypart(d[key], where, f"{f}.{key}")
        heading = d["heading"]
        if not isinstance(heading, list) or len(heading) != 2:
            raise where.error(f + ".heading", f"must list two bodyparts [back, front] giving the leader's heading, "
                                              f"e.g. [tailbase, snout]; got {heading!r}")
        heading = tuple(self.bodypart(h, where, f"{f}.heading[{i}]") for i, h in enumerate(heading))
        for key, part in list(parts.items()) + [(f"heading[{i}]", h) for i, h in enumerate(heading)]:
            if not self.index.is_animal_part(part):
                raise where.error(f"{f}.{key}", f"{part!r} is a unique bodypart; 'follow' compares animals' "
                                                "own bodyparts")
        if heading[0] == heading[1]:
            raise where.error(f + ".heading", f"names {heading[0]!r} twice; the heading needs two bodyparts")
        within = _number(d["within"], where, f + ".within", positive=True)
        min_speed = _number(d["min_speed"], where, f + ".min_speed", positive=True)
        max_angle = _number(d["max_angle_deg"], where, f + ".max_angle_deg", positive=True, hi=180.0)
        follower = self.animal(d, where, f, FOLLOWER_ANIMALS)
        leader = OTHER
        if "leader" in d:
            try:
                self.index.selector(d["leader"], LEADER_ANIMALS)
            except ConfigError as exc:
                raise where.error(f + ".leader", str(exc)) from None
            leader = d["leader"]
        return self.checked(Follow(parts["bodypart"], parts["leader_bodypart"], within, min_speed, max_angle,
                                   heading, follower, leader), where, f)

    def shape(self, kind: str, v: Any, where: _Where, f: str):
        if kind == "circle":
            d = self.mapping(v, ("center", "radius"), where, f)
            if "center" not in d or "radius" not in d:
                raise where.error(f, "needs center: [x, y] and radius (px)")
            return Circle(_point(d["center"], where, f + ".center"),
                          _number(d["radius"], where, f + ".radius", positive=True))
        if kind == "rectangle":
            if not isinstance(v, list) or len(v) != 2:
                raise where.error(f, f"must be two opposite corners [[x0, y0], [x1, y1]]; got {v!r}")
            a, b = _point(v[0], where, f + "[0]"), _point(v[1], where, f + "[1]")
            if a[0] == b[0] or a[1] == b[1]:
                raise where.error(f, f"corners {list(a)} and {list(b)} span no area")
            return Rectangle(a, b)
        if not isinstance(v, list) or len(v) < 3:
            raise where.error(f, f"must list at least three vertices [[x, y], ...]; got {v!r}")
        return Polygon(tuple(_point(p, where, f"{f}[{i}]") for i, p in enumerate(v)))

    def actions(self, v: Any, where: _Where) -> tuple[ActionSpec, ...]:
        if v is None:
            return ()
        if not isinstance(v, list):
            raise where.error("actions", "must be a list, e.g. [{pulse: {channel: 0, ms: 10}}]")
        out: list[ActionSpec] = []
        for i, node in enumerate(v):
            f = f"actions[{i}]"
            key, d = _single_key(node, ACTION_KEYS, where, f, "action")
            f = f"{f}.{key}"
            if key == "event":
                if d not in (None, {}):
                    raise where.error(f, "takes no options; write '- event'")
                out.append(SendEvent())
                continue
            d = self.mapping(d, ("channel", "ms") if key == "pulse" else ("channel",), where, f)
            ch = d.get("channel")
            if isinstance(ch, bool) or not isinstance(ch, int) or ch < 0:
                raise where.error(f + ".channel", f"must be an output channel number >= 0, got {ch!r}")
            if key == "pulse":
                if "ms" not in d:
                    raise where.error(f + ".ms", "missing; how long is the pulse in milliseconds?")
                out.append(Pulse(ch, _number(d["ms"], where, f + ".ms", positive=True)))
            else:
                out.append(High(ch))
        return tuple(out)
