"""Issue 10's behaviours beyond single messages: stop signals end a whole `analyze`, offline reports
throughput and rounds progress down, `listen` says what the silence means, score-map geometry."""

from __future__ import annotations

import io
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from drivers_helpers import tmpfs
from rtpose.cli.report import format_summary, progress
from rtpose.errors import ModelError
from rtpose.model import check_map_geometry, check_score_range
from rtpose.pipeline import RunSummary, StreamCounts

VIDEO = Path(__file__).resolve().parents[1] / "rtpose" / "data" / "m3v1mp4.mp4"


def test_progress_says_100_percent_only_when_every_frame_is_done():
    assert progress(2320, 2330).endswith(" 99% 2320/2330")
    assert progress(2330, 2330).endswith("100% 2330/2330")
    assert progress(0, 2330).startswith("[" + " " * 20 + "]   0%")


def test_offline_summary_reports_throughput_not_latency():
    summary = RunSummary(streams=[StreamCounts("video:a.mp4", 100, 100, 0)], duration_s=4.0,
                         latency_ms={}, provider="CPUExecutionProvider", batch_size=8, live=False)
    text = format_summary(summary, "end_to_end 1500.0 ...")
    assert "   throughput: 100 frames in 4.00 s = 25.0 FPS" in text.splitlines()
    assert "latency" not in text and "1500" not in text


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda s: signal.Signals(s).name)
def test_any_stop_signal_ends_a_multi_file_analyze(tmp_path, signum):
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.mp4").symlink_to(VIDEO)
    proc = subprocess.Popen([sys.executable, "-m", "rtpose", "analyze", "a.mp4", "b.mp4", "c.mp4", "--threads", "1"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:  # the first status line: a.mp4 is being analysed
            if "captured" in line:
                break
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    lines = out.splitlines()
    stopped = [line for line in lines if line.startswith("   a.mp4: stopped: ")]
    assert stopped and stopped[0].endswith(" of 2330 frames analysed (result marked partial)")
    assert "   b.mp4: not started" in lines and "   c.mp4: not started" in lines
    assert (tmp_path / "a.rtpose.partial.h5").exists() and not (tmp_path / "a.rtpose.h5").exists()
    assert not list(tmp_path.glob("b.rtpose*")) and not list(tmp_path.glob("c.rtpose*"))


# -- rtpose listen: what the silence means ---------------------------------------------------------


@pytest.fixture
def publisher():
    from rtpose.sinks.zmq_pub import ZmqPublisherSink

    sink = ZmqPublisherSink("tcp://127.0.0.1:*")
    yield sink
    sink.close()


def test_listen_says_when_the_publisher_left(publisher):
    from rtpose.client import PoseClient, ReceiveTimeout
    from test_zmq_pub import STREAM, make_batch

    with PoseClient(publisher.endpoint) as client:
        assert publisher.wait_for_subscriber(60_000)
        publisher.open([STREAM])
        publisher.write(make_batch(np.random.default_rng(3), 3))
        for _ in range(3):
            client.recv(60_000)
        publisher.close()
        kind = None
        for _ in range(6000):  # ZeroMQ reports the disconnection asynchronously: poll its event
            with pytest.raises(ReceiveTimeout) as info:
                client.recv(10)
            kind = client.silence()[0]
            if kind == "publisher-left":
                break
        assert kind == "publisher-left"
        assert client.silence()[1] == (f"the publisher at {publisher.endpoint} closed the connection after 3 pose "
                                       "messages (its run ended or it was stopped); waiting for it to come back")
        assert "is a publisher running" not in str(info.value)


def test_listen_connected_but_silent_says_so(publisher):
    from rtpose.client import PoseClient

    with PoseClient(publisher.endpoint) as client:
        assert publisher.wait_for_subscriber(60_000)
        for _ in range(6000):
            if client.silence()[0] == "publisher-silent":
                break
            client._sock.poll(10)
        assert client.silence()[1].startswith(f"connected to the publisher at {publisher.endpoint}, but it sent no "
                                              "pose message; it publishes only while frames are processed")


class _SilentClient:
    """A fake PoseClient: times out ``silences`` times, then delivers a message."""

    def __init__(self, silences: int):
        self.silences = silences
        self.skipped = 0

    def recv(self, timeout_ms):
        from rtpose.client import ReceiveTimeout

        if self.silences:
            self.silences -= 1
            raise ReceiveTimeout("quiet")
        return "message"

    def silence(self, skipped=0):
        return "no-publisher", "no publisher at tcp://127.0.0.1:5555 (nothing accepted the connection); ..."


def test_listen_without_timeout_says_once_why_nothing_arrives(monkeypatch):
    from rtpose.cli import listen_cmd

    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    assert listen_cmd._receive(_SilentClient(3), None, []) == "message"
    assert err.getvalue() == ("rtpose listen: still waiting: no publisher at tcp://127.0.0.1:5555 "
                              "(nothing accepted the connection); ...\n")


# -- score-map geometry --------------------------------------------------------------------------


@pytest.mark.parametrize("height, map_h", [(480, 60), (481, 61), (481, 60), (487, 60)])
def test_map_geometry_accepts_what_networks_round_to(height, map_h):
    check_map_geometry("m.onnx", 8.0, height, 640, map_h, 80)


@pytest.mark.parametrize("map_h, map_w", [(240, 320), (58, 80), (60, 160)])
def test_map_geometry_refuses_maps_that_do_not_fit_the_stride(map_h, map_w):
    with pytest.raises(ModelError, match="re-export the model with the right stride"):
        check_map_geometry("m.onnx", 8.0, 480, 640, map_h, map_w)


def test_scores_must_be_probabilities():
    check_score_range("m.onnx", np.array([0.0, 0.5, 1.0], np.float32))
    for bad in ([0.0, 220.0], [-3.0, 0.5], [np.nan, 0.5]):
        with pytest.raises(ModelError, match="must be probabilities in 0..1"):
            check_score_range("m.onnx", np.array(bad, np.float32))


def test_analyze_result_whose_recording_failed_keeps_its_partial_name(tmp_path, monkeypatch, capsys):
    import errno

    from bad_inputs import write_avi
    from rtpose.cli import main
    from rtpose.recording.recorder import RecorderSink

    write_avi(tmp_path / "clip.avi", frames=20)
    monkeypatch.chdir(tmp_path)

    def full(self, *args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(RecorderSink, "_append", full)
    assert main(["analyze", "clip.avi", "--quiet"]) == 2
    assert capsys.readouterr().err == ("rtpose analyze: error: recording to clip.rtpose.partial.h5 failed (OSError: "
                                       "[Errno 28] No space left on device); every file holds the same first 0 frames\n")
    assert (tmp_path / "clip.rtpose.partial.csv").exists()
    assert not list(tmp_path.glob("clip.rtpose.*[!l].h5")) and not (tmp_path / "clip.rtpose.csv").exists()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=lambda s: signal.Signals(s).name)
def test_listen_without_timeout_says_it_waits_and_ends_on_a_stop_signal(signum):
    from test_bad_inputs import _unserved_address

    address = _unserved_address()
    proc = subprocess.Popen([sys.executable, "-m", "rtpose", "listen", address],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        note = proc.stderr.readline()  # after 5 s of silence
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert note == (f"rtpose listen: still waiting: no publisher at {address} (nothing accepted the connection); "
                    f"start one with `rtpose run --publish {address} ...` or check the address\n")
    assert proc.returncode == 130 and out == "" and "Traceback" not in err


@pytest.fixture
def read_only_folder(tmp_path):
    """A real read-only filesystem: root ignores permission bits, so chmod cannot make a folder read-only."""
    with tmpfs(tmp_path / "ro", "ro,size=1m", "mounted read-only") as mount:
        yield mount


@pytest.mark.parametrize("command", ["run", "analyze"])
def test_an_output_in_a_read_only_location_is_a_clear_error(read_only_folder, command, tmp_path):
    from rtpose.data import demo_video_path

    if command == "run":
        args = ["run", "--source", "synthetic:64x64", "--frames", "3", "--record", str(read_only_folder / "s.h5")]
    else:
        args = ["analyze", str(demo_video_path()), "--out-dir", str(read_only_folder / "out")]
    done = subprocess.run([sys.executable, "-m", "rtpose", *args, "--quiet"], capture_output=True, text=True,
                          timeout=600, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"rtpose {command}: error: cannot create recording {read_only_folder}")
    assert "(Read-only file system); check that the folder can be created and is writable, or record elsewhere" in last
    assert "Traceback" not in done.stderr and "cannot join thread" not in done.stderr
