"""The device's behaviour (pure model shared by the emulator; the firmware mirrors it)."""

from rtpose.drivers.outputs import protocol as p
from rtpose.drivers.outputs.device import DeviceModel, Edge

MS = 1_000_000


def cmd(command, channel=0, seq=0, payload=0):
    return p.CommandFrame(command, channel, seq, payload)


def test_pulse_is_high_for_exactly_its_width_in_device_time():
    dev = DeviceModel()
    ack = dev.apply(cmd(p.CMD_PULSE, 2, 7, 10), 1_000 * MS)
    assert ack == p.AckFrame(p.STATUS_OK, p.CMD_PULSE, 2, 7, 1_000_000)
    assert dev.level(2, 1_000 * MS) == 1
    assert dev.level(2, 1_010 * MS - 1) == 1
    assert dev.level(2, 1_010 * MS) == 0  # pending end counts before service() ran
    assert dev.next_deadline_ns() == 1_010 * MS
    dev.service(1_500 * MS)  # serviced late: the edge keeps its scheduled time
    assert dev.edges == [Edge(1_000 * MS, 2, 1), Edge(1_010 * MS, 2, 0)]
    assert dev.next_deadline_ns() is None


def test_pulse_restart_and_cancel():
    dev = DeviceModel()
    dev.apply(cmd(p.CMD_PULSE, 0, 1, 10), 0)
    dev.apply(cmd(p.CMD_PULSE, 0, 2, 10), 5 * MS)  # restart: end moves to 15 ms
    dev.service(12 * MS)
    assert dev.levels[0] == 1
    dev.service(15 * MS)
    assert dev.edges == [Edge(0, 0, 1), Edge(15 * MS, 0, 0)]
    dev.apply(cmd(p.CMD_PULSE, 1, 3, 10), 20 * MS)
    dev.apply(cmd(p.CMD_SET_HIGH, 1, 4), 22 * MS)  # explicit level cancels the pulse end
    dev.service(100 * MS)
    assert dev.levels[1] == 1
    dev.apply(cmd(p.CMD_PULSE, 3, 5, 10), 100 * MS)
    dev.apply(cmd(p.CMD_ALL_LOW, 0, 6), 101 * MS)
    assert dev.levels == [0] * dev.num_channels and dev.next_deadline_ns() is None


def test_errors_change_nothing():
    dev = DeviceModel(num_channels=4)
    assert dev.apply(cmd(p.CMD_SET_HIGH, 4, 1), 0).status == p.STATUS_BAD_CHANNEL
    assert dev.apply(cmd(p.CMD_PULSE, 1, 2, 0), 0).status == p.STATUS_BAD_PAYLOAD
    assert dev.apply(cmd(0x7E, 9, 3), 0).status == p.STATUS_BAD_COMMAND
    assert dev.levels == [0, 0, 0, 0] and dev.edges == []


def test_ping_reports_channel_count_and_reset_sends_boot():
    dev = DeviceModel(num_channels=4)
    assert dev.apply(cmd(p.CMD_PING, 0, 9), 0).channel == 4
    dev.apply(cmd(p.CMD_SET_HIGH, 1, 10), 0)
    boot = dev.reset(5 * MS)
    assert boot.status == p.STATUS_BOOT and boot.channel == 4
    assert dev.levels == [0, 0, 0, 0]


def test_device_clock_wraps():
    dev = DeviceModel(micros_offset=(1 << 32) - 10)
    assert dev.micros(0) == (1 << 32) - 10
    assert dev.micros(20_000) == 10  # 20 us later: wrapped
