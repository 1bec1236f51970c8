"""The rtpose trigger wire protocol: frame layout, CRC-8, encoder and streaming parsers.

Pure: no I/O, no threads, no clocks. The firmware (``drivers/firmware/rtpose_ttl``),
the pty emulator and the serial writer all speak exactly this; a test compares
the firmware's constants with the ones below so they cannot drift. Full spec:
``docs/hardware.md``.

Host -> device, a *command* frame (8 bytes, integers little-endian)::

    0  START_CMD (0xA5)
    1  command   SET_HIGH / SET_LOW / PULSE / PING / ALL_LOW
    2  channel   output line 0..255 (the device maps it to a pin)
    3  seq       u16, chosen by the host, echoed in the acknowledgement
    5  payload   u16, PULSE: width in ms (1..65535); otherwise 0
    7  crc       CRC-8 (poly 0x07, init 0x00, no reflection) of bytes 1..6

Device -> host, an *acknowledgement* frame (11 bytes)::

    0  START_ACK (0x5A)
    1  status    STATUS_OK, STATUS_BAD_CHANNEL, STATUS_BAD_COMMAND,
                 STATUS_BAD_PAYLOAD, or STATUS_BOOT (unsolicited, after a reset)
    2  command   echoed
    3  channel   echoed; for PING: the number of channels the device drives
    4  seq       u16, echoed
    6  device_us u32, the device's microsecond clock when it applied the
                 command (wraps every 71.6 minutes; see :func:`unwrap_u32`)
    10 crc       CRC-8 of bytes 1..9

The start bytes differ by direction, so a parser never mistakes an echo for an
answer. A command frame is accepted when its CRC matches (an unknown command
code is then answered with STATUS_BAD_COMMAND); an acknowledgement is accepted
when its CRC matches *and* its status is known. Otherwise the parser drops one byte and searches for the next start
byte (resynchronisation). CRC-8 detects every 1- and 2-bit error in these short
frames; random garbage passes the CRC with probability 1/256.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Callable, Generic, TypeVar

PROTOCOL_VERSION = 1

START_CMD = 0xA5
START_ACK = 0x5A

CMD_SET_HIGH = 0x01
CMD_SET_LOW = 0x02
CMD_PULSE = 0x03
CMD_PING = 0x04
CMD_ALL_LOW = 0x05

STATUS_OK = 0x00
STATUS_BAD_CHANNEL = 0x01
STATUS_BAD_COMMAND = 0x02
STATUS_BAD_PAYLOAD = 0x03
STATUS_BOOT = 0x80

CRC8_POLY = 0x07
CRC8_INIT = 0x00

CMD_FRAME_LEN = 8
ACK_FRAME_LEN = 11

#: Channels the reference firmware drives: pins D2..D9 and the on-board LED.
DEFAULT_NUM_CHANNELS = 9

MAX_PULSE_MS = 0xFFFF
SEQ_MODULO = 1 << 16
DEVICE_CLOCK_MODULO = 1 << 32

COMMAND_NAMES = {
    CMD_SET_HIGH: "SET_HIGH",
    CMD_SET_LOW: "SET_LOW",
    CMD_PULSE: "PULSE",
    CMD_PING: "PING",
    CMD_ALL_LOW: "ALL_LOW",
}
STATUS_NAMES = {
    STATUS_OK: "OK",
    STATUS_BAD_CHANNEL: "BAD_CHANNEL",
    STATUS_BAD_COMMAND: "BAD_COMMAND",
    STATUS_BAD_PAYLOAD: "BAD_PAYLOAD",
    STATUS_BOOT: "BOOT",
}

_CMD = struct.Struct("<BBBHH")  # start, cmd, channel, seq, payload (+ crc)
_ACK = struct.Struct("<BBBBHI")  # start, status, cmd, channel, seq, device_us (+ crc)


def _crc8_table(poly: int) -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = ((crc << 1) ^ poly) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
        table.append(crc)
    return tuple(table)


_CRC8_TABLE = _crc8_table(CRC8_POLY)


def crc8(data: bytes | bytearray | memoryview, crc: int = CRC8_INIT) -> int:
    """CRC-8 with polynomial x^8+x^2+x+1 (0x07), init 0, no reflection, no final xor.

    Check value: ``crc8(b"123456789") == 0xF4``.
    """
    for byte in data:
        crc = _CRC8_TABLE[crc ^ byte]
    return crc


@dataclass(frozen=True)
class CommandFrame:
    """A decoded host -> device command."""

    command: int
    channel: int
    seq: int
    payload: int = 0

    @property
    def name(self) -> str:
        return COMMAND_NAMES.get(self.command, f"0x{self.command:02X}")


@dataclass(frozen=True)
class AckFrame:
    """A decoded device -> host acknowledgement."""

    status: int
    command: int
    channel: int
    seq: int
    device_us: int

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK

    @property
    def status_name(self) -> str:
        return STATUS_NAMES.get(self.status, f"0x{self.status:02X}")


def _check_u8(name: str, value: int) -> None:
    if not 0 <= value <= 0xFF:
        raise ValueError(f"{name}={value} does not fit in one byte (0..255)")


def _check_u16(name: str, value: int) -> None:
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"{name}={value} does not fit in 16 bits (0..65535)")


def encode_command(command: int, channel: int, seq: int, payload: int = 0) -> bytes:
    """Build an 8-byte command frame. Raises ValueError on out-of-range fields."""
    if command not in COMMAND_NAMES:
        raise ValueError(f"unknown command code 0x{command:02X}; known: {sorted(COMMAND_NAMES)}")
    _check_u8("channel", channel)
    _check_u16("seq", seq)
    _check_u16("payload", payload)
    head = _CMD.pack(START_CMD, command, channel, seq, payload)
    return head + bytes((crc8(head[1:]),))


def encode_ack(status: int, command: int, channel: int, seq: int, device_us: int) -> bytes:
    """Build an 11-byte acknowledgement frame (what the device sends)."""
    _check_u8("status", status)
    _check_u8("command", command)
    _check_u8("channel", channel)
    _check_u16("seq", seq)
    head = _ACK.pack(START_ACK, status, command, channel, seq, device_us % DEVICE_CLOCK_MODULO)
    return head + bytes((crc8(head[1:]),))


def _decode_command(frame: bytes) -> CommandFrame | None:
    # Unknown command codes with a valid CRC are passed on: the device answers
    # them with STATUS_BAD_COMMAND (e.g. a newer host talking to older firmware).
    _, command, channel, seq, payload = _CMD.unpack_from(frame)
    return CommandFrame(command, channel, seq, payload)


def _decode_ack(frame: bytes) -> AckFrame | None:
    _, status, command, channel, seq, device_us = _ACK.unpack_from(frame)
    if status not in STATUS_NAMES:
        return None
    return AckFrame(status, command, channel, seq, device_us)


def decode_command(frame: bytes) -> CommandFrame:
    """Decode exactly one command frame; ValueError if it is not a valid one."""
    parsed = CommandParser().feed(frame)
    if len(parsed) != 1 or len(frame) != CMD_FRAME_LEN:
        raise ValueError(f"not a valid {CMD_FRAME_LEN}-byte command frame: {bytes(frame).hex(' ')}")
    return parsed[0]


def decode_ack(frame: bytes) -> AckFrame:
    """Decode exactly one acknowledgement frame; ValueError if it is not a valid one."""
    parsed = AckParser().feed(frame)
    if len(parsed) != 1 or len(frame) != ACK_FRAME_LEN:
        raise ValueError(f"not a valid {ACK_FRAME_LEN}-byte ack frame: {bytes(frame).hex(' ')}")
    return parsed[0]


T = TypeVar("T")


class _StreamParser(Generic[T]):
    """Turns an arbitrary byte stream into frames; survives garbage and split reads.

    ``garbage_bytes`` counts bytes discarded while searching for a frame;
    ``bad_frames`` counts candidate frames rejected by CRC or field check.
    """

    def __init__(self, start: int, length: int, decode: Callable[[bytes], T | None]):
        self._start = start
        self._length = length
        self._decode = decode
        self._buf = bytearray()
        self.garbage_bytes = 0
        self.bad_frames = 0
        self.frames = 0

    def feed(self, data: bytes | bytearray | memoryview) -> list[T]:
        buf = self._buf
        buf += data
        out: list[T] = []
        while True:
            i = buf.find(self._start)
            if i < 0:
                self.garbage_bytes += len(buf)
                buf.clear()
                break
            if i:
                self.garbage_bytes += i
                del buf[:i]
            if len(buf) < self._length:
                break
            frame = bytes(buf[: self._length])
            decoded = self._decode(frame) if crc8(frame[1:-1]) == frame[-1] else None
            if decoded is None:
                # Not a frame: the start byte was noise. Resume at the next byte.
                self.bad_frames += 1
                self.garbage_bytes += 1
                del buf[:1]
                continue
            del buf[: self._length]
            self.frames += 1
            out.append(decoded)
        return out

    @property
    def buffered(self) -> int:
        """Bytes held while waiting for the rest of a frame."""
        return len(self._buf)

    def reset(self) -> None:
        self._buf.clear()


class CommandParser(_StreamParser[CommandFrame]):
    """Device side: bytes from the host -> :class:`CommandFrame` list."""

    def __init__(self) -> None:
        super().__init__(START_CMD, CMD_FRAME_LEN, _decode_command)


class AckParser(_StreamParser[AckFrame]):
    """Host side: bytes from the device -> :class:`AckFrame` list."""

    def __init__(self) -> None:
        super().__init__(START_ACK, ACK_FRAME_LEN, _decode_ack)


def seq_next(seq: int) -> int:
    """The sequence number after ``seq`` (u16, wraps to 0)."""
    return (seq + 1) % SEQ_MODULO


def unwrap_u32(previous: int | None, raw: int) -> int:
    """Extend a wrapping u32 counter (the device's ``micros()``) to an unbounded int.

    ``previous`` is the last unwrapped value (None for the first sample). Valid
    while consecutive samples are less than 2**31 us (35.8 minutes) apart.
    """
    if previous is None:
        return raw
    delta = (raw - previous) % DEVICE_CLOCK_MODULO
    if delta >= DEVICE_CLOCK_MODULO // 2:  # a sample slightly older than the previous one
        delta -= DEVICE_CLOCK_MODULO
    return previous + delta
