"""Trigger output over a serial port (pyserial): bounded queue, writer thread, ack reader.

``send`` puts the command in a bounded ``queue.Queue`` with ``put_nowait`` and
returns at once; a writer thread frames and writes it, a reader thread matches
the device's acknowledgements to sequence numbers and records the round trip
(write -> ack, measured with the injected clock).

Link states: ``handshake`` (port open, PINGs sent until one is answered — an
Arduino Uno resets when its port opens and needs up to ~2 s), ``connected``,
``disconnected``. When the port fails (unplugged: pyserial raises, or the path
vanishes) the output reports a ``device`` event, counts the commands that were
in flight as ``failed``, and the writer retries to open the same path every
``reconnect_interval_s``. While disconnected the writer keeps draining the
queue: each trigger it cannot write is counted as ``missed``, logged and
reported as a ``missed`` event — it is never delivered late. ``send`` keeps
never blocking throughout.

Time: round trips, ack deadlines, handshake deadlines and reconnect intervals
use ``clock`` (nanoseconds). The threads wake at least every ``tick_s`` of real
time to check them, so a test with a fake clock advances the clock and waits
on :meth:`wait_for`.

Deadlines are only judged while the link is settled (:meth:`_in_transit` is
False). With hardware the host cannot see inside the cable, so it always is;
the emulated output (``--serial emulator``) knows exactly which bytes each side
has consumed, and a command whose bytes or acknowledgement are still on their
way is never timed out, however slowly the threads are scheduled.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import serial

from rtpose.clock import Clock, monotonic_ns
from rtpose.errors import ConfigError, OutputDeviceError
from rtpose.results import Action

from . import protocol as p
from .base import TriggerOutput, describe

log = logging.getLogger("rtpose.trigger")

#: Opens a port: (path, baudrate, read timeout s, write timeout s) -> pyserial-like object
#: with read(n), write(b), in_waiting, cancel_read(), close().
SerialFactory = Callable[[str, int, float, float], Any]

_STOP = object()
_PORT_ERRORS = (serial.SerialException, OSError)
# A port closed by the writer while the reader sits in read() can also surface as these.
_CLOSED_PORT_ERRORS = _PORT_ERRORS + (TypeError, ValueError, AttributeError)


def pyserial_factory(path: str, baudrate: int, timeout_s: float, write_timeout_s: float):
    return serial.Serial(path, baudrate, timeout=timeout_s, write_timeout=write_timeout_s)


def missing_port_hint(port: str) -> str:
    return (
        f"Is the trigger device plugged in and is {port!r} its port? List ports with "
        "`ls /dev/ttyACM* /dev/ttyUSB*` (Linux), `ls /dev/cu.usbmodem*` (macOS) or "
        "`python -m serial.tools.list_ports`. 'Permission denied' on Linux: add yourself to the "
        "dialout group (`sudo usermod -aG dialout $USER`, then log out and in). "
        "No hardware at hand: use `--serial emulator`."
    )


@dataclass
class _Pending:
    command: int
    channel: int
    payload: int
    action: Action | None
    t_write_ns: int
    handshake: bool = False


class SerialTriggerOutput(TriggerOutput):
    """A trigger device running the rtpose_ttl firmware (or the emulator) on a serial port."""

    def __init__(
        self,
        port: str,
        baudrate: int = 115200,
        queue_size: int = 64,
        ack_timeout_ms: float = 100.0,
        reconnect_interval_s: float = 1.0,
        *,
        ready_timeout_s: float = 3.0,
        write_timeout_s: float = 0.5,
        handshake: bool = True,
        all_low_on_close: bool = True,
        clock: Clock = monotonic_ns,
        serial_factory: SerialFactory = pyserial_factory,
        tick_s: float | None = None,
        name: str | None = None,
    ):
        super().__init__(name or f"serial:{port}", clock=clock)
        if queue_size < 1:
            raise ConfigError(f"queue_size={queue_size}; it must be at least 1")
        if ack_timeout_ms <= 0 or reconnect_interval_s <= 0 or ready_timeout_s <= 0:
            raise ConfigError("ack_timeout_ms, reconnect_interval_s and ready_timeout_s must be positive")
        self.port = port
        self.baudrate = baudrate
        self.queue_size = queue_size
        self.ack_timeout_ns = int(ack_timeout_ms * 1e6)
        self.reconnect_interval_ns = int(reconnect_interval_s * 1e9)
        self.ready_timeout_s = ready_timeout_s
        self.write_timeout_s = write_timeout_s
        self.handshake = handshake
        self.all_low_on_close = all_low_on_close
        self._factory = serial_factory
        self._tick_s = tick_s if tick_s is not None else min(0.02, ack_timeout_ms / 4000)
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        # State below is guarded by self._cond (the base class's re-entrant lock).
        self._state = "closed"
        self._port: Any = None
        self._ever_connected = False
        self._outage_reported = False
        self._next_reconnect_ns = 0
        self._hs_deadline_ns = 0
        self._hs_next_ping_ns = 0
        self._pending: dict[int, _Pending] = {}
        self._port_written = 0  # bytes written to / read from the current port
        self._port_read = 0
        self._seq = 0
        self._device_us: int | None = None
        self._device_channels: int | None = None
        self._dropped_logged = 0
        self._reconnect_attempts = 0
        self._reader_stop = False
        self._fatal: BaseException | None = None
        self._parser = p.AckParser()
        self._writer_thread: threading.Thread | None = None
        self._reader_thread: threading.Thread | None = None

    @property
    def channels(self) -> int | None:
        with self._cond:
            return self._device_channels

    # ---- TriggerOutput hooks ------------------------------------------------
    def _do_open(self) -> None:
        port = self._open_port()  # raises OutputDeviceError with the hint
        now = self.clock()
        with self._cond:
            self._reader_stop = False
            self._attach(port, now)
        self._reader_thread = threading.Thread(target=self._reader_main, name=f"{self.name}-reader", daemon=True)
        self._writer_thread = threading.Thread(target=self._writer_main, name=f"{self.name}-writer", daemon=True)
        self._reader_thread.start()
        self._writer_thread.start()
        if not self.handshake:
            return
        with self._cond:
            answered = self._cond.wait_for(lambda: self._state != "handshake", self.ready_timeout_s + 1.0)
            ok = answered and self._state == "connected"
        if not ok:
            self._shutdown_threads()
            raise OutputDeviceError(
                f"{self.port}: the port opened but the device did not answer PING within "
                f"{self.ready_timeout_s:g} s. Is the rtpose_ttl firmware flashed "
                f"(drivers/firmware/README.md) and the baud rate {self.baudrate}? "
                "Is another program (e.g. the Arduino serial monitor) using the port?"
            )

    def _do_send(self, command: int, channel: int, payload: int, action: Action | None) -> bool:
        if self._fatal is not None:
            raise OutputDeviceError(f"{self.name}: writer thread failed: {self._fatal!r}") from self._fatal
        try:
            self._queue.put_nowait((command, channel, payload, action))
        except queue.Full:
            return False
        return True

    def _do_close(self) -> None:
        self._shutdown_threads()

    def _do_stats(self) -> dict[str, object]:
        with self._cond:
            return {
                "state": self._state,
                "port": self.port,
                "queue_depth": self._queue.qsize(),
                "in_flight": sum(1 for e in self._pending.values() if not e.handshake),
                "reconnect_attempts": self._reconnect_attempts,
                "device_channels": self._device_channels,
                "device_us": self._device_us,  # unwrapped device clock at the last ack
                "bad_frames": self._parser.bad_frames,
                "garbage_bytes": self._parser.garbage_bytes,
            }

    # ---- connection management (callers hold self._cond where noted) ---------
    def _open_port(self):
        try:
            return self._factory(self.port, self.baudrate, self._tick_s, self.write_timeout_s)
        except _PORT_ERRORS as exc:
            raise OutputDeviceError(f"cannot open serial port {self.port!r}: {exc}. {missing_port_hint(self.port)}") from exc

    def _attach(self, port: Any, now: int) -> None:
        """Use ``port`` from now on (holds _cond)."""
        self._port = port
        self._port_written = self._port_read = 0
        self._on_attach()
        if self.handshake:
            self._state = "handshake"
            self._hs_deadline_ns = now + int(self.ready_timeout_s * 1e9)
            self._hs_next_ping_ns = now  # the writer pings at its next tick
        else:
            self._on_connected()
        self._cond.notify_all()

    def _on_connected(self) -> None:
        """Handshake done (holds _cond)."""
        self._state = "connected"
        self._outage_reported = False
        if self._ever_connected:
            self._counts["reconnects"] += 1
            self._emit("device", f"reconnected on {self.port}")
            log.warning("%s: reconnected", self.name)
        else:
            self._emit("device", f"connected on {self.port}")
        self._ever_connected = True
        self._cond.notify_all()

    def _on_attach(self) -> None:
        """Hook: a new port was attached (holds _cond; byte counters are zero)."""

    def _in_transit(self) -> bool:
        """Hook (holds _cond): True while bytes written to the current port have not
        reached the device yet or its answers have not been read and handled yet.
        Hardware gives no such view: False, deadlines alone decide."""
        return False

    def _lose(self, port: Any, reason: str, *, unplugged: bool = True) -> None:
        """Stop using ``port`` after a failure; the writer will retry. No-op if already replaced."""
        with self._cond:
            if port is None or port is not self._port:
                return
            self._port = None
            was_connected = self._state == "connected"
            self._state = "disconnected"
            self._next_reconnect_ns = self.clock() + self.reconnect_interval_ns
            in_flight = [e for e in self._pending.values() if not e.handshake]
            self._pending.clear()
            if unplugged and was_connected:
                self._counts["disconnects"] += 1
            self._emit(
                "device",
                f"{reason}; retrying {self.port} every {self.reconnect_interval_ns / 1e9:g} s",
            )
            for e in in_flight:
                self._count("failed", "failed", f"{describe(e.command, e.channel, e.payload, e.action)}: link lost before ack", e.action)
            self._cond.notify_all()
        log.warning("%s: %s; retrying every %g s", self.name, reason, self.reconnect_interval_ns / 1e9)
        self._close_port(port)

    def _close_port(self, port: Any) -> None:
        try:
            port.cancel_read()
        except _CLOSED_PORT_ERRORS as exc:
            log.debug("%s: cancel_read on a failed port: %r", self.name, exc)
        try:
            port.close()
        except _CLOSED_PORT_ERRORS as exc:
            log.debug("%s: closing a failed port: %r", self.name, exc)

    def _try_reconnect(self, now: int) -> None:
        try:
            port = self._open_port()
        except OutputDeviceError as exc:
            with self._cond:
                self._reconnect_attempts += 1
                self._next_reconnect_ns = now + self.reconnect_interval_ns
                if not self._outage_reported:  # one event per outage, not one per attempt
                    self._outage_reported = True
                    self._emit("device", f"reconnect failed, still trying: {exc.__cause__}")
                self._cond.notify_all()
            return
        with self._cond:
            self._reconnect_attempts += 1
            self._attach(port, now)

    # ---- writer thread ------------------------------------------------------
    def _writer_main(self) -> None:
        try:
            while True:
                try:
                    item = self._queue.get(timeout=self._tick_s)
                except queue.Empty:
                    item = None
                if item is _STOP:
                    break
                self._housekeeping()
                if item is not None:
                    self._deliver(*item)
            self._finish()
        except BaseException as exc:  # a bug: make it visible to send() and the log
            self._fatal = exc
            log.exception("%s: writer thread failed", self.name)
            self._emit("device", f"writer thread failed: {exc!r}")
            raise

    def _housekeeping(self) -> None:
        now = self.clock()
        expired: list[str] = []
        with self._cond:
            settled = not self._in_transit()
            overdue = [s for s, e in self._pending.items() if now - e.t_write_ns >= self.ack_timeout_ns] if settled else []
            for seq in overdue:
                e = self._pending.pop(seq)
                if not e.handshake:
                    detail = f"{describe(e.command, e.channel, e.payload, e.action)}: no ack within {self.ack_timeout_ns / 1e6:g} ms"
                    self._count("failed", "failed", detail, e.action)
                    expired.append(detail)
            state, port = self._state, self._port
            dropped = self._counts["dropped"]
        for detail in expired:
            log.warning("%s: %s", self.name, detail)
        if dropped > self._dropped_logged:
            log.warning("%s: %d trigger(s) dropped, queue full", self.name, dropped - self._dropped_logged)
            self._dropped_logged = dropped
        if state == "handshake":
            if now >= self._hs_deadline_ns and settled:
                self._lose(port, f"no answer to PING within {self.ready_timeout_s:g} s", unplugged=False)
            elif now >= self._hs_next_ping_ns:
                self._hs_next_ping_ns = now + self.ack_timeout_ns
                self._write(port, p.CMD_PING, 0, 0, None, handshake=True)
        elif state == "disconnected" and now >= self._next_reconnect_ns:
            self._try_reconnect(now)

    def _deliver(self, command: int, channel: int, payload: int, action: Action | None) -> None:
        with self._cond:
            state, port = self._state, self._port
        if state != "connected":
            why = "device not ready (waiting for its answer to PING)" if state == "handshake" else "device disconnected"
            self._miss(command, channel, payload, action, why)
            return
        self._write(port, command, channel, payload, action)

    def _write(self, port: Any, command: int, channel: int, payload: int, action: Action | None, *, handshake: bool = False) -> bool:
        with self._cond:
            seq = self._seq
            self._seq = p.seq_next(seq)
            frame = p.encode_command(command, channel, seq, payload)
            # Registered and counted before the write: the ack can arrive before write() returns.
            self._pending[seq] = _Pending(command, channel, payload, action, self.clock(), handshake)
            if not handshake:
                self._counts["sent"] += 1
        try:
            port.write(frame)
            with self._cond:
                if port is self._port:
                    self._port_written += len(frame)
        except _CLOSED_PORT_ERRORS as exc:
            with self._cond:
                if not isinstance(exc, _PORT_ERRORS) and port is self._port:
                    raise  # not a port failure: a bug
                entry = self._pending.pop(seq, None)
                if entry is not None and not handshake:
                    self._counts["sent"] -= 1  # counted as not written (missed) instead
            # entry None: the reader saw the link die first and already counted this
            # command as failed (it may have reached the device before write() raised).
            if entry is not None and not handshake:
                self._miss(command, channel, payload, action, f"write failed: {exc}")
            self._lose(port, f"write failed: {exc}")
            return False
        return True

    def _miss(self, command: int, channel: int, payload: int, action: Action | None, why: str) -> None:
        detail = f"{describe(command, channel, payload, action)}: {why}, trigger missed"
        self._count("missed", "missed", detail, action)
        log.warning("%s: frame %d: %s", self.name, action.frame_index if action else -1, detail)

    def _finish(self) -> None:
        """After the stop marker: lines low, wait for the last acks, stop the reader, close."""
        with self._cond:
            state, port = self._state, self._port
        if state == "connected" and self.all_low_on_close:
            self._write(port, p.CMD_ALL_LOW, 0, 0, None)
        with self._cond:
            # The last acks: until none is pending, or (once the link is settled) the
            # ack deadline has passed on the clock or in real time (a frozen test clock).
            deadline_ns = self.clock() + self.ack_timeout_ns
            give_up = time.monotonic() + self.ack_timeout_ns / 1e9
            while self._pending and self._port is not None:
                if not self._in_transit() and (self.clock() >= deadline_ns or time.monotonic() >= give_up):
                    break
                self._cond.wait(self._tick_s)
            self._state = "closed"
            port = self._port
            self._port = None
            left = [e for e in self._pending.values() if not e.handshake]
            self._pending.clear()
            self._reader_stop = True
            self._cond.notify_all()
        for e in left:
            self._count("failed", "failed", f"{describe(e.command, e.channel, e.payload, e.action)}: output closed before ack", e.action)
        if port is not None:
            self._close_port(port)

    def _shutdown_threads(self) -> None:
        writer, reader = self._writer_thread, self._reader_thread
        if writer is not None and writer.is_alive():
            self._queue.put(_STOP)  # blocks only while the (draining) writer frees a slot
            writer.join()
        else:  # writer never started or died: close directly
            with self._cond:
                port, self._port = self._port, None
                self._state = "closed"
                self._reader_stop = True
                self._cond.notify_all()
            if port is not None:
                self._close_port(port)
        if reader is not None:
            reader.join()

    # ---- reader thread ------------------------------------------------------
    def _reader_main(self) -> None:
        parser_port = None
        while True:
            with self._cond:
                if self._reader_stop:
                    return
                port = self._port
                if port is None:
                    self._cond.wait(self._tick_s)
                    continue
            if port is not parser_port:
                self._parser.reset()
                parser_port = port
            try:
                data = port.read(max(1, port.in_waiting))
            except _CLOSED_PORT_ERRORS as exc:
                self._lose(port, f"read failed: {exc}")
                continue
            if not data:
                continue
            t_ns = self.clock()
            for ack in self._parser.feed(data):
                self._on_ack(port, ack, t_ns)
            with self._cond:  # counted once handled: until then these bytes are in transit
                if port is self._port:
                    self._port_read += len(data)
                    self._cond.notify_all()

    def _on_ack(self, port: Any, ack: p.AckFrame, t_ns: int) -> None:
        with self._cond:
            if port is not self._port:
                return
            self._device_us = p.unwrap_u32(self._device_us, ack.device_us)
            if ack.status == p.STATUS_BOOT:
                self._device_channels = ack.channel
                self._count("device_resets", "device", "device reset (BOOT frame): all its lines are low now")
                return
            entry = self._pending.get(ack.seq)
            if entry is None or entry.command != ack.command:
                self._counts["late_acks"] += 1
                self._cond.notify_all()
                return
            del self._pending[ack.seq]
            rtt_ns = t_ns - entry.t_write_ns
            if entry.handshake:
                self._device_channels = ack.channel
                if self._state == "handshake":
                    self._on_connected()
                return
            self._record_rtt(rtt_ns)
            text = describe(entry.command, entry.channel, entry.payload, entry.action)
            if ack.ok:
                if entry.command == p.CMD_PING:
                    self._device_channels = ack.channel
                self._count("acked", "ack", f"{text} seq={ack.seq} rtt_us={rtt_ns // 1000} device_us={ack.device_us}", entry.action)
            else:
                self._count("failed", "failed", f"{text} seq={ack.seq}: device answered {ack.status_name}", entry.action)
