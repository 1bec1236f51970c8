"""Declarative closed-loop rules: zones, speeds, distances → pulses, TTL levels, events.

Load a YAML rules file with :func:`load_rules` (documented in docs/rules.md) to
get a pipeline stage, or build :class:`Rule` objects and a :class:`RuleEngine`
directly. The engine is pure (pose + time in, actions out). Custom conditions
are plain Python functions registered with :func:`custom_rule`.
"""

from .conditions import AllOf, AnyOf, Condition, Custom, Distance, FrameContext, Not, Speed, Zone
from .config import load_rule_file, parse_rules
from .custom import custom_rule, make_condition
from .engine import RuleEngine
from .geometry import Circle, Polygon, Rectangle
from .rule import High, Pulse, Rule, SendEvent
from .stage import RulesStage, load_rules

__all__ = [
    "AllOf", "AnyOf", "Circle", "Condition", "Custom", "Distance", "FrameContext", "High", "Not",
    "Polygon", "Pulse", "Rectangle", "Rule", "RuleEngine", "RulesStage", "SendEvent", "Speed", "Zone",
    "custom_rule", "load_rule_file", "load_rules", "make_condition", "parse_rules",
]
