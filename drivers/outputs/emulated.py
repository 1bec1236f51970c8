"""``--serial emulator``: a SerialTriggerOutput talking to an in-process pty emulator.

The full serial path (framing, writer and reader threads, acks, reconnects)
runs exactly as with hardware; only the device is emulated. The emulator is
reachable as ``output.emulator`` (e.g. to check which pulses it received) and
is stopped when the output closes.
"""

from __future__ import annotations

from .emulator import DeviceEmulator
from .serial_out import SerialTriggerOutput


class EmulatedSerialOutput(SerialTriggerOutput):
    def __init__(self, emulator: DeviceEmulator | None = None, **kwargs):
        self.emulator = emulator if emulator is not None else DeviceEmulator()
        kwargs.setdefault("name", "serial:emulator")
        kwargs.setdefault("reconnect_interval_s", 0.2)
        super().__init__("emulator", **kwargs)  # the real path is known once the emulator runs

    def _do_open(self) -> None:
        try:
            self.port = self.emulator.start()
            super()._do_open()
        except BaseException:
            self.emulator.stop()
            raise

    def _do_close(self) -> None:
        try:
            super()._do_close()
        finally:
            self.emulator.stop()
