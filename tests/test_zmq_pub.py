"""The ZeroMQ publisher sink over real sockets (ipc:// in a temp dir, tcp loopback, inproc)."""

from __future__ import annotations

import logging
import os

import msgpack
import numpy as np
import pytest
import zmq

from rtpose.errors import ConfigError
from rtpose.results import Action, PoseBatch, StreamInfo
from rtpose.sinks.zmq_pub import LATENCY_NAMES, SCHEMA_VERSION, ZmqPublisherSink, endpoint_scope

BP = ("snout", "leftear", "rightear", "tailbase")
STREAM = StreamInfo("video:m3v1mp4.mp4", 640, 480, 30.0, BP, n_frames=2330)


class FakeClock:
    """Deterministic 'now': advances 1 µs per call; tests can jump it."""

    def __init__(self, start_ns: int = 10**12):
        self.now = start_ns

    def __call__(self) -> int:
        self.now += 1000
        return self.now


def make_batch(rng, n, k=len(BP), capacity=None, first_frame=0, rules=None) -> PoseBatch:
    """A batch with every field filled with seeded values (NaN included)."""
    b = PoseBatch(capacity or n, k)
    b.n = n
    b.stream[:n] = 0
    b.frame_index[:n] = first_frame + np.arange(n)
    t0 = rng.integers(10**11, 10**12)
    stamps = t0 + np.cumsum(rng.integers(10_000, 5_000_000, (n, 6)), axis=1)
    (b.t_capture_ns[:n], b.t_dequeued_ns[:n], b.t_infer_start_ns[:n], b.t_infer_end_ns[:n],
     b.t_decoded_ns[:n], b.t_predicted_ns[:n]) = stamps.T
    b.t_target_ns[:n] = b.t_capture_ns[:n] + 50_000_000
    b.pose[:n, :, :2] = rng.uniform(0, 640, (n, k, 2))
    b.pose[:n, :, 2] = rng.uniform(0, 1, (n, k))
    b.predicted[:n] = b.pose[:n] + rng.normal(0, 3, (n, k, 3))
    b.pose[0, 0, 0] = np.nan
    b.crop_box[:n] = [0, 640, 0, 480]
    b.crop_box[n - 1] = [96, 352, 40, 296]  # a dynamic crop
    b.device_frame_id[:n] = 7 + 2 * np.arange(n)  # a camera counter that skipped every other frame
    b.device_timestamp_ns[:n] = rng.integers(10**9, 10**12, n)
    b.device_frame_id[n - 1] = b.device_timestamp_ns[n - 1] = -1  # a frame without camera numbers
    for name, on in (rules or {}).items():
        b.trigger_states[name] = on
    return b


def subscriber(ctx, endpoint, topics=(b"",), rcvhwm=1000):
    s = ctx.socket(zmq.SUB)
    s.linger = 0
    s.rcvhwm = rcvhwm
    for t in topics:
        s.subscribe(t)
    s.connect(endpoint)
    return s


def recv(sock, timeout_ms=10_000):
    assert sock.poll(timeout_ms), "nothing received"
    topic, payload = sock.recv_multipart()
    return topic, msgpack.unpackb(payload, raw=False)


# --- binding ------------------------------------------------------------------------------
@pytest.mark.parametrize("address, scope", [
    ("tcp://127.0.0.1:5555", "loopback"), ("tcp://127.5.0.1:*", "loopback"), ("tcp://localhost:5555", "loopback"),
    ("tcp://[::1]:5555", "loopback"), ("tcp://lo:5555", "loopback"),
    ("tcp://0.0.0.0:5555", "remote"), ("tcp://*:5555", "remote"), ("tcp://192.168.1.20:5555", "remote"),
    ("tcp://eth0:5555", "remote"), ("tcp://[::]:5555", "remote"),
    ("ipc:///tmp/rtpose.sock", "local"), ("inproc://poses", "local"),
])
def test_endpoint_scope(address, scope):
    assert endpoint_scope(address) == scope


@pytest.mark.parametrize("address", ["127.0.0.1:5555", "udp://127.0.0.1:5555", "tcp://127.0.0.1", "tcp://127.0.0.1:http"])
def test_bad_endpoints_are_config_errors(address):
    with pytest.raises(ConfigError, match="tcp://127.0.0.1"):
        endpoint_scope(address)


@pytest.mark.parametrize("address", ["tcp://0.0.0.0:*", "tcp://*:*"])
def test_non_loopback_bind_needs_allow_remote(address, caplog):
    with pytest.raises(ConfigError, match="reachable from the network.*--publish-remote"):
        ZmqPublisherSink(address)
    with caplog.at_level(logging.WARNING, logger="rtpose.zmq"):
        sink = ZmqPublisherSink(address, allow_remote=True)
    try:
        assert any("reachable from the network" in r.getMessage() and sink.endpoint in r.getMessage()
                   for r in caplog.records)
    finally:
        sink.close()


def test_loopback_bind_logs_no_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="rtpose.zmq"):
        ZmqPublisherSink("tcp://127.0.0.1:*").close()
    assert not caplog.records


def test_address_in_use_says_what_to_do():
    first = ZmqPublisherSink("tcp://127.0.0.1:*")
    try:
        with pytest.raises(ConfigError, match="already in use.*choose another port"):
            ZmqPublisherSink(first.endpoint)
    finally:
        first.close()


# --- content -----------------------------------------------------------------------------------
@pytest.mark.parametrize("transport", ["ipc", "tcp"])
def test_messages_decode_to_exactly_what_was_sent(transport, ipc_dir, zmq_ctx):
    address = f"ipc://{ipc_dir}/pub" if transport == "ipc" else "tcp://127.0.0.1:*"
    clock = FakeClock()
    ctx = zmq_ctx
    sink = ZmqPublisherSink(address, clock=clock, header_id=41)
    sub = subscriber(ctx, sink.endpoint)
    try:
        assert sink.wait_for_subscriber(10_000)
        sink.open([STREAM])
        rng = np.random.default_rng(0)
        batch = make_batch(rng, 3, rules={"zone": True, "far": False})
        batch.actions.append(Action("pulse", "zone", 5, 1, channel=1, duration_ms=10))  # not published
        batch.actions.append(Action("event", "zone", int(batch.t_capture_ns[1]), 1))
        t_before = clock.now
        sink.write(batch)

        messages = []
        while len(messages) < 6:
            messages.append(recv(sub))
        topics = [t for t, _ in messages]
        # header answering the subscription (id 41), header at open (streams known: 42),
        # header for the rule names (43), three poses, one event.
        assert topics == [b"header", b"header", b"header", b"pose", b"pose", b"pose"]
        headers = [m for t, m in messages if t == b"header"]
        assert [h["hdr"] for h in headers] == [41, 42, 43]
        h = headers[-1]
        assert h["v"] == SCHEMA_VERSION and h["rules"] == ["zone", "far"]
        assert h["streams"] == [{"id": STREAM.stream_id, "width": 640, "height": 480, "fps": 30.0,
                                 "n_frames": 2330, "bodyparts": list(BP)}]
        assert h["latencies"] == list(LATENCY_NAMES) and h["pose_dtype"] == "<f4"
        assert h["pose_fields"] == ["x", "y", "likelihood"] and h["header_interval_ms"] == 1000

        poses = [m for t, m in messages if t == b"pose"]
        for i, m in enumerate(poses):
            assert set(m) == {"v", "hdr", "seq", "stream", "frame", "t_capture_ns", "t_send_ns", "t_target_ns",
                              "lat_ns", "pose", "pred", "trig", "crop", "cam"}
            assert (m["v"], m["hdr"], m["seq"], m["stream"], m["frame"]) == (1, 43, i, 0, i)
            assert m["t_capture_ns"] == batch.t_capture_ns[i] and m["t_target_ns"] == batch.t_target_ns[i]
            assert t_before < m["t_send_ns"] <= clock.now
            stamps = [batch.t_capture_ns[i], batch.t_dequeued_ns[i], batch.t_infer_start_ns[i],
                      batch.t_infer_end_ns[i], batch.t_decoded_ns[i], batch.t_predicted_ns[i]]
            assert m["lat_ns"] == [int(b - a) for a, b in zip(stamps, stamps[1:])]
            assert m["pose"] == batch.pose[i].astype("<f4").tobytes()
            assert m["pred"] == batch.predicted[i].astype("<f4").tobytes()
            assert m["trig"] == [True, False]
            assert m["crop"] == batch.crop_box[i].tolist()
            assert m["cam"] == [batch.device_frame_id[i], batch.device_timestamp_ns[i]]
        assert poses[-1]["cam"] == [-1, -1]
        assert np.isnan(np.frombuffer(poses[0]["pose"], "<f4")[0])

        topic, event = recv(sub)
        assert topic == b"event"
        assert event == {"v": 1, "hdr": 43, "seq": 0, "kind": "fire", "rule": "zone", "stream": 0, "frame": 1,
                         "t_ns": int(batch.t_capture_ns[1]), "t_send_ns": event["t_send_ns"]}
        assert sink.summary() == {"address": sink.endpoint, "sent": 3, "events_sent": 1, "headers_sent": 3,
                                  "dropped": 0, "subscriptions": 1}
    finally:
        sub.close()
        sink.close()


def test_pose_message_is_compact(zmq_ctx):
    ctx = zmq_ctx
    sink = ZmqPublisherSink("inproc://compact", context=ctx)
    sub = subscriber(ctx, "inproc://compact", (b"pose",))
    try:
        sink.write(make_batch(np.random.default_rng(1), 1, rules={"snout_in_zone": False}))
        frames = sub.recv_multipart()
        assert frames[0] == b"pose" and len(frames[1]) < 285  # K=4: 96 bytes of pose arrays + ~170 (cam: up to 23)
    finally:
        sub.close()
        sink.close()


# --- headers for late joiners ----------------------------------------------------------------------
def test_late_joiner_gets_a_header_before_its_first_pose(ipc_dir, zmq_ctx):
    ctx = zmq_ctx
    sink = ZmqPublisherSink(f"ipc://{ipc_dir}/late", clock=FakeClock())
    rng = np.random.default_rng(2)
    try:
        sink.open([STREAM])
        for i in range(3):
            sink.write(make_batch(rng, 1, first_frame=i))
        # header first: when the pose subscription is seen, the header one has been too
        late = subscriber(ctx, sink.endpoint, (b"header", b"pose"))
        assert sink.wait_for_subscriber(10_000)
        sink.write(make_batch(rng, 1, first_frame=3))
        topic, header = recv(late)
        assert topic == b"header" and header["streams"][0]["bodyparts"] == list(BP)
        topic, pose = recv(late)
        assert topic == b"pose" and pose["frame"] == 3 and pose["hdr"] == header["hdr"]
        late.close()
    finally:
        sink.close()


def test_header_repeats_every_interval_and_on_change(zmq_ctx):
    clock = FakeClock()
    ctx = zmq_ctx
    sink = ZmqPublisherSink("inproc://periodic", context=ctx, clock=clock, header_interval_ns=1_000_000_000)
    sub = subscriber(ctx, "inproc://periodic", (b"header",))
    rng = np.random.default_rng(3)
    try:
        assert sink.poll_subscriptions(10_000) == 1  # answered with a header
        sink.open([STREAM])  # streams known: a new header
        assert sink.headers_sent == 2
        sent0 = sink.headers_sent
        for _ in range(20):  # 20 frames at 33 ms: under a second
            clock.now += 33_000_000
            sink.write(make_batch(rng, 1))
        assert sink.headers_sent == sent0
        clock.now += 400_000_000  # crosses one second since the last header
        sink.write(make_batch(rng, 1))
        assert sink.headers_sent == sent0 + 1
        hdr = sink.header_id
        sink.write(make_batch(rng, 1, rules={"new_rule": False}))  # rule names changed: new header now
        assert sink.headers_sent == sent0 + 2 and sink.header_id == hdr + 1
        last = None
        while sub.poll(0):
            last = msgpack.unpackb(sub.recv_multipart()[1])
        assert last["hdr"] == hdr + 1 and last["rules"] == ["new_rule"]
    finally:
        sub.close()
        sink.close()


# --- never blocking -------------------------------------------------------------------------------
def test_subscriber_that_never_reads_costs_only_its_own_messages(zmq_ctx):
    """inproc: ZeroMQ's queues are exactly sndhwm + rcvhwm long, so this is deterministic."""
    ctx = zmq_ctx
    sink = ZmqPublisherSink("inproc://stuck", context=ctx, sndhwm=2)
    stuck = subscriber(ctx, "inproc://stuck", (b"pose",), rcvhwm=2)
    healthy = subscriber(ctx, "inproc://stuck", (b"pose",), rcvhwm=2)
    rng = np.random.default_rng(4)
    batch = make_batch(rng, 1)
    try:
        healthy_seqs = []
        for i in range(500):
            sink.write(batch)  # returns every time, whatever the stuck subscriber does
            while healthy.poll(0):
                healthy_seqs.append(msgpack.unpackb(healthy.recv_multipart()[1])["seq"])
        assert sink.sent == 500 and sink.dropped == 0  # ZeroMQ accepted every send
        assert healthy_seqs == list(range(500))  # the reading subscriber lost nothing
        stuck_seqs = []
        while stuck.poll(0):
            stuck_seqs.append(msgpack.unpackb(stuck.recv_multipart()[1])["seq"])
        assert stuck_seqs == list(range(len(stuck_seqs))) and 0 < len(stuck_seqs) <= 4
    finally:
        stuck.close()
        healthy.close()
        sink.close()


class _RefusingSocket:
    """Wraps a real socket; refuses sends like a socket in ZeroMQ's mute state (zmq.Again)."""

    def __init__(self, sock):
        self._sock = sock

    def send(self, data, flags=0, **kw):
        assert flags & zmq.NOBLOCK, "the sink must never send in blocking mode"
        raise zmq.Again()

    send_multipart = send

    def __getattr__(self, name):
        return getattr(self._sock, name)


def test_refused_sends_are_counted_not_raised():
    sink = ZmqPublisherSink("tcp://127.0.0.1:*")
    sink._sock = _RefusingSocket(sink._sock)
    try:
        batch = make_batch(np.random.default_rng(5), 4)
        batch.actions.append(Action("event", "r", 0, 0))
        sink.write(batch)
        assert sink.summary()["dropped"] == 4 + 1 + 1  # poses, event, header
        assert sink.sent == 0 and sink.events_sent == 0
    finally:
        sink.close()


def test_write_after_close_is_an_error_and_close_is_idempotent():
    sink = ZmqPublisherSink("tcp://127.0.0.1:*")
    sink.close()
    sink.close()
    with pytest.raises(ConfigError, match="after close"):
        sink.write(make_batch(np.random.default_rng(6), 1))


# --- what docs/protocol.md promises ------------------------------------------------------------------
def test_a_subscription_is_answered_with_the_next_frame_and_to_every_header_subscriber(zmq_ctx):
    """inproc: a subscription reaches the XPUB socket synchronously, so this is deterministic."""
    sink = ZmqPublisherSink("inproc://answer", context=zmq_ctx, clock=FakeClock())
    rng = np.random.default_rng(7)
    first = late = None
    try:
        sink.open([STREAM])
        first = subscriber(zmq_ctx, "inproc://answer", (b"header", b"pose"))
        sink.write(make_batch(rng, 1, first_frame=0))
        assert [recv(first)[0] for _ in range(2)] == [b"header", b"pose"]  # its subscription was answered
        late = subscriber(zmq_ctx, "inproc://answer", (b"header", b"pose"))
        assert not first.poll(0) and not late.poll(0)  # no header while no frame is processed
        sink.write(make_batch(rng, 1, first_frame=1))
        for sub in (late, first):  # the answer to `late` reaches `first` too, ahead of the pose
            (t1, h), (t2, p) = recv(sub), recv(sub)
            assert (t1, t2) == (b"header", b"pose") and p["frame"] == 1 and p["hdr"] == h["hdr"]
    finally:
        for sub in (first, late):
            if sub is not None:
                sub.close()
        sink.close()


def test_periodic_headers_are_at_least_the_interval_apart(zmq_ctx):
    clock = FakeClock()
    sink = ZmqPublisherSink("inproc://period", context=zmq_ctx, clock=clock, header_interval_ns=1_000_000_000)
    sub = subscriber(zmq_ctx, "inproc://period", (b"header",))
    try:
        sink.poll_subscriptions(10_000)
        sink.open([STREAM])
        rng = np.random.default_rng(8)
        for _ in range(200):  # 200 frames 70 ms apart: 14 s
            clock.now += 70_000_000
            sink.write(make_batch(rng, 1))
        sent = []
        while sub.poll(0):
            sent.append(msgpack.unpackb(sub.recv_multipart()[1])["t_send_ns"])
    finally:
        sub.close()
        sink.close()
    gaps = np.diff(sent[1:])  # from the header at open on
    assert len(gaps) >= 12 and gaps.min() >= 1_000_000_000 and gaps.max() < 1_000_000_000 + 70_000_000 + 10_000


def test_one_seq_counter_for_all_streams(zmq_ctx):
    sink = ZmqPublisherSink("inproc://seq", context=zmq_ctx)
    sub = subscriber(zmq_ctx, "inproc://seq", (b"pose",))
    try:
        sink.open([StreamInfo(f"camera:{i}", 640, 480, 30.0, BP) for i in range(2)])
        batch = make_batch(np.random.default_rng(9), 4)
        batch.stream[:4] = [0, 1, 0, 1]
        sink.write(batch)
        got = [recv(sub)[1] for _ in range(4)]
    finally:
        sub.close()
        sink.close()
    assert [(m["stream"], m["seq"]) for m in got] == [(0, 0), (1, 1), (0, 2), (1, 3)]


def test_the_ipc_socket_file_is_removed_on_close_and_a_stale_one_replaced(ipc_dir):
    path = os.path.join(ipc_dir, "poses")
    sink = ZmqPublisherSink(f"ipc://{path}")
    assert os.path.exists(path)
    sink.close()
    assert not os.path.exists(path)
    with open(path, "w"):  # what a killed publisher leaves behind
        pass
    sink = ZmqPublisherSink(f"ipc://{path}")
    sink.close()
    assert not os.path.exists(path)
