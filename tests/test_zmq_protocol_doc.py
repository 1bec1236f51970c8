"""docs/protocol.md's byte-level examples are what the publisher really sends.

The examples between the GENERATED markers are produced by :func:`render`;
regenerate them with ``.venv/bin/python tests/test_zmq_protocol_doc.py`` after
a deliberate protocol change.
"""

from __future__ import annotations

import json
import re
import struct
import sys
from pathlib import Path

import msgpack
import numpy as np
import zmq

from rtpose.results import Action, PoseBatch, StreamInfo
from rtpose.sinks import zmq_pub
from rtpose.sinks.zmq_pub import ZmqPublisherSink

DOC = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"
BP = ("snout", "leftear", "rightear", "tailbase")
T0 = 1_000_000_000_000  # CLOCK_MONOTONIC ns of the example frame's capture


def example_messages(payload_format: str = "msgpack") -> dict[str, list[bytes]]:
    """Publish one frame of a documented example; return the last message of each topic.

    Everything runs on a private ZeroMQ context that is terminated before returning:
    ``term()`` waits until every socket is really closed, so the inproc address is
    free again for the next call (on a shared context a closed socket can keep it
    bound until libzmq's reaper gets to it)."""
    ctx = zmq.Context()
    version, zmq_pub.__version__ = zmq_pub.__version__, "0.1.0"  # the header names the publisher's version; keep the example stable
    sends = iter([T0 + 9_000_000 + i * 10_000 for i in range(10)])
    sink = sub = None
    try:
        sink = ZmqPublisherSink("inproc://protocol-doc", context=ctx, clock=lambda: next(sends), header_id=0x5EED0000,
                                payload_format=payload_format)
        sub = ctx.socket(zmq.SUB)
        sub.subscribe(b"")
        sub.connect("inproc://protocol-doc")
        sink.open([StreamInfo("basler:0", 640, 480, 30.0, BP)])
        b = PoseBatch(1, len(BP))
        b.n = 1
        b.frame_index[0] = 1234
        b.t_capture_ns[0] = T0
        b.t_dequeued_ns[0] = T0 + 200_000
        b.t_infer_start_ns[0] = T0 + 450_000
        b.t_infer_end_ns[0] = T0 + 7_450_000
        b.t_decoded_ns[0] = T0 + 7_480_000
        b.t_predicted_ns[0] = T0 + 7_500_000
        b.t_target_ns[0] = b.t_decoded_ns[0] + 30_000_000  # decode end + --output-delay-ms 30
        b.pose[0] = [[100.5, 200.25, 0.96875], [90, 180, 0.5], [110, 180, 0.75], [100, 300, 1.0]]
        b.predicted[0] = b.pose[0]
        b.predicted[0, :, 0] += 2.0
        b.crop_box[0] = [0, 640, 0, 480]  # the whole frame: no --crop or --dynamic-crop
        b.device_frame_id[0] = 1240  # the camera's own counter: it had numbered 6 frames before rtpose's first
        b.device_timestamp_ns[0] = 41_333_333_000  # the camera's clock (since it was powered), not CLOCK_MONOTONIC
        b.trigger_states["snout_in_zone"] = True
        b.actions.append(Action("event", "snout_in_zone", T0, 1234))
        sink.write(b)
        last: dict[str, list[bytes]] = {}
        while sub.poll(1000 if len(last) < 3 else 0):
            frames = sub.recv_multipart()
            last[frames[0].decode()] = frames
        return last
    finally:
        zmq_pub.__version__ = version
        if sub is not None:
            sub.close(linger=0)
        if sink is not None:
            sink.close()
        ctx.term()


def hexdump(data: bytes) -> str:
    lines = []
    for off in range(0, len(data), 16):
        chunk = data[off:off + 16]
        hexes = " ".join(f"{c:02x}" for c in chunk)
        text = "".join(chr(c) if 32 <= c < 127 else "." for c in chunk)
        lines.append(f"{off:04x}  {hexes:<47}  |{text}|")
    return "\n".join(lines)


def annotate(data: bytes) -> str:
    """Walk a msgpack payload (the subset rtpose uses) and explain every item."""
    out: list[str] = []
    pos = 0

    def emit(start: int, end: int, depth: int, what: str) -> None:
        raw = data[start:end]
        shown = " ".join(f"{c:02x}" for c in raw[:8]) + (" ..." if len(raw) > 8 else "")
        out.append(f"{start:04x}  {shown:<27} {'  ' * depth}{what}")

    def item(depth: int, role: str = "") -> object:
        nonlocal pos
        start = pos
        t = data[pos]
        pos += 1

        def take(n: int) -> bytes:
            nonlocal pos
            pos += n
            return data[pos - n:pos]

        if t <= 0x7F:
            value, what = t, f"positive fixint {t}"
        elif 0x80 <= t <= 0x8F or t == 0xDE:
            n = t & 0x0F if t <= 0x8F else struct.unpack(">H", take(2))[0]
            emit(start, pos, depth, f"{role}map, {n} entries" if t <= 0x8F else f"{role}map16, {n} entries")
            for _ in range(n):
                item(depth + 1, "key ")
                item(depth + 2, "value ")
            return None
        elif 0x90 <= t <= 0x9F:
            n = t & 0x0F
            emit(start, pos, depth, f"{role}fixarray, {n} elements")
            for _ in range(n):
                item(depth + 1)
            return None
        elif 0xA0 <= t <= 0xBF or t == 0xD9:
            n = t & 0x1F if t <= 0xBF else take(1)[0]
            value = take(n).decode()
            what = f"{'fixstr' if t <= 0xBF else 'str8'} ({n} bytes) {value!r}"
        elif t == 0xC0:
            value, what = None, "nil"
        elif t in (0xC2, 0xC3):
            value, what = t == 0xC3, "true" if t == 0xC3 else "false"
        elif t == 0xC4:
            n = take(1)[0]
            blob = take(n)
            floats = struct.unpack(f"<{n // 4}f", blob)
            value = blob
            what = f"bin8 ({n} bytes) = float32 LE " + ", ".join(f"{f:g}" for f in floats)
        elif t == 0xCB:
            value = struct.unpack(">d", take(8))[0]
            what = f"float64 {value!r}"
        elif t in (0xCC, 0xCD, 0xCE, 0xCF):
            fmt = {0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q"}[t]
            value = struct.unpack(fmt, take(struct.calcsize(fmt)))[0]
            what = f"uint{8 * struct.calcsize(fmt)} {value}"
        elif t in (0xD0, 0xD1, 0xD2, 0xD3) or t >= 0xE0:
            if t >= 0xE0:
                value, what = t - 256, f"negative fixint {t - 256}"
            else:
                fmt = {0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q"}[t]
                value = struct.unpack(fmt, take(struct.calcsize(fmt)))[0]
                what = f"int{8 * struct.calcsize(fmt)} {value}"
        else:  # pragma: no cover - not used by the protocol
            raise ValueError(f"msgpack type byte {t:#x} at {start} is not used by rtpose")
        emit(start, pos, depth, role + what)
        return value

    item(0)
    assert pos == len(data)
    return "\n".join(out)


def render() -> dict[str, str]:
    msgs = example_messages()
    blocks = {}
    for topic in ("pose", "event", "header"):
        t, payload = msgs[topic]
        parts = [f"frame 1 (topic, {len(t)} bytes):", hexdump(t), "",
                 f"frame 2 (msgpack payload, {len(payload)} bytes):", hexdump(payload)]
        if topic != "header":
            parts += ["", "the same payload, item by item:", "offset bytes", annotate(payload)]
        blocks[topic] = "```\n" + "\n".join(parts) + "\n```"
    for topic, (t, payload) in example_messages("json").items():
        blocks[f"json-{topic}"] = (f"```\nframe 1 (topic, {len(t)} bytes): {t.decode()}\n\n"
                                   f"frame 2 (JSON payload, {len(payload)} bytes of ASCII, no line break):\n"
                                   f"{payload.decode('ascii')}\n```")
    return blocks


def test_json_payloads_carry_the_msgpack_keys_and_values():
    """--publish-format json: the same topics, keys in the same order, the same values; pose arrays
    as numbers whose float32 conversion gives back the published float32 bits exactly."""
    packed, text = example_messages(), example_messages("json")
    assert list(packed) == list(text)
    for topic in packed:
        a = msgpack.unpackb(packed[topic][1], raw=False)
        b = json.loads(text[topic][1])
        assert text[topic][0] == packed[topic][0] and list(a) == list(b)
        for key in a:
            if key in ("pose", "pred"):
                floats = np.frombuffer(a[key], "<f4")
                assert np.array(b[key], np.float32).tobytes() == floats.tobytes()
            else:
                assert a[key] == b[key], key


def test_the_python_client_reads_json_exactly_like_msgpack():
    from rtpose.client import PoseClient

    decoded = []
    for fmt in ("msgpack", "json"):
        msgs = example_messages(fmt)
        ctx = zmq.Context()
        try:
            client = PoseClient("inproc://unused", context=ctx, events=True, clock=lambda: T0 + 20_000_000)
            try:
                assert client._handle(msgs["header"]) is None
                decoded.append((client._handle(msgs["pose"]), client._handle(msgs["event"])))
            finally:
                client.close()
        finally:
            ctx.term()
    (pose_a, event_a), (pose_b, event_b) = decoded
    assert pose_a.to_json() == pose_b.to_json() and event_a == event_b
    assert pose_a.pose.tobytes() == pose_b.pose.tobytes() and pose_b.pose.dtype == np.float32
    assert not pose_b.pose.flags.writeable


def test_json_payload_is_compact_ascii_with_null_for_nan():
    sink = ZmqPublisherSink("inproc://json-nan", payload_format="json", clock=lambda: T0)
    try:
        sub = sink._ctx.socket(zmq.SUB)
        sub.subscribe(b"pose")
        sub.connect("inproc://json-nan")
        sink.open([StreamInfo("camera:0", 640, 480, 30.0, BP[:2])])
        b = PoseBatch(1, 2)
        b.n = 1
        b.pose[0] = [[np.nan, 1.5, 0.25], [np.inf, 0.1, 1.0]]
        b.predicted[0] = np.nan
        sink.write(b)
        assert sub.poll(10_000)
        topic, payload = sub.recv_multipart()
        sub.close(linger=0)
    finally:
        sink.close()
    assert payload.isascii() and b" " not in payload and b"\n" not in payload
    msg = json.loads(payload)
    assert msg["pose"] == [None, 1.5, 0.25, None, float(np.float32(0.1)), 1.0]
    assert msg["pred"] == [None, None, None, None, None, None]


def test_publish_format_option_reaches_the_publisher():
    import argparse

    import pytest

    from rtpose.cli.outputs import add_output_arguments, build_outputs
    from rtpose.errors import ConfigError

    parser = argparse.ArgumentParser()
    add_output_arguments(parser)
    args = parser.parse_args(["--publish", "tcp://127.0.0.1:*", "--publish-format", "json"])
    _, sinks = build_outputs(args, None, scorer="s", n_streams=1)
    try:
        assert [(s.name, s.payload_format) for s in sinks] == [("zmq", "json")]
    finally:
        for s in sinks:
            s.close()
    with pytest.raises(ConfigError, match="add --publish ADDR"):
        build_outputs(parser.parse_args(["--publish-format", "json"]), None, scorer="s", n_streams=1)


def test_bad_payload_format_is_a_config_error():
    import pytest

    from rtpose.errors import ConfigError

    with pytest.raises(ConfigError, match="msgpack, json"):
        ZmqPublisherSink("inproc://x", payload_format="yaml")


def _marker(name: str) -> re.Pattern:
    return re.compile(rf"(<!-- BEGIN GENERATED {name} -->\n)(.*?)(\n<!-- END GENERATED {name} -->)", re.S)


def test_doc_examples_match_the_publisher():
    text = DOC.read_text()
    for name, block in render().items():
        m = _marker(name).search(text)
        assert m, f"docs/protocol.md lacks the GENERATED {name} block"
        assert m.group(2) == block, f"docs/protocol.md's {name} example is stale; run python {__file__}"


def test_annotator_covers_every_byte():
    _, payload = example_messages()["pose"]
    listing = annotate(payload)
    assert "key fixstr (12 bytes) 't_capture_ns'" in listing and "float32 LE 100.5, 200.25, 0.96875" in listing


# --- the document's tables name exactly what is sent -------------------------------------------
def _section(title: str) -> str:
    text = DOC.read_text()
    start = text.index(title)
    end = text.find("\n## ", start + len(title))
    return text[start:end if end >= 0 else None]


def _table_keys(text: str, after: str = "| key |") -> list[str]:
    """First-column `names` of the first Markdown table at or after ``after``."""
    keys = []
    lines = text[text.index(after):].splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("|"))
    for line in lines[first + 2:]:  # below the column names and the |---| line
        if not line.startswith("|"):
            break
        cell = line.split("|")[1]
        keys.extend(re.findall(r"`([^`]+)`", cell))  # `streams[i].width`, `.height`: two keys
    return keys


def test_doc_tables_list_exactly_the_keys_sent():
    msgs = example_messages()
    header = msgpack.unpackb(msgs["header"][1], raw=False)
    documented = _table_keys(_section("## 3. Header message"))
    stream_keys = [k.split(".")[-1] for k in documented if k.startswith(("streams[i].", "."))]
    assert [k for k in documented if not k.startswith(("streams[i].", "."))] == list(header)
    assert stream_keys == list(header["streams"][0])
    pose = msgpack.unpackb(msgs["pose"][1], raw=False)
    assert _table_keys(_section("## 4. Pose message")) == list(pose)
    assert _table_keys(_section("## 4. Pose message"), "| name | from → to |") == list(header["latencies"])
    event = msgpack.unpackb(msgs["event"][1], raw=False)
    assert _table_keys(_section("## 5. Event message")) == list(event)


def test_doc_lists_the_listen_json_keys_in_order():
    from rtpose.client import PoseClient

    msgs = example_messages()
    ctx = zmq.Context()
    try:
        client = PoseClient("inproc://unused", context=ctx, events=True, clock=lambda: T0 + 20_000_000)
        try:
            assert client._handle(msgs["header"]) is None
            pose, event = client._handle(msgs["pose"]), client._handle(msgs["event"])
        finally:
            client.close()
    finally:
        ctx.term()
    shell = _section("### Shell")
    assert _table_keys(shell, "<!-- listen-json pose -->") == list(pose.to_json())
    assert _table_keys(shell, "<!-- listen-json event -->") == list(event.to_json())
    as_json = pose.to_json()
    assert as_json["pose"]["snout"] == [100.5, 200.25, 0.9688]  # 0.96875: ties to even at 4 decimals
    assert as_json["latency_ms"] == 20.0 and as_json["latencies_ms"]["infer"] == 7.0


if __name__ == "__main__":
    text = DOC.read_text()
    for name, block in render().items():
        pattern = _marker(name)
        if not pattern.search(text):
            sys.exit(f"add <!-- BEGIN GENERATED {name} --> / <!-- END GENERATED {name} --> markers to {DOC}")
        text = pattern.sub(lambda m: m.group(1) + block + m.group(3), text)
    DOC.write_text(text)
    print(f"updated {DOC}")


def test_doc_lists_exactly_the_multi_animal_keys_sent():
    """The multi-animal subsection's tables name exactly what a multi-animal stream adds."""
    from rtpose.multianimal.layout import AnimalLayout

    layout = AnimalLayout(("mouse1", "mouse2"), ("snout", "tailbase"), ("lever",))
    sink = ZmqPublisherSink("inproc://unused-ma", context=zmq.Context.instance())
    try:
        sink.open([StreamInfo("synthetic", 640, 480, 30.0, layout.flat_names(), layout=layout)])
        single = zmq_pub._stream_entry(StreamInfo("x", 1, 1, 1.0, BP))
        multi = sink.header(0)["streams"][0]
        assert "track" in sink._msg
    finally:
        sink.close()
    section = _section("## 4. Pose message")
    header_keys = [k.split(".")[-1] for k in _table_keys(section, "<!-- multi-animal header -->")]
    assert header_keys == [k for k in multi if k not in single]
    assert _table_keys(section, "<!-- multi-animal pose -->") == ["track"]
    assert _table_keys(section, "<!-- multi-animal event -->") == ["animal"]
    assert multi["individuals"] == ["mouse1", "mouse2"] and multi["bodyparts"][-1] == "lever"
