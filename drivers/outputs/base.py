"""The trigger-output contract: what the pipeline uses to switch TTL lines.

Python-microscope style: the public methods (``open``, ``send``, ``close``,
``stats``, ``drain_events``) do the state checks, validation and bookkeeping
once for every implementation; implementations override the ``_do_*`` hooks.

``send`` is called on the inference thread and never blocks: implementations
enqueue and return False when they cannot take the command (counted as
``dropped`` and reported as a ``missed`` event). What happens later on the
device side (acknowledgements, timeouts, unplugging) comes back as
:class:`rtpose.results.Event` objects, collected with :meth:`drain_events`.

Event kinds an output emits (``name`` is the output's name, ``frame_index`` and
``stream`` those of the triggering Action, -1/0 when none):

* ``ack``     the device confirmed a command (detail: command, channel, seq, rtt, device clock)
* ``failed``  written but not confirmed: ack timeout, error status, link lost before the ack
* ``missed``  never written: queue full, device disconnected or not ready, write error
* ``device``  link state: connected, disconnected, reconnected, device reset, no answer
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from typing import Callable

import numpy as np

from rtpose.clock import Clock, monotonic_ns
from rtpose.errors import ConfigError, OutputDeviceError
from rtpose.results import Action, Event

from . import protocol as p

#: Action kinds a trigger output executes, and their protocol command codes.
ACTION_COMMANDS = {"pulse": p.CMD_PULSE, "high": p.CMD_SET_HIGH, "low": p.CMD_SET_LOW}

#: Counters every output reports in :meth:`TriggerOutput.stats`.
COUNTERS = (
    "sent",  # commands written to the device (pings included)
    "acked",  # commands the device confirmed with STATUS_OK
    "failed",  # written, but no ack in time, an error status, or link lost before the ack
    "dropped",  # refused by send(): queue full
    "missed",  # accepted, but never written: disconnected, not ready, write error
    "reconnects",  # successful reconnections after a loss
    "disconnects",  # link losses
    "late_acks",  # acks that arrived after their command had timed out (or unknown seq)
    "device_resets",  # unsolicited BOOT frames: the device restarted (all lines low)
    "events_lost",  # events discarded because nobody drained them
)


def action_to_command(action: Action) -> tuple[int, int, int]:
    """(command, channel, payload) for an Action; ConfigError if it cannot be sent."""
    command = ACTION_COMMANDS.get(action.kind)
    if command is None:
        raise ConfigError(
            f"rule {action.rule!r}: action kind {action.kind!r} is not a trigger command; "
            f"a trigger output takes {sorted(ACTION_COMMANDS)}"
        )
    if not 0 <= action.channel <= 0xFF:
        raise ConfigError(f"rule {action.rule!r}: channel {action.channel} is outside 0..255, the channels the "
                          "trigger protocol carries; change the rule's channel")
    payload = 0
    if command == p.CMD_PULSE:
        payload = int(round(action.duration_ms))
        if not 1 <= payload <= p.MAX_PULSE_MS:
            raise ConfigError(
                f"rule {action.rule!r}: pulse of {action.duration_ms} ms; the device takes "
                f"whole milliseconds from 1 to {p.MAX_PULSE_MS}"
            )
    return command, action.channel, payload


def describe(command: int, channel: int, payload: int, action: Action | None) -> str:
    """Short human text for a command, used in event details and logs."""
    text = p.COMMAND_NAMES.get(command, hex(command))
    if command != p.CMD_PING and command != p.CMD_ALL_LOW:
        text += f" ch={channel}"
    if command == p.CMD_PULSE:
        text += f" {payload}ms"
    if action is not None and action.rule:
        text = f"rule={action.rule} {text}"
    return text


class TriggerOutput(ABC):
    """open() -> send()* -> close(); stats() and drain_events() at any time."""

    def __init__(self, name: str, *, clock: Clock = monotonic_ns, max_events: int = 4096, rtt_window: int = 4096):
        self.name = name
        self.clock = clock
        self._open = False
        self._closed = False
        # One re-entrant lock for all state, implementations included (no lock ordering to get wrong).
        self._cond = threading.Condition(threading.RLock())
        self._counts = dict.fromkeys(COUNTERS, 0)
        self._events: deque[Event] = deque(maxlen=max_events)
        self._rtt_ns = np.zeros(rtt_window, np.int64)
        self._rtt_n = 0  # total recorded; the window keeps the newest len(_rtt_ns)

    # ---- public API ---------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return self._open

    def open(self) -> "TriggerOutput":
        """Connect to the device. Idempotent; raises OutputDeviceError when it cannot."""
        if self._closed:
            raise OutputDeviceError(f"{self.name}: output was closed; create a new one to reconnect")
        if not self._open:
            self._do_open()
            self._open = True
        return self

    def send(self, action: Action) -> bool:
        """Queue ``action`` (kind pulse/high/low) for the device. Never blocks.

        Returns False when the command could not be queued (counted as
        ``dropped``, reported as a ``missed`` event). Raises ConfigError for an
        action no device can execute, OutputDeviceError if the output is not open.
        """
        self._check_open()
        command, channel, payload = action_to_command(action)
        if self._do_send(command, channel, payload, action):
            return True
        self._count("dropped", "missed", f"{describe(command, channel, payload, action)}: queue full, trigger dropped", action)
        return False

    @property
    def channels(self) -> int | None:
        """How many channels the device drives, when it said so (a serial device answers the
        handshake PING with it); None when unknown: any channel the protocol carries (0..255)."""
        return None

    def check_actions(self, actions) -> None:
        """Raise ConfigError for the first action this output cannot execute: a kind that is no
        trigger command, a channel outside the protocol's 0..255 or the device's channels, a pulse
        length the device cannot time. Called with every action the rules can produce before the
        first frame, so a bad rule fails the start of a session, not its middle."""
        channels = self.channels
        for action in actions:
            action_to_command(action)
            if channels is not None and action.channel >= channels:
                raise ConfigError(
                    f"rule {action.rule!r}: {action.kind} on channel {action.channel}, but {self.name} drives "
                    f"channels 0..{channels - 1}; change the rule's channel"
                )

    def ping(self) -> bool:
        """Queue a PING (round-trip measurement without touching any line). Never blocks."""
        self._check_open()
        if self._do_send(p.CMD_PING, 0, 0, None):
            return True
        self._count("dropped")
        return False

    def close(self) -> None:
        """Finish queued commands, release the device. Idempotent."""
        if self._open:
            try:
                self._do_close()
            finally:
                self._open = False
                self._closed = True

    def stats(self) -> dict[str, object]:
        """Counters (see COUNTERS) plus ack round-trip figures in ms, and implementation extras."""
        with self._cond:
            out: dict[str, object] = dict(self._counts)
            n = min(self._rtt_n, len(self._rtt_ns))
            window = self._rtt_ns[:n].copy()
            out["rtt_n"] = self._rtt_n
        if n:
            p50, p99 = np.percentile(window, [50, 99])
            out["rtt_ms_p50"] = float(p50) / 1e6
            out["rtt_ms_p99"] = float(p99) / 1e6
            out["rtt_ms_max"] = float(window.max()) / 1e6
        else:
            out["rtt_ms_p50"] = out["rtt_ms_p99"] = out["rtt_ms_max"] = None
        out.update(self._do_stats())
        return out

    @property
    def events_pending(self) -> int:
        """How many events :meth:`drain_events` would return now (cheap, lock-free)."""
        return len(self._events)

    def drain_events(self) -> list[Event]:
        """Events since the last call, oldest first. Never blocks for long."""
        with self._cond:
            events = list(self._events)
            self._events.clear()
        return events

    def wait_for(self, predicate: Callable[[dict[str, object]], bool], timeout: float) -> bool:
        """Block until ``predicate(self.stats())`` holds (re-checked on every counter change).

        For tests and shutdown code, never for the pipeline. Returns False on timeout.
        """
        end = time.monotonic() + timeout
        with self._cond:  # an RLock: stats() may take it again
            while True:
                if predicate(self.stats()):
                    return True
                remaining = end - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)

    def __enter__(self) -> "TriggerOutput":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- helpers for implementations ----------------------------------------
    def _check_open(self) -> None:
        if not self._open:
            state = "closed" if self._closed else "not open; call open() first"
            raise OutputDeviceError(f"{self.name}: output is {state}")

    def _count(self, key: str, kind: str = "", detail: str = "", action: Action | None = None) -> None:
        """Increment counter ``key``; with ``kind``, emit that event atomically with it
        (a waiter that sees the counter also finds the event)."""
        with self._cond:
            self._counts[key] += 1
            if kind:
                self._emit(kind, detail, action)
            self._cond.notify_all()

    def _emit(self, kind: str, detail: str, action: Action | None = None) -> None:
        event = Event(
            kind=kind,
            t_ns=self.clock(),
            frame_index=action.frame_index if action is not None else -1,
            name=self.name,
            detail=detail,
            stream=action.stream if action is not None else 0,
        )
        with self._cond:
            if len(self._events) == self._events.maxlen:
                self._counts["events_lost"] += 1
            self._events.append(event)
            self._cond.notify_all()

    def _record_rtt(self, rtt_ns: int) -> None:
        with self._cond:
            self._rtt_ns[self._rtt_n % len(self._rtt_ns)] = rtt_ns
            self._rtt_n += 1
            self._cond.notify_all()

    def _notify(self) -> None:
        """Wake wait_for() callers after a change not made through _count/_emit."""
        with self._cond:
            self._cond.notify_all()

    # ---- hooks --------------------------------------------------------------
    @abstractmethod
    def _do_open(self) -> None:
        """Connect; raise OutputDeviceError naming the device and what to check."""

    @abstractmethod
    def _do_send(self, command: int, channel: int, payload: int, action: Action | None) -> bool:
        """Take one validated command without blocking; False if it cannot be taken now."""

    def _do_close(self) -> None:
        pass

    def _do_stats(self) -> dict[str, object]:
        return {}
