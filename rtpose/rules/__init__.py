"""Declarative closed-loop rules: zones, speeds, distances → pulses, TTL levels, events.

Multi-animal models: rules address animals (``animal: any | all | <name> | <track id>``)
and relate them (distance between two animals' bodyparts, one following another).

Load a YAML rules file with :func:`load_rules` (documented in docs/rules.md) to
get a pipeline stage, or build :class:`Rule` objects and a :class:`RuleEngine`
directly. The engine is pure (pose + time in, actions out). Custom conditions
are plain Python functions registered with :func:`custom_rule`.
"""

from .animals import PartIndex
from .conditions import AllOf, AnyOf, Condition, Custom, Distance, Follow, FrameContext, Not, Speed, Zone
from .config import load_rule_file, parse_rules
from .custom import custom_rule, make_condition
from .engine import RuleEngine
from .geometry import Circle, Polygon, Rectangle
from .rule import High, Pulse, Rule, SendEvent
from .stage import RulesStage, load_rules

__all__ = [
    "AllOf", "AnyOf", "Circle", "Condition", "Custom", "Distance", "Follow", "FrameContext", "High", "Not", "PartIndex",
    "Polygon", "Pulse", "Rectangle", "Rule", "RuleEngine", "RulesStage", "SendEvent", "Speed", "Zone",
    "custom_rule", "load_rule_file", "load_rules", "make_condition", "parse_rules",
]
