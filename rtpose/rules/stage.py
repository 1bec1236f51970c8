"""Runs a :class:`RuleEngine` as a pipeline stage (see rtpose.stages.Stage).

For every valid row of a :class:`~rtpose.results.PoseBatch`, in order, the
engine sees the row's measured and predicted pose at the frame's
``t_frame_ns`` (the capture stamp live, the media time offline, as the Kalman
filter uses); the stage appends the decided actions to ``batch.actions``,
one ``Event(kind="trigger", name=rule, detail="on"|"off")`` per rule that
fired or ended to ``batch.events``, and updates ``batch.trigger_states``.

Multi-animal models: the stage is built with the model's ``AnimalLayout``; the
batch's poses are the flat ``(A*K + U, 3)`` arrays, and when the batch carries
``track_id`` ((B, A) int64, -1 for an empty slot) the rules get each row's track
ids. Actions and trigger events carry the animal (``animal``, a slot, -1: none).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..errors import ConfigError
from ..results import Action, Event, PoseBatch, StreamInfo
from .config import load_rule_file
from .engine import RuleEngine
from .rule import High, Pulse, Rule


class RulesStage:
    name = "rules"

    def __init__(self, engine: RuleEngine, *, source: str = "rules"):
        self.engine = engine
        self.source = source

    @classmethod
    def from_rules(cls, rules: Sequence[Rule], bodyparts: Sequence[str], *, source: str = "rules",
                   layout=None) -> "RulesStage":
        return cls(RuleEngine(rules, bodyparts, layout=layout), source=source)

    def command_templates(self) -> list[Action]:
        """One Action per hardware command any rule can send (frame -1, time 0), to check them
        against an output device before the run (:meth:`TriggerOutput.check_actions`)."""
        out = []
        for rule in self.engine.rules:
            for a in rule.actions:
                if isinstance(a, Pulse):
                    out.append(Action("pulse", rule.name, 0, -1, a.channel, float(a.ms)))
                elif isinstance(a, High):
                    out.append(Action("high", rule.name, 0, -1, a.channel, 0.0))
                    out.append(Action("low", rule.name, 0, -1, a.channel, 0.0))
        return out

    def open(self, streams: Sequence[StreamInfo]) -> None:
        for s in streams:
            if tuple(s.bodyparts) != self.engine.bodyparts:
                raise ConfigError(
                    f"{self.source}: rules were loaded for bodyparts {', '.join(self.engine.bodyparts)} "
                    f"but stream {s.stream_id!r} has {', '.join(s.bodyparts)}; load the rules with the model's bodyparts"
                )
        self.engine.reset()

    def process(self, batch: PoseBatch) -> None:
        engine = self.engine
        track_id = getattr(batch, "track_id", None) if engine.layout is not None else None
        for i in range(batch.n):
            t_ns = int(batch.t_frame_ns[i])
            frame = int(batch.frame_index[i])
            stream = int(batch.stream[i])
            actions = engine.evaluate(t_ns, frame, batch.pose[i], batch.predicted[i], stream=stream,
                                      track_ids=None if track_id is None else track_id[i])
            if actions:
                batch.actions.extend(actions)
            for (rule, on), animal in zip(engine.last_changes, engine.last_change_animals):
                batch.events.append(Event("trigger", t_ns, frame, rule, "on" if on else "off", stream, animal))
        batch.trigger_states.update(engine.states)


def load_rules(path: str | Path, bodyparts: Sequence[str], layout=None) -> RulesStage:
    """Read a YAML rules file (see docs/rules.md) into a ready-to-run stage.

    Multi-animal models: pass the model's ``AnimalLayout`` and its flat names as ``bodyparts``."""
    return RulesStage.from_rules(load_rule_file(path, bodyparts, layout), bodyparts, source=str(path), layout=layout)
