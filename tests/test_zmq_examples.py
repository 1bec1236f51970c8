"""The subscriber examples (Python and C) receive a real publisher's stream."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rtpose.sinks.zmq_pub import ZmqPublisherSink
from test_zmq_pub import BP, STREAM, make_batch

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _c_build_flags() -> tuple[list[str], list[str]]:
    """(compiler flags for libzmq and msgpack-c, what is missing to build the C example)."""
    missing = [f"{tool} (command not found)" for tool in ("cc", "pkg-config") if not shutil.which(tool)]
    if "pkg-config (command not found)" in missing:
        return [], missing + ["libzmq and msgpack-c cannot be looked up without pkg-config"]
    flags = []
    for package, names in (("libzmq3-dev", ("libzmq",)), ("libmsgpack-dev", ("msgpack", "msgpack-c"))):
        for name in names:
            r = subprocess.run(["pkg-config", "--cflags", "--libs", name], capture_output=True, text=True)
            if r.returncode == 0:
                flags += r.stdout.split()
                break
        else:
            missing.append(f"pkg-config knows no {' or '.join(names)} (Debian/Ubuntu package {package})")
    return flags, missing


def _run_against_publisher(popen, cmd: list[str], n_frames: int) -> tuple[str, object]:
    sink = ZmqPublisherSink("tcp://127.0.0.1:*")
    cmd = [c.replace("ADDR", sink.endpoint) for c in cmd]
    proc = popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert sink.wait_for_subscriber(60_000), "the example never subscribed"
        sink.open([STREAM])
        batch = make_batch(np.random.default_rng(30), n_frames, rules={"zone": False})
        sink.write(batch)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        return out, batch
    finally:
        sink.close()


def test_c_subscriber_example(tmp_path, popen):
    flags, missing = _c_build_flags()
    if missing:
        pytest.skip("cannot build examples/subscriber.c: " + "; ".join(missing))
    exe = tmp_path / "subscriber"
    subprocess.run(["cc", "-O2", "-Wall", "-Werror", "-o", str(exe), str(EXAMPLES / "subscriber.c"), *flags],
                   check=True, capture_output=True)
    out, batch = _run_against_publisher(popen, [str(exe), "ADDR", "3"], 3)
    lines = out.splitlines()
    assert len(lines) == 3
    for i, line in enumerate(lines):
        words = line.split()
        assert words[:4] == ["stream", "0", "frame", str(i)] and words[4] == "latency_ms"
        values = words[6:]
        assert values[0::4] == list(BP)
        pose32 = batch.pose[i].astype(np.float32)
        expected = [f"{pose32[k, 0]:.3f}" for k in range(len(BP))]
        assert values[1::4] == expected


def test_python_subscriber_example(popen):
    out, batch = _run_against_publisher(popen, [sys.executable, str(EXAMPLES / "subscriber.py"), "ADDR", "--timeout", "1"], 3)
    lines = out.splitlines()
    # Newest-only: the example may skip frames, but it ends with the last one and its summary.
    frames = [int(line.split()[1]) for line in lines if line.startswith("frame")]
    assert frames and frames[-1] == 2 and frames == sorted(frames)
    assert lines[-1].startswith("received ") and "missed 0" in lines[-1]
