"""Receive rtpose's ZeroMQ pose stream in Python, as numpy arrays.

    from rtpose.client import PoseClient
    with PoseClient("tcp://127.0.0.1:5555", newest_only=True) as client:
        for msg in client:
            x, y, likelihood = msg.pose[msg.bodyparts.index("snout")]

Each ``pose`` message becomes a :class:`PoseMessage`; with ``events=True``
rule events arrive as :class:`EventMessage` in the same iteration. Pose
messages that arrive before the header describing them are skipped (counted in
``skipped``); ZeroMQ's drops for a slow reader show as ``dropped`` (gaps in the
publisher's sequence numbers). Both payload formats (MessagePack, and JSON from
``--publish-format json``) are read, message by message. Protocol: docs/protocol.md.
"""

from __future__ import annotations

import collections
import json
from dataclasses import dataclass
from typing import Iterator

import msgpack
import numpy as np
import zmq

from .clock import Clock, monotonic_ns
from .errors import ConfigError, RtposeError
from .sinks.zmq_pub import POSE_DTYPE, SCHEMA_VERSION, TOPIC_EVENT, TOPIC_HEADER, TOPIC_POSE

_DEFAULT = object()
_MAX_HEADERS = 8


class ReceiveTimeout(RtposeError, TimeoutError):
    """Nothing arrived within the timeout."""


class ProtocolError(RtposeError):
    """A message does not follow the protocol version this rtpose reads."""


@dataclass(frozen=True)
class PoseMessage:
    """One frame's pose as published. Arrays are read-only float32 (K, 3): x, y, likelihood."""

    stream: int  # index into the header's streams
    stream_id: str
    frame_index: int
    seq: int  # publisher's message counter; gaps = messages this client missed
    t_capture_ns: int
    t_send_ns: int
    t_recv_ns: int  # this process's CLOCK_MONOTONIC when the message was read
    t_target_ns: int  # the moment ``predicted`` is for
    bodyparts: tuple[str, ...]
    pose: np.ndarray
    predicted: np.ndarray
    latencies_ns: dict[str, int]  # stage name -> ns, see docs/protocol.md
    trigger_states: dict[str, bool]
    header_id: int
    #: the part of the frame the model saw, (x1, x2, y1, y2) full-frame pixels; None from a publisher
    #: older than the ``crop`` key
    crop_box: tuple[int, int, int, int] | None = None
    #: the camera's own frame counter and hardware timestamp (ns of the camera's clock) for the frame
    #: (Basler, GenICam cameras); -1 where the source has none (files, OpenCV cameras) or the publisher is
    #: older than the ``cam`` key
    camera_frame: int = -1
    camera_timestamp_ns: int = -1
    #: multi-animal streams: the animal slots (header ``individuals``), the parts of each animal and the
    #: unique parts; ``bodyparts`` are then the flat names (``mouse1.snout``, ..., unique parts) and
    #: ``track_ids`` the tracker's id of the animal in each slot (-1: empty). Empty for one animal.
    individuals: tuple[str, ...] = ()
    animal_bodyparts: tuple[str, ...] = ()
    track_ids: tuple[int, ...] = ()

    def animals(self, predicted: bool = False) -> np.ndarray:
        """Multi-animal streams: ``(A, K, 3)`` view of the slots' poses (NaN: not seen); ``predicted`` for
        the Kalman prediction. The unique parts are the rows after them in :attr:`pose`."""
        if not self.individuals:
            raise ProtocolError(f"stream {self.stream_id} is not a multi-animal stream (its header lists no individuals)")
        a, k = len(self.individuals), len(self.animal_bodyparts)
        return (self.predicted if predicted else self.pose)[: a * k].reshape(a, k, 3)

    @property
    def receive_latency_ms(self) -> float:
        """Capture to reception, in ms (same-machine clocks only)."""
        return (self.t_recv_ns - self.t_capture_ns) / 1e6

    def to_json(self) -> dict:
        """A JSON-ready dict (NaN becomes null; coordinates rounded to 1/1000 px)."""
        return {
            "type": "pose",
            "stream": self.stream_id,
            "stream_index": self.stream,
            "frame": self.frame_index,
            "seq": self.seq,
            "t_capture_ns": self.t_capture_ns,
            "t_send_ns": self.t_send_ns,
            "t_recv_ns": self.t_recv_ns,
            "t_target_ns": self.t_target_ns,
            "latency_ms": round(self.receive_latency_ms, 3),
            "latencies_ms": {k: round(v / 1e6, 3) for k, v in self.latencies_ns.items()},
            "pose": _pose_json(self.bodyparts, self.pose),
            "predicted": _pose_json(self.bodyparts, self.predicted),
            "triggers": dict(self.trigger_states),
            "crop_box": list(self.crop_box) if self.crop_box is not None else None,
            "camera_frame": self.camera_frame,
            "camera_timestamp_ns": self.camera_timestamp_ns,
            **({"tracks": dict(zip(self.individuals, self.track_ids))} if self.individuals else {}),
        }


@dataclass(frozen=True)
class EventMessage:
    """A rule's ``event`` action, published when the rule fired."""

    kind: str  # "fire"
    rule: str
    stream: int
    stream_id: str
    frame_index: int
    seq: int
    t_ns: int  # frame time at which the rule decided
    t_send_ns: int
    t_recv_ns: int
    #: multi-animal streams: the slot the rule fired for (-1: not about one animal); None for one animal
    animal: int | None = None

    def to_json(self) -> dict:
        return {
            "type": "event", "kind": self.kind, "rule": self.rule, "stream": self.stream_id,
            "stream_index": self.stream, "frame": self.frame_index, "seq": self.seq, "t_ns": self.t_ns,
            "t_send_ns": self.t_send_ns, "t_recv_ns": self.t_recv_ns,
            "latency_ms": round((self.t_recv_ns - self.t_ns) / 1e6, 3),
            **({"animal": self.animal} if self.animal is not None else {}),
        }


def _animals(stream: dict, data: dict) -> dict:
    """PoseMessage's multi-animal fields from a header stream entry and a pose message ({} for one animal)."""
    if "individuals" not in stream:
        return {}
    individuals = tuple(stream["individuals"])
    track = tuple(int(t) for t in data.get("track", ()))
    if len(track) != len(individuals):
        raise ProtocolError(f"pose message has {len(track)} track ids, its header lists {len(individuals)} individuals")
    return {"individuals": individuals, "animal_bodyparts": tuple(stream["animal_bodyparts"]), "track_ids": track}


def _finite(v: float, digits: int) -> float | None:
    v = float(v)
    return None if v != v else round(v, digits)


def _pose_json(bodyparts: tuple[str, ...], pose: np.ndarray) -> dict:
    return {bp: [_finite(pose[k, 0], 3), _finite(pose[k, 1], 3), _finite(pose[k, 2], 4)]
            for k, bp in enumerate(bodyparts)}


class PoseClient:
    """Subscribe to an rtpose publisher.

    Args:
        address: the publisher's endpoint, e.g. ``tcp://127.0.0.1:5555``.
        newest_only: each :meth:`recv` drains everything queued and returns only the
            newest pose (events are still all delivered, in order, before it).
        timeout_ms: default wait per :meth:`recv`; None waits forever. Iteration
            ends when it passes; :meth:`recv` raises :class:`ReceiveTimeout`.
        events: also deliver rule events (:class:`EventMessage`).
        clock: "now" for ``t_recv_ns`` (CLOCK_MONOTONIC ns by default).
    """

    def __init__(self, address: str, *, newest_only: bool = False, timeout_ms: int | None = None,
                 events: bool = False, clock: Clock = monotonic_ns, context: zmq.Context | None = None,
                 rcvhwm: int = 1000):
        self.address = address
        self.newest_only = newest_only
        self.timeout_ms = timeout_ms
        self.events = events
        self._clock = clock
        self._own_context = context is None
        self._ctx = zmq.Context() if context is None else context
        self._sock = self._ctx.socket(zmq.SUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.RCVHWM, int(rcvhwm))
        topics = [TOPIC_HEADER, TOPIC_POSE] + ([TOPIC_EVENT] if events else [])
        for t in topics:
            self._sock.setsockopt(zmq.SUBSCRIBE, t)
        self._monitor: zmq.Socket | None = None
        try:
            if not address.startswith("inproc://"):  # ZeroMQ reports no connection events for inproc
                self._monitor = self._sock.get_monitor_socket(zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED)
            self._sock.connect(address)
        except zmq.ZMQError as exc:
            self._release()
            raise ConfigError(f"cannot connect to {address!r}: {exc}; use an endpoint like tcp://127.0.0.1:5555") from exc
        #: What the connection is doing, from ZeroMQ's connection events: "connecting" (no publisher
        #: reached yet), "connected", "disconnected" (a publisher was there and went away) or
        #: "unknown" (inproc reports no events).
        self.connection = "connecting" if self._monitor is not None else "unknown"
        self.missing_header: int | None = None  # header id of the last pose skipped for want of its header
        self.headers: dict[int, dict] = {}
        self.header: dict | None = None  # the latest header received
        self._pending: collections.deque = collections.deque()
        self._last_seq: int | None = None
        self.received = 0
        self.skipped = 0
        self.dropped = 0
        self._closed = False

    # -- receiving ---------------------------------------------------------------------
    def recv(self, timeout_ms=_DEFAULT) -> PoseMessage | EventMessage:
        """The next pose (or event) message; raises :class:`ReceiveTimeout`."""
        if self._pending:
            return self._pending.popleft()
        timeout = self.timeout_ms if timeout_ms is _DEFAULT else timeout_ms
        # A real wait, measured on CLOCK_MONOTONIC whatever clock stamps t_recv_ns.
        deadline = None if timeout is None else monotonic_ns() + int(timeout) * 1_000_000
        skipped_before = self.skipped
        while True:
            if self.newest_only:
                self._drain_newest()
                if self._pending:
                    return self._pending.popleft()
            else:
                while self._sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                    msg = self._handle(self._sock.recv_multipart(zmq.NOBLOCK))
                    if msg is not None:
                        return msg
            if deadline is None:
                self._sock.poll(None, zmq.POLLIN)
            else:
                left_ms = (deadline - monotonic_ns() + 999_999) // 1_000_000
                if left_ms <= 0 or not self._sock.poll(left_ms, zmq.POLLIN):
                    reason = self.silence(self.skipped - skipped_before)[1]
                    raise ReceiveTimeout(f"nothing received within {timeout} ms: {reason}")

    def silence(self, skipped: int = 0) -> tuple[str, str]:
        """Why nothing was delivered: ``(kind, words)``, kind one of "no-header" (poses arrive without
        their header), "no-publisher", "publisher-left", "publisher-silent" or "unknown"."""
        self._poll_monitor()
        a = self.address
        if skipped:
            return "no-header", (
                f"{skipped} pose messages arrived from {a} but none could be decoded: the header they refer to "
                f"(id {self.missing_header}) has not arrived. Publishers resend it at least every second; "
                "if this persists the publisher is a different rtpose version: use the same version on both sides")
        if self.connection == "connecting":
            return "no-publisher", (
                f"no publisher at {a} (nothing accepted the connection); start one with "
                f"`rtpose run --publish {a} ...` or check the address")
        if self.connection == "disconnected":
            return "publisher-left", (
                f"the publisher at {a} closed the connection after {self.received} pose messages "
                "(its run ended or it was stopped); waiting for it to come back")
        if self.connection == "connected":
            return "publisher-silent", (
                f"connected to the publisher at {a}, but it sent no pose message; it publishes only while "
                "frames are processed (is its source paused or finished?)")
        return "unknown", f"no message from {a}; is a publisher running (rtpose run --publish {a})?"

    def _poll_monitor(self) -> None:
        if self._monitor is None:
            return
        from zmq.utils.monitor import recv_monitor_message

        while self._monitor.poll(0, zmq.POLLIN):
            event = recv_monitor_message(self._monitor, zmq.NOBLOCK)["event"]
            if event == zmq.EVENT_CONNECTED:
                self.connection = "connected"
            elif event == zmq.EVENT_DISCONNECTED:
                self.connection = "disconnected"

    def __iter__(self) -> Iterator[PoseMessage | EventMessage]:
        while True:
            try:
                yield self.recv()
            except ReceiveTimeout:
                return

    def _drain_newest(self) -> None:
        latest = None
        while self._sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            msg = self._handle(self._sock.recv_multipart(zmq.NOBLOCK))
            if isinstance(msg, PoseMessage):
                latest = msg
            elif msg is not None:
                self._pending.append(msg)
        if latest is not None:
            self._pending.append(latest)

    def _handle(self, frames: list[bytes]) -> PoseMessage | EventMessage | None:
        t_recv = self._clock()
        if len(frames) != 2:
            raise ProtocolError(f"{self.address} sent a {len(frames)}-part message; rtpose messages are [topic, payload]")
        topic, payload = frames
        try:
            data = decode_payload(payload)
        except Exception as exc:  # msgpack/json raise several types (ExtraData, FormatError, ValueError, ...)
            encoding = "JSON" if payload[:1] == b"{" else "MessagePack"
            raise ProtocolError(
                f"{self.address} sent a {topic[:32]!r} message that is not {encoding} ({type(exc).__name__}: {exc}); "
                "is the address an rtpose publisher (rtpose run --publish)?"
            ) from None
        try:
            return self._dispatch(topic, data, t_recv)
        except (KeyError, TypeError, IndexError, ValueError) as exc:
            raise ProtocolError(
                f"{self.address} sent a {topic[:32]!r} message without the fields rtpose version {SCHEMA_VERSION} "
                f"sends ({type(exc).__name__}: {exc}); use the same rtpose version on both sides"
            ) from None

    def _dispatch(self, topic: bytes, data, t_recv: int) -> PoseMessage | EventMessage | None:
        if not isinstance(data, dict) or data.get("v") != SCHEMA_VERSION:
            version = data.get("v") if isinstance(data, dict) else None
            raise ProtocolError(
                f"{self.address} speaks rtpose stream version {version!r}; this client reads version "
                f"{SCHEMA_VERSION}. Use the same rtpose version on both sides."
            )
        if topic == TOPIC_HEADER:
            self.headers[data["hdr"]] = data
            self.header = data
            while len(self.headers) > _MAX_HEADERS:
                del self.headers[next(iter(self.headers))]
            return None
        if topic == TOPIC_POSE:
            self._count_gap(data["seq"])
            header = self.headers.get(data["hdr"])
            if header is None:
                self.skipped += 1
                self.missing_header = data["hdr"]
                return None
            self.received += 1
            return self._pose(data, header, t_recv)
        if topic == TOPIC_EVENT:
            header = self.headers.get(data["hdr"])
            return EventMessage(
                kind=data["kind"], rule=data["rule"], stream=data["stream"],
                stream_id=_stream_id(header, data["stream"]), frame_index=data["frame"], seq=data["seq"],
                t_ns=data["t_ns"], t_send_ns=data["t_send_ns"], t_recv_ns=t_recv, animal=data.get("animal"),
            )
        return None  # a topic added by a later minor version: ignore

    def _count_gap(self, seq: int) -> None:
        last = self._last_seq
        if last is not None and seq > last + 1:
            self.dropped += seq - last - 1
        self._last_seq = seq  # a lower seq means the publisher restarted: start counting afresh

    def _pose(self, data: dict, header: dict, t_recv: int) -> PoseMessage:
        stream = data["stream"]
        try:
            bodyparts = tuple(header["streams"][stream]["bodyparts"])
        except (IndexError, KeyError, TypeError):
            raise ProtocolError(f"pose message names stream {stream}, which header {data['hdr']} does not list") from None
        k = len(bodyparts)
        pose = _pose_values(data["pose"])
        pred = _pose_values(data["pred"])
        if pose.size != 3 * k or pred.size != 3 * k:
            raise ProtocolError(f"pose message has {pose.size // 3} bodyparts, its header lists {k}")
        rules = header.get("rules", [])
        return PoseMessage(
            stream=stream, stream_id=_stream_id(header, stream), frame_index=data["frame"], seq=data["seq"],
            t_capture_ns=data["t_capture_ns"], t_send_ns=data["t_send_ns"], t_recv_ns=t_recv,
            t_target_ns=data["t_target_ns"], bodyparts=bodyparts,
            pose=pose.reshape(k, 3), predicted=pred.reshape(k, 3),
            latencies_ns=dict(zip(header.get("latencies", []), data["lat_ns"])),
            trigger_states=dict(zip(rules, data["trig"])), header_id=data["hdr"],
            crop_box=tuple(data["crop"]) if "crop" in data else None,
            camera_frame=int(data["cam"][0]) if "cam" in data else -1,
            camera_timestamp_ns=int(data["cam"][1]) if "cam" in data else -1,
            **_animals(header["streams"][stream], data),
        )

    # -- lifecycle ------------------------------------------------------------------------
    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._release()

    def _release(self) -> None:
        if self._monitor is not None:
            self._sock.disable_monitor()
            self._monitor.close(linger=0)
            self._monitor = None
        self._sock.close(linger=0)
        if self._own_context:
            self._ctx.term()

    def __enter__(self) -> "PoseClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def decode_payload(payload: bytes):
    """A message payload as Python objects: JSON (``--publish-format json``) when it starts with
    ``{`` (a byte that never starts a MessagePack map), MessagePack otherwise."""
    if payload[:1] == b"{":
        return json.loads(payload)
    return msgpack.unpackb(payload, raw=False)


def _pose_values(value) -> np.ndarray:
    """A pose array from its wire form: MessagePack bytes (float32 little-endian), or the JSON
    array of numbers with null for NaN. Read-only float32 either way."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return np.frombuffer(value, POSE_DTYPE)
    arr = np.array([np.nan if v is None else v for v in value], POSE_DTYPE)
    arr.flags.writeable = False
    return arr


def _stream_id(header: dict | None, stream: int) -> str:
    try:
        return str(header["streams"][stream]["id"])
    except (TypeError, IndexError, KeyError):
        return str(stream)
