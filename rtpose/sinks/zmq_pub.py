"""Publish poses on a ZeroMQ PUB socket (msgpack, or JSON), never blocking the pipeline.

One multipart message ``[topic, payload]`` per processed frame on topic
``pose``; a ``header`` message naming streams, bodyparts and rules (sent at
open, whenever it changes, whenever a subscriber subscribes, and at least once
a second); rules' ``event`` actions on topic ``event``. The wire format is
documented byte by byte in docs/protocol.md; :mod:`rtpose.client` decodes it. The payload is
one MessagePack map (default) or, with ``payload_format="json"`` (``--publish-format json``),
the same map as compact ASCII JSON for clients without MessagePack (MATLAB, Bonsai): same topics,
keys and order; ``pose``/``pred`` become arrays of 3·K numbers with ``null`` for NaN.

Sends are non-blocking: ZeroMQ queues up to ``sndhwm`` messages per subscriber
and drops a slow subscriber's messages beyond that without affecting anyone
else; subscribers see such drops as gaps in ``seq``. A send ZeroMQ refuses
outright (``zmq.Again``) is counted in ``summary()["dropped"]``.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from math import isfinite
import os
from typing import Sequence

import msgpack
import numpy as np
import zmq

from .. import __version__
from ..clock import Clock, monotonic_ns
from ..errors import ConfigError
from ..results import PoseBatch, StreamInfo
from .base import Sink

log = logging.getLogger("rtpose.zmq")

SCHEMA_VERSION = 1
DEFAULT_ADDRESS = "tcp://127.0.0.1:5555"
TOPIC_POSE = b"pose"
TOPIC_HEADER = b"header"
TOPIC_EVENT = b"event"
#: Entries of ``lat_ns``: (name, from stage timestamp, to stage timestamp) of the PoseBatch.
LATENCY_STAGES = (
    ("queue", "t_capture_ns", "t_dequeued_ns"),  # waiting in the frame ring
    ("preprocess", "t_dequeued_ns", "t_infer_start_ns"),  # colour conversion, copy into the model input
    ("infer", "t_infer_start_ns", "t_infer_end_ns"),  # the network
    ("decode", "t_infer_end_ns", "t_decoded_ns"),  # score maps -> pose
    ("predict", "t_decoded_ns", "t_predicted_ns"),  # Kalman filter
)
LATENCY_NAMES = tuple(name for name, _, _ in LATENCY_STAGES)
POSE_FIELDS = ("x", "y", "likelihood")
POSE_DTYPE = "<f4"
HEADER_INTERVAL_NS = 1_000_000_000
#: Payload encodings (``--publish-format``): MessagePack maps, or the same maps as JSON text.
PAYLOAD_FORMATS = ("msgpack", "json")
# Plain ints: pyzmq's enum arithmetic costs microseconds per call on the hot path.
_NOBLOCK = int(zmq.NOBLOCK)
_MORE_NOBLOCK = int(zmq.SNDMORE) | _NOBLOCK
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)
_STAMP_NAMES = (LATENCY_STAGES[0][1],) + tuple(to for _, _, to in LATENCY_STAGES)


def endpoint_scope(address: str) -> str:
    """'loopback', 'remote' (reachable from other machines) or 'local' (ipc/inproc).

    Raises ConfigError for endpoints rtpose does not publish on.
    """
    transport, sep, rest = address.partition("://")
    if not sep or not rest:
        raise ConfigError(f"publish address {address!r} is not a ZeroMQ endpoint; use e.g. {DEFAULT_ADDRESS} or ipc:///tmp/rtpose.sock")
    if transport in ("ipc", "inproc"):
        return "local"
    if transport != "tcp":
        raise ConfigError(f"publish address {address!r}: transport {transport!r} is not supported; use e.g. {DEFAULT_ADDRESS} or ipc:///tmp/rtpose.sock")
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not (port.isdigit() or port in ("*", "!")):
        raise ConfigError(f"publish address {address!r} needs a host and a port, e.g. {DEFAULT_ADDRESS}")
    if port.isdigit() and not 1 <= int(port) <= 65535:
        # ZeroMQ would silently bind the port number modulo 65536
        raise ConfigError(f"publish address {address!r}: port {int(port)} is outside 1..65535; "
                          f"use e.g. {DEFAULT_ADDRESS}, or tcp://127.0.0.1:* for any free port")
    host = host.strip("[]")
    if host in ("localhost", "lo"):
        return "loopback"
    try:
        return "loopback" if ipaddress.ip_address(host).is_loopback else "remote"
    except ValueError:
        return "remote"  # '*', an interface name or a host name: not provably loopback


class _AsciiJson:
    """Compact JSON (no spaces), ASCII only (``\\uXXXX`` escapes), NaN refused: what ``--publish-format json`` sends."""

    _encoder = json.JSONEncoder(ensure_ascii=True, allow_nan=False, separators=(",", ":"))

    def encode(self, obj) -> bytes:
        return self._encoder.encode(obj).encode("ascii")


_JSON_ENCODER = _AsciiJson()


def _json_floats(values: np.ndarray) -> list:
    """float32 values as JSON numbers: each the shortest decimal that reads back as the same double,
    which converts back to the same float32 exactly; NaN and infinities (not JSON) as None -> null."""
    return [v if isfinite(v) else None for v in values.ravel().tolist()]


def _ipc_file(endpoint: str) -> tuple[str, tuple[int, int]] | None:
    """(path, (device, inode)) of the socket file an ``ipc://`` bind created, else None
    (tcp, inproc, Linux abstract ``ipc://@name`` sockets have no file)."""
    if not endpoint.startswith("ipc://") or endpoint.startswith("ipc://@"):
        return None
    path = endpoint[len("ipc://"):]
    try:
        st = os.stat(path)
    except OSError:
        return None
    return path, (st.st_dev, st.st_ino)


def _stream_entry(s: StreamInfo) -> dict:
    """A header ``streams`` entry; a multi-animal stream adds its animal slots and parts (``bodyparts`` are
    then the flat names, see docs/protocol.md section 4)."""
    entry = {"id": s.stream_id, "width": s.width, "height": s.height, "fps": float(s.fps),
             "n_frames": s.n_frames, "bodyparts": list(s.bodyparts)}
    if s.layout is not None:
        entry["individuals"] = list(s.layout.individuals)
        entry["animal_bodyparts"] = list(s.layout.bodyparts)
        entry["unique_bodyparts"] = list(s.layout.unique_bodyparts)
    return entry


class ZmqPublisherSink(Sink):
    """Publish every processed frame on ``address`` (bound at construction).

    Args:
        address: ZeroMQ endpoint to bind; ``tcp://127.0.0.1:*`` picks a free port
            (see :attr:`endpoint`).
        allow_remote: required to bind anything but loopback, ipc:// or inproc://.
        sndhwm: messages queued per subscriber before ZeroMQ drops its messages.
        clock: "now" in CLOCK_MONOTONIC ns, for ``t_send_ns`` and the header period.
        context: a zmq.Context to use (default: a private one, terminated on close).
        header_interval_ns: resend the header at least this often.
        header_id: initial header id (default random); bumps when the header changes.
        payload_format: "msgpack" (default) or "json" (docs/protocol.md section 8).

    Not thread-safe: call ``write``/``poll_subscriptions`` from one thread.
    """

    name = "zmq"

    def __init__(self, address: str = DEFAULT_ADDRESS, *, allow_remote: bool = False, sndhwm: int = 1000,
                 clock: Clock = monotonic_ns, context: zmq.Context | None = None,
                 header_interval_ns: int = HEADER_INTERVAL_NS, header_id: int | None = None,
                 payload_format: str = "msgpack"):
        if payload_format not in PAYLOAD_FORMATS:
            raise ConfigError(f"payload format {payload_format!r}: choose one of {', '.join(PAYLOAD_FORMATS)}")
        scope = endpoint_scope(address)
        if scope == "remote" and not allow_remote:
            raise ConfigError(
                f"publishing on {address} would make the pose stream reachable from the network; "
                "pass --publish-remote (allow_remote=True) if that is intended, or use tcp://127.0.0.1:PORT"
            )
        if sndhwm < 1:
            raise ConfigError(f"sndhwm must be >= 1, got {sndhwm}")
        self.address = address
        self._clock = clock
        self._header_interval_ns = int(header_interval_ns)
        self._own_context = context is None
        self._ctx = zmq.Context() if context is None else context
        self._sock = self._ctx.socket(zmq.XPUB)
        try:
            self._sock.setsockopt(zmq.LINGER, 0)
            self._sock.setsockopt(zmq.SNDHWM, int(sndhwm))
            self._sock.setsockopt(zmq.XPUB_VERBOSE, 1)  # see every subscription, to answer with a header
            self._sock.bind(address)
        except zmq.ZMQError as exc:
            self._release()
            raise self._bind_error(address, exc) from exc
        self.endpoint: str = self._sock.getsockopt_string(zmq.LAST_ENDPOINT) or address
        self._ipc_file = _ipc_file(self.endpoint)  # libzmq leaves it behind: removed on close
        if scope == "remote":
            log.warning("publishing poses on %s: reachable from the network, without authentication or encryption",
                        self.endpoint)
        self.header_id = (int.from_bytes(os.urandom(4), "little") if header_id is None else int(header_id)) & 0xFFFFFFFF
        self._packer = msgpack.Packer(use_bin_type=True)
        self.payload_format = payload_format
        self._json = payload_format == "json"
        self._encode = _JSON_ENCODER.encode if self._json else self._packer.pack
        self._streams: tuple[StreamInfo, ...] = ()
        self._rules: tuple[str, ...] = ()
        self._header_due = True
        self._last_header_ns: int | None = None
        self._seq = 0
        self._event_seq = 0
        self.sent = 0
        self.events_sent = 0
        self.headers_sent = 0
        self.dropped = 0
        self.subscriptions = 0
        self._pose_subscribers = 0
        self._closed = False
        # Preallocated per-batch state (sized on the first batch).
        self._pose32: np.ndarray | None = None
        self._pred32: np.ndarray | None = None
        self._pose_rows: list[memoryview] = []
        self._pred_rows: list[memoryview] = []
        self._lat = [0] * len(LATENCY_NAMES)
        self._crop = [0, 0, 0, 0]
        self._cam = [-1, -1]
        self._track: list[int] = []
        self._msg = {
            "v": SCHEMA_VERSION, "hdr": 0, "seq": 0, "stream": 0, "frame": 0,
            "t_capture_ns": 0, "t_send_ns": 0, "t_target_ns": 0,
            "lat_ns": self._lat, "pose": b"", "pred": b"", "trig": [], "crop": self._crop, "cam": self._cam,
        }

    @staticmethod
    def _bind_error(address: str, exc: zmq.ZMQError) -> ConfigError:
        if exc.errno == zmq.EADDRINUSE:
            return ConfigError(
                f"cannot publish on {address}: the address is already in use (another rtpose run or program "
                "is bound there); stop it or choose another port, e.g. --publish tcp://127.0.0.1:5556"
            )
        if exc.errno == zmq.EADDRNOTAVAIL:
            return ConfigError(f"cannot publish on {address}: no network interface has that address; "
                               "use 127.0.0.1 or an address of this machine")
        return ConfigError(f"cannot publish on {address}: {exc}")

    # -- Sink ------------------------------------------------------------------
    def open(self, streams: Sequence[StreamInfo]) -> None:
        streams = tuple(streams)
        if streams != self._streams:
            self._streams = streams
            self._bump_header()
        layout = streams[0].layout if streams else None
        if layout is not None:  # multi-animal: the track id in each animal slot (docs/protocol.md section 4)
            self._track = [-1] * layout.n_animals
            self._msg["track"] = self._track
        else:
            self._msg.pop("track", None)
        self._send_header(self._clock())

    def write(self, batch: PoseBatch) -> None:
        if self._closed:
            raise ConfigError("ZmqPublisherSink.write() after close()")
        self._drain_subscriptions()
        rules = tuple(batch.trigger_states)
        if rules != self._rules:
            self._rules = rules
            self._bump_header()
        now = self._clock()
        if self._header_due or self._last_header_ns is None or now - self._last_header_ns >= self._header_interval_ns:
            self._send_header(now)
        n = batch.n
        if n:
            self._ensure_buffers(batch)
            np.copyto(self._pose32[:n], batch.pose[:n], casting="same_kind")
            np.copyto(self._pred32[:n], batch.predicted[:n], casting="same_kind")
            states = batch.trigger_states
            msg, lat, crop, cam = self._msg, self._lat, self._crop, self._cam
            msg["hdr"] = self.header_id
            msg["trig"] = [bool(states[r]) for r in rules]
            stamps = [getattr(batch, s) for s in _STAMP_NAMES]
            n_lat = len(lat)
            for i in range(n):
                prev = int(stamps[0][i])
                for j in range(n_lat):
                    cur = int(stamps[j + 1][i])
                    lat[j] = cur - prev
                    prev = cur
                t_cap = int(batch.t_capture_ns[i])
                box = batch.crop_box[i]
                crop[0], crop[1], crop[2], crop[3] = int(box[0]), int(box[1]), int(box[2]), int(box[3])
                cam[0], cam[1] = int(batch.device_frame_id[i]), int(batch.device_timestamp_ns[i])
                if batch.n_animals:
                    self._track[:] = batch.track_id[i].tolist()
                msg["seq"] = self._seq
                msg["stream"] = int(batch.stream[i])
                msg["frame"] = int(batch.frame_index[i])
                msg["t_capture_ns"] = t_cap
                msg["t_target_ns"] = int(batch.t_target_ns[i])
                msg["pose"] = self._pose_rows[i]
                msg["pred"] = self._pred_rows[i]
                msg["t_send_ns"] = self._clock()
                self._seq += 1
                payload = self._json_pose(msg, i) if self._json else self._packer.pack(msg)
                if self._send(TOPIC_POSE, payload):
                    self.sent += 1
        for a in batch.actions:
            if a.kind == "event":
                event = {
                    "v": SCHEMA_VERSION, "hdr": self.header_id, "seq": self._event_seq, "kind": "fire",
                    "rule": a.rule, "stream": a.stream, "frame": a.frame_index, "t_ns": a.t_ns,
                    "t_send_ns": self._clock(),
                }
                if "track" in self._msg:  # multi-animal: the slot the rule fired for (-1: not one animal)
                    event["animal"] = a.animal
                self._event_seq += 1
                if self._send(TOPIC_EVENT, self._encode(event)):
                    self.events_sent += 1

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._release()

    def summary(self) -> dict[str, object]:
        return {
            "address": self.endpoint, "sent": self.sent, "events_sent": self.events_sent,
            "headers_sent": self.headers_sent, "dropped": self.dropped, "subscriptions": self.subscriptions,
        }

    # -- subscriptions ---------------------------------------------------------------
    def poll_subscriptions(self, timeout_ms: int = 0) -> int:
        """Read pending (un)subscriptions, waiting up to ``timeout_ms`` for one;
        answers new subscriptions with a header. Returns how many subscriptions arrived."""
        before = self.subscriptions
        if self._sock.poll(timeout_ms, zmq.POLLIN):
            self._drain_subscriptions()
        if self._header_due:
            self._send_header(self._clock())
        return self.subscriptions - before

    def wait_for_subscriber(self, timeout_ms: int) -> bool:
        """Block (in ZeroMQ's poll, not a sleep) until some subscriber has subscribed
        to poses, or ``timeout_ms`` passes. True if one has. Useful before the first
        frame so that nothing is lost to ZeroMQ's slow-joiner delay."""
        deadline = monotonic_ns() + int(timeout_ms) * 1_000_000  # a real wait, whatever clock stamps messages
        while self._pose_subscribers == 0:
            left_ms = (deadline - monotonic_ns()) // 1_000_000
            if left_ms <= 0:
                return False
            self.poll_subscriptions(int(left_ms))
        return True

    def _drain_subscriptions(self) -> None:
        sock = self._sock
        while sock.getsockopt(_EVENTS) & _POLLIN:
            msg = sock.recv(_NOBLOCK)
            if not msg:
                continue
            topic = msg[1:]
            if msg[0] == 1:
                self.subscriptions += 1
                if TOPIC_HEADER.startswith(topic):
                    self._header_due = True
                if TOPIC_POSE.startswith(topic):
                    self._pose_subscribers += 1
            elif msg[0] == 0 and TOPIC_POSE.startswith(topic):
                self._pose_subscribers = max(0, self._pose_subscribers - 1)

    # -- internals ---------------------------------------------------------------------
    def _send(self, topic: bytes, payload: bytes) -> bool:
        try:
            # Multipart is atomic: once the first frame is accepted, so is the last.
            self._sock.send(topic, _MORE_NOBLOCK)
            self._sock.send(payload, _NOBLOCK)
            return True
        except zmq.Again:
            self.dropped += 1
            return False

    def _bump_header(self) -> None:
        self.header_id = (self.header_id + 1) & 0xFFFFFFFF
        self._header_due = True

    def header(self, now_ns: int) -> dict:
        """The header message content as of now (what the ``header`` topic carries)."""
        return {
            "v": SCHEMA_VERSION,
            "hdr": self.header_id,
            "t_send_ns": now_ns,
            "streams": [_stream_entry(s) for s in self._streams],
            "rules": list(self._rules),
            "latencies": list(LATENCY_NAMES),
            "pose_fields": list(POSE_FIELDS),
            "pose_dtype": POSE_DTYPE,
            "header_interval_ms": self._header_interval_ns // 1_000_000,
            "publisher": f"rtpose {__version__}",
        }

    def _send_header(self, now_ns: int) -> None:
        if self._send(TOPIC_HEADER, self._encode(self.header(now_ns))):
            self.headers_sent += 1
        self._header_due = False
        self._last_header_ns = now_ns

    def _json_pose(self, msg: dict, i: int) -> bytes:
        """The pose message as JSON: the same keys, ``pose``/``pred`` as arrays of numbers (null for NaN)."""
        out = dict(msg)
        out["lat_ns"] = list(msg["lat_ns"])
        out["pose"] = _json_floats(self._pose32[i])
        out["pred"] = _json_floats(self._pred32[i])
        out["crop"] = list(msg["crop"])
        out["cam"] = list(msg["cam"])
        if "track" in msg:
            out["track"] = list(msg["track"])
        return _JSON_ENCODER.encode(out)

    def _ensure_buffers(self, batch: PoseBatch) -> None:
        shape = (batch.capacity, batch.num_bodyparts, 3)
        if self._pose32 is None or self._pose32.shape != shape:
            self._pose32 = np.zeros(shape, POSE_DTYPE)
            self._pred32 = np.zeros(shape, POSE_DTYPE)
            self._pose_rows = [memoryview(self._pose32[i]).cast("B") for i in range(batch.capacity)]
            self._pred_rows = [memoryview(self._pred32[i]).cast("B") for i in range(batch.capacity)]

    def _release(self) -> None:
        self._sock.close(linger=0)
        if self._own_context:
            self._ctx.term()
        ipc_file = getattr(self, "_ipc_file", None)
        if ipc_file is not None:
            path, identity = ipc_file
            try:
                st = os.stat(path)
                if (st.st_dev, st.st_ino) == identity:  # still ours, not another publisher's since
                    os.unlink(path)
            except OSError:
                pass  # already gone
