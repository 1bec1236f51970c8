"""Rule conditions: what a rule tests on one frame's pose.

A condition is a small frozen description (bodypart *names*, thresholds,
shapes). :meth:`Condition.compile` binds it to a model's bodypart order and a
likelihood threshold and returns an evaluator ``f(ctx) -> True | False | None``.

Three-valued logic: ``None`` means *unknown* — a bodypart the condition needs
has a likelihood below the rule's threshold (or a NaN coordinate), or a speed
has no previous frame yet. ``all`` / ``any`` / ``not`` follow Kleene logic
(``all`` is False as soon as one part is False, ``any`` True as soon as one is
True, otherwise unknown wins), and a rule treats an unknown result as False.

Multi-animal models: a condition on a body part every animal has applies to
one animal, chosen by its ``animal`` selector (:mod:`rtpose.rules.animals`;
default: the rule's animal, which the engine sets per evaluation). ``any`` /
``other`` / ``all`` selectors combine the animals present with the same Kleene
``or`` / ``and``. :class:`Distance` (``from``/``to``) and :class:`Follow` relate
two animals.

Pure: no clocks, no I/O; time and the previous pose come in through
:class:`FrameContext`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np

from ..errors import ConfigError
from .animals import ALL, ANY, OTHER, SELF, PartIndex
from .geometry import Shape

Tri = Optional[bool]
Evaluator = Callable[["FrameContext"], Tri]
#: What a custom Python condition is called with: (pose (K,3), t_ns, bodyparts) -> bool or None.
ConditionFn = Callable[[np.ndarray, int, Sequence[str]], object]


class FrameContext:
    """One stream's view of the current frame for one pose kind (measured or predicted).

    ``pose`` is (K, 3) x, y, likelihood (a multi-animal model's flat (A*K + U, 3)
    pose); ``prev_pose`` the same kind's pose on the previous frame of the stream
    (or None), ``dt_s`` the time since it in seconds.

    Multi-animal models only: ``animal`` is the identity slot the rule is being
    evaluated for (-1: none), ``occupied`` (A,) bool says which slots hold an animal
    on this frame, ``track_ids`` / ``prev_track_ids`` the (A,) int64 track id per slot
    on this and the previous frame (-1: empty slot; None when the source gives none).
    """

    __slots__ = ("pose", "prev_pose", "dt_s", "t_ns", "bodyparts", "animal", "n_animals", "n_parts",
                 "occupied", "track_ids", "prev_track_ids")

    def __init__(self, bodyparts: Sequence[str], n_animals: int = 0, n_parts: int = 0):
        self.pose: np.ndarray | None = None
        self.prev_pose: np.ndarray | None = None
        self.dt_s = 0.0
        self.t_ns = 0
        self.bodyparts = tuple(bodyparts)
        self.animal = -1
        self.n_animals = n_animals
        self.n_parts = n_parts
        self.occupied = np.zeros(n_animals, bool)
        self.track_ids: np.ndarray | None = None
        self.prev_track_ids: np.ndarray | None = None

    def slot_of_track(self, track_id: int) -> int:
        """The slot holding ``track_id`` on this frame, or -1."""
        ids = self.track_ids
        if ids is not None:
            for s in range(self.n_animals):
                if ids[s] == track_id:
                    return s
        return -1

    def same_track(self, slot: int) -> bool:
        """False when the slot's track id changed since the previous frame (another animal took it)."""
        if self.track_ids is None or self.prev_track_ids is None:
            return True
        return self.track_ids[slot] == self.prev_track_ids[slot]


def _point(ctx: FrameContext, k: int, min_lik: float) -> tuple[float, float] | None:
    """(x, y) of pose row k, or None when its likelihood is under the threshold or it is NaN."""
    row = ctx.pose[k]
    x, y, lik = float(row[0]), float(row[1]), float(row[2])
    if not lik >= min_lik or math.isnan(x) or math.isnan(y):
        return None
    return x, y


def _prev_point(ctx: FrameContext, k: int, min_lik: float) -> tuple[float, float] | None:
    prev = ctx.prev_pose[k]
    x, y, lik = float(prev[0]), float(prev[1]), float(prev[2])
    if not lik >= min_lik or math.isnan(x) or math.isnan(y):
        return None
    return x, y


def _compare(value: float, above: float | None, below: float | None) -> bool:
    if above is not None and not value > above:
        return False
    if below is not None and not value < below:
        return False
    return True


def _and3(*values: Tri) -> Tri:
    if False in values:
        return False
    return None if None in values else True


#: ``animal:`` values each kind of condition accepts (besides individual names and track ids).
LEAF_ANIMALS = (SELF, ANY, ALL, OTHER)  # zone, speed, distance ``between``
ENDPOINT_ANIMALS = (SELF, ANY, OTHER)  # distance ``from`` / ``to``
FOLLOWER_ANIMALS = (SELF, ANY)
LEADER_ANIMALS = (OTHER,)


class Condition:
    """Base class of condition descriptions."""

    def bodyparts(self) -> set[str]:
        """Names of the bodyparts this condition reads."""
        return set()

    def compile(self, index: PartIndex, min_likelihood: float) -> Evaluator:  # pragma: no cover - abstract
        raise NotImplementedError

    def check(self, index: PartIndex) -> None:
        """Raise ConfigError when the condition names a bodypart or animal the model does not have."""
        self.compile(index, 0.5)

    def reads_rule_animal(self, index: PartIndex) -> bool:
        """True when the condition reads the rule's animal (``self``, the default, or ``other`` than it)."""
        return False


def _over(sel: tuple, core: Callable[[FrameContext, int], Tri]) -> Evaluator:
    """An evaluator applying ``core(ctx, slot)`` to the slot(s) ``sel`` picks (Kleene or/and for any/all)."""
    kind = sel[0]
    if kind == "slot":
        slot = sel[1]
        return lambda ctx: core(ctx, slot)
    if kind == SELF:
        def own(ctx: FrameContext) -> Tri:
            return None if ctx.animal < 0 else core(ctx, ctx.animal)
        return own
    if kind == "track":
        track = sel[1]

        def tracked(ctx: FrameContext) -> Tri:
            slot = ctx.slot_of_track(track)
            return None if slot < 0 else core(ctx, slot)
        return tracked
    if kind == ALL:
        def every(ctx: FrameContext) -> Tri:
            unknown, seen = False, False
            occupied = ctx.occupied
            for s in range(ctx.n_animals):
                if occupied[s]:
                    seen = True
                    v = core(ctx, s)
                    if v is False:
                        return False
                    if v is None:
                        unknown = True
            return None if unknown or not seen else True
        return every
    skip_own = kind == OTHER

    def some(ctx: FrameContext) -> Tri:
        if skip_own and ctx.animal < 0:
            return None
        unknown = False
        occupied = ctx.occupied
        for s in range(ctx.n_animals):
            if occupied[s] and not (skip_own and s == ctx.animal):
                v = core(ctx, s)
                if v is True:
                    return True
                if v is None:
                    unknown = True
        return None if unknown else False
    return some


def _reads_self(sel: tuple | None) -> bool:
    return sel is not None and sel[0] in (SELF, OTHER)


@dataclass(frozen=True)
class Zone(Condition):
    """True while ``bodypart`` is inside ``shape`` (a geometry.Circle/Rectangle/Polygon).

    ``animal`` (multi-animal models): whose bodypart, see :mod:`rtpose.rules.animals`;
    None is the rule's animal."""

    bodypart: str
    shape: Shape
    animal: str | int | None = None

    def bodyparts(self) -> set[str]:
        return {self.bodypart}

    def reads_rule_animal(self, index):
        return _reads_self(index.bind(self.bodypart, self.animal, LEAF_ANIMALS)[1])

    def compile(self, index, min_likelihood):
        off, sel = index.bind(self.bodypart, self.animal, LEAF_ANIMALS)
        contains = self.shape.contains
        n_parts = index.n_parts

        def inside(ctx: FrameContext, row: int) -> Tri:
            p = _point(ctx, row, min_likelihood)
            return None if p is None else contains(p[0], p[1])

        if sel is None:
            return lambda ctx: inside(ctx, off)
        return _over(sel, lambda ctx, s: inside(ctx, s * n_parts + off))


@dataclass(frozen=True)
class Speed(Condition):
    """Speed of ``bodypart`` in px/s between the previous and the current frame,
    compared with ``above`` (speed > above) and/or ``below`` (speed < below).
    Unknown across a change of the slot's track id (another animal took the slot)."""

    bodypart: str
    above: float | None = None
    below: float | None = None
    animal: str | int | None = None

    def bodyparts(self) -> set[str]:
        return {self.bodypart}

    def reads_rule_animal(self, index):
        return _reads_self(index.bind(self.bodypart, self.animal, LEAF_ANIMALS)[1])

    def compile(self, index, min_likelihood):
        off, sel = index.bind(self.bodypart, self.animal, LEAF_ANIMALS)
        above, below = self.above, self.below
        n_parts = index.n_parts

        def speed(ctx: FrameContext, row: int) -> Tri:
            if ctx.prev_pose is None or ctx.dt_s <= 0.0:
                return None
            p = _point(ctx, row, min_likelihood)
            if p is None:
                return None
            q = _prev_point(ctx, row, min_likelihood)
            if q is None:
                return None
            return _compare(math.hypot(p[0] - q[0], p[1] - q[1]) / ctx.dt_s, above, below)

        if sel is None:
            return lambda ctx: speed(ctx, off)

        def animal_speed(ctx: FrameContext, s: int) -> Tri:
            return speed(ctx, s * n_parts + off) if ctx.same_track(s) else None
        return _over(sel, animal_speed)


@dataclass(frozen=True)
class Distance(Condition):
    """Distance in px between bodyparts ``a`` and ``b`` compared with ``above``/``below``.

    Multi-animal models: with ``b_animal`` None both parts are the same animal's,
    the one ``animal`` selects (``between: [a, b]`` in a rules file). With ``b_animal``
    set, ``a`` is ``animal``'s and ``b`` is ``b_animal``'s (``from:`` / ``to:``); ``other``
    on one side means an animal other than the one on the opposite side, and the
    condition holds when some pair of the selected animals meets the threshold.
    """

    a: str
    b: str
    above: float | None = None
    below: float | None = None
    animal: str | int | None = None
    b_animal: str | int | None = None

    def bodyparts(self) -> set[str]:
        return {self.a, self.b}

    def _bind(self, index):
        if self.b_animal is None:
            if not (index.is_animal_part(self.a) or index.is_animal_part(self.b)):
                index.bind(self.a, self.animal, LEAF_ANIMALS)  # unique parts: animal must be None
                index.bind(self.b, self.animal, LEAF_ANIMALS)
                return index.offset(self.a), index.offset(self.b), None, None
            sel = index.selector(SELF if self.animal is None else self.animal, LEAF_ANIMALS)
            return index.offset(self.a), index.offset(self.b), sel, None
        off_a, sel_a = index.bind(self.a, self.animal, ENDPOINT_ANIMALS)
        off_b, sel_b = index.bind(self.b, self.b_animal, ENDPOINT_ANIMALS)
        if sel_a is not None and sel_b is not None and sel_a[0] == OTHER and sel_b[0] == OTHER:
            raise ConfigError("'other' means other than the animal on the opposite side: use it on one side only")
        if (sel_a is None and sel_b is not None and sel_b[0] == OTHER) or (
                sel_b is None and sel_a is not None and sel_a[0] == OTHER):
            raise ConfigError("'other' needs an animal's bodypart on the opposite side, not a unique one")
        return off_a, off_b, sel_a, sel_b

    def reads_rule_animal(self, index):
        _, _, sel_a, sel_b = self._bind(index)
        if self.b_animal is None:
            return _reads_self(sel_a)
        return any(sel is not None and sel[0] == SELF for sel in (sel_a, sel_b))

    def compile(self, index, min_likelihood):
        off_a, off_b, sel_a, sel_b = self._bind(index)
        above, below = self.above, self.below
        n_parts = index.n_parts
        animal_a, animal_b = index.is_animal_part(self.a), index.is_animal_part(self.b)

        def distance(ctx: FrameContext, ka: int, kb: int) -> Tri:
            pa = _point(ctx, ka, min_likelihood)
            pb = _point(ctx, kb, min_likelihood)
            if pa is None or pb is None:
                return None
            return _compare(math.hypot(pa[0] - pb[0], pa[1] - pb[1]), above, below)

        if sel_a is None and sel_b is None:
            return lambda ctx: distance(ctx, off_a, off_b)
        if self.b_animal is None:  # one animal's two parts (or one of them and a unique part)
            def rows(ctx: FrameContext, s: int) -> Tri:
                return distance(ctx, s * n_parts + off_a if animal_a else off_a,
                                s * n_parts + off_b if animal_b else off_b)
            return _over(sel_a, rows)
        pair = _pair_evaluator(sel_a, sel_b)
        return lambda ctx: pair(ctx, lambda sa, sb: distance(
            ctx, off_a if sa < 0 else sa * n_parts + off_a, off_b if sb < 0 else sb * n_parts + off_b))


def _candidates(sel: tuple | None, ctx: FrameContext, partner: int):
    """Slots ``sel`` picks on this frame: a sequence, (-1,) for a unique part, or None when a
    named/own/tracked animal is not there (unknown)."""
    if sel is None:
        return (-1,)
    kind = sel[0]
    if kind == "slot":
        return (sel[1],)
    if kind == SELF:
        return (ctx.animal,) if ctx.animal >= 0 else None
    if kind == "track":
        s = ctx.slot_of_track(sel[1])
        return (s,) if s >= 0 else None
    occupied = ctx.occupied
    skip = partner if kind == OTHER else -1
    return [s for s in range(ctx.n_animals) if occupied[s] and s != skip]


def _pair_evaluator(sel_a: tuple | None, sel_b: tuple | None):
    """``f(ctx, test)``: Kleene OR of ``test(slot_a, slot_b)`` over the pairs the two selectors pick
    (``other`` on one side excludes the slot chosen on the opposite side)."""
    b_first = sel_a is not None and sel_a[0] == OTHER

    def pairs(ctx: FrameContext, test: Callable[[int, int], Tri]) -> Tri:
        first, second = (sel_b, sel_a) if b_first else (sel_a, sel_b)
        outer = _candidates(first, ctx, -1)
        if outer is None:
            return None
        unknown = False
        for s1 in outer:
            inner = _candidates(second, ctx, s1)
            if inner is None:
                return None
            for s2 in inner:
                v = test(s2, s1) if b_first else test(s1, s2)
                if v is True:
                    return True
                if v is None:
                    unknown = True
        return None if unknown else False
    return pairs


@dataclass(frozen=True)
class Follow(Condition):
    """One animal (the *follower*, ``animal``; default the rule's) follows another (``leader``;
    default ``other``: any other animal present). True on a frame when all of:

    - the follower's ``bodypart`` is less than ``within`` px from the leader's ``leader_bodypart``;
    - the follower's ``bodypart`` moves at ``min_speed`` px/s or faster (from the previous frame,
      as :class:`Speed`);
    - the direction of that movement is within ``max_angle_deg`` degrees of the leader's heading,
      the direction from its ``heading[0]`` to its ``heading[1]`` bodypart on this frame.

    An animal never follows itself. Unknown when a part is unseen (or on the first frame);
    "sustained" is the rule's ``min_duration_ms``.
    """

    bodypart: str
    leader_bodypart: str
    within: float
    min_speed: float
    max_angle_deg: float
    heading: tuple[str, str]
    animal: str | int | None = None
    leader: str | int = OTHER

    def bodyparts(self) -> set[str]:
        return {self.bodypart, self.leader_bodypart, *self.heading}

    def _bind(self, index):
        if not index.multi_animal:
            raise ConfigError("'follow' needs a multi-animal model (one animal cannot follow another)")
        names = (self.bodypart, self.leader_bodypart) + tuple(self.heading)
        for name in names:
            index.check_part(name)
            if not index.is_animal_part(name):
                raise ConfigError(f"{name!r} is a unique bodypart; 'follow' compares animals' own bodyparts")
        if not self.within > 0 or not self.min_speed > 0 or not 0 < self.max_angle_deg <= 180:
            raise ConfigError("'follow' needs within > 0 px, min_speed > 0 px/s and 0 < max_angle_deg <= 180")
        if self.heading[0] == self.heading[1]:
            raise ConfigError(f"heading names {self.heading[0]!r} twice; it needs two bodyparts (back, front)")
        sel_f = index.selector(SELF if self.animal is None else self.animal, FOLLOWER_ANIMALS)
        sel_l = index.selector(self.leader, LEADER_ANIMALS)
        return [index.offset(n) for n in names], sel_f, sel_l

    def reads_rule_animal(self, index):
        return self._bind(index)[1][0] == SELF

    def compile(self, index, min_likelihood):
        (kf, kl, kh0, kh1), sel_f, sel_l = self._bind(index)
        within, min_speed = self.within, self.min_speed
        cos_max = math.cos(math.radians(self.max_angle_deg))
        n_parts = index.n_parts

        def follows(ctx: FrameContext, f: int, lead: int) -> Tri:
            if f == lead:
                return False
            pf = _point(ctx, f * n_parts + kf, min_likelihood)
            pl = _point(ctx, lead * n_parts + kl, min_likelihood)
            near = None if pf is None or pl is None else math.hypot(pf[0] - pl[0], pf[1] - pl[1]) < within
            if near is False:
                return False
            vx = vy = 0.0
            fast = None
            if pf is not None and ctx.prev_pose is not None and ctx.dt_s > 0.0 and ctx.same_track(f):
                q = _prev_point(ctx, f * n_parts + kf, min_likelihood)
                if q is not None:
                    vx, vy = (pf[0] - q[0]) / ctx.dt_s, (pf[1] - q[1]) / ctx.dt_s
                    fast = math.hypot(vx, vy) >= min_speed
            if fast is False:
                return False
            aligned = None
            h0 = _point(ctx, lead * n_parts + kh0, min_likelihood)
            h1 = _point(ctx, lead * n_parts + kh1, min_likelihood)
            if fast and h0 is not None and h1 is not None:
                hx, hy = h1[0] - h0[0], h1[1] - h0[1]
                norm = math.hypot(hx, hy) * math.hypot(vx, vy)
                if norm > 0.0:
                    aligned = (hx * vx + hy * vy) / norm >= cos_max
            return _and3(near, fast, aligned)

        pair = _pair_evaluator(sel_f, sel_l)
        return lambda ctx: pair(ctx, lambda f, lead: follows(ctx, f, lead))


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

    def check(self, index):
        for c in self.conditions:
            c.check(index)

    def reads_rule_animal(self, index):
        return any(c.reads_rule_animal(index) for c in self.conditions)

    def compile(self, index, min_likelihood):
        parts = tuple(c.compile(index, min_likelihood) for c in self.conditions)

        return _combine(parts, decisive=False)


@dataclass(frozen=True)
class AnyOf(Condition):
    conditions: tuple[Condition, ...]

    def bodyparts(self) -> set[str]:
        return set().union(*(c.bodyparts() for c in self.conditions))

    def check(self, index):
        for c in self.conditions:
            c.check(index)

    def reads_rule_animal(self, index):
        return any(c.reads_rule_animal(index) for c in self.conditions)

    def compile(self, index, min_likelihood):
        parts = tuple(c.compile(index, min_likelihood) for c in self.conditions)

        return _combine(parts, decisive=True)


@dataclass(frozen=True)
class Not(Condition):
    condition: Condition

    def bodyparts(self) -> set[str]:
        return self.condition.bodyparts()

    def check(self, index):
        self.condition.check(index)

    def reads_rule_animal(self, index):
        return self.condition.reads_rule_animal(index)

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
    its rule is evaluated on, read-only, with no likelihood gating applied
    (a multi-animal model's whole flat pose, with the flat names
    ``mouse1.snout``, ...; it does not take the rule's animal).
    """

    label: str
    factory: Callable[[], ConditionFn]

    def check(self, index):
        pass

    def compile(self, index, min_likelihood):
        fn = self.factory()

        def custom(ctx: FrameContext) -> Tri:
            view = ctx.pose.view()
            view.flags.writeable = False
            v = fn(view, ctx.t_ns, ctx.bodyparts)
            return None if v is None else bool(v)

        return custom
