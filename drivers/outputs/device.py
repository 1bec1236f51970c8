"""The trigger device's behaviour as a pure state machine (what the firmware does).

No I/O, no threads, no clock: every call takes ``now_ns``, the device's time.
The pty emulator wraps it in a thread; the firmware ``rtpose_ttl.ino``
implements the same rules in C:

* SET_HIGH / SET_LOW set a line and cancel a pulse running on it.
* PULSE(ms) sets the line high now and schedules it low at now + ms; a PULSE on
  a line that is already pulsing restarts the pulse (the end moves).
* ALL_LOW sets every line low and cancels every pulse. PING changes nothing;
  its acknowledgement carries the number of channels in the channel field.
* Every valid command is acknowledged with the device's microsecond clock at
  the moment it was applied; an unknown command, a bad channel or a zero-length pulse is answered
  with an error status and changes nothing. Corrupt frames are not answered.

Scheduled edges are stamped with their scheduled time, so a pulse's width in
device time is exactly what was asked for, however late :meth:`service` runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import protocol as p


@dataclass(frozen=True)
class Edge:
    """A line changing level at ``t_ns`` (device time)."""

    t_ns: int
    channel: int
    level: int


class DeviceModel:
    """Pin levels, pulse deadlines and acknowledgements of one trigger device."""

    def __init__(self, num_channels: int = p.DEFAULT_NUM_CHANNELS, micros_offset: int = 0):
        if not 1 <= num_channels <= 255:
            raise ValueError(f"num_channels={num_channels}; a device drives 1..255 channels")
        self.num_channels = num_channels
        self.micros_offset = micros_offset  # shifts the device clock, e.g. to test u32 wrap
        self.levels = [0] * num_channels
        self.pulse_end_ns: list[int | None] = [None] * num_channels
        self.edges: list[Edge] = []

    def micros(self, now_ns: int) -> int:
        """The device's wrapping u32 microsecond clock at ``now_ns``."""
        return (now_ns // 1000 + self.micros_offset) % p.DEVICE_CLOCK_MODULO

    def _set(self, t_ns: int, channel: int, level: int) -> None:
        if self.levels[channel] != level:
            self.levels[channel] = level
            self.edges.append(Edge(t_ns, channel, level))

    def service(self, now_ns: int) -> None:
        """End the pulses due at or before ``now_ns``, in deadline order."""
        due = sorted(
            (end, ch) for ch, end in enumerate(self.pulse_end_ns) if end is not None and end <= now_ns
        )
        for end, ch in due:
            self.pulse_end_ns[ch] = None
            self._set(end, ch, 0)

    def next_deadline_ns(self) -> int | None:
        """Earliest pending pulse end, or None."""
        pending = [end for end in self.pulse_end_ns if end is not None]
        return min(pending) if pending else None

    def apply(self, cmd: p.CommandFrame, now_ns: int) -> p.AckFrame:
        """Execute one command at ``now_ns``; return the acknowledgement to send."""
        self.service(now_ns)
        status = p.STATUS_OK
        channel_field = cmd.channel
        if cmd.command not in p.COMMAND_NAMES:
            status = p.STATUS_BAD_COMMAND
        elif cmd.command == p.CMD_PING:
            channel_field = self.num_channels
        elif cmd.command == p.CMD_ALL_LOW:
            for ch in range(self.num_channels):
                self.pulse_end_ns[ch] = None
                self._set(now_ns, ch, 0)
        elif cmd.channel >= self.num_channels:
            status = p.STATUS_BAD_CHANNEL
        elif cmd.command == p.CMD_SET_HIGH:
            self.pulse_end_ns[cmd.channel] = None
            self._set(now_ns, cmd.channel, 1)
        elif cmd.command == p.CMD_SET_LOW:
            self.pulse_end_ns[cmd.channel] = None
            self._set(now_ns, cmd.channel, 0)
        elif cmd.command == p.CMD_PULSE:
            if cmd.payload == 0:
                status = p.STATUS_BAD_PAYLOAD
            else:
                self._set(now_ns, cmd.channel, 1)
                self.pulse_end_ns[cmd.channel] = now_ns + cmd.payload * 1_000_000
        return p.AckFrame(status, cmd.command, channel_field, cmd.seq, self.micros(now_ns))

    def reset(self, now_ns: int) -> p.AckFrame:
        """Power-on reset: all lines low, pulses cancelled; returns the BOOT frame."""
        for ch in range(self.num_channels):
            self.pulse_end_ns[ch] = None
            self._set(now_ns, ch, 0)
        return p.AckFrame(p.STATUS_BOOT, 0, self.num_channels, 0, self.micros(now_ns))

    def level(self, channel: int, t_ns: int) -> int:
        """Level of ``channel`` at ``t_ns`` as recorded (edges up to t_ns), pending pulse ends included."""
        level = 0
        for edge in self.edges:
            if edge.t_ns > t_ns:
                break
            if edge.channel == channel:
                level = edge.level
        end = self.pulse_end_ns[channel]
        if end is not None and end <= t_ns:
            level = 0
        return level
