"""Running recorded poses through the rules, as the live run did (``rtpose replay``).

Pure: arrays in, events and actions out; no files, no clocks. The rows go
through the very :class:`~rtpose.rules.stage.RulesStage` a live run uses, in
recorded order, each at its recorded ``t_frame_ns`` with its recorded measured
and predicted pose, so replaying a recording with the rules it ran with
reproduces its trigger events exactly (tests/test_replay.py), and replaying it
with other rules shows what those would have done on the same session.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..errors import ConfigError
from ..results import Action, Event, PoseBatch, StreamInfo
from .stage import RulesStage

if TYPE_CHECKING:
    from ..multianimal.layout import AnimalLayout

#: Rows handed to the stage at once (the stage walks them one by one, in order).
REPLAY_BATCH = 256


@dataclass
class ReplayResult:
    events: list[Event] = field(default_factory=list)  # kind "trigger", detail "on"/"off", as recorded live
    actions: list[Action] = field(default_factory=list)  # pulse/high/low/event, as sent to the outputs live
    frames: int = 0


def replay_rules(stage: RulesStage, bodyparts: Sequence[str], *, frame_index: np.ndarray, stream: np.ndarray,
                 t_frame_ns: np.ndarray, pose: np.ndarray, predicted: np.ndarray | None,
                 stream_ids: Sequence[str] | None = None, layout: "AnimalLayout | None" = None,
                 track_id: np.ndarray | None = None) -> ReplayResult:
    """Feed rows ``i`` = (``t_frame_ns[i]``, ``frame_index[i]``, ``stream[i]``, ``pose[i]``, ``predicted[i]``)
    to ``stage`` in order. ``predicted`` None: rules with ``pose: predicted`` see the measured pose (say so
    to the user: it is not what the live run saw). Multi-animal recordings: ``layout`` and the (N, A) track
    ids of the slots (the recording's ``track_<individual>`` columns; None: slots counted as occupied when
    seen)."""
    n = len(frame_index)
    k = len(bodyparts)
    if pose.shape != (n, k, 3) or (predicted is not None and predicted.shape != (n, k, 3)):
        raise ConfigError(f"replay: poses must be ({n}, {k}, 3) for {n} rows of bodyparts {', '.join(bodyparts)}")
    if len(t_frame_ns) != n or len(stream) != n:
        raise ConfigError("replay: frame_index, stream and t_frame_ns must have one entry per row")
    n_streams = int(stream.max()) + 1 if n else 1
    ids = list(stream_ids) if stream_ids is not None else [f"stream{s}" for s in range(n_streams)]
    stage.open([StreamInfo(ids[s] if s < len(ids) else f"stream{s}", 0, 0, 0.0, tuple(bodyparts), layout=layout)
                for s in range(n_streams)])
    with_tracks = layout is not None and track_id is not None
    batch = PoseBatch(REPLAY_BATCH, k, layout.n_animals if with_tracks else 0)
    out = ReplayResult()
    for start in range(0, n, REPLAY_BATCH):
        m = min(REPLAY_BATCH, n - start)
        rows = slice(start, start + m)
        batch.clear()
        batch.n = m
        batch.stream[:m] = stream[rows]
        batch.frame_index[:m] = frame_index[rows]
        batch.t_frame_ns[:m] = t_frame_ns[rows]
        batch.pose[:m] = pose[rows]
        batch.predicted[:m] = pose[rows] if predicted is None else predicted[rows]
        if with_tracks:
            batch.track_id[:m] = track_id[rows]
        stage.process(batch)
        out.events.extend(batch.events)
        out.actions.extend(batch.actions)
    out.frames = n
    return out
