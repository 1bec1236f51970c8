"""``--serial emulator``: a SerialTriggerOutput talking to an in-process pty emulator.

The full serial path (framing, writer and reader threads, acks, reconnects)
runs exactly as with hardware; only the device is emulated. The emulator is
reachable as ``output.emulator`` (e.g. to check which pulses it received) and
is stopped when the output closes.

One thing differs, deliberately: the host sees both ends of the link, so an
acknowledgement deadline is never judged while a command's bytes or its
answer are still on their way (:meth:`_in_transit`). On a loaded machine the
threads may run late, but a trigger the emulated device executed and answered
is always counted as acknowledged, never as failed: runs are reproducible.
Deadlines still apply to what the device really withholds (ack modes
``none`` and ``slow``).
"""

from __future__ import annotations

from .emulator import DeviceEmulator
from .serial_out import SerialTriggerOutput


class EmulatedSerialOutput(SerialTriggerOutput):
    def __init__(self, emulator: DeviceEmulator | None = None, **kwargs):
        self.emulator = emulator if emulator is not None else DeviceEmulator()
        kwargs.setdefault("name", "serial:emulator")
        kwargs.setdefault("reconnect_interval_s", 0.2)
        self._link_base = (0, 0, 0)
        super().__init__("emulator", **kwargs)  # the real path is known once the emulator runs

    def _do_open(self) -> None:
        try:
            self.port = self.emulator.start()
            super()._do_open()
        except BaseException:
            self.emulator.stop()
            raise

    def _on_attach(self) -> None:
        # The emulator's counts for the connection this port belongs to, as of now.
        self._link_base = self.emulator.link_counts()

    def _in_transit(self) -> bool:
        connection, rx, tx = self.emulator.link_counts()
        base_connection, base_rx, base_tx = self._link_base
        if connection != base_connection:
            return False  # re-plugged under us: this port is dead, the deadlines and the reader sort it out
        return rx - base_rx < self._port_written or tx - base_tx > self._port_read

    def _do_close(self) -> None:
        try:
            super()._do_close()
        finally:
            self.emulator.stop()
