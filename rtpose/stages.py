"""Processing stages run on each batch after prediction and before the sinks.

A stage may read the poses and append to ``batch.events`` / ``batch.actions`` or
set ``batch.trigger_states`` (the rules engine is one). Stages run on the
inference thread: they must be pure computation, quick and non-blocking.
"""

from __future__ import annotations

from typing import Protocol, Sequence

from .results import PoseBatch, StreamInfo


class Stage(Protocol):
    name: str

    def open(self, streams: Sequence[StreamInfo]) -> None: ...

    def process(self, batch: PoseBatch) -> None: ...
