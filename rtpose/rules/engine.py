"""The rule evaluator: pose + time in, actions out. Pure — no clocks, no I/O.

``RuleEngine.evaluate`` is called once per frame, in frame order, for each
stream; each stream keeps its own state (engaged, firing, last fire time,
previous pose for speeds). Time is the frame's ``t_ns`` as given.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import ConfigError
from ..results import Action
from .conditions import FrameContext
from .rule import High, Pulse, Rule, SendEvent


class _RuleState:
    """One rule on one stream."""

    __slots__ = ("rule", "enter", "stay", "use_measured", "min_duration_ns", "refractory_ns",
                 "engaged", "t_onset_ns", "on", "suppressed", "last_fire_ns")

    def __init__(self, rule: Rule, index: dict[str, int]):
        self.rule = rule
        self.enter = rule.enter.compile(index, rule.min_likelihood)
        self.stay = self.enter if rule.stay is None else rule.stay.compile(index, rule.min_likelihood)
        self.use_measured = rule.pose == "measured"
        self.min_duration_ns = int(round(rule.min_duration_ms * 1e6))
        self.refractory_ns = int(round(rule.refractory_ms * 1e6))
        self.engaged = False
        self.t_onset_ns = 0
        self.on = False
        self.suppressed = False
        self.last_fire_ns: int | None = None


class _StreamState:
    __slots__ = ("rules", "measured", "predicted", "prev_measured", "prev_predicted", "prev_t_ns", "has_prev")

    def __init__(self, rules: Sequence[Rule], index: dict[str, int], bodyparts: tuple[str, ...]):
        k = len(bodyparts)
        self.rules = [_RuleState(r, index) for r in rules]
        self.measured = FrameContext(bodyparts)
        self.predicted = FrameContext(bodyparts)
        self.prev_measured = np.zeros((k, 3), np.float64)
        self.prev_predicted = np.zeros((k, 3), np.float64)
        self.prev_t_ns = 0
        self.has_prev = False


class RuleEngine:
    """Evaluate ``rules`` frame by frame.

    After each :meth:`evaluate`, ``last_changes`` lists ``(rule_name, on)`` for
    every rule that fired (``on=True``) or ended (``on=False``) on that frame
    (the list is reused by the next call), and ``states`` maps each rule name to
    its trigger state (True while firing on any stream; updated in place).
    """

    def __init__(self, rules: Sequence[Rule], bodyparts: Sequence[str]):
        self.rules = tuple(rules)
        self.bodyparts = tuple(bodyparts)
        names = [r.name for r in self.rules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"rule names must be unique; repeated: {', '.join(dupes)}")
        self._index = {name: i for i, name in enumerate(self.bodyparts)}
        for r in self.rules:
            unknown = sorted(r.bodyparts() - set(self._index))
            if unknown:
                raise ConfigError(
                    f"rule {r.name!r}: unknown bodypart {', '.join(map(repr, unknown))}; "
                    f"the model's bodyparts are {', '.join(self.bodyparts)}"
                )
        self._streams: dict[int, _StreamState] = {}
        self._on_count = {r.name: 0 for r in self.rules}
        self.states: dict[str, bool] = {r.name: False for r in self.rules}
        self.last_changes: list[tuple[str, bool]] = []

    def _stream(self, stream: int) -> _StreamState:
        st = self._streams.get(stream)
        if st is None:
            st = self._streams[stream] = _StreamState(self.rules, self._index, self.bodyparts)
        return st

    def stream_states(self, stream: int = 0) -> dict[str, bool]:
        """Trigger state of each rule on one stream."""
        st = self._streams.get(stream)
        return {r.name: bool(st and st.rules[i].on) for i, r in enumerate(self.rules)}

    def reset(self) -> None:
        """Forget all per-stream state (as if no frame had been seen)."""
        self._streams.clear()
        for name in self.states:
            self.states[name] = False
            self._on_count[name] = 0
        self.last_changes.clear()

    def evaluate(self, t_ns: int, frame_index: int, pose: np.ndarray,
                 predicted: np.ndarray | None = None, *, stream: int = 0) -> list[Action]:
        """Advance every rule by one frame of ``stream``.

        ``pose`` is the measured (K, 3) x, y, likelihood; ``predicted`` the
        predicted (K, 3) pose, used by rules with ``pose: predicted`` (when
        omitted they see ``pose``). Returns the actions decided on this frame.
        """
        k = len(self.bodyparts)
        if pose.shape != (k, 3) or (predicted is not None and predicted.shape != (k, 3)):
            raise ValueError(f"poses must be ({k}, 3) arrays for bodyparts {self.bodyparts}")
        if predicted is None:
            predicted = pose
        st = self._stream(stream)
        dt_s = (t_ns - st.prev_t_ns) * 1e-9 if st.has_prev else 0.0
        for ctx, cur, prev in ((st.measured, pose, st.prev_measured), (st.predicted, predicted, st.prev_predicted)):
            ctx.pose = cur
            ctx.prev_pose = prev if st.has_prev else None
            ctx.dt_s = dt_s
            ctx.t_ns = t_ns

        changes = self.last_changes
        changes.clear()
        actions: list[Action] = []
        for rs in st.rules:
            ctx = st.measured if rs.use_measured else st.predicted
            if not rs.engaged:
                if rs.enter(ctx) is True:
                    rs.engaged = True
                    rs.t_onset_ns = t_ns
                    rs.suppressed = False
            elif rs.stay(ctx) is not True:
                rs.engaged = False
                if rs.on:
                    rs.on = False
                    self._change(rs, False, t_ns, frame_index, stream, actions)
            if rs.engaged and not rs.on and not rs.suppressed and t_ns - rs.t_onset_ns >= rs.min_duration_ns:
                if rs.last_fire_ns is None or t_ns - rs.last_fire_ns >= rs.refractory_ns:
                    rs.on = True
                    rs.last_fire_ns = t_ns
                    self._change(rs, True, t_ns, frame_index, stream, actions)
                else:
                    rs.suppressed = True

        np.copyto(st.prev_measured, pose)
        np.copyto(st.prev_predicted, predicted)
        st.prev_t_ns = t_ns
        st.has_prev = True
        return actions

    def _change(self, rs: _RuleState, on: bool, t_ns: int, frame_index: int, stream: int,
                actions: list[Action]) -> None:
        name = rs.rule.name
        self.last_changes.append((name, on))
        self._on_count[name] += 1 if on else -1
        self.states[name] = self._on_count[name] > 0
        for a in rs.rule.actions:
            if isinstance(a, Pulse):
                if on:
                    actions.append(Action("pulse", name, t_ns, frame_index, a.channel, float(a.ms), stream))
            elif isinstance(a, High):
                actions.append(Action("high" if on else "low", name, t_ns, frame_index, a.channel, 0.0, stream))
            elif isinstance(a, SendEvent):
                if on:
                    actions.append(Action("event", name, t_ns, frame_index, 0, 0.0, stream))
