"""The Open Ephys trigger output against an in-process Network Events endpoint.

The endpoint (drivers/outputs/openephys_emulator.py) is a REP socket answering the plugin's
commands with the plugin's replies (open-ephys-plugins/network-events, Source/NetworkEvents.cpp
at f064e04). Waits are on events and counters, never on elapsed time; the only timeouts are the
output's own reply deadlines, in the tests that are about a reply that never comes.
"""

from __future__ import annotations

import argparse

import pytest
import zmq

from rtpose.drivers.outputs import open_output, parse_spec
from rtpose.drivers.outputs.openephys import OpenEphysOutput, ttl_reply, ttl_request
from rtpose.drivers.outputs.openephys_emulator import NetworkEventsEmulator, juce_int, parse_parameters
from rtpose.errors import ConfigError, OutputDeviceError
from rtpose.results import Action, PoseBatch
from rtpose.sinks.trigger import TriggerSink

WAIT_S = 30.0  # generous: a loaded 2-core machine; the tests wait for events, not for time


def pulse(channel: int, ms: float = 5, frame: int = 0) -> Action:
    return Action("pulse", "zone", 0, frame, channel=channel, duration_ms=ms)


def level(kind: str, channel: int) -> Action:
    return Action(kind, "zone", 0, 0, channel=channel)


@pytest.fixture
def emulator():
    emu = NetworkEventsEmulator()
    emu.start()
    yield emu
    emu.close()


def connect(emu: NetworkEventsEmulator, **options) -> OpenEphysOutput:
    return OpenEphysOutput(emu.endpoint, **options).open()


# ---- the emulator answers like the plugin's handleSpecialMessages ------------------------------------
@pytest.mark.parametrize("request_text,reply", [
    ("TTL Line=3 State=1", "TTLHandled: Line=3 State=1"),
    ("ttl line=256 state=0", "TTLHandled: Line=256 State=0"),  # commands and keys ignore case
    ("TTL Line=257 State=1", "InvalidChannel"),
    ("TTL Line=0 State=1", "InvalidChannel"),
    ("TTL State=1", "TTLHandled: Line=1 State=1"),  # no Line=: line 1
    ("TTL", "TTLHandled: Line=1 State=0"),  # no parameters at all
    ("TTL Line=2 State=7", "TTLHandled: Line=2 State=1"),  # any non-zero state is on
    ("IsAcquiring", "1"),
    ("StopAcquisition", "StoppedAcquisition"),
    ("hello from rtpose", "NotHandled"),
])
def test_emulator_replies_like_the_plugin(request_text, reply):
    assert NetworkEventsEmulator().handle(request_text) == reply


def test_emulator_state_follows_the_plugin():
    emu = NetworkEventsEmulator(acquiring=False)
    assert emu.handle("IsAcquiring") == "0"
    assert emu.handle("TTL Line=1 State=1") == "TTLHandled: Line=1 State=1"
    assert emu.ttl_events == []  # answered, but not added: the GUI is not acquiring
    assert emu.handle("StartAcquisition") == "StartedAcquisition" and emu.handle("IsAcquiring") == "1"
    assert emu.handle("StartRecord") == "StartedRecording"
    assert emu.handle("StartRecord") == "NotHandled"  # already recording: the plugin falls through
    assert emu.handle("IsRecording") == "1" and emu.handle("StopRecord") == "StoppedRecording"


def test_juce_parsing_helpers():
    assert [juce_int(t) for t in ("12", " 7x", "-3", "x1", "")] == [12, 7, -3, 0, 0]
    assert parse_parameters(" Line=4 State=1 RecDir='/a b'") == {"line": "4", "state": "1", "recdir": "/a b"}


def test_request_and_reply_texts_match_the_emulator():
    emu = NetworkEventsEmulator()
    for line in (1, 2, 256):
        for state in (0, 1):
            assert emu.handle(ttl_request(line, state)) == ttl_reply(line, state)


# ---- the output ------------------------------------------------------------------------------------------
def test_pulse_high_low_reach_the_recording_in_order(emulator):
    out = connect(emulator)
    try:
        assert out.acquiring is True
        assert out.send(pulse(2, ms=5))  # rtpose channel 2 = Open Ephys line 3
        assert out.wait_for(lambda s: s["acked"] == 2, WAIT_S)  # on, then off 5 ms later
        assert out.send(level("high", 0)) and out.send(level("low", 0))
        assert out.wait_for(lambda s: s["acked"] == 4, WAIT_S)
        stats = out.stats()
        assert (stats["sent"], stats["failed"], stats["missed"], stats["dropped"]) == (4, 0, 0, 0)
        assert stats["rtt_n"] == 4 and stats["high_channels"] == []
    finally:
        out.close()
    assert emulator.messages == ["IsAcquiring", "TTL Line=3 State=1", "TTL Line=3 State=0",
                                 "TTL Line=1 State=1", "TTL Line=1 State=0"]
    assert emulator.ttl_events == [(3, 1), (3, 0), (1, 1), (1, 0)]
    kinds = [e.kind for e in out.drain_events()]
    assert kinds == ["device", "ack", "ack", "ack", "ack"]


def test_ack_events_name_the_rule_and_frame(emulator):
    out = connect(emulator)
    try:
        out.send(Action("high", "snout_in_zone", 0, 1234, channel=7, stream=1))
        assert out.wait_for(lambda s: s["acked"] == 1, WAIT_S)
    finally:
        out.close()
    ack = [e for e in out.drain_events() if e.kind == "ack"][0]
    assert (ack.frame_index, ack.stream, ack.name) == (1234, 1, out.name)
    assert "rule=snout_in_zone" in ack.detail and "[TTL Line=8 State=1]" in ack.detail


def test_close_sets_lines_low_again(emulator):
    out = connect(emulator)
    out.send(level("high", 5))
    assert out.wait_for(lambda s: s["acked"] == 1, WAIT_S)
    assert out.stats()["high_channels"] == [5]
    out.close()
    assert emulator.messages[-1] == "TTL Line=6 State=0" and emulator.ttl_events[-1] == (6, 0)


def test_close_ends_a_pulse_still_on(emulator):
    out = connect(emulator)
    out.send(pulse(1, ms=60_000))  # one minute long: close() must not wait for it
    assert out.wait_for(lambda s: s["acked"] == 1, WAIT_S)
    out.close()
    assert emulator.ttl_events == [(2, 1), (2, 0)]


def test_gui_not_acquiring_is_reported(emulator, caplog):
    emulator.acquiring = False
    out = connect(emulator)
    try:
        events = out.drain_events()
        assert events[0].kind == "device" and "NOT acquiring" in events[0].detail
        assert "not acquiring" in caplog.text
        out.send(level("high", 0))
        assert out.wait_for(lambda s: s["acked"] == 1, WAIT_S)  # the plugin answers...
    finally:
        out.close()
    assert emulator.ttl_events == []  # ...and records nothing


def test_unexpected_reply_is_a_failure(emulator, monkeypatch):
    out = connect(emulator)
    try:
        monkeypatch.setattr(emulator, "handle", lambda text: "InvalidChannel")
        out.send(level("high", 3))
        assert out.wait_for(lambda s: s["failed"] == 1, WAIT_S)
        assert out.stats()["state"] == "connected"  # a reply came: the lockstep is intact
    finally:
        out.close()
    failed = [e for e in out.drain_events() if e.kind == "failed"][0]
    assert "answered 'InvalidChannel'" in failed.detail


def test_lost_reply_recreates_the_socket_and_reconnects(emulator):
    """A REQ socket whose reply never came refuses to send again (EFSM): the output must replace it."""
    out = connect(emulator, reply_timeout_ms=200, reconnect_interval_s=0.01)
    try:
        emulator.swallow(1)
        out.send(level("high", 0))
        assert out.wait_for(lambda s: s["failed"] == 1 and s["reconnects"] == 1, WAIT_S)
        out.send(level("low", 0))
        assert out.wait_for(lambda s: s["acked"] == 1, WAIT_S)
        stats = out.stats()
        assert (stats["disconnects"], stats["state"]) == (1, "connected")
    finally:
        out.close()
    assert emulator.messages[1:] == ["TTL Line=1 State=1", "IsAcquiring", "TTL Line=1 State=0"]
    kinds = [e.kind for e in out.drain_events()]
    assert kinds == ["device", "failed", "device", "device", "ack"]  # connected, lost, reconnected


def test_commands_while_the_gui_is_away_are_missed_not_delivered_late(emulator):
    out = connect(emulator, reply_timeout_ms=200, reconnect_interval_s=0.01)
    try:
        emulator.stop()  # the GUI quits
        out.send(level("high", 0))  # written into a dying connection (failed) or not at all (missed)
        assert out.wait_for(lambda s: s["disconnects"] == 1, WAIT_S)
        before = out.stats()
        assert before["missed"] + before["failed"] == 1
        out.send(level("high", 1))  # while it is away: counted at once, never written
        assert out.stats()["missed"] == before["missed"] + 1
        emulator.start()  # back on the same port
        assert out.wait_for(lambda s: s["reconnects"] == 1, WAIT_S)
        out.send(level("high", 2))
        assert out.wait_for(lambda s: s["acked"] == 1, WAIT_S)
    finally:
        out.close()
    ttl = [m for m in emulator.messages if m.startswith("TTL")]
    assert ttl[:1] == ["TTL Line=3 State=1"]  # nothing from the outage arrives late
    assert "TTL Line=1 State=1" not in ttl and "TTL Line=2 State=1" not in ttl


def test_send_never_waits_for_a_busy_gui(emulator):
    out = connect(emulator, queue_size=3)
    try:
        emulator.pause()  # the GUI holds its reply: the request thread waits for it
        assert out.send(level("high", 0))
        assert emulator.wait_for(lambda e: len(e.messages) == 2, WAIT_S)  # IsAcquiring, then that TTL
        assert all(out.send(level("high", c)) for c in (1, 2, 3))  # the queue takes three
        assert not out.send(level("high", 4))  # the fourth is refused at once
        stats = out.stats()
        assert (stats["dropped"], stats["queue_depth"]) == (1, 3)
        emulator.resume()
        assert out.wait_for(lambda s: s["acked"] == 4, WAIT_S)
    finally:
        out.close()
    assert [e.kind for e in out.drain_events()].count("missed") == 1  # the refused one, reported


def test_no_gui_at_open_is_a_typed_error_with_a_hint():
    ctx = zmq.Context()
    try:
        probe = ctx.socket(zmq.REP)
        port = probe.bind_to_random_port("tcp://127.0.0.1")
        probe.close(linger=0)  # a free port nobody listens on
        with pytest.raises(OutputDeviceError, match="Network Events plugin in its signal chain"):
            OpenEphysOutput(f"tcp://127.0.0.1:{port}", reply_timeout_ms=200, context=ctx).open()
    finally:
        ctx.term()


def test_a_port_that_is_not_the_plugin_is_refused():
    ctx = zmq.Context()
    emu = NetworkEventsEmulator(context=ctx)
    emu.handle = lambda text: "hello"  # some other REP service
    emu.start()
    try:
        with pytest.raises(OutputDeviceError, match="answered 'hello' to IsAcquiring"):
            OpenEphysOutput(emu.endpoint, context=ctx).open()
    finally:
        emu.stop()
        ctx.term()


# ---- specs, the emulator spec, the pipeline sink, the command line -------------------------------------
@pytest.mark.parametrize("spec,expected", [
    ("openephys", ("openephys", "tcp://127.0.0.1:5556", None)),
    ("openephys:tcp://10.0.0.2:5557", ("openephys", "tcp://10.0.0.2:5557", None)),
    ("OpenEphys:emulator", ("openephys", "emulator", None)),
])
def test_parse_openephys_specs(spec, expected):
    assert parse_spec(spec) == expected


@pytest.mark.parametrize("spec", ["openephys:udp://1.2.3.4:5556", "openephys:tcp://host", "openephys:5556",
                                  "openephys:tcp://host:70000"])
def test_bad_openephys_spec_is_a_config_error(spec):
    with pytest.raises(ConfigError, match="openephys:tcp://HOST:PORT"):
        open_output(spec)


def test_trigger_sink_drives_the_emulator_spec():
    out = open_output("openephys:emulator")
    sink = TriggerSink(out, name="trigger:openephys")
    batch = PoseBatch(1, 1)
    batch.n = 1
    batch.actions.append(pulse(0, ms=1, frame=42))
    batch.actions.append(Action("event", "zone", 0, 42))  # not for hardware: left to other sinks
    try:
        sink.write(batch)
        assert out.wait_for(lambda s: s["acked"] == 2, WAIT_S)
    finally:
        sink.close()
    assert out.emulator.ttl_events == [(1, 1), (1, 0)]
    assert sink.summary()["acked"] == 2 and sink.name == "trigger:openephys"


def _output_args(**overrides) -> argparse.Namespace:
    from rtpose.cli.outputs import add_output_arguments

    parser = argparse.ArgumentParser()
    add_output_arguments(parser)
    args = parser.parse_args([])
    vars(args).update(overrides)
    return args


def test_cli_output_option_builds_a_named_trigger_sink():
    from rtpose.cli.outputs import build_outputs

    stages, sinks = build_outputs(_output_args(output=["openephys:emulator"]), None, scorer="s", n_streams=1)
    try:
        assert stages == [] and [s.name for s in sinks] == ["trigger:openephys:emulator"]
        assert sinks[0].output.is_open
    finally:
        for s in sinks:
            s.close()


def test_cli_output_option_refuses_serial_devices():
    from rtpose.cli.outputs import build_outputs

    with pytest.raises(ConfigError, match="given with --serial"):
        build_outputs(_output_args(output=["emulator"]), None, scorer="s", n_streams=1)


def test_closed_loop_marks_each_zone_entry_in_the_recording(analytic_model, tmp_path):
    """Synthetic mouse -> analytic model -> rules -> Open Ephys output -> emulated plugin: one TTL on
    and one off per zone entry, on line channel + 1, acknowledged for exactly the entry frames."""
    from test_closed_loop import FPS, N_FRAMES, _expected_entries, _rules_file

    from rtpose.drivers.sources.synthetic import SyntheticSource
    from rtpose.model import OnnxPoseModel
    from rtpose.pipeline import Pipeline, PipelineConfig
    from rtpose.rules import load_rules

    source = SyntheticSource(width=320, height=240, fps=FPS, n_frames=N_FRAMES, seed=0)
    expected = _expected_entries(source)
    model = OnnxPoseModel(analytic_model)
    output = open_output("openephys:emulator")
    sink = TriggerSink(output, name="trigger:openephys")
    pipeline = Pipeline([source], model, stages=[load_rules(_rules_file(tmp_path), model.metadata.bodyparts)],
                        sinks=[sink], config=PipelineConfig(live=False, batch_size=1))
    summary = pipeline.run()  # closes the sink: queued commands sent, pulses ended
    assert summary.processed == N_FRAMES
    ttl = output.emulator.ttl_events
    # rule "left": channel 0 = line 1, every entry; rule "left_once": channel 1 = line 2, once (refractory)
    assert [s for line, s in ttl if line == 1].count(1) == len(expected)
    assert [s for line, s in ttl if line == 1].count(0) == len(expected)
    assert [s for line, s in ttl if line == 2] == [1, 0]
    acks = [e for e in sink.recent_events if e.kind == "ack" and "State=1" in e.detail]
    assert sorted(e.frame_index for e in acks if "Line=1 " in e.detail) == expected
    assert summary.sinks["trigger:openephys"]["acked"] == 2 * len(expected) + 2
