"""What the pipeline hands to sinks: a preallocated batch of per-frame results.

One :class:`PoseBatch` is allocated when the pipeline starts and refilled for
every batch (no per-frame allocation). Sinks receive it in ``Sink.write`` and
must copy anything they keep: the arrays are overwritten by the next batch.

Timestamps are ``CLOCK_MONOTONIC`` nanoseconds (see :mod:`rtpose.clock`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .multianimal.layout import AnimalLayout

#: Stage timestamps every frame carries, in pipeline order.
#: ``t_dequeued_ns``: the inference loop took the frame from the ring; preprocessing
#: (colour conversion, copy into the model input) runs until ``t_infer_start_ns``.
#: ``t_emitted_ns`` is stamped after every sink's ``write`` returned, so sinks see
#: it as 0; the pipeline's latency statistics use it.
STAGES = ("t_capture_ns", "t_dequeued_ns", "t_infer_start_ns", "t_infer_end_ns", "t_decoded_ns", "t_predicted_ns",
          "t_emitted_ns")


@dataclass(frozen=True)
class StreamInfo:
    """Static description of one camera/video stream, given to sinks at open."""

    stream_id: str
    width: int
    height: int
    fps: float
    bodyparts: tuple[str, ...]
    n_frames: int | None = None  # the most frames the run takes from this stream; None: unbounded (camera)
    #: a multi-animal model's animal slots and parts; ``bodyparts`` are then its flat names
    #: (``mouse1.snout``, ..., unique parts), see :mod:`rtpose.multianimal.layout`. None: one animal
    layout: "AnimalLayout | None" = None


@dataclass(frozen=True)
class Event:
    """Something that happened during a run: a drop, a trigger, a device fault.

    ``kind`` is a short machine-readable word ("drop", "trigger", "device", ...),
    ``name`` says which (rule name, device, stream), ``detail`` is free text.
    ``animal``: the identity slot (multi-animal models) the event is about, -1 when none.
    """

    kind: str
    t_ns: int
    frame_index: int
    name: str = ""
    detail: str = ""
    stream: int = 0
    animal: int = -1


@dataclass(frozen=True)
class Action:
    """A command for an output, decided by a rule (see :mod:`rtpose.rules`).

    ``kind``: "pulse" (``duration_ms`` long), "high", "low" (set a TTL line) or
    "event" (no hardware; published on ZeroMQ and recorded). ``channel`` is the
    output line/pin number on the trigger device. ``t_ns`` is the time the rule
    decided it (the frame's timeline, not a wall clock). ``animal`` is the identity slot
    (row of the multi-animal layout, see :mod:`rtpose.multianimal.layout`) the rule fired
    for, or -1 when the action is not about one animal (single-animal models, rules on
    unique body parts or with ``animal: all``).
    """

    kind: str
    rule: str
    t_ns: int
    frame_index: int
    channel: int = 0
    duration_ms: float = 0.0
    stream: int = 0
    animal: int = -1


class PoseBatch:
    """Results for up to ``capacity`` frames; rows ``[:n]`` are valid.

    Arrays (row i = one frame):
        stream (B,) int32          index into the pipeline's StreamInfo list
        frame_index (B,) int64     index of the frame within its stream
        t_capture_ns ... t_emitted_ns (B,) int64  stage timestamps (see STAGES)
        pose (B, K, 3) float64     measured x, y, likelihood (DeepLabCut's decode)
        predicted (B, K, 3) float64  Kalman prediction to ``t_target_ns`` (likelihood copied)
        t_frame_ns (B,) int64      the frame's time on its stream's timeline, which the Kalman filter and the
                                   rules use: ``t_capture_ns`` live, media time (frame_index / fps) offline
        t_target_ns (B,) int64     the moment the prediction is for
        device_frame_id (B,) int64  the camera's own frame counter for the frame (Basler, GenICam); -1 when
                                   the source has none (files, OpenCV cameras). Gaps are frames the camera
                                   produced that never reached rtpose
        device_timestamp_ns (B,) int64  the camera's hardware timestamp of the frame, ns of the camera's own
                                   clock (not CLOCK_MONOTONIC); -1 when the source has none
        crop_box (B, 4) int64      the part of the frame the model saw: x1, x2, y1, y2 in full-frame pixels
                                   (half-open; the full frame without --crop/--dynamic-crop). Poses are
                                   always in full-frame pixels
        track_id (B, A) int64      multi-animal models only (``n_animals`` = A > 0): the tracker's id of the
                                   animal in each slot (row a of the flat pose's animals), -1 for an empty
                                   slot; a new id in a slot means another animal took it
    ``events`` lists what happened while producing this batch; cleared per batch.
    ``actions`` lists commands the rules stage decided for this batch (consumed by trigger sinks).
    ``trigger_states`` maps rule name -> bool state after this batch (set by the rules stage).
    """

    def __init__(self, capacity: int, num_bodyparts: int, n_animals: int = 0):
        self.capacity = capacity
        self.num_bodyparts = num_bodyparts
        self.n_animals = n_animals
        self.n = 0
        self.stream = np.zeros(capacity, np.int32)
        self.frame_index = np.zeros(capacity, np.int64)
        self.t_capture_ns = np.zeros(capacity, np.int64)
        self.t_dequeued_ns = np.zeros(capacity, np.int64)
        self.t_infer_start_ns = np.zeros(capacity, np.int64)
        self.t_infer_end_ns = np.zeros(capacity, np.int64)
        self.t_decoded_ns = np.zeros(capacity, np.int64)
        self.t_predicted_ns = np.zeros(capacity, np.int64)
        self.t_emitted_ns = np.zeros(capacity, np.int64)
        self.t_frame_ns = np.zeros(capacity, np.int64)
        self.t_target_ns = np.zeros(capacity, np.int64)
        self.crop_box = np.zeros((capacity, 4), np.int64)
        self.device_frame_id = np.full(capacity, -1, np.int64)
        self.device_timestamp_ns = np.full(capacity, -1, np.int64)
        self.pose = np.zeros((capacity, num_bodyparts, 3), np.float64)
        self.predicted = np.zeros((capacity, num_bodyparts, 3), np.float64)
        self.track_id = np.full((capacity, n_animals), -1, np.int64)
        self.events: list[Event] = []
        self.actions: list[Action] = []
        self.trigger_states: dict[str, bool] = {}

    def clear(self) -> None:
        self.n = 0
        self.events.clear()
        self.actions.clear()
