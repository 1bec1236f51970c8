"""The Arduino/Teensy firmware agrees with protocol.py and with the emulator's device model.

1. Constants: parsed from the sketch's sources and compared with protocol.py,
   so the two cannot drift.
2. Behaviour: the sketch is compiled for the PC against a tiny mock of the
   Arduino API (skipped when no C++ compiler is installed), fed the same byte
   stream at the same times as :class:`DeviceModel`, and must answer with the
   same bytes and switch the same lines at the same times.
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from rtpose.drivers.outputs import protocol as p
from rtpose.drivers.outputs.device import DeviceModel

SKETCH = Path(__file__).resolve().parents[1] / "drivers" / "firmware" / "rtpose_ttl"
SOURCES = [SKETCH / "rtpose_ttl.ino", SKETCH / "rtpose_protocol.h"]
PINS = [2, 3, 4, 5, 6, 7, 8, 9, 13]  # CHANNEL_PINS with the mock's LED_BUILTIN = 13


def firmware_defines() -> dict[str, int]:
    defines = {}
    for path in SOURCES:
        for name, value in re.findall(r"^#define\s+(RTPOSE_\w+)\s+(0x[0-9A-Fa-f]+|\d+)\s*$", path.read_text(), re.M):
            defines[name] = int(value, 0)
    return defines


def test_firmware_constants_match_protocol_py():
    defines = firmware_defines()
    expected = {
        "RTPOSE_PROTOCOL_VERSION": p.PROTOCOL_VERSION,
        "RTPOSE_START_CMD": p.START_CMD,
        "RTPOSE_START_ACK": p.START_ACK,
        "RTPOSE_CRC8_POLY": p.CRC8_POLY,
        "RTPOSE_CRC8_INIT": p.CRC8_INIT,
        "RTPOSE_CMD_FRAME_LEN": p.CMD_FRAME_LEN,
        "RTPOSE_ACK_FRAME_LEN": p.ACK_FRAME_LEN,
        "RTPOSE_BAUDRATE": 115200,  # SerialTriggerOutput's default
    }
    for code, name in p.COMMAND_NAMES.items():
        expected[f"RTPOSE_CMD_{name}"] = code
    for code, name in p.STATUS_NAMES.items():
        expected[f"RTPOSE_STATUS_{name}"] = code
    assert {k: defines.get(k) for k in expected} == expected
    # No protocol constant in the firmware that protocol.py does not know about.
    protocol_like = {k for k in defines if re.match(r"RTPOSE_(CMD|STATUS)_[A-Z_]+$", k) and not k.endswith("_LEN")}
    assert protocol_like <= set(expected)


def test_firmware_drives_the_default_channel_count():
    ino = (SKETCH / "rtpose_ttl.ino").read_text()
    table = re.search(r"CHANNEL_PINS\[\]\s*=\s*\{([^}]*)\}", ino).group(1)
    assert len([x for x in table.split(",") if x.strip()]) == p.DEFAULT_NUM_CHANNELS
    code = re.sub(r"/\*.*?\*/|//[^\n]*", "", ino, flags=re.S)
    assert not re.search(r"\bdelay(Microseconds)?\s*\(", code)  # pulses are timed with micros(), never by blocking


MOCK_AND_HARNESS = r"""
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define HIGH 1
#define LOW 0
#define OUTPUT 1
#define LED_BUILTIN 13
static uint32_t mock_us = 0;
static uint8_t mock_level[64];
static uint32_t micros() { return mock_us; }
static void pinMode(uint8_t, uint8_t) {}
static void digitalWrite(uint8_t pin, uint8_t level) {
  if (mock_level[pin] != level) { mock_level[pin] = level; printf("edge %u %u %u\n", mock_us, pin, level); }
}
struct MockSerial {
  uint8_t rx[65536]; size_t head = 0, tail = 0;
  void begin(unsigned long) {}
  int available() { return (int)(tail - head); }
  int read() { return head < tail ? rx[head++] : -1; }
  size_t write(const uint8_t *b, size_t n) {
    printf("tx"); for (size_t i = 0; i < n; i++) printf(" %02x", b[i]); printf("\n"); return n;
  }
};
static MockSerial Serial;
#include "rtpose_ttl.ino"
int main() {
  setup();
  char op[8]; char arg[4096];
  while (scanf("%7s %4095s", op, arg) == 2) {
    if (strcmp(op, "t") == 0) mock_us = (uint32_t)strtoul(arg, 0, 10);
    else for (size_t i = 0; arg[i] && arg[i + 1]; i += 2) { unsigned v; sscanf(arg + i, "%2x", &v); Serial.rx[Serial.tail++] = (uint8_t)v; }
    loop();
  }
  return 0;
}
"""


@pytest.fixture(scope="module")
def firmware_binary(tmp_path_factory):
    cxx = shutil.which("g++") or shutil.which("clang++")
    if cxx is None:
        pytest.skip("no C++ compiler: the firmware behaviour test needs g++ or clang++")
    folder = tmp_path_factory.mktemp("fw")
    harness = folder / "harness.cpp"
    harness.write_text(MOCK_AND_HARNESS)
    exe = folder / "rtpose_ttl_host"
    build = subprocess.run(
        [cxx, "-std=c++11", "-Wall", "-Werror", "-Wno-unused-function", f"-I{SKETCH}", str(harness), "-o", str(exe)],
        capture_output=True, text=True,
    )
    assert build.returncode == 0, build.stderr
    return exe


def run_firmware(exe, script):
    """script: list of (t_us, bytes), t_us unwrapped. Returns [('tx', bytes) | ('edge', t_us u32, pin, level)]."""
    lines = []
    for t_us, data in script:
        lines.append(f"t {t_us % (1 << 32)}")  # micros() wraps
        if data:
            lines.append(f"rx {data.hex()}")
    out = subprocess.run([str(exe)], input="\n".join(lines) + "\n", capture_output=True, text=True, check=True).stdout
    result = []
    for line in out.splitlines():
        parts = line.split()
        if parts[0] == "tx":
            result.append(("tx", bytes(int(x, 16) for x in parts[1:])))
        else:
            result.append(("edge", int(parts[1]), int(parts[2]), int(parts[3])))
    return result


def run_model(script):
    """The same script on DeviceModel: (ack frames, edges as ('edge', t_us u32, pin, level))."""
    model, parser = DeviceModel(), p.CommandParser()
    boot = model.reset(0)
    txs = [p.encode_ack(boot.status, boot.command, boot.channel, boot.seq, boot.device_us)]
    for t_us, data in script:
        model.service(t_us * 1000)  # the sketch ends due pulses first, then reads bytes
        for cmd in parser.feed(data):
            ack = model.apply(cmd, t_us * 1000)
            txs.append(p.encode_ack(ack.status, ack.command, ack.channel, ack.seq, ack.device_us))
    edges = [("edge", e.t_ns // 1000 % (1 << 32), PINS[e.channel], e.level) for e in model.edges]
    return txs, edges


def test_compiled_firmware_behaves_like_the_device_model(firmware_binary):
    corrupt = bytearray(p.encode_command(p.CMD_SET_HIGH, 5, 99))
    corrupt[6] ^= 0x10
    unknown = bytearray([p.START_CMD, 0x7E, 1, 50, 0, 0, 0])
    unknown.append(p.crc8(unknown[1:]))
    script = [
        (100, p.encode_command(p.CMD_PING, 0, 1)),
        (1_000, b"\x00\xa5junk" + p.encode_command(p.CMD_PULSE, 0, 2, 10)),
        (2_000, bytes(corrupt) + p.encode_command(p.CMD_SET_HIGH, 3, 3)),
        (3_000, p.encode_command(p.CMD_PULSE, 8, 4, 5) + p.encode_command(p.CMD_SET_HIGH, 9, 5)),
        (4_000, bytes(unknown) + p.encode_command(p.CMD_PULSE, 1, 6, 0)),
        (8_000, b""),  # channel 8's 5 ms pulse ends at exactly 8000 us
        (11_000, p.encode_command(p.CMD_PULSE, 0, 7, 3)[:4]),  # channel 0 ends at 11000; half a frame
        (11_500, p.encode_command(p.CMD_PULSE, 0, 7, 3)[4:]),
        (12_000, p.encode_command(p.CMD_ALL_LOW, 0, 8)),
        (0xFFFF_FF00, p.encode_command(p.CMD_PULSE, 2, 9, 1)),  # across the micros() wrap
        (0xFFFF_FF00 + 1_000, b""),  # the firmware sees micros() == 744 here
    ]
    firmware = run_firmware(firmware_binary, script)
    model_txs, model_edges = run_model(script)
    assert [x[1] for x in firmware if x[0] == "tx"] == model_txs  # byte-identical answers
    assert [x for x in firmware if x[0] == "edge"] == model_edges  # same lines at the same times
    acks = [p.decode_ack(x) for x in model_txs]
    assert [a.status for a in acks] == [
        p.STATUS_BOOT, p.STATUS_OK, p.STATUS_OK, p.STATUS_OK, p.STATUS_OK,
        p.STATUS_BAD_CHANNEL, p.STATUS_BAD_COMMAND, p.STATUS_BAD_PAYLOAD, p.STATUS_OK, p.STATUS_OK, p.STATUS_OK,
    ]
    assert ("edge", (0xFFFF_FF00 + 1_000) % (1 << 32), 4, 0) in firmware
