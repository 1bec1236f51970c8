"""Sink that turns the rules' Actions into hardware triggers.

For each Action in ``batch.actions`` except kind "event" (not for hardware;
left to the other sinks) it calls ``output.send`` — non-blocking: the output
queues it; what it cannot queue is counted and reported, never waited for.
pulse/high/low are sent; any other kind raises ConfigError (a rules bug).

Device events (acks, failures, missed triggers, unplug/reconnect) are drained
from the output after each batch, counted for the summary and — with
``forward_events`` (default) — appended to ``batch.events``, so sinks placed
*after* this one (recorder, publisher) record them with the batch. An event
reaches the batch after the one whose action caused it, because the device
answers asynchronously.
"""

from __future__ import annotations

from collections import Counter, deque
from typing import Sequence

from ..results import Event, PoseBatch, StreamInfo
from .base import Sink

#: Action kinds that are not hardware commands.
NON_HARDWARE_KINDS = frozenset(("event",))


class TriggerSink(Sink):
    name = "trigger"

    def __init__(self, output, *, forward_events: bool = True, close_output: bool = True, keep_events: int = 1000,
                 name: str | None = None):
        """``output`` is a ``rtpose.drivers.outputs.TriggerOutput`` (opened here if it is not yet).
        ``name``: the key of this sink's end-of-run summary (default "trigger"; give each of several
        trigger sinks its own)."""
        if name is not None:
            self.name = name
        self.output = output
        self.forward_events = forward_events
        self.close_output = close_output
        self.event_counts: Counter[str] = Counter()
        self.recent_events: deque[Event] = deque(maxlen=keep_events)
        self.actions_seen = 0
        self._closed = False

    def open(self, streams: Sequence[StreamInfo]) -> None:
        self.output.open()

    def write(self, batch: PoseBatch) -> None:
        for action in batch.actions:
            if action.kind not in NON_HARDWARE_KINDS:
                self.actions_seen += 1
                self.output.send(action)
        if self.output.events_pending:
            self._collect(batch.events if self.forward_events else None)

    def _collect(self, into: list[Event] | None) -> None:
        events = self.output.drain_events()
        for event in events:
            self.event_counts[event.kind] += 1
        self.recent_events.extend(events)
        if into is not None:
            into.extend(events)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.close_output:
            self.output.close()
        self._collect(None)

    def summary(self) -> dict[str, object]:
        stats = self.output.stats()
        out: dict[str, object] = {"output": self.output.name, "actions": self.actions_seen}
        for key in ("sent", "acked", "failed", "dropped", "missed", "reconnects", "disconnects", "late_acks", "device_resets"):
            out[key] = stats.get(key, 0)
        for key in ("rtt_ms_p50", "rtt_ms_p99", "rtt_ms_max"):
            value = stats.get(key)
            out[key] = None if value is None else round(value, 3)  # µs resolution: the summary stays readable
        out["events"] = dict(self.event_counts)
        return out
