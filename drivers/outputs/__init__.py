"""Trigger outputs: switch TTL lines from pose rules (serial device, emulator, dry runs).

``open_output(spec)`` turns a ``--serial`` value into an open :class:`TriggerOutput`:

* ``/dev/ttyACM0``, ``/dev/ttyUSB0``, ``COM3`` (optionally ``PORT@BAUD``): a device
  running the rtpose_ttl firmware (``drivers/firmware/``);
* ``emulator``: an in-process pty emulator behind the real serial code path;
* ``null``: accept and count; ``log``: accept, count and log each command;
* ``openephys:tcp://HOST:PORT``: TTL events in an Open Ephys recording through the GUI's
  Network Events plugin (``openephys`` alone: ``tcp://127.0.0.1:5556``;
  ``openephys:emulator``: an in-process stand-in for the plugin).
"""

from __future__ import annotations

import os
import re

from rtpose.errors import ConfigError

from .base import TriggerOutput
from .null import LogOutput, NullOutput

__all__ = ["TriggerOutput", "NullOutput", "LogOutput", "open_output", "parse_spec"]

_WINDOWS_PORT = re.compile(r"^(\\\\\.\\)?COM\d+$", re.IGNORECASE)
SPEC_HELP = ("expected a serial port (/dev/ttyACM0, /dev/ttyUSB0, COM3, optionally PORT@115200), 'emulator', "
             "'null', 'log' or openephys:tcp://HOST:PORT")
OPENEPHYS_PREFIX = "openephys"


def parse_spec(spec: str) -> tuple[str, str | None, int | None]:
    """``spec`` -> (kind, port, baudrate); kind is serial/emulator/null/log/openephys (whose "port" is
    the Network Events endpoint, or "emulator"). ConfigError if invalid."""
    text = (spec or "").strip()
    if text.lower() in ("emulator", "null", "log"):
        return text.lower(), None, None
    head, colon, rest = text.partition(":")
    if head.lower() == OPENEPHYS_PREFIX:
        from .openephys import DEFAULT_ENDPOINT, check_endpoint

        endpoint = rest.strip() if colon else DEFAULT_ENDPOINT
        if endpoint.lower() == "emulator":
            return "openephys", "emulator", None
        return "openephys", check_endpoint(endpoint), None
    port, baud = text, None
    if "@" in text:
        port, _, baud_text = text.rpartition("@")
        if not baud_text.isdigit() or int(baud_text) <= 0:
            raise ConfigError(f"--serial {spec!r}: baud rate {baud_text!r} is not a positive integer; {SPEC_HELP}")
        baud = int(baud_text)
    if port.startswith("/dev/") or _WINDOWS_PORT.match(port) or (os.sep in port and os.path.exists(port)):
        return "serial", port, baud
    raise ConfigError(f"--serial {spec!r}: not a trigger output; {SPEC_HELP}")


def open_output(spec: str, **options) -> TriggerOutput:
    """Create and open the output ``spec`` names (see module doc).

    ``options`` go to the implementation (e.g. ``queue_size``, ``ack_timeout_ms``).
    Raises ConfigError for a bad spec and OutputDeviceError when the device
    cannot be opened (the message names the port and what to check).
    """
    kind, port, baud = parse_spec(spec)
    if kind == "null":
        output: TriggerOutput = NullOutput(**options)
    elif kind == "log":
        output = LogOutput(**options)
    elif kind == "emulator":
        from .emulated import EmulatedSerialOutput

        output = EmulatedSerialOutput(**options)
    elif kind == "openephys":
        from .openephys import OpenEphysOutput

        output = OpenEphysOutput(port, **options)
    else:
        from .serial_out import SerialTriggerOutput

        if baud is not None:
            options["baudrate"] = baud
        output = SerialTriggerOutput(port, **options)
    return output.open()
