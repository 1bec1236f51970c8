"""A rule: condition(s) with hysteresis, timing, and the actions it triggers.

Declarative and immutable; :class:`rtpose.rules.engine.RuleEngine` runs them.
See docs/rules.md for the semantics of every field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import ConfigError
from .conditions import Condition

POSE_KINDS = ("predicted", "measured")
NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")


@dataclass(frozen=True)
class Pulse:
    """Pulse TTL ``channel`` high for ``ms`` milliseconds when the rule fires."""

    channel: int
    ms: float


@dataclass(frozen=True)
class High:
    """Set ``channel`` high when the rule fires and low when it ends."""

    channel: int


@dataclass(frozen=True)
class SendEvent:
    """Publish an event message (ZeroMQ topic ``event``) when the rule fires."""


ActionSpec = Pulse | High | SendEvent


@dataclass(frozen=True)
class Rule:
    """One rule.

    The rule *engages* when ``enter`` is true and *disengages* when ``stay``
    (default: ``enter``) stops being true — a looser ``stay`` gives hysteresis.
    It *fires* once ``min_duration_ms`` after engaging if it is still engaged
    and at least ``refractory_ms`` have passed since it last fired; an episode
    whose firing moment falls inside the refractory period never fires. It
    *ends* when it disengages after firing. Its trigger state is True from
    firing to ending.

    ``animal`` (multi-animal models): which animal the rule is about — ``"any"``
    (each animal separately, with its own timers; the default when a condition
    reads the rule's animal), ``"all"`` (every animal present at once), an
    individual's name, or an integer track id. None: the default.
    """

    name: str
    enter: Condition
    stay: Condition | None = None
    pose: str = "predicted"
    min_likelihood: float = 0.6
    min_duration_ms: float = 0.0
    refractory_ms: float = 0.0
    actions: tuple[ActionSpec, ...] = field(default_factory=tuple)
    animal: str | int | None = None

    def __post_init__(self) -> None:
        where = f"rule {self.name!r}"
        if not isinstance(self.name, str) or not NAME_RE.match(self.name):
            raise ConfigError(f"rule name {self.name!r}: use letters, digits, '_', '.' or '-'")
        if self.animal is not None and (isinstance(self.animal, bool) or not isinstance(self.animal, (str, int))):
            raise ConfigError(f"{where}: animal {self.animal!r} must be a name, 'any', 'all' or a track id")
        if self.pose not in POSE_KINDS:
            raise ConfigError(f"{where}: pose is {self.pose!r}; use one of {', '.join(POSE_KINDS)}")
        if not 0.0 <= self.min_likelihood <= 1.0:
            raise ConfigError(f"{where}: min_likelihood {self.min_likelihood} must be within 0..1")
        for attr in ("min_duration_ms", "refractory_ms"):
            if not getattr(self, attr) >= 0.0:
                raise ConfigError(f"{where}: {attr} must be >= 0, got {getattr(self, attr)}")
        for a in self.actions:
            if isinstance(a, (Pulse, High)) and (not isinstance(a.channel, int) or a.channel < 0):
                raise ConfigError(f"{where}: action channel must be an integer >= 0, got {a.channel!r}")
            if isinstance(a, Pulse) and not a.ms > 0:
                raise ConfigError(f"{where}: pulse ms must be > 0, got {a.ms!r}")

    def bodyparts(self) -> set[str]:
        names = self.enter.bodyparts()
        if self.stay is not None:
            names |= self.stay.bodyparts()
        return names
