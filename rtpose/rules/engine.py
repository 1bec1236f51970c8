"""The rule evaluator: pose + time in, actions out. Pure — no clocks, no I/O.

``RuleEngine.evaluate`` is called once per frame, in frame order, for each
stream; each stream keeps its own state (engaged, firing, last fire time,
previous pose for speeds). Time is the frame's ``t_ns`` as given.

Multi-animal models (an ``AnimalLayout``): a rule about ``any`` animal keeps
that state per identity slot (its own hysteresis, minimum duration and
refractory period for each animal) and its actions name the animal
(``Action.animal``); see docs/rules.md, "Several animals".
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import ConfigError
from ..results import Action
from .animals import ALL, ANY, RULE_ANIMALS, PartIndex
from .conditions import FrameContext
from .rule import High, Pulse, Rule, SendEvent


# How a rule picks its animal (multi-animal models; see Rule.animal).
_SINGLE, _EACH, _EVERY, _SLOT, _TRACK = range(5)


class _Timer:
    """Engagement and timing of one rule for one stream and (``animal: any``) one animal."""

    __slots__ = ("engaged", "t_onset_ns", "on", "suppressed", "last_fire_ns", "animal")

    def __init__(self):
        self.engaged = False
        self.t_onset_ns = 0
        self.on = False
        self.suppressed = False
        self.last_fire_ns: int | None = None
        self.animal = -1  # the slot it fired for


def _rule_mode(rule: Rule, index: PartIndex) -> tuple[int, int]:
    """(mode, slot or track id) of a rule; raises ConfigError for an animal the model lacks."""
    reads = rule.enter.reads_rule_animal(index) or (rule.stay is not None and rule.stay.reads_rule_animal(index))
    if rule.animal is None:
        return (_EACH if reads else _SINGLE), -1
    sel = index.selector(rule.animal, RULE_ANIMALS)
    if not reads:
        raise ConfigError(f"animal {rule.animal!r}: no condition reads the rule's animal (each names its own "
                          "animal or a unique bodypart); remove the rule's 'animal'")
    if sel[0] == ANY:
        return _EACH, -1
    if sel[0] == ALL:
        return _EVERY, -1
    return (_SLOT if sel[0] == "slot" else _TRACK), sel[1]


class _RuleState:
    """One rule on one stream."""

    __slots__ = ("rule", "enter", "stay", "use_measured", "min_duration_ns", "refractory_ns", "mode", "target",
                 "timers")

    def __init__(self, rule: Rule, index: PartIndex):
        self.rule = rule
        self.enter = rule.enter.compile(index, rule.min_likelihood)
        self.stay = self.enter if rule.stay is None else rule.stay.compile(index, rule.min_likelihood)
        self.use_measured = rule.pose == "measured"
        self.min_duration_ns = int(round(rule.min_duration_ms * 1e6))
        self.refractory_ns = int(round(rule.refractory_ms * 1e6))
        self.mode, self.target = _rule_mode(rule, index)
        self.timers = [_Timer() for _ in range(index.n_animals if self.mode == _EACH else 1)]


class _StreamState:
    __slots__ = ("rules", "measured", "predicted", "prev_measured", "prev_predicted", "prev_t_ns", "has_prev",
                 "track_ids", "prev_track_ids", "has_track_ids", "finite")

    def __init__(self, rules: Sequence[Rule], index: PartIndex, bodyparts: tuple[str, ...]):
        k = len(bodyparts)
        a = index.n_animals
        self.rules = [_RuleState(r, index) for r in rules]
        self.measured = FrameContext(bodyparts, a, index.n_parts)
        self.predicted = FrameContext(bodyparts, a, index.n_parts)
        self.prev_measured = np.zeros((k, 3), np.float64)
        self.prev_predicted = np.zeros((k, 3), np.float64)
        self.prev_t_ns = 0
        self.has_prev = False
        self.track_ids = np.full(a, -1, np.int64)
        self.prev_track_ids = np.full(a, -1, np.int64)
        self.has_track_ids = False
        self.finite = np.zeros((a, index.n_parts), bool)  # scratch: which animal rows have an x


class RuleEngine:
    """Evaluate ``rules`` frame by frame.

    After each :meth:`evaluate`, ``last_changes`` lists ``(rule_name, on)`` for
    every rule that fired (``on=True``) or ended (``on=False``) on that frame
    (the list is reused by the next call), ``last_change_animals`` the identity
    slot of each of those changes (-1: not animal-specific), and ``states`` maps
    each rule name to its trigger state (True while firing on any stream, for
    any animal; updated in place).

    ``layout``: the model's :class:`~rtpose.multianimal.layout.AnimalLayout` for a
    multi-animal model; ``bodyparts`` are then its flat names (``layout.flat_names()``)
    and poses the flat ``(A*K + U, 3)`` arrays.
    """

    def __init__(self, rules: Sequence[Rule], bodyparts: Sequence[str], *, layout=None):
        self.rules = tuple(rules)
        self.bodyparts = tuple(bodyparts)
        self.layout = layout
        names = [r.name for r in self.rules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"rule names must be unique; repeated: {', '.join(dupes)}")
        self._index = PartIndex(self.bodyparts, layout)
        for r in self.rules:
            unknown = sorted(n for n in r.bodyparts() if self._index.part_problem(n) is not None)
            if unknown:
                raise ConfigError(
                    f"rule {r.name!r}: unknown bodypart {', '.join(map(repr, unknown))}; "
                    f"the model's bodyparts are {self._index.describe_parts()}"
                )
            try:
                for cond in (r.enter, r.stay):
                    if cond is not None:
                        cond.check(self._index)
                _rule_mode(r, self._index)
            except ConfigError as exc:
                raise ConfigError(f"rule {r.name!r}: {exc}") from None
        self._streams: dict[int, _StreamState] = {}
        self._on_count = {r.name: 0 for r in self.rules}
        self.states: dict[str, bool] = {r.name: False for r in self.rules}
        self.last_changes: list[tuple[str, bool]] = []
        self.last_change_animals: list[int] = []

    def _stream(self, stream: int) -> _StreamState:
        st = self._streams.get(stream)
        if st is None:
            st = self._streams[stream] = _StreamState(self.rules, self._index, self.bodyparts)
        return st

    def stream_states(self, stream: int = 0) -> dict[str, bool]:
        """Trigger state of each rule on one stream (for any animal)."""
        st = self._streams.get(stream)
        return {r.name: bool(st and any(tm.on for tm in st.rules[i].timers)) for i, r in enumerate(self.rules)}

    def animal_states(self, stream: int = 0) -> dict[str, tuple[int, ...]]:
        """For each rule, the slots it is on for on one stream (``(-1,)``: on, not for one animal)."""
        st = self._streams.get(stream)
        if st is None:
            return {r.name: () for r in self.rules}
        return {r.name: tuple(tm.animal for tm in st.rules[i].timers if tm.on) for i, r in enumerate(self.rules)}

    def reset(self) -> None:
        """Forget all per-stream state (as if no frame had been seen)."""
        self._streams.clear()
        for name in self.states:
            self.states[name] = False
            self._on_count[name] = 0
        self.last_changes.clear()
        self.last_change_animals.clear()

    def evaluate(self, t_ns: int, frame_index: int, pose: np.ndarray,
                 predicted: np.ndarray | None = None, *, stream: int = 0,
                 track_ids: np.ndarray | None = None) -> list[Action]:
        """Advance every rule by one frame of ``stream``.

        ``pose`` is the measured (K, 3) x, y, likelihood; ``predicted`` the
        predicted (K, 3) pose, used by rules with ``pose: predicted`` (when
        omitted they see ``pose``). Returns the actions decided on this frame.
        Multi-animal models: poses are the flat (A*K + U, 3) arrays and
        ``track_ids`` the (A,) track id per slot (-1: empty slot) if the tracker
        gives them; without them a slot holds an animal when any of its body
        parts has a position, and ``animal: <track id>`` never matches.
        """
        k = len(self.bodyparts)
        if pose.shape != (k, 3) or (predicted is not None and predicted.shape != (k, 3)):
            raise ValueError(f"poses must be ({k}, 3) arrays for bodyparts {self.bodyparts}")
        if predicted is None:
            predicted = pose
        st = self._stream(stream)
        dt_s = (t_ns - st.prev_t_ns) * 1e-9 if st.has_prev else 0.0
        index = self._index
        if index.multi_animal:
            if track_ids is not None:
                if track_ids.shape != (index.n_animals,):
                    raise ValueError(f"track_ids must be a ({index.n_animals},) array, one id per animal slot")
                st.prev_track_ids[:] = st.track_ids
                st.track_ids[:] = track_ids
        for ctx, cur, prev in ((st.measured, pose, st.prev_measured), (st.predicted, predicted, st.prev_predicted)):
            ctx.pose = cur
            ctx.prev_pose = prev if st.has_prev else None
            ctx.dt_s = dt_s
            ctx.t_ns = t_ns
            if index.multi_animal:
                if track_ids is not None:
                    np.greater_equal(st.track_ids, 0, out=ctx.occupied)
                    ctx.track_ids = st.track_ids
                    ctx.prev_track_ids = st.prev_track_ids if st.has_track_ids and st.has_prev else None
                else:
                    np.isfinite(self.layout.animals(cur)[:, :, 0], out=st.finite)
                    np.any(st.finite, axis=1, out=ctx.occupied)
                    ctx.track_ids = ctx.prev_track_ids = None

        changes = self.last_changes
        changes.clear()
        self.last_change_animals.clear()
        actions: list[Action] = []
        for rs in st.rules:
            ctx = st.measured if rs.use_measured else st.predicted
            mode = rs.mode
            if mode == _EACH:
                occupied = ctx.occupied
                for slot, tm in enumerate(rs.timers):
                    ctx.animal = slot
                    self._advance(rs, tm, ctx, bool(occupied[slot]), slot, t_ns, frame_index, stream, actions)
            else:
                slot = rs.target if mode == _SLOT else ctx.slot_of_track(rs.target) if mode == _TRACK else -1
                ctx.animal = slot
                present = slot >= 0 or mode in (_SINGLE, _EVERY)
                self._advance(rs, rs.timers[0], ctx, present, slot, t_ns, frame_index, stream, actions)
            ctx.animal = -1

        np.copyto(st.prev_measured, pose)
        np.copyto(st.prev_predicted, predicted)
        st.prev_t_ns = t_ns
        st.has_prev = True
        st.has_track_ids = track_ids is not None
        return actions

    @staticmethod
    def _holds(rs: _RuleState, cond, ctx: FrameContext):
        """The condition for the rule's animal(s): ``animal: all`` is the Kleene ``and`` over the animals present."""
        if rs.mode != _EVERY:
            return cond(ctx)
        unknown, seen = False, False
        for slot in range(ctx.n_animals):
            if ctx.occupied[slot]:
                seen = True
                ctx.animal = slot
                v = cond(ctx)
                if v is False:
                    ctx.animal = -1
                    return False
                if v is None:
                    unknown = True
        ctx.animal = -1
        return None if unknown or not seen else True

    def _advance(self, rs: _RuleState, tm: _Timer, ctx: FrameContext, present: bool, animal: int, t_ns: int,
                 frame_index: int, stream: int, actions: list[Action]) -> None:
        """One rule, one timer, one frame: engage / disengage / fire / end (docs/rules.md).
        ``present`` False (the rule's animal is not in the frame) counts as an unknown condition."""
        if not tm.engaged:
            if present and self._holds(rs, rs.enter, ctx) is True:
                tm.engaged = True
                tm.t_onset_ns = t_ns
                tm.suppressed = False
        elif not present or self._holds(rs, rs.stay, ctx) is not True:
            tm.engaged = False
            if tm.on:
                tm.on = False
                self._change(rs, False, t_ns, frame_index, stream, tm.animal, actions)
        if tm.engaged and not tm.on and not tm.suppressed and t_ns - tm.t_onset_ns >= rs.min_duration_ns:
            if tm.last_fire_ns is None or t_ns - tm.last_fire_ns >= rs.refractory_ns:
                tm.on = True
                tm.last_fire_ns = t_ns
                tm.animal = animal
                self._change(rs, True, t_ns, frame_index, stream, animal, actions)
            else:
                tm.suppressed = True

    def _change(self, rs: _RuleState, on: bool, t_ns: int, frame_index: int, stream: int, animal: int,
                actions: list[Action]) -> None:
        name = rs.rule.name
        self.last_changes.append((name, on))
        self.last_change_animals.append(animal)
        self._on_count[name] += 1 if on else -1
        self.states[name] = self._on_count[name] > 0
        for a in rs.rule.actions:
            if isinstance(a, Pulse):
                if on:
                    actions.append(Action("pulse", name, t_ns, frame_index, a.channel, float(a.ms), stream, animal))
            elif isinstance(a, High):
                actions.append(Action("high" if on else "low", name, t_ns, frame_index, a.channel, 0.0, stream,
                                      animal))
            elif isinstance(a, SendEvent):
                if on:
                    actions.append(Action("event", name, t_ns, frame_index, 0, 0.0, stream, animal))
