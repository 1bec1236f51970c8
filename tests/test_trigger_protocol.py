"""Wire protocol: framing, CRC, streaming parser resynchronisation, clock unwrap."""

import random

import pytest

from rtpose.drivers.outputs import protocol as p


def test_crc8_check_value():
    # CRC-8 poly 0x07, init 0: the catalogued check value of "123456789".
    assert p.crc8(b"123456789") == 0xF4
    assert p.crc8(b"") == 0


@pytest.mark.parametrize("command", sorted(p.COMMAND_NAMES))
def test_command_round_trip(command):
    frame = p.encode_command(command, channel=7, seq=0xBEEF, payload=1234)
    assert len(frame) == p.CMD_FRAME_LEN
    assert frame[0] == p.START_CMD
    assert frame[3:5] == bytes((0xEF, 0xBE))  # little-endian seq
    assert p.decode_command(frame) == p.CommandFrame(command, 7, 0xBEEF, 1234)


def test_ack_round_trip_and_clock_wraps_into_u32():
    frame = p.encode_ack(p.STATUS_OK, p.CMD_PULSE, 3, 65535, (1 << 32) + 5)
    assert len(frame) == p.ACK_FRAME_LEN
    ack = p.decode_ack(frame)
    assert ack == p.AckFrame(p.STATUS_OK, p.CMD_PULSE, 3, 65535, 5)
    assert ack.ok and ack.status_name == "OK"


def test_known_byte_layout():
    # PULSE channel 2, seq 1, 10 ms — the example in docs/hardware.md.
    frame = p.encode_command(p.CMD_PULSE, 2, 1, 10)
    assert frame[:7] == bytes([0xA5, 0x03, 0x02, 0x01, 0x00, 0x0A, 0x00])
    assert frame[7] == p.crc8(frame[1:7])


@pytest.mark.parametrize(
    "kwargs",
    [dict(command=0x77, channel=0, seq=0), dict(command=p.CMD_PULSE, channel=256, seq=0),
     dict(command=p.CMD_PULSE, channel=0, seq=70000), dict(command=p.CMD_PULSE, channel=0, seq=0, payload=-1)],
)
def test_encode_rejects_out_of_range_fields(kwargs):
    with pytest.raises(ValueError):
        p.encode_command(**kwargs)


def test_every_single_bit_flip_is_rejected():
    frame = p.encode_command(p.CMD_SET_HIGH, 1, 42, 0)
    for byte in range(1, len(frame)):
        for bit in range(8):
            bad = bytearray(frame)
            bad[byte] ^= 1 << bit
            assert p.CommandParser().feed(bytes(bad)) == [], (byte, bit)
    ack = p.encode_ack(p.STATUS_OK, p.CMD_PING, 9, 42, 123456)
    for byte in range(1, len(ack)):
        for bit in range(8):
            bad = bytearray(ack)
            bad[byte] ^= 1 << bit
            assert p.AckParser().feed(bytes(bad)) == [], (byte, bit)


def test_parser_handles_split_reads():
    frames = [p.encode_command(p.CMD_PULSE, i % 9, i, i + 1) for i in range(20)]
    parser = p.CommandParser()
    got = []
    for byte in b"".join(frames):
        got += parser.feed(bytes((byte,)))
    assert [(c.channel, c.seq, c.payload) for c in got] == [(i % 9, i, i + 1) for i in range(20)]
    assert parser.garbage_bytes == 0 and parser.bad_frames == 0 and parser.buffered == 0


def test_parser_resyncs_after_garbage_and_corrupt_frames():
    good1 = p.encode_command(p.CMD_SET_HIGH, 0, 1)
    good2 = p.encode_command(p.CMD_PULSE, 4, 2, 50)
    corrupt = bytearray(p.encode_command(p.CMD_SET_LOW, 0, 3))
    corrupt[5] ^= 0xFF
    # Start bytes inside the garbage and a truncated frame right before a good one.
    stream = b"\x00\xa5\xa5junk" + good1 + bytes(corrupt) + good1[:5] + good2 + b"\xa5"
    parser = p.CommandParser()
    got = parser.feed(stream)
    assert [(c.command, c.seq) for c in got] == [(p.CMD_SET_HIGH, 1), (p.CMD_PULSE, 2)]
    assert parser.bad_frames > 0 and parser.garbage_bytes > 0
    assert parser.buffered == 1  # the trailing start byte waits for more


def test_parser_finds_frames_in_random_noise():
    rng = random.Random(1234)
    expected, stream = [], bytearray()
    for seq in range(200):
        stream += bytes(rng.randrange(256) for _ in range(rng.randrange(0, 12)))
        stream += p.encode_ack(p.STATUS_OK, p.CMD_PULSE, seq % 9, seq, seq * 1000)
        expected.append(seq)
    parser = p.AckParser()
    got = []
    pos = 0
    while pos < len(stream):  # random chunking, like serial reads
        step = rng.randrange(1, 30)
        got += parser.feed(stream[pos:pos + step])
        pos += step
    seqs = [a.seq for a in got if a.command == p.CMD_PULSE and a.device_us == a.seq * 1000]
    # Noise can hide a frame only if it fakes a valid frame that overlaps it (CRC-8: rare).
    assert len(set(seqs) & set(expected)) >= 195
    assert seqs == sorted(seqs)


def test_unknown_command_reaches_the_device_but_unknown_status_is_not_an_ack():
    raw = bytearray([p.START_CMD, 0x7E, 0, 5, 0, 0, 0])
    raw.append(p.crc8(raw[1:]))
    assert p.CommandParser().feed(bytes(raw)) == [p.CommandFrame(0x7E, 0, 5, 0)]
    ack = bytearray([p.START_ACK, 0x42, 1, 0, 5, 0, 0, 0, 0, 0])
    ack.append(p.crc8(ack[1:]))
    assert p.AckParser().feed(bytes(ack)) == []


def test_direction_start_bytes_differ():
    # A command echoed back by a misconfigured line is never taken for an ack.
    assert p.AckParser().feed(p.encode_command(p.CMD_PING, 0, 1)) == []
    assert p.START_CMD != p.START_ACK


def test_unwrap_u32():
    assert p.unwrap_u32(None, 10) == 10
    assert p.unwrap_u32(10, 20) == 20
    top = (1 << 32) - 5
    assert p.unwrap_u32(top, 3) == (1 << 32) + 3  # wrapped forward
    assert p.unwrap_u32((1 << 32) + 3, top) == top  # slightly older sample
    assert p.unwrap_u32(5 * (1 << 32) + 100, 50) == 5 * (1 << 32) + 50


def test_seq_wraps():
    assert p.seq_next(0) == 1 and p.seq_next(0xFFFF) == 0


def test_decode_rejects_wrong_length():
    with pytest.raises(ValueError):
        p.decode_command(p.encode_command(p.CMD_PING, 0, 1) + b"\x00")
    with pytest.raises(ValueError):
        p.decode_ack(b"\x5a\x00")
