"""A trigger device emulated on a pseudo-terminal, speaking the firmware's protocol.

``os.openpty()`` gives a master/slave pair; the slave is a real tty that
pyserial opens like ``/dev/ttyACM0``. A thread reads commands from the master,
executes them on a :class:`~.device.DeviceModel` (pin levels, scheduled pulse
ends, all in the emulator's own clock, injectable) and writes
acknowledgements back. Every received command is recorded with its arrival
time so tests and latency checks can see exactly what the device got.

Stable path: the pty's name (``/dev/pts/N``) changes when it is recreated, so
the emulator publishes a symlink in a private temporary folder
(``.../ttyRTPOSE0``) and hosts open that. :meth:`disconnect` closes the master
and removes the symlink — to the host this is an unplug: reads and writes fail
and the path disappears. :meth:`reconnect` makes a new pty and re-points the
symlink atomically, so a writer retrying the same path finds the device again.

Fault modes (:meth:`set_ack_mode`): ``"ok"``, ``"none"`` (execute, never
acknowledge) and ``"slow"`` (acknowledge ``delay_ms`` later, scheduled in
device time). :meth:`reset` emulates a device reset (BOOT frame, lines low);
:meth:`inject` writes raw bytes to the host (line noise).
"""

from __future__ import annotations

import heapq
import itertools
import os
import select
import shutil
import tempfile
import threading
import tty
from dataclasses import dataclass
from typing import Callable

from rtpose.clock import Clock, monotonic_ns
from rtpose.errors import ConfigError

from . import protocol as p
from .device import DeviceModel, Edge

ACK_MODES = ("ok", "none", "slow")
_MAX_WAIT_S = 0.05  # the device thread re-checks its clock at least this often


@dataclass(frozen=True)
class ReceivedCommand:
    """One command as the emulated device received and executed it."""

    t_arrival_ns: int  # emulator clock when its bytes were read from the pty
    command: int
    channel: int
    seq: int
    payload: int
    status: int  # what the device answered (or would have, when acks are off)
    device_us: int  # device clock when it was applied
    connection: int  # 1 for the first pty, 2 after the first reconnect, ...

    @property
    def name(self) -> str:
        return p.COMMAND_NAMES.get(self.command, f"0x{self.command:02X}")


class DeviceEmulator:
    """start() -> port (a path pyserial can open) -> stop(). Also a context manager."""

    def __init__(
        self,
        *,
        num_channels: int = p.DEFAULT_NUM_CHANNELS,
        clock: Clock = monotonic_ns,
        micros_offset: int = 0,
        link_name: str = "ttyRTPOSE0",
        reset_on_reconnect: bool = True,
    ):
        self.clock = clock
        self.model = DeviceModel(num_channels, micros_offset)
        self.reset_on_reconnect = reset_on_reconnect
        self._link_name = link_name
        self._dir: str | None = None
        self._cond = threading.Condition()
        self._received: list[ReceivedCommand] = []
        self._ack_mode = "ok"
        self._ack_delay_ns = 0
        self._delayed: list[tuple[int, int, bytes]] = []  # heap of (due_ns, tiebreak, frame)
        self._tiebreak = itertools.count()
        self._connection = 0
        self._master: int | None = None
        self._slave: int | None = None
        self._wake_r: int | None = None
        self._wake_w: int | None = None
        self._thread: threading.Thread | None = None
        self._stop_conn = False
        self.slave_name: str | None = None
        self.bytes_received = 0
        self.acks_sent = 0
        self._link_rx = 0  # bytes read from / written to the host on the current connection
        self._link_tx = 0
        self._parser = p.CommandParser()

    # ---- lifecycle ----------------------------------------------------------
    @property
    def port(self) -> str:
        """The stable path to open (a symlink to the current pty)."""
        if self._dir is None:
            raise ConfigError("the emulator is not started; call start() first")
        return os.path.join(self._dir, self._link_name)

    @property
    def connected(self) -> bool:
        return self._master is not None

    def start(self) -> str:
        """Create the pty and the symlink, start the device thread; returns :attr:`port`."""
        if self._dir is None:
            self._dir = tempfile.mkdtemp(prefix="rtpose-emu-")
            self._connect()
        return self.port

    def stop(self) -> None:
        """Unplug for good and remove the temporary folder. Idempotent."""
        if self._dir is not None:
            self.disconnect()
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> "DeviceEmulator":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def disconnect(self) -> None:
        """Emulate unplugging: close the pty master, remove the symlink. Idempotent."""
        if self._master is None:
            return
        with self._cond:
            self._stop_conn = True
        os.write(self._wake_w, b"x")
        self._thread.join()
        try:
            os.unlink(self.port)
        except FileNotFoundError:
            pass
        for fd in (self._master, self._slave, self._wake_r, self._wake_w):
            os.close(fd)
        self._master = self._slave = self._wake_r = self._wake_w = None
        self._thread = None
        with self._cond:
            self._delayed.clear()
            self._cond.notify_all()

    def reconnect(self) -> str:
        """Plug back in: a new pty behind the same :attr:`port` path."""
        if self._dir is None:
            raise ConfigError("the emulator is not started; call start() first")
        self.disconnect()
        self._connect()
        return self.port

    def _connect(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no newline translation, before anyone opens it
        self.slave_name = os.ttyname(slave)
        tmp = self.port + ".new"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(self.slave_name, tmp)
        os.replace(tmp, self.port)  # atomic re-point
        self._wake_r, self._wake_w = os.pipe()
        with self._cond:
            self._connection += 1
            self._link_rx = self._link_tx = 0
            self._stop_conn = False
            self._parser.reset()
            if self.reset_on_reconnect and self._connection > 1:
                self.model.reset(self.clock())  # power cycle: lines low, no BOOT (host not listening yet)
        # Keeping our own slave fd open means the master never sees a hang-up
        # while the host closes and reopens the port.
        self._master, self._slave = master, slave
        self._thread = threading.Thread(
            target=self._run, args=(master, self._wake_r), name="rtpose-emulator", daemon=True
        )
        self._thread.start()

    # ---- fault modes and controls ------------------------------------------
    def set_ack_mode(self, mode: str, delay_ms: float = 0.0) -> None:
        """"ok": ack at once; "none": never ack; "slow": ack ``delay_ms`` (device time) later."""
        if mode not in ACK_MODES:
            raise ConfigError(f"ack mode {mode!r}; expected one of {ACK_MODES}")
        with self._cond:
            self._ack_mode = mode
            self._ack_delay_ns = int(delay_ms * 1e6)
        self._wake()

    def reset(self) -> None:
        """Emulate a device reset (brown-out, watchdog): lines low, BOOT frame to the host."""
        with self._cond:
            frame = self.model.reset(self.clock())
        self.inject(p.encode_ack(frame.status, frame.command, frame.channel, frame.seq, frame.device_us))

    def inject(self, data: bytes) -> None:
        """Write raw bytes to the host, e.g. garbage to exercise resynchronisation."""
        if self._master is None:
            raise ConfigError("the emulator is disconnected; call reconnect() first")
        with self._cond:
            self._link_tx += len(data)
        os.write(self._master, data)

    def _wake(self) -> None:
        if self._wake_w is not None:
            os.write(self._wake_w, b"x")

    # ---- observation --------------------------------------------------------
    def link_counts(self) -> tuple[int, int, int]:
        """(connection, bytes consumed from the host, bytes sent to the host) on the current
        connection. A byte counts as consumed once the command it belongs to was executed
        (or found corrupt) and its acknowledgement, if any, counted as sent: what a host
        compares with its own counts to know that nothing is still on its way."""
        with self._cond:
            return self._connection, self._link_rx, self._link_tx

    @property
    def commands(self) -> list[ReceivedCommand]:
        """Every command received so far (all connections), in arrival order."""
        with self._cond:
            return list(self._received)

    def wait_for_commands(self, n: int, timeout: float) -> bool:
        """Block until at least ``n`` commands were received; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self._received) >= n, timeout)

    def wait_until(self, predicate: Callable[["DeviceEmulator"], bool], timeout: float) -> bool:
        """Block until ``predicate(self)`` holds, re-checked whenever the device state changes."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout)

    def level(self, channel: int, t_ns: int | None = None) -> int:
        """Line level at ``t_ns`` (device clock; default now)."""
        with self._cond:
            return self.model.level(channel, self.clock() if t_ns is None else t_ns)

    def edges(self, channel: int | None = None) -> list[Edge]:
        """Level changes so far (scheduled pulse ends included once due)."""
        with self._cond:
            self.model.service(self.clock())
            return [e for e in self.model.edges if channel is None or e.channel == channel]

    # ---- device thread ------------------------------------------------------
    def _run(self, master: int, wake_r: int) -> None:
        while True:
            with self._cond:
                if self._stop_conn:
                    return
                now = self.clock()
                due = [t for t in (self.model.next_deadline_ns(), self._delayed[0][0] if self._delayed else None) if t is not None]
            timeout = _MAX_WAIT_S if not due else max(0.0, min(_MAX_WAIT_S, (min(due) - now) / 1e9))
            ready, _, _ = select.select([master, wake_r], [], [], timeout)
            if wake_r in ready:
                os.read(wake_r, 512)
            if master in ready:
                try:
                    data = os.read(master, 4096)
                except OSError:  # only while being torn down
                    return
                self._on_bytes(master, data)
            self._service(master)

    def _on_bytes(self, master: int, data: bytes) -> None:
        now = self.clock()
        out: list[bytes] = []
        with self._cond:
            self.bytes_received += len(data)
            for cmd in self._parser.feed(data):
                ack = self.model.apply(cmd, now)
                self._received.append(
                    ReceivedCommand(now, cmd.command, cmd.channel, cmd.seq, cmd.payload, ack.status, ack.device_us, self._connection)
                )
                frame = p.encode_ack(ack.status, ack.command, ack.channel, ack.seq, ack.device_us)
                if self._ack_mode == "ok":
                    out.append(frame)
                elif self._ack_mode == "slow":
                    heapq.heappush(self._delayed, (now + self._ack_delay_ns, next(self._tiebreak), frame))
            self.acks_sent += len(out)  # counted before writing: once the host has it, the count is there
            self._link_rx += len(data)
            self._link_tx += sum(len(f) for f in out)
            self._cond.notify_all()
        if out:
            os.write(master, b"".join(out))

    def _service(self, master: int) -> None:
        now = self.clock()
        out: list[bytes] = []
        with self._cond:
            before = len(self.model.edges)
            self.model.service(now)
            while self._delayed and self._delayed[0][0] <= now:
                out.append(heapq.heappop(self._delayed)[2])
            self.acks_sent += len(out)
            self._link_tx += sum(len(f) for f in out)
            if out or len(self.model.edges) != before:
                self._cond.notify_all()
        if out:
            os.write(master, b"".join(out))
