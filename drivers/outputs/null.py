"""Outputs without hardware, for dry runs: ``NullOutput`` counts, ``LogOutput`` also logs.

Both "deliver" instantly: every command counts as sent and acknowledged, with
no round trip recorded (there is none).
"""

from __future__ import annotations

import logging
from collections import deque

from rtpose.results import Action

from .base import TriggerOutput, describe

log = logging.getLogger("rtpose.trigger")


class NullOutput(TriggerOutput):
    """Accepts every command and does nothing with it."""

    def __init__(self, name: str = "null", **kwargs):
        super().__init__(name, **kwargs)

    def _do_open(self) -> None:
        pass

    def _do_send(self, command: int, channel: int, payload: int, action: Action | None) -> bool:
        with self._cond:
            self._counts["sent"] += 1
            self._counts["acked"] += 1
        return True


class LogOutput(NullOutput):
    """Logs each command at INFO on the ``rtpose.trigger`` logger and keeps the last ``keep``."""

    def __init__(self, name: str = "log", keep: int = 1000, **kwargs):
        super().__init__(name, **kwargs)
        self.commands: deque[tuple[int, str]] = deque(maxlen=keep)  # (t_ns, description)

    def _do_send(self, command: int, channel: int, payload: int, action: Action | None) -> bool:
        text = describe(command, channel, payload, action)
        frame = action.frame_index if action is not None else -1
        self.commands.append((self.clock(), text))
        log.info("%s: frame %d: %s", self.name, frame, text)
        return super()._do_send(command, channel, payload, action)
