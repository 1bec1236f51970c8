"""Rule conditions: what a rule tests on one frame's pose.

A condition is a small frozen description (bodypart *names*, thresholds,
shapes). :meth:`Condition.compile` binds it to a model's bodypart order and a
likelihood threshold and returns an evaluator ``f(ctx) -> True | False | None``.

Three-valued logic: ``None`` means *unknown* — a bodypart the condition needs
has a likelihood below the rule's threshold (or a NaN coordinate), or a speed
has no previous frame yet. ``all`` / ``any`` / ``not`` follow Kleene logic
(``all`` is False as soon as one part is False, ``any`` True as soon as one is
True, otherwise unknown wins), and a rule treats an unknown result as False.

Pure: no clocks, no I/O; time and the previous pose come in through
:class:`FrameContext`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Sequence

import numpy as np

from ..errors import ConfigError
from .geometry import Shape

Tri = Optional[bool]
Evaluator = Callable[["FrameContext"], Tri]
#: What a custom Python condition is called with: (pose (K,3), t_ns, bodyparts) -> bool or None.
ConditionFn = Callable[[np.ndarray, int, Sequence[str]], object]


class FrameContext:
    """One stream's view of the current frame for one pose kind (measured or predicted).

    ``pose`` is (K, 3) x, y, likelihood; ``prev_pose`` the same kind's pose on the
    previous frame of the stream (or None), ``dt_s`` the time since it in seconds.
    """

    __slots__ = ("pose", "prev_pose", "dt_s", "t_ns", "bodyparts")

    def __init__(self, bodyparts: Sequence[str]):
        self.pose: np.ndarray | None = None
        self.prev_pose: np.ndarray | None = None
        self.dt_s = 0.0
        self.t_ns = 0
        self.bodyparts = tuple(bodyparts)


def _point(ctx: FrameContext, k: int, min_lik: float) -> tuple[float, float] | None:
    """(x, y) of bodypart k, or None when its likelihood is under the threshold or it is NaN."""
    row = ctx.pose[k]
    x, y, lik = float(row[0]), float(row[1]), float(row[2])
    if not lik >= min_lik or math.isnan(x) or math.isnan(y):
        return None
    return x, y


def _compare(value: float, above: float | None, below: float | None) -> bool:
    if above is not None and not value > above:
        return False
    if below is not None and not value < below:
        return False
    return True


class Condition:
    """Base class of condition descriptions."""

    def bodyparts(self) -> set[str]:
        """Names of the bodyparts this condition reads."""
        return set()

    def compile(self, index: Mapping[str, int], min_likelihood: float) -> Evaluator:  # pragma: no cover - abstract
        raise NotImplementedError


def _index(index: Mapping[str, int], name: str) -> int:
    try:
        return index[name]
    except KeyError:
        raise ConfigError(
            f"unknown bodypart {name!r}; the model's bodyparts are {', '.join(index)}"
        ) from None


@dataclass(frozen=True)
class Zone(Condition):
    """True while ``bodypart`` is inside ``shape`` (a geometry.Circle/Rectangle/Polygon)."""

    bodypart: str
    shape: Shape

    def bodyparts(self) -> set[str]:
        return {self.bodypart}

    def compile(self, index, min_likelihood):
        k = _index(index, self.bodypart)
        contains = self.shape.contains

        def zone(ctx: FrameContext) -> Tri:
            p = _point(ctx, k, min_likelihood)
            return None if p is None else contains(p[0], p[1])

        return zone


@dataclass(frozen=True)
class Speed(Condition):
    """Speed of ``bodypart`` in px/s between the previous and the current frame,
    compared with ``above`` (speed > above) and/or ``below`` (speed < below)."""

    bodypart: str
    above: float | None = None
    below: float | None = None

    def bodyparts(self) -> set[str]:
        return {self.bodypart}

    def compile(self, index, min_likelihood):
        k = _index(index, self.bodypart)
        above, below = self.above, self.below

        def speed(ctx: FrameContext) -> Tri:
            if ctx.prev_pose is None or ctx.dt_s <= 0.0:
                return None
            p = _point(ctx, k, min_likelihood)
            if p is None:
                return None
            prev = ctx.prev_pose[k]
            px, py, plik = float(prev[0]), float(prev[1]), float(prev[2])
            if not plik >= min_likelihood or math.isnan(px) or math.isnan(py):
                return None
            return _compare(math.hypot(p[0] - px, p[1] - py) / ctx.dt_s, above, below)

        return speed


@dataclass(frozen=True)
class Distance(Condition):
    """Distance in px between bodyparts ``a`` and ``b`` compared with ``above``/``below``."""

    a: str
    b: str
    above: float | None = None
    below: float | None = None

    def bodyparts(self) -> set[str]:
        return {self.a, self.b}

    def compile(self, index, min_likelihood):
        ka, kb = _index(index, self.a), _index(index, self.b)
        above, below = self.above, self.below

        def distance(ctx: FrameContext) -> Tri:
            pa = _point(ctx, ka, min_likelihood)
            pb = _point(ctx, kb, min_likelihood)
            if pa is None or pb is None:
                return None
            return _compare(math.hypot(pa[0] - pb[0], pa[1] - pb[1]), above, below)

        return distance


def _combine(parts, *, decisive: bool):
    """Three-valued all (decisive=False) / any (decisive=True): one decisive part settles it;
    otherwise any unknown part makes the result unknown."""

    def combined(ctx: FrameContext) -> Tri:
        unknown = False
        for part in parts:
            v = part(ctx)
            if v is decisive:
                return decisive
            if v is None:
                unknown = True
        return None if unknown else not decisive

    return combined


@dataclass(frozen=True)
class AllOf(Condition):
    conditions: tuple[Condition, ...]

    def bodyparts(self) -> set[str]:
        return set().union(*(c.bodyparts() for c in self.conditions))

    def compile(self, index, min_likelihood):
        parts = tuple(c.compile(index, min_likelihood) for c in self.conditions)

        return _combine(parts, decisive=False)


@dataclass(frozen=True)
class AnyOf(Condition):
    conditions: tuple[Condition, ...]

    def bodyparts(self) -> set[str]:
        return set().union(*(c.bodyparts() for c in self.conditions))

    def compile(self, index, min_likelihood):
        parts = tuple(c.compile(index, min_likelihood) for c in self.conditions)

        return _combine(parts, decisive=True)


@dataclass(frozen=True)
class Not(Condition):
    condition: Condition

    def bodyparts(self) -> set[str]:
        return self.condition.bodyparts()

    def compile(self, index, min_likelihood):
        inner = self.condition.compile(index, min_likelihood)

        def not_(ctx: FrameContext) -> Tri:
            v = inner(ctx)
            return None if v is None else not v

        return not_


@dataclass(frozen=True)
class Custom(Condition):
    """A user's Python condition (see :mod:`rtpose.rules.custom`).

    ``factory()`` is called once per stream and returns the callable
    ``(pose, t_ns, bodyparts) -> bool | None``; a class-based rule gets a fresh
    instance per stream, so it may keep its own state. It sees the pose kind
    its rule is evaluated on, read-only, with no likelihood gating applied.
    """

    label: str
    factory: Callable[[], ConditionFn]

    def compile(self, index, min_likelihood):
        fn = self.factory()

        def custom(ctx: FrameContext) -> Tri:
            view = ctx.pose.view()
            view.flags.writeable = False
            v = fn(view, ctx.t_ns, ctx.bodyparts)
            return None if v is None else bool(v)

        return custom
