"""The pty device emulator, driven with plain pyserial (no rtpose writer involved)."""

import os

import pytest
import serial

from rtpose.drivers.outputs import protocol as p
from rtpose.drivers.outputs.emulator import DeviceEmulator
from rtpose.errors import ConfigError

TIMEOUT = 5.0  # safety net for waits on conditions, never a synchronisation


class FakeClock:
    def __init__(self, t_ns=1_000_000_000):
        self.t_ns = t_ns

    def __call__(self):
        return self.t_ns


@pytest.fixture
def emu():
    with DeviceEmulator() as device:
        yield device


def open_port(path):
    return serial.Serial(path, 115200, timeout=TIMEOUT)


def read_acks(port, n):
    parser, acks = p.AckParser(), []
    while len(acks) < n:
        data = port.read(max(1, port.in_waiting))
        assert data, "no acknowledgement from the emulator"
        acks += parser.feed(data)
    return acks


def test_commands_are_recorded_in_order_and_acknowledged(emu):
    with open_port(emu.port) as port:
        frames = [p.encode_command(p.CMD_PULSE, ch, 100 + ch, 5 + ch) for ch in range(5)]
        port.write(b"".join(frames) + p.encode_command(p.CMD_PING, 0, 200))
        assert emu.wait_for_commands(6, TIMEOUT)
        acks = read_acks(port, 6)
    got = emu.commands
    assert [(c.channel, c.seq, c.payload) for c in got[:5]] == [(ch, 100 + ch, 5 + ch) for ch in range(5)]
    assert got[5].name == "PING"
    assert [a.seq for a in acks] == [100, 101, 102, 103, 104, 200]
    assert all(a.ok for a in acks)
    assert acks[5].channel == p.DEFAULT_NUM_CHANNELS
    assert [a.device_us for a in acks] == [c.device_us for c in got]
    assert all(c.connection == 1 for c in got)
    t = [c.t_arrival_ns for c in got]
    assert t == sorted(t)


def test_pulse_edges_use_the_scheduled_end(emu):
    with open_port(emu.port) as port:
        port.write(p.encode_command(p.CMD_PULSE, 3, 1, 2))
        assert emu.wait_for_commands(1, TIMEOUT)
        # The device thread ends the pulse on its own; wait for that edge.
        assert emu.wait_until(lambda e: len(e.edges(3)) == 2, TIMEOUT)
    rise, fall = emu.edges(3)
    assert (rise.level, fall.level) == (1, 0)
    assert fall.t_ns - rise.t_ns == 2_000_000  # exactly 2 ms of device time
    assert rise.t_ns == emu.commands[0].t_arrival_ns


def test_fake_clock_drives_device_time():
    clock = FakeClock()
    with DeviceEmulator(clock=clock, micros_offset=(1 << 32) - 500) as emu, open_port(emu.port) as port:
        port.write(p.encode_command(p.CMD_PULSE, 0, 1, 10))
        assert emu.wait_for_commands(1, TIMEOUT)
        ack = read_acks(port, 1)[0]
        assert ack.device_us == (clock.t_ns // 1000 + (1 << 32) - 500) % (1 << 32)
        assert emu.level(0) == 1
        clock.t_ns += 10_000_000
        assert emu.level(0) == 0  # the pulse is over in device time


def test_no_ack_mode_executes_silently(emu):
    emu.set_ack_mode("none")
    with open_port(emu.port) as port:
        port.write(p.encode_command(p.CMD_SET_HIGH, 1, 7))
        assert emu.wait_for_commands(1, TIMEOUT)
        assert emu.level(1) == 1  # executed
        emu.set_ack_mode("ok")
        port.write(p.encode_command(p.CMD_PING, 0, 8))
        # Acks leave in order: had seq 7 been answered, it would come first.
        assert [a.seq for a in read_acks(port, 1)] == [8]
    assert emu.acks_sent == 1


def test_slow_ack_is_held_until_its_time_in_device_clock():
    clock = FakeClock()
    with DeviceEmulator(clock=clock) as emu, open_port(emu.port) as port:
        emu.set_ack_mode("slow", delay_ms=30)
        port.write(p.encode_command(p.CMD_SET_HIGH, 2, 8))
        assert emu.wait_for_commands(1, TIMEOUT)
        assert emu.acks_sent == 0  # the clock is frozen: not due yet
        t_applied = clock.t_ns
        clock.t_ns += 30_000_000
        ack = read_acks(port, 1)[0]
    assert ack.seq == 8 and ack.device_us == t_applied // 1000  # stamped when applied, not when sent
    assert emu.acks_sent == 1


def test_bad_frames_are_ignored_and_errors_answered(emu):
    with open_port(emu.port) as port:
        bad = bytearray(p.encode_command(p.CMD_SET_HIGH, 0, 1))
        bad[2] ^= 1
        port.write(b"noise" + bytes(bad) + p.encode_command(p.CMD_SET_HIGH, 42, 2) + p.encode_command(p.CMD_PULSE, 0, 3, 0))
        acks = read_acks(port, 2)
    assert [(a.seq, a.status) for a in acks] == [(2, p.STATUS_BAD_CHANNEL), (3, p.STATUS_BAD_PAYLOAD)]
    assert [c.seq for c in emu.commands] == [2, 3]
    assert emu.edges() == []


def test_disconnect_looks_like_an_unplug_and_reconnect_reuses_the_path(emu):
    path = emu.port
    first_target = os.readlink(path)
    port = open_port(path)
    port.write(p.encode_command(p.CMD_SET_HIGH, 0, 1))
    assert emu.wait_for_commands(1, TIMEOUT)
    emu.disconnect()
    assert not os.path.lexists(path)
    with pytest.raises(serial.SerialException):
        port.write(p.encode_command(p.CMD_SET_HIGH, 0, 2))
    port.close()
    with pytest.raises(serial.SerialException):
        open_port(path)
    assert emu.reconnect() == path
    assert os.readlink(path).startswith("/dev/pts/")
    assert emu.level(0) == 0  # power cycle: lines low again
    with open_port(path) as port:
        port.write(p.encode_command(p.CMD_PING, 0, 3))
        assert read_acks(port, 1)[0].seq == 3
    assert [(c.seq, c.connection) for c in emu.commands] == [(1, 1), (3, 2)]
    assert first_target.startswith("/dev/pts/")


def test_reset_sends_boot_frame_and_inject_reaches_host(emu):
    with open_port(emu.port) as port:
        port.write(p.encode_command(p.CMD_SET_HIGH, 4, 1))
        read_acks(port, 1)
        emu.reset()
        boot = read_acks(port, 1)[0]
        assert boot.status == p.STATUS_BOOT and boot.channel == p.DEFAULT_NUM_CHANNELS
        assert emu.level(4) == 0
        emu.inject(b"\x5a\x00garbage")
        port.write(p.encode_command(p.CMD_PING, 0, 2))
        assert read_acks(port, 1)[0].seq == 2


def test_stop_removes_everything_and_errors_are_typed():
    emu = DeviceEmulator()
    with pytest.raises(ConfigError):
        emu.port
    path = emu.start()
    folder = os.path.dirname(path)
    with pytest.raises(ConfigError):
        emu.set_ack_mode("sometimes")
    emu.stop()
    emu.stop()
    assert not os.path.exists(folder)
