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
from .conditions import AllOf, AnyOf, Condition, Distance, Not, Speed, Zone
from .geometry import Circle, Polygon, Rectangle
from .rule import POSE_KINDS, ActionSpec, High, Pulse, Rule, SendEvent

FILE_VERSION = 1
TOP_KEYS = ("version", "defaults", "rules")
DEFAULT_KEYS = ("pose", "min_likelihood", "min_duration_ms", "refractory_ms")
RULE_KEYS = ("name", "description", "enter", "stay") + DEFAULT_KEYS + ("actions",)
CONDITION_KEYS = ("zone", "speed", "distance", "all", "any", "not", "python")
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


def load_rule_file(path: str | Path, bodyparts: Sequence[str]) -> list[Rule]:
    """Read and validate a YAML rules file against the model's ``bodyparts``."""
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
    return parse_rules(data, bodyparts, source=str(path), base_dir=path.resolve().parent)


def parse_rules(data: Any, bodyparts: Sequence[str], *, source: str = "<rules>",
                base_dir: Path | None = None) -> list[Rule]:
    """Validate already-parsed YAML data (a mapping) and build the rules."""
    top = _Where(source)
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

    rules_data = data.get("rules")
    if not isinstance(rules_data, list) or not rules_data:
        raise top.error("rules", "must be a non-empty list of rules")
    parser = _Parser(tuple(bodyparts), base_dir)
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
        try:
            rules.append(Rule(name=name, enter=enter, stay=stay, actions=actions, **fields))
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
    def __init__(self, bodyparts: tuple[str, ...], base_dir: Path | None):
        self.bodyparts = bodyparts
        self.base_dir = base_dir

    def bodypart(self, v: Any, where: _Where, field: str) -> str:
        if not isinstance(v, str):
            raise where.error(field, f"must be a bodypart name, got {v!r}")
        if v not in self.bodyparts:
            raise where.error(field, f"unknown bodypart {v!r}; the model's bodyparts are {', '.join(self.bodyparts)}")
        return v

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
            d = self.mapping(v, ("bodypart",) + SHAPE_KEYS, where, f)
            if "bodypart" not in d:
                raise where.error(f + ".bodypart", "missing; which bodypart must be in the zone?")
            shapes = [s for s in SHAPE_KEYS if s in d]
            if len(shapes) != 1:
                raise where.error(f, f"needs exactly one shape of {', '.join(SHAPE_KEYS)}, got {shapes or 'none'}")
            return Zone(self.bodypart(d["bodypart"], where, f + ".bodypart"),
                        self.shape(shapes[0], d[shapes[0]], where, f"{f}.{shapes[0]}"))
        if key == "speed":
            d = self.mapping(v, ("bodypart", "above", "below"), where, f)
            if "bodypart" not in d:
                raise where.error(f + ".bodypart", "missing")
            above, below = self.thresholds(d, where, f, "px/s")
            return Speed(self.bodypart(d["bodypart"], where, f + ".bodypart"), above, below)
        if key == "distance":
            d = self.mapping(v, ("between", "above", "below"), where, f)
            pair = d.get("between")
            if not isinstance(pair, list) or len(pair) != 2:
                raise where.error(f + ".between", f"must list two bodyparts, e.g. [snout, tailbase]; got {pair!r}")
            a = self.bodypart(pair[0], where, f + ".between[0]")
            b = self.bodypart(pair[1], where, f + ".between[1]")
            if a == b:
                raise where.error(f + ".between", f"names {a!r} twice; the distance would always be 0")
            above, below = self.thresholds(d, where, f, "px")
            return Distance(a, b, above, below)
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
