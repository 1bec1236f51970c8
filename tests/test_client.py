"""rtpose.client.PoseClient against the real publisher sink and hand-made messages."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest
import zmq

from rtpose.client import EventMessage, PoseClient, PoseMessage, ProtocolError, ReceiveTimeout
from rtpose.errors import RtposeError
from rtpose.results import Action, StreamInfo
from rtpose.sinks.zmq_pub import ZmqPublisherSink
from test_zmq_pub import BP, STREAM, FakeClock, make_batch


def wait_pose_subscription(sink: ZmqPublisherSink) -> None:
    assert sink.wait_for_subscriber(10_000), "the client never subscribed"


@pytest.mark.parametrize("transport", ["ipc", "tcp"])
def test_client_yields_numpy_poses_exactly(transport, ipc_dir):
    address = f"ipc://{ipc_dir}/c" if transport == "ipc" else "tcp://127.0.0.1:*"
    sink = ZmqPublisherSink(address, clock=FakeClock())
    recv_clock = FakeClock(start_ns=5 * 10**12)
    try:
        with PoseClient(sink.endpoint, timeout_ms=10_000, clock=recv_clock) as client:
            wait_pose_subscription(sink)
            sink.open([STREAM])
            batch = make_batch(np.random.default_rng(10), 4, capacity=8, first_frame=7, rules={"zone": True})
            sink.write(batch)
            msgs = [client.recv() for _ in range(4)]
            for i, m in enumerate(msgs):
                assert isinstance(m, PoseMessage)
                assert (m.stream, m.stream_id, m.frame_index, m.seq) == (0, STREAM.stream_id, 7 + i, i)
                assert m.bodyparts == BP and m.pose.shape == (4, 3) and m.pose.dtype == np.float32
                np.testing.assert_array_equal(m.pose, batch.pose[i].astype(np.float32))
                np.testing.assert_array_equal(m.predicted, batch.predicted[i].astype(np.float32))
                assert not m.pose.flags.writeable
                assert m.t_capture_ns == batch.t_capture_ns[i] and m.t_target_ns == batch.t_target_ns[i]
                assert m.latencies_ns["infer"] == batch.t_infer_end_ns[i] - batch.t_infer_start_ns[i]
                assert m.latencies_ns["queue"] == batch.t_dequeued_ns[i] - batch.t_capture_ns[i]
                assert m.trigger_states == {"zone": True} and m.header_id == sink.header_id
                assert m.crop_box == tuple(batch.crop_box[i])
                assert (m.camera_frame, m.camera_timestamp_ns) == (batch.device_frame_id[i], batch.device_timestamp_ns[i])
                assert 5 * 10**12 < m.t_recv_ns <= recv_clock.now
            assert msgs[0].receive_latency_ms == (msgs[0].t_recv_ns - msgs[0].t_capture_ns) / 1e6
            j = msgs[1].to_json()
            assert j["pose"]["snout"] == [round(float(msgs[1].pose[0, 0]), 3), round(float(msgs[1].pose[0, 1]), 3),
                                          round(float(msgs[1].pose[0, 2]), 4)]
            assert msgs[0].to_json()["pose"]["snout"][0] is None  # NaN -> null
            assert msgs[3].to_json()["crop_box"] == [96, 352, 40, 296]
            assert (j["camera_frame"], j["camera_timestamp_ns"]) == (9, batch.device_timestamp_ns[1])
            assert (msgs[3].camera_frame, msgs[3].to_json()["camera_timestamp_ns"]) == (-1, -1)
            assert (client.received, client.dropped, client.skipped) == (4, 0, 0)
    finally:
        sink.close()


def test_events_come_through_when_asked(zmq_ctx):
    ctx = zmq_ctx
    sink = ZmqPublisherSink("inproc://events", context=ctx)
    try:
        with PoseClient("inproc://events", events=True, timeout_ms=0, context=ctx) as client:
            sink.open([STREAM])
            batch = make_batch(np.random.default_rng(11), 1)
            batch.actions.append(Action("event", "zone", 123, 0))
            sink.write(batch)
            pose, event = client.recv(), client.recv()
            assert isinstance(pose, PoseMessage)
            assert event == EventMessage("fire", "zone", 0, STREAM.stream_id, 0, 0, 123, event.t_send_ns, event.t_recv_ns)
            assert event.to_json()["rule"] == "zone"
            with pytest.raises(ReceiveTimeout, match="no message from inproc://events"):
                client.recv()
    finally:
        sink.close()


def test_newest_only_returns_the_latest_pose_and_keeps_events(zmq_ctx):
    """inproc sends land in the client's queue synchronously, so 'newest' is deterministic."""
    ctx = zmq_ctx
    sink = ZmqPublisherSink("inproc://newest", context=ctx)
    rng = np.random.default_rng(12)
    try:
        with PoseClient("inproc://newest", newest_only=True, events=True, timeout_ms=0, context=ctx) as client:
            sink.open([STREAM])
            for i in range(10):
                batch = make_batch(rng, 1, first_frame=i)
                if i in (3, 6):
                    batch.actions.append(Action("event", f"r{i}", i, i))
                sink.write(batch)
            got = [client.recv(), client.recv(), client.recv()]
            assert [type(m).__name__ for m in got] == ["EventMessage", "EventMessage", "PoseMessage"]
            assert [got[0].rule, got[1].rule, got[2].frame_index] == ["r3", "r6", 9]
            assert client.dropped == 0  # skipped on purpose, not lost
            with pytest.raises(ReceiveTimeout):
                client.recv()
            sink.write(make_batch(rng, 1, first_frame=10))
            assert client.recv().frame_index == 10
    finally:
        sink.close()


def test_iteration_stops_at_timeout(zmq_ctx):
    ctx = zmq_ctx
    sink = ZmqPublisherSink("inproc://iter", context=ctx)
    try:
        with PoseClient("inproc://iter", timeout_ms=0, context=ctx) as client:
            sink.open([STREAM])
            sink.write(make_batch(np.random.default_rng(13), 5))
            assert [m.frame_index for m in client] == [0, 1, 2, 3, 4]
    finally:
        sink.close()


def test_poses_before_their_header_are_skipped_and_versions_checked(zmq_ctx):
    ctx = zmq_ctx
    pub = ctx.socket(zmq.PUB)
    pub.linger = 0
    pub.bind("inproc://raw")
    pose = {"v": 1, "hdr": 7, "seq": 0, "stream": 0, "frame": 0, "t_capture_ns": 1, "t_send_ns": 2,
            "t_target_ns": 3, "lat_ns": [1, 2, 3, 4, 5], "pose": np.ones((2, 3), "<f4").tobytes(),
            "pred": np.zeros((2, 3), "<f4").tobytes(), "trig": [], "future_field": "ignored"}
    header = {"v": 1, "hdr": 7, "streams": [{"id": "cam", "bodyparts": ["a", "b"]}], "rules": [],
              "latencies": ["queue", "preprocess", "infer", "decode", "predict"]}
    try:
        with PoseClient("inproc://raw", timeout_ms=0, context=ctx) as client:
            pub.send_multipart([b"pose", msgpack.packb(pose)])
            with pytest.raises(ReceiveTimeout):
                client.recv()
            assert client.skipped == 1
            pub.send_multipart([b"header", msgpack.packb(header)])
            pub.send_multipart([b"pose", msgpack.packb(dict(pose, seq=3, frame=1))])
            m = client.recv()
            assert (m.bodyparts, m.frame_index, m.latencies_ns["predict"]) == (("a", "b"), 1, 5)
            np.testing.assert_array_equal(m.pose, np.ones((2, 3)))
            assert client.dropped == 2  # seq 1 and 2 never arrived
            pub.send_multipart([b"pose", msgpack.packb(dict(pose, v=2))])
            with pytest.raises(ProtocolError, match="version 2.*reads version 1"):
                client.recv()
            pub.send_multipart([b"pose", msgpack.packb(dict(pose, pose=b"\0" * 12))])
            with pytest.raises(ProtocolError, match="1 bodyparts, its header lists 2"):
                client.recv()
    finally:
        pub.close()


def test_connect_errors_are_typed():
    with pytest.raises(RtposeError, match="cannot connect"):
        PoseClient("nonsense")


def test_slow_reader_over_ipc_never_blocks_the_publisher_and_sees_gaps(ipc_dir):
    """A reader that stops reading: every publish returns, and the reader's losses
    show up as seq gaps once it reads again. The volume (about 8 MB) is far beyond
    what the ZeroMQ queues (4 + 4 messages) and the kernel socket buffers can hold,
    so some messages must be dropped."""
    k = 64
    stream = StreamInfo("cam", 640, 480, 30.0, tuple(f"bp{i}" for i in range(k)))
    sink = ZmqPublisherSink(f"ipc://{ipc_dir}/slow", sndhwm=4)
    try:
        with PoseClient(sink.endpoint, rcvhwm=4) as client:
            wait_pose_subscription(sink)
            sink.open([stream])
            batch = make_batch(np.random.default_rng(14), 1, k=k)
            n = 5000
            for _ in range(n):
                sink.write(batch)  # must return each time: the client is not reading
            assert sink.sent == n and sink.dropped == 0
            # Read again; keep publishing until a message sent after the flood arrives.
            last_seq = -1
            for _ in range(10_000):
                sink.write(batch)
                try:
                    while True:
                        last_seq = client.recv(timeout_ms=20).seq
                except ReceiveTimeout:
                    pass
                if last_seq >= n:
                    break
            assert last_seq >= n
            assert client.dropped > 0
            assert client.received + client.dropped + client.skipped == last_seq + 1
    finally:
        sink.close()


@pytest.mark.parametrize("payload_format", ["msgpack", "json"])
def test_multi_animal_stream_carries_slots_parts_and_track_ids(payload_format):
    """A multi-animal stream: the header names the slots and parts, every pose message the track id in each
    slot; the client gives the (A, K, 3) animals, listen --json the tracks by individual."""
    from rtpose.multianimal.layout import AnimalLayout

    layout = AnimalLayout(("mouse1", "mouse2", "mouse3"), ("snout", "tailbase"), ("lever",))
    info = StreamInfo("synthetic", 640, 480, 30.0, layout.flat_names(), layout=layout)
    sink = ZmqPublisherSink("tcp://127.0.0.1:*", clock=FakeClock(), payload_format=payload_format)
    try:
        with PoseClient(sink.endpoint, timeout_ms=10_000, events=True) as client:
            wait_pose_subscription(sink)
            sink.open([info])
            batch = make_batch(np.random.default_rng(5), 2, k=layout.n_flat)
            batch.n_animals = 3
            batch.track_id = np.array([[0, 5, -1], [0, 5, 6]], np.int64)
            batch.pose[0, layout.index(2, 0):layout.index(2, 1) + 1] = np.nan  # slot mouse3 empty on frame 0
            batch.actions.append(Action("event", "near_lever", int(batch.t_capture_ns[1]), 1, animal=1))
            sink.write(batch)
            first, second, event = client.recv(), client.recv(), client.recv()
    finally:
        sink.close()
    assert event.rule == "near_lever" and event.animal == 1 and event.to_json()["animal"] == 1
    assert first.individuals == layout.individuals and first.animal_bodyparts == layout.bodyparts
    assert first.bodyparts == layout.flat_names()
    assert (first.track_ids, second.track_ids) == ((0, 5, -1), (0, 5, 6))
    np.testing.assert_array_equal(second.animals(), layout.animals(batch.pose[1]).astype(np.float32))
    np.testing.assert_array_equal(second.animals(predicted=True), layout.animals(batch.predicted[1]).astype(np.float32))
    assert np.isnan(first.animals()[2]).all()
    j = second.to_json()
    assert j["tracks"] == {"mouse1": 0, "mouse2": 5, "mouse3": 6} and list(j["pose"])[-1] == "lever"
    assert "mouse2.tailbase" in j["pose"]


def test_single_animal_messages_have_no_animal_fields():
    sink = ZmqPublisherSink("tcp://127.0.0.1:*", clock=FakeClock())
    try:
        with PoseClient(sink.endpoint, timeout_ms=10_000) as client:
            wait_pose_subscription(sink)
            sink.open([STREAM])
            sink.write(make_batch(np.random.default_rng(6), 1))
            m = client.recv()
    finally:
        sink.close()
    assert m.individuals == () and m.track_ids == () and "tracks" not in m.to_json()
    with pytest.raises(ProtocolError, match="not a multi-animal stream"):
        m.animals()
