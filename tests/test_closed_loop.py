"""Closing the loop end to end: synthetic mouse → analytic model → rules → serial writer → pty device emulator,
with the ZeroMQ stream and the recording running beside it."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from rtpose.drivers.outputs import open_output
from rtpose.drivers.outputs import protocol
from rtpose.drivers.sources.synthetic import SyntheticSource
from rtpose.model import OnnxPoseModel
from rtpose.pipeline import Pipeline, PipelineConfig
from rtpose.recording import RecorderSink, read_dlc_table
from rtpose.rules import load_rules
from rtpose.sinks.trigger import TriggerSink

N_FRAMES = 540
FPS = 30.0
X_ENTER, X_EXIT = 155.0, 165.0  # the body enters the left part at x < 155 and leaves it at x > 165
LONG_REFRACTORY_MS = 60_000


def _rules_file(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(f"""
version: 1
defaults: {{pose: measured, min_likelihood: 0.0}}
rules:
  - name: left
    enter: {{zone: {{bodypart: body, rectangle: [[0, 0], [{X_ENTER}, 240]]}}}}
    stay: {{zone: {{bodypart: body, rectangle: [[0, 0], [{X_EXIT}, 240]]}}}}
    actions: [{{pulse: {{channel: 0, ms: 10}}}}]
  - name: left_once
    enter: {{zone: {{bodypart: body, rectangle: [[0, 0], [{X_ENTER}, 240]]}}}}
    stay: {{zone: {{bodypart: body, rectangle: [[0, 0], [{X_EXIT}, 240]]}}}}
    refractory_ms: {LONG_REFRACTORY_MS}
    actions: [{{pulse: {{channel: 1, ms: 25}}}}]
""")
    return path


def _expected_entries(source):
    """Reference semantics on the ground truth: fire on entering x < X_ENTER, re-arm after x > X_EXIT."""
    x = source.truth_many(range(N_FRAMES))[:, 1, 0]
    margin = min(np.abs(x - X_ENTER).min(), np.abs(x - X_EXIT).min())
    assert margin > 0.3, "the synthetic path passes too close to a zone edge for an exact comparison"
    inside, entries = False, []
    for i, v in enumerate(x):
        if not inside and v < X_ENTER:
            inside = True
            entries.append(i)
        elif inside and v > X_EXIT:
            inside = False
    return entries


def _pulses(emulator, channel):
    return [c for c in emulator.commands if c.command == protocol.CMD_PULSE and c.channel == channel]


def test_zone_crossings_give_exactly_the_expected_pulses(analytic_model, tmp_path):
    source = SyntheticSource(width=320, height=240, fps=FPS, n_frames=N_FRAMES, seed=0)
    expected = _expected_entries(source)
    assert len(expected) >= 2  # the mouse enters the zone more than once: the refractory rule must matter
    model = OnnxPoseModel(analytic_model)
    output = open_output("emulator")
    recorder = RecorderSink(tmp_path / "loop.h5")
    pipeline = Pipeline([source], model, stages=[load_rules(_rules_file(tmp_path), model.metadata.bodyparts)],
                        sinks=[TriggerSink(output), recorder], config=PipelineConfig(live=False, batch_size=1))
    summary = pipeline.run()
    assert summary.processed == N_FRAMES
    emulator = output.emulator
    assert [c.payload for c in _pulses(emulator, 0)] == [10] * len(expected)
    assert [c.payload for c in _pulses(emulator, 1)] == [25]  # later entries fall inside the refractory period
    events = pd.read_csv(tmp_path / "loop_events.csv")
    fired = events[(events.kind == "trigger") & (events.name == "left") & (events.detail == "on")]
    assert fired["frame"].tolist() == expected  # fired on exactly the frames the mouse entered
    assert summary.sinks["trigger"]["acked"] >= len(expected) + 1
    assert len(read_dlc_table(tmp_path / "loop.h5")) == N_FRAMES


def test_unplugging_the_device_mid_run_keeps_the_run_and_the_recording(analytic_model, tmp_path):
    """The emulated device disappears after the first pulse and comes back later: the pipeline keeps going,
    the missed triggers and the reconnection are logged, every frame is recorded."""
    source = SyntheticSource(width=320, height=240, fps=FPS, n_frames=N_FRAMES, seed=0)
    expected = _expected_entries(source)
    model = OnnxPoseModel(analytic_model)
    output = open_output("emulator")
    emulator = output.emulator
    unplug_at, replug_at = expected[0] + 5, expected[1] - 40

    class Cable:
        """A stage that pulls and re-inserts the cable at given frames (and waits for the writer to notice)."""

        name = "cable"

        def open(self, streams):
            pass

        def process(self, batch):
            frame = int(batch.frame_index[0])
            if frame == unplug_at:
                assert emulator.wait_for_commands(1, timeout=30)  # the first pulse arrived before the unplug
                emulator.disconnect()
                assert output.wait_for(lambda st: st["disconnects"] >= 1, timeout=30)  # the writer noticed
            if frame == replug_at:
                emulator.reconnect()
                assert output.wait_for(lambda st: st["reconnects"] >= 1, timeout=30)

    recorder = RecorderSink(tmp_path / "unplug.h5")
    rules = load_rules(_rules_file(tmp_path), model.metadata.bodyparts)
    summary = Pipeline([source], model, stages=[rules, Cable()], sinks=[TriggerSink(output), recorder],
                       config=PipelineConfig(live=False, batch_size=1)).run()
    assert summary.processed == N_FRAMES
    assert len(read_dlc_table(tmp_path / "unplug.h5")) == N_FRAMES
    events = pd.read_csv(tmp_path / "unplug_events.csv")
    device = events[events.kind == "device"]["detail"].str.cat(sep=" | ")
    assert "disconnected" in device and "reconnected" in device
    # triggers after the replug reach the (new) device
    assert len([c for c in _pulses(emulator, 0) if c.connection == 2]) == len([e for e in expected if e > replug_at])


def test_cli_run_with_rules_serial_and_publish_while_listen_receives(analytic_model, tmp_path, popen):
    address = f"ipc://{tmp_path}/poses"
    listen = popen([sys.executable, "-m", "rtpose", "listen", address, "--count", "20", "--json",
                               "--timeout", "120"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = subprocess.run([sys.executable, "-m", "rtpose", "run", "--source", "synthetic:320x240@30,frames=400",
                          "--model", str(analytic_model), "--rules", str(_rules_file(tmp_path)),
                          "--serial", "emulator", "--publish", address, "--record", str(tmp_path / "cli.h5"),
                          "--quiet"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    out, err = listen.communicate(timeout=120)
    assert listen.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 20
    frames = [m["frame"] for m in lines]
    assert frames == sorted(frames) and len(set(frames)) == 20
    for m in lines:
        assert m["type"] == "pose" and set(m["pose"]) == {"head", "body", "tail"}
        assert m["latency_ms"] > 0 and set(m["triggers"]) == {"left", "left_once"}
    assert "captured 400 = processed" in run.stdout and "(OK)" in run.stdout
    assert "trigger:" in run.stdout and "zmq:" in run.stdout
