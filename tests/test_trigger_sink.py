"""TriggerSink with a fake output; open_output specs; the null and log outputs."""

import logging

import pytest

from rtpose.drivers.outputs import LogOutput, NullOutput, open_output, parse_spec
from rtpose.drivers.outputs.base import TriggerOutput
from rtpose.drivers.outputs import protocol as p
from rtpose.errors import ConfigError, OutputDeviceError
from rtpose.results import Action, PoseBatch
from rtpose.sinks.trigger import TriggerSink

TIMEOUT = 5.0


class FakeOutput(TriggerOutput):
    """Records what it is given; accepts up to ``capacity`` commands, then refuses."""

    def __init__(self, capacity=100):
        super().__init__("fake", clock=lambda: 123)
        self.capacity = capacity
        self.got = []
        self.closed = 0

    def _do_open(self):
        pass

    def _do_send(self, command, channel, payload, action):
        if len(self.got) >= self.capacity:
            return False
        self.got.append((command, channel, payload, action.frame_index))
        self._count("sent", "ack", f"seq={len(self.got)}", action)
        return True

    def _do_close(self):
        self.closed += 1


def batch_with(actions, events=()):
    batch = PoseBatch(capacity=4, num_bodyparts=2)
    batch.n = 1
    batch.actions.extend(actions)
    batch.events.extend(events)
    return batch


def test_sink_sends_trigger_actions_and_forwards_device_events():
    out = FakeOutput()
    sink = TriggerSink(out)
    sink.open([])
    actions = [
        Action("pulse", "zone", 10, 1, channel=2, duration_ms=20),
        Action("event", "zone", 10, 1),  # for ZeroMQ, not hardware
        Action("high", "hold", 10, 1, channel=5),
        Action("low", "hold", 11, 2, channel=5),
    ]
    batch = batch_with(actions)
    sink.write(batch)
    assert out.got == [(p.CMD_PULSE, 2, 20, 1), (p.CMD_SET_HIGH, 5, 0, 1), (p.CMD_SET_LOW, 5, 0, 2)]
    assert [e.kind for e in batch.events] == ["ack", "ack", "ack"]
    assert [e.frame_index for e in batch.events] == [1, 1, 2]
    sink.close()
    sink.close()
    summary = sink.summary()
    assert out.closed == 1
    assert summary["actions"] == 3 and summary["sent"] == 3 and summary["dropped"] == 0
    assert summary["events"] == {"ack": 3}
    assert summary["rtt_ms_p50"] is None  # the fake measures no round trip


def test_sink_counts_drops_and_does_not_forward_when_told():
    out = FakeOutput(capacity=1)
    sink = TriggerSink(out, forward_events=False, close_output=False)
    sink.open([])
    batch = batch_with([Action("pulse", "r", 0, 7, duration_ms=1), Action("pulse", "r", 0, 7, duration_ms=1)])
    sink.write(batch)
    assert batch.events == []
    sink.close()
    summary = sink.summary()
    assert summary["dropped"] == 1 and summary["events"] == {"ack": 1, "missed": 1}
    assert out.closed == 0
    missed = [e for e in sink.recent_events if e.kind == "missed"]
    assert missed[0].frame_index == 7 and "queue full" in missed[0].detail


def test_sink_rejects_an_action_no_device_can_run():
    sink = TriggerSink(FakeOutput())
    sink.open([])
    with pytest.raises(ConfigError):
        sink.write(batch_with([Action("blink", "r", 0, 0)]))


def test_sink_over_the_emulator_end_to_end():
    out = open_output("emulator", ack_timeout_ms=2000)
    sink = TriggerSink(out)
    try:
        sink.open([])
        first = batch_with([Action("pulse", "zone", 0, 0, channel=1, duration_ms=3)])
        sink.write(first)
        assert out.wait_for(lambda s: s["acked"] == 1, TIMEOUT)
        later = batch_with([])
        sink.write(later)  # the ack may land in either batch, depending on when it came back
        assert [e.kind for e in first.events + later.events] == ["device", "ack"]  # connected, the pulse's ack
    finally:
        sink.close()
    emu = out.emulator
    pulses = [c for c in emu.commands if c.name == "PULSE"]
    assert [(c.channel, c.payload) for c in pulses] == [(1, 3)]
    summary = sink.summary()
    assert summary["acked"] == 2 and summary["rtt_ms_max"] > 0  # the pulse and the closing ALL_LOW


@pytest.mark.parametrize(
    "spec,expected",
    [
        ("/dev/ttyACM0", ("serial", "/dev/ttyACM0", None)),
        ("/dev/ttyUSB1@9600", ("serial", "/dev/ttyUSB1", 9600)),
        ("COM3", ("serial", "COM3", None)),
        ("emulator", ("emulator", None, None)),
        ("NULL", ("null", None, None)),
        ("log", ("log", None, None)),
    ],
)
def test_parse_spec(spec, expected):
    assert parse_spec(spec) == expected


@pytest.mark.parametrize("spec", ["", "ttyACM0", "serial", "/dev/ttyACM0@fast", "emulator2"])
def test_bad_spec_is_a_config_error(spec):
    with pytest.raises(ConfigError, match="emulator"):
        open_output(spec)


def test_open_output_nonexistent_port():
    with pytest.raises(OutputDeviceError, match="/dev/ttyACM_rtpose_missing.*dialout"):
        open_output("/dev/ttyACM_rtpose_missing")


def test_null_and_log_outputs(caplog):
    action = Action("pulse", "zone", 0, 4, channel=1, duration_ms=10)
    null = open_output("null")
    assert isinstance(null, NullOutput) and null.send(action)
    assert null.stats()["sent"] == 1
    null.close()
    log_out = open_output("log")
    assert isinstance(log_out, LogOutput)
    with caplog.at_level(logging.INFO, logger="rtpose.trigger"):
        assert log_out.send(action)
    assert "frame 4: rule=zone PULSE ch=1 10ms" in caplog.text
    assert log_out.commands[-1][1] == "rule=zone PULSE ch=1 10ms"
    log_out.close()
    with pytest.raises(OutputDeviceError):
        log_out.send(action)
