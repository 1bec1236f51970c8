"""`rtpose listen` in a subprocess, receiving from a publisher in this process.

Synchronisation: the publisher blocks in ZeroMQ's poll until the subprocess has
subscribed (ZeroMQ's XPUB reports subscriptions), so no message is lost to the
slow-joiner effect and no sleep is involved.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from rtpose.cli import build_parser
from rtpose.results import Action
from rtpose.sinks.zmq_pub import ZmqPublisherSink
from test_zmq_pub import BP, STREAM, make_batch


def start_listen(popen, *args: str) -> subprocess.Popen:
    return popen([sys.executable, "-m", "rtpose", "listen", *args],
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> tuple[str, str]:
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("rtpose listen did not finish within 60 s")  # the popen fixture kills it
    assert proc.returncode == 0, err
    return out, err


@pytest.mark.parametrize("payload_format", ["msgpack", "json"])  # listen reads either publisher
def test_listen_json_receives_n_lines(popen, payload_format):
    sink = ZmqPublisherSink("tcp://127.0.0.1:*", payload_format=payload_format)
    proc = start_listen(popen, sink.endpoint, "--count", "5", "--json", "--timeout", "60")
    try:
        assert sink.wait_for_subscriber(60_000), "rtpose listen never subscribed"
        sink.open([STREAM])
        batch = make_batch(np.random.default_rng(20), 7, rules={"zone": True})
        sink.write(batch)  # 7 frames; listen prints 5 and exits
        out, _ = finish(proc)
    finally:
        sink.close()
    lines = out.splitlines()
    assert len(lines) == 5
    objs = [json.loads(line) for line in lines]
    for i, o in enumerate(objs):
        assert o["type"] == "pose" and o["frame"] == i and o["stream"] == STREAM.stream_id
        assert o["t_capture_ns"] == batch.t_capture_ns[i] and o["seq"] == i
        assert o["latency_ms"] == round((o["t_recv_ns"] - o["t_capture_ns"]) / 1e6, 3)
        assert list(o["pose"]) == list(BP) and o["triggers"] == {"zone": True}
        assert o["pose"]["tailbase"][0] == round(float(np.float32(batch.pose[i, 3, 0])), 3)
        assert set(o["latencies_ms"]) == {"queue", "preprocess", "infer", "decode", "predict"}


def test_listen_human_lines_with_events(tmp_path, popen):
    address = f"ipc://{tmp_path}/l" if len(str(tmp_path)) < 90 else "tcp://127.0.0.1:*"
    sink = ZmqPublisherSink(address)
    proc = start_listen(popen, sink.endpoint, "--count", "3", "--events", "--timeout", "60")
    try:
        assert sink.wait_for_subscriber(60_000)
        sink.open([STREAM])
        batch = make_batch(np.random.default_rng(21), 2, rules={"zone": False})
        batch.actions.append(Action("event", "zone", int(batch.t_capture_ns[1]), 1))
        sink.write(batch)
        out, _ = finish(proc)
    finally:
        sink.close()
    lines = out.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith(f"{STREAM.stream_id} #0 ") and "snout" in lines[0] and "zone=off" in lines[0]
    assert lines[2] == f"{STREAM.stream_id} #1 EVENT fire zone"


def test_listen_times_out_with_a_hint(capsys):
    # Nobody publishes there: the command fails with the typed error and exit status 2.
    sink = ZmqPublisherSink("tcp://127.0.0.1:*")
    address = sink.endpoint
    sink.close()
    from rtpose.cli import main

    assert main(["listen", address, "--timeout", "0.05"]) == 2
    assert "no publisher at " + address in capsys.readouterr().err


def test_listen_is_registered():
    args = build_parser().parse_args(["listen", "tcp://127.0.0.1:5555", "--count", "2", "--json"])
    assert (args.address, args.count, args.json, args.newest) == ("tcp://127.0.0.1:5555", 2, True, False)
