"""SerialTriggerOutput against the pty emulator (real pyserial, real pty) and fake ports.

Synchronisation is by conditions only (``wait_for`` on counters, the emulator's
``wait_for_commands``); where a test needs time to pass it injects a fake clock
and moves it. No timing is asserted except exact values of a fake clock.
"""

import threading

import pytest

from rtpose.drivers.outputs import protocol as p
from rtpose.drivers.outputs.device import DeviceModel
from rtpose.drivers.outputs.emulator import DeviceEmulator
from rtpose.drivers.outputs.serial_out import SerialTriggerOutput
from rtpose.errors import ConfigError, OutputDeviceError
from rtpose.results import Action

TIMEOUT = 5.0  # safety net for waits on conditions, never a synchronisation
MS = 1_000_000


class FakeClock:
    def __init__(self, t_ns=10**12):
        self.t_ns = t_ns

    def __call__(self):
        return self.t_ns


def act(kind="pulse", channel=0, frame=0, ms=5.0, rule="zone"):
    return Action(kind, rule, t_ns=frame * 33 * MS, frame_index=frame, channel=channel, duration_ms=ms)


def user_commands(emu):
    """What the device received, without the output's own handshake PINGs and closing ALL_LOW."""
    return [c for c in emu.commands if c.command not in (p.CMD_PING, p.CMD_ALL_LOW)]


def events_of(output, kind):
    return [e for e in output.drain_events() if e.kind == kind]


@pytest.fixture
def emu():
    with DeviceEmulator() as device:
        yield device


def make_output(emu, **kw):
    kw.setdefault("ack_timeout_ms", 2000)
    kw.setdefault("reconnect_interval_s", 0.02)
    return SerialTriggerOutput(emu.port, **kw)


def test_commands_arrive_in_order_and_acks_are_matched(emu):
    sent = [act("pulse", 0, 0, 10), act("high", 3, 1), act("low", 3, 2), act("pulse", 8, 3, 2.6), act("high", 1, 4)]
    with make_output(emu) as out:
        assert out.stats()["state"] == "connected" and out.stats()["device_channels"] == 9
        assert all(out.send(a) for a in sent)
        assert out.wait_for(lambda s: s["acked"] == 5, TIMEOUT)
        stats = out.stats()
        acks = events_of(out, "ack")
    got = user_commands(emu)
    assert [(c.name, c.channel, c.payload) for c in got] == [
        ("PULSE", 0, 10), ("SET_HIGH", 3, 0), ("SET_LOW", 3, 0), ("PULSE", 8, 3), ("SET_HIGH", 1, 0)
    ]
    seqs = [c.seq for c in got]
    assert seqs == list(range(seqs[0], seqs[0] + 5))
    assert [e.frame_index for e in acks] == [0, 1, 2, 3, 4]
    assert [f"seq={s} " in e.detail for e, s in zip(acks, seqs)] == [True] * 5
    assert stats["sent"] == 5 and stats["failed"] == stats["missed"] == stats["dropped"] == 0
    assert stats["rtt_n"] == 5
    assert 0 < stats["rtt_ms_p50"] <= stats["rtt_ms_p99"] <= stats["rtt_ms_max"]
    # close() flushed and set every line low
    assert emu.commands[-1].name == "ALL_LOW" and emu.level(1) == 0


def test_rtt_is_write_to_ack_on_the_injected_clock():
    clock = FakeClock()
    with DeviceEmulator(clock=clock) as emu, make_output(emu, clock=clock, ack_timeout_ms=100) as out:
        emu.set_ack_mode("slow", delay_ms=30)
        out.send(act())
        assert emu.wait_for_commands(2, TIMEOUT)  # handshake PING + the pulse
        assert out.stats()["in_flight"] == 1
        clock.t_ns += 30 * MS  # the emulator's ack becomes due; the output's deadline is 100 ms
        assert out.wait_for(lambda s: s["acked"] == 1, TIMEOUT)
        assert out.stats()["rtt_ms_max"] == 30.0
        emu.set_ack_mode("ok")


def test_missing_ack_times_out_and_late_ack_is_counted():
    clock = FakeClock()
    with DeviceEmulator(clock=clock) as emu, make_output(emu, clock=clock, ack_timeout_ms=20) as out:
        emu.set_ack_mode("none")
        out.send(act(frame=7))
        out.send(act(frame=8))
        assert emu.wait_for_commands(3, TIMEOUT)
        assert out.stats()["failed"] == 0  # frozen clock: no deadline can pass
        clock.t_ns += 20 * MS
        assert out.wait_for(lambda s: s["failed"] == 2, TIMEOUT)
        failed = events_of(out, "failed")
        assert [e.frame_index for e in failed] == [7, 8]
        assert all("no ack within 20 ms" in e.detail for e in failed)

        emu.set_ack_mode("slow", delay_ms=30)  # slower than the 20 ms deadline
        out.send(act(frame=9))
        assert emu.wait_for_commands(4, TIMEOUT)
        clock.t_ns += 25 * MS
        assert out.wait_for(lambda s: s["failed"] == 3, TIMEOUT)
        clock.t_ns += 10 * MS  # now the emulator sends its (late) ack
        assert out.wait_for(lambda s: s["late_acks"] == 1, TIMEOUT)
        emu.set_ack_mode("ok")
        out.send(act(frame=10))
        assert out.wait_for(lambda s: s["acked"] == 1, TIMEOUT)


def test_device_error_status_is_a_failure(emu):
    with make_output(emu) as out:
        out.send(act("high", channel=20, frame=3))
        assert out.wait_for(lambda s: s["failed"] == 1, TIMEOUT)
        (event,) = events_of(out, "failed")
    assert event.frame_index == 3 and "BAD_CHANNEL" in event.detail


def test_unplug_mid_run_then_replug(emu):
    with make_output(emu) as out:
        out.send(act(frame=1))
        out.send(act(frame=2))
        assert out.wait_for(lambda s: s["acked"] == 2, TIMEOUT)
        emu.set_ack_mode("none")
        out.send(act(frame=3))  # written, never confirmed
        assert emu.wait_for_commands(4, TIMEOUT)
        emu.disconnect()
        assert out.wait_for(lambda s: s["state"] == "disconnected", TIMEOUT)
        for frame in (4, 5, 6):
            assert out.send(act(frame=frame))  # still never blocks, still accepted
        assert out.wait_for(lambda s: s["missed"] == 3 and s["reconnect_attempts"] >= 1, TIMEOUT)
        emu.set_ack_mode("ok")
        emu.reconnect()
        assert out.wait_for(lambda s: s["reconnects"] == 1 and s["state"] == "connected", TIMEOUT)
        out.send(act(frame=7))
        out.send(act(frame=8))
        assert out.wait_for(lambda s: s["acked"] == 4, TIMEOUT)
        stats = out.stats()
        events = out.drain_events()
    assert stats["disconnects"] == 1 and stats["failed"] == 1 and stats["missed"] == 3
    missed = [e for e in events if e.kind == "missed"]
    assert [e.frame_index for e in missed] == [4, 5, 6]
    assert all("device disconnected" in e.detail and "rule=zone" in e.detail for e in missed)
    (lost,) = [e for e in events if e.kind == "failed"]
    assert lost.frame_index == 3 and "link lost" in lost.detail
    device = [e.detail for e in events if e.kind == "device"]
    assert any(d.startswith("read failed") or d.startswith("write failed") for d in device)
    assert any(d.startswith("reconnect failed") for d in device)
    assert any(d.startswith("reconnected") for d in device)
    got = user_commands(emu)
    assert [(c.seq, c.connection) for c in got][:3] == [(c.seq, 1) for c in got[:3]]
    assert [c.connection for c in got] == [1, 1, 1, 2, 2]  # 4, 5, 6 never reached the device


def test_device_reset_and_line_noise_are_reported(emu):
    with make_output(emu) as out:
        emu.reset()
        assert out.wait_for(lambda s: s["device_resets"] == 1, TIMEOUT)
        assert any("device reset" in e.detail for e in events_of(out, "device"))
        emu.inject(b"\x5a\x5a\x00line noise\x5a")
        out.send(act())
        assert out.wait_for(lambda s: s["acked"] == 1, TIMEOUT)
        assert out.stats()["garbage_bytes"] > 0


def test_handshake_repings_until_the_device_answers(emu):
    # Like an Uno that resets when its port opens: the first PINGs go unanswered.
    emu.set_ack_mode("none")
    out = make_output(emu, ack_timeout_ms=20, ready_timeout_s=TIMEOUT)
    opener = threading.Thread(target=out.open)
    opener.start()
    assert emu.wait_for_commands(2, TIMEOUT)
    emu.set_ack_mode("ok")
    opener.join()
    try:
        assert out.is_open and out.stats()["state"] == "connected"
        assert all(c.name == "PING" for c in emu.commands[:2])
    finally:
        out.close()


def test_silent_device_fails_open_with_a_hint(emu):
    emu.set_ack_mode("none")
    out = make_output(emu, ack_timeout_ms=20, ready_timeout_s=0.1)
    with pytest.raises(OutputDeviceError, match="did not answer PING.*firmware"):
        out.open()
    assert not out.is_open


def test_nonexistent_port_names_the_port_and_the_fix(tmp_path):
    port = str(tmp_path / "ttyACM99")
    with pytest.raises(OutputDeviceError) as err:
        SerialTriggerOutput(port).open()
    text = str(err.value)
    assert port in text and "ls /dev/ttyACM*" in text and "dialout" in text and "--serial emulator" in text


def test_state_checks_and_invalid_actions(emu):
    out = make_output(emu)
    with pytest.raises(OutputDeviceError, match="not open"):
        out.send(act())
    out.open()
    try:
        with pytest.raises(ConfigError, match="not a trigger command"):
            out.send(Action("event", "zone", 0, 0))
        with pytest.raises(ConfigError, match="whole milliseconds"):
            out.send(act(ms=0.2))
        with pytest.raises(ConfigError, match="0..255"):
            out.send(act(channel=300))
    finally:
        out.close()
    out.close()
    with pytest.raises(OutputDeviceError, match="closed"):
        out.send(act())
    with pytest.raises(OutputDeviceError, match="closed"):
        out.open()
    with pytest.raises(ConfigError):
        SerialTriggerOutput("/dev/null", queue_size=0)


class BlockingPort:
    """A serial port whose write() blocks until released; answers like a device."""

    def __init__(self):
        self.entered = threading.Event()
        self.release = threading.Event()
        self.cond = threading.Condition()
        self.model, self.parser = DeviceModel(), p.CommandParser()
        self.rx = bytearray()
        self.received = []
        self.closed = False

    def factory(self, path, baudrate, timeout_s, write_timeout_s):
        self.timeout_s = timeout_s
        return self

    def write(self, data):
        self.entered.set()
        self.release.wait(TIMEOUT)
        with self.cond:
            for cmd in self.parser.feed(data):
                self.received.append(cmd)
                a = self.model.apply(cmd, 0)
                self.rx += p.encode_ack(a.status, a.command, a.channel, a.seq, a.device_us)
            self.cond.notify_all()
        return len(data)

    @property
    def in_waiting(self):
        return len(self.rx)

    def read(self, n):
        with self.cond:
            self.cond.wait_for(lambda: self.rx or self.closed, self.timeout_s)
            out = bytes(self.rx[:n])
            del self.rx[:n]
            return out

    def cancel_read(self):
        with self.cond:
            self.cond.notify_all()

    def close(self):
        with self.cond:
            self.closed = True
            self.cond.notify_all()


def test_full_queue_drops_and_never_blocks():
    port = BlockingPort()
    out = SerialTriggerOutput("fake", queue_size=3, handshake=False, serial_factory=port.factory, ack_timeout_ms=60_000)
    out.open()
    try:
        assert out.send(act(frame=1))
        assert port.entered.wait(TIMEOUT)  # the writer holds frame 1 inside write()
        assert [out.send(act(frame=f)) for f in (2, 3, 4)] == [True, True, True]  # fills the queue
        assert out.send(act(frame=5)) is False
        assert out.send(act(frame=6)) is False
        stats = out.stats()
        assert stats["dropped"] == 2 and stats["queue_depth"] == 3
        missed = events_of(out, "missed")
        assert [e.frame_index for e in missed] == [5, 6] and all("queue full" in e.detail for e in missed)
        port.release.set()
        assert out.wait_for(lambda s: s["acked"] == 4, TIMEOUT)
    finally:
        port.release.set()
        out.close()
    assert [c.seq for c in port.received][:4] == [0, 1, 2, 3]
    assert port.received[-1].command == p.CMD_ALL_LOW and port.closed


class RacingClock:
    """A clock that jumps 1 s on every reading: each ack deadline has passed by the next look."""

    def __init__(self, t_ns=10**12):
        self.t_ns = t_ns
        self.lock = threading.Lock()

    def __call__(self):
        with self.lock:
            self.t_ns += 1_000_000_000
            return self.t_ns


def test_emulated_output_never_times_out_a_command_still_on_its_way():
    """The ``--serial emulator`` hand-off: however late the reader thread runs (here every
    deadline is long past whenever anyone looks), a command the emulated device executed and
    answered is counted as acknowledged, never failed; the closing ALL_LOW too."""
    from rtpose.drivers.outputs.emulated import EmulatedSerialOutput

    out = EmulatedSerialOutput(clock=RacingClock(), ack_timeout_ms=1).open()
    try:
        for frame in range(20):
            assert out.send(act(frame=frame, ms=2))
        assert out.wait_for(lambda s: s["acked"] == 20, TIMEOUT)
    finally:
        out.close()
    stats = out.stats()
    assert stats["acked"] == 21 and stats["failed"] == stats["late_acks"] == 0  # 20 pulses + ALL_LOW
    assert [c.name for c in out.emulator.commands].count("PULSE") == 20


def test_emulated_output_still_times_out_what_the_device_withholds():
    from rtpose.drivers.outputs.emulated import EmulatedSerialOutput

    clock = FakeClock()
    with DeviceEmulator(clock=clock) as emu:
        out = EmulatedSerialOutput(emu, clock=clock, ack_timeout_ms=20).open()
        try:
            emu.set_ack_mode("none")
            out.send(act(frame=4))
            assert emu.wait_for_commands(2, TIMEOUT)
            clock.t_ns += 20 * MS
            assert out.wait_for(lambda s: s["failed"] == 1, TIMEOUT)
            emu.set_ack_mode("ok")
        finally:
            out.close()
