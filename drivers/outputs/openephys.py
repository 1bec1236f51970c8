"""Trigger output to the Open Ephys GUI: TTL events through its Network Events plugin.

The plugin (open-ephys-plugins/network-events; docs/hardware.md section 5 cites what this
follows) binds a ZeroMQ REP socket, ``tcp://*:5556`` by default, and answers every request string
with one reply string. This output connects a REQ socket and turns each trigger command into:

* ``high``  -> ``TTL Line=<channel + 1> State=1``
* ``low``   -> ``TTL Line=<channel + 1> State=0``
* ``pulse`` -> ``State=1``, then ``State=0`` ``duration_ms`` later (sent by this output's
  thread: the plugin has no pulse command)
* ``ping``  -> ``IsAcquiring``

The plugin numbers TTL lines 1..256, rtpose numbers channels 0..255 (as on the serial device):
channel 0 is line 1. It answers ``TTLHandled: Line=L State=S`` (counted as ``acked``, with the
round trip), ``InvalidChannel`` for a line outside 1..256 (``failed``), and ``1``/``0`` to
``IsAcquiring``. It adds TTL events only while acquisition runs: a TTL sent while the GUI is
stopped is answered ``TTLHandled`` all the same and recorded nowhere, so :meth:`open` asks
``IsAcquiring`` and reports a stopped GUI as a ``device`` event and a warning.

Never blocking: ``send`` appends to a bounded queue (full: ``dropped``) and returns; one thread
does the request/reply round trips. REQ/REP runs in lockstep (send, receive, send, ...): when no
reply comes within ``reply_timeout_ms`` the REQ socket cannot send again, so it is closed and a
new one connected; the command counts as ``failed`` and the link as lost (``disconnects``).
While lost, commands are ``missed`` (never written, never delivered late) and the thread asks
``IsAcquiring`` on a fresh socket every ``reconnect_interval_s`` until the GUI answers
(``reconnects``). ``ZMQ_IMMEDIATE`` keeps requests from queueing up inside ZeroMQ while the GUI
is unreachable, so nothing stale is delivered when it comes back.

On close, queued commands are sent, pulses still on are ended at once, and lines this output set
high are set low again (``low_on_close``), like the serial device's ALL_LOW.

Timing: Open Ephys stamps a network TTL with the first sample of the next data block it
processes, so its position in the recording is only as precise as the GUI's block period
(about 10 ms at 30 kHz with 1024-sample blocks) plus the network round trip. For sub-millisecond
alignment wire the serial device's TTL output into the acquisition board's digital input.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections import deque

import zmq

from rtpose.clock import Clock, monotonic_ns
from rtpose.errors import ConfigError, OutputDeviceError
from rtpose.results import Action

from . import protocol as p
from .base import TriggerOutput, describe

log = logging.getLogger("rtpose.trigger")

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5556"
#: TTL lines the plugin accepts (``Line=1`` .. ``Line=256``), i.e. rtpose channels 0..255.
LINES = 256
_NOT_CONNECTED = object()


def ttl_request(line: int, state: int) -> str:
    """The plugin's TTL command for ``line`` (1..256) and ``state`` (1 on, 0 off)."""
    return f"TTL Line={line} State={state}"


def ttl_reply(line: int, state: int) -> str:
    """What the plugin answers to :func:`ttl_request` ``(line, state)``."""
    return f"TTLHandled: Line={line} State={state}"


def check_endpoint(endpoint: str) -> str:
    """The Network Events endpoint ``endpoint`` (``tcp://HOST:PORT``); ConfigError otherwise."""
    transport, sep, rest = endpoint.partition("://")
    host, colon, port = rest.rpartition(":")
    if transport != "tcp" or not sep or not host or not colon or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ConfigError(
            f"openephys:{endpoint}: the Network Events plugin listens on TCP; give its address as "
            f"openephys:tcp://HOST:PORT, e.g. openephys:{DEFAULT_ENDPOINT} (the port is shown in the "
            "plugin's editor in the Open Ephys GUI), or openephys:emulator for a dry run"
        )
    return endpoint


class OpenEphysOutput(TriggerOutput):
    """TTL events in an Open Ephys recording, through the Network Events plugin (see module doc).

    Args:
        endpoint: the plugin's address, ``tcp://HOST:PORT``; ``"emulator"`` runs an in-process
            :class:`~rtpose.drivers.outputs.openephys_emulator.NetworkEventsEmulator` (dry runs).
        reply_timeout_ms: how long a request waits for its reply before the socket is recreated.
        queue_size: commands waiting to be sent before ``send`` refuses (``dropped``).
        reconnect_interval_s: how often a lost GUI is asked ``IsAcquiring`` again.
        low_on_close: on close, set low the lines this output left high.
        context: a zmq.Context to use (default: a private one, terminated on close).
        emulator: the emulator to use with ``endpoint="emulator"`` (default: a new one).
    """

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, *, reply_timeout_ms: float = 1000.0, queue_size: int = 256,
                 reconnect_interval_s: float = 1.0, low_on_close: bool = True, context: zmq.Context | None = None,
                 emulator=None, clock: Clock = monotonic_ns, name: str | None = None):
        if endpoint != "emulator":
            check_endpoint(endpoint)
        if reply_timeout_ms <= 0 or reconnect_interval_s <= 0:
            raise ConfigError("reply_timeout_ms and reconnect_interval_s must be positive")
        if queue_size < 1:
            raise ConfigError(f"queue_size={queue_size}; it must be at least 1")
        super().__init__(name or f"openephys:{endpoint}", clock=clock)
        self.endpoint = endpoint
        self.reply_timeout_ms = float(reply_timeout_ms)
        self.queue_size = int(queue_size)
        self.reconnect_interval_s = float(reconnect_interval_s)
        self.low_on_close = low_on_close
        self.emulator = emulator
        if endpoint == "emulator" and self.emulator is None:
            from .openephys_emulator import NetworkEventsEmulator

            self.emulator = NetworkEventsEmulator()
        self._own_context = context is None
        self._context = context
        self._sock: zmq.Socket | None = None
        # Guarded by self._cond (the base class's lock):
        self._queue: deque = deque()
        self._offs: list = []  # heap of (due monotonic s, order, channel, action): pulse ends
        self._order = 0
        self._state = "closed"
        self._acquiring: bool | None = None
        self._high: set[int] = set()  # channels this output set high (acknowledged) and not low since
        self._next_probe_s = 0.0
        self._stop = False
        self._thread: threading.Thread | None = None

    @property
    def channels(self) -> int:
        return LINES

    @property
    def acquiring(self) -> bool | None:
        """The GUI's last answer to ``IsAcquiring`` (None before the first)."""
        return self._acquiring

    # ---- TriggerOutput hooks ------------------------------------------------------------------
    def _do_open(self) -> None:
        if self.emulator is not None:
            self.address = self.emulator.start()
        else:
            self.address = self.endpoint
        if self._context is None:
            self._context = zmq.Context()
        try:
            self._new_socket()
            reply = self._request("IsAcquiring")
            if reply is None or reply is _NOT_CONNECTED:
                raise OutputDeviceError(
                    f"{self.name}: no answer from Open Ephys at {self.address} within {self.reply_timeout_ms:g} ms. "
                    "Is the Open Ephys GUI running with a Network Events plugin in its signal chain, and is "
                    "the port the one its editor shows (5556 by default)? From another machine: is the "
                    "port open in its firewall?"
                )
            if reply not in ("0", "1"):
                raise OutputDeviceError(
                    f"{self.name}: {self.address} answered {reply!r} to IsAcquiring; the Network Events plugin "
                    "answers 1 or 0. Is that port the plugin's (and not another program's)?"
                )
        except BaseException:
            self._release()
            raise
        self._state = "connected"
        self._set_acquiring(reply == "1", "connected")
        self._thread = threading.Thread(target=self._run, name=f"{self.name}-requests", daemon=True)
        self._thread.start()

    def _do_send(self, command: int, channel: int, payload: int, action: Action | None) -> bool:
        with self._cond:
            if self._state != "connected":
                self._missed(command, channel, payload, action, "Open Ephys is not connected")
                return True  # taken, and accounted for: never written, never delivered late
            if len(self._queue) >= self.queue_size:
                return False
            self._queue.append((command, channel, payload, action))
            self._cond.notify_all()
        return True

    def _do_close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
        with self._cond:
            self._state = "closed"
        self._release()

    def _do_stats(self) -> dict[str, object]:
        with self._cond:
            return {
                "state": self._state,
                "endpoint": self.endpoint,
                "queue_depth": len(self._queue),
                "acquiring": self._acquiring,
                "high_channels": sorted(self._high),
            }

    # ---- the request thread ---------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                item = self._next_item()
            if item is None:
                break
            kind = item[0]
            if kind == "probe":
                self._probe()
            elif kind == "off":
                _, channel, action = item
                self._execute(p.CMD_SET_LOW, channel, 0, action, pulse_end=True)
            else:
                _, command, channel, payload, action = item
                self._execute(command, channel, payload, action)
        if self.low_on_close:
            for channel in sorted(self._high):
                self._execute(p.CMD_SET_LOW, channel, 0, None)

    def _next_item(self):
        """What to do next (called with the lock held); None when closing and nothing is left."""
        while True:
            now_s = time.monotonic()
            if self._offs and (self._stop or self._offs[0][0] <= now_s):
                _, _, channel, action = heapq.heappop(self._offs)
                return ("off", channel, action)
            if self._queue:
                return ("cmd",) + self._queue.popleft()
            if self._stop:
                return None
            if self._state == "disconnected" and now_s >= self._next_probe_s:
                return ("probe",)
            waits = [self._offs[0][0] - now_s] if self._offs else []
            if self._state == "disconnected":
                waits.append(self._next_probe_s - now_s)
            self._cond.wait(max(0.0, min(waits)) if waits else None)

    def _execute(self, command: int, channel: int, payload: int, action: Action | None, *, pulse_end: bool = False) -> None:
        text = describe(command, channel, payload, action) + (" (pulse end)" if pulse_end else "")
        if self._state != "connected":
            with self._cond:
                self._missed(command, channel, payload, action, "Open Ephys is not connected", text)
            return
        if command == p.CMD_PING:
            request, expected = "IsAcquiring", None
        else:
            state = 0 if command == p.CMD_SET_LOW else 1
            request, expected = ttl_request(channel + 1, state), ttl_reply(channel + 1, state)
        t_send = self.clock()
        reply = self._request(request)
        if reply is _NOT_CONNECTED:
            with self._cond:
                self._missed(command, channel, payload, action, f"{self.address} accepts no connection", text)
            self._lost(f"{self.address} accepts no connection")
            return
        self._count("sent")
        if reply is None:
            self._count("failed", "failed", f"{text} [{request}]: no reply within {self.reply_timeout_ms:g} ms "
                                             "(socket recreated)", action)
            self._lost(f"no reply within {self.reply_timeout_ms:g} ms")
            return
        rtt_ns = self.clock() - t_send
        if expected is None and reply in ("0", "1"):
            self._record_rtt(rtt_ns)
            self._count("acked", "ack", f"{text} [{request}] -> {reply} rtt={rtt_ns / 1e6:.3f}ms", action)
            self._set_acquiring(reply == "1", "status")
        elif reply == expected:
            self._record_rtt(rtt_ns)
            with self._cond:
                if command == p.CMD_SET_LOW:
                    self._high.discard(channel)
                else:
                    self._high.add(channel)
                if command == p.CMD_PULSE:
                    self._order += 1
                    heapq.heappush(self._offs, (time.monotonic() + payload / 1000.0, self._order, channel, action))
                self._count("acked", "ack", f"{text} [{request}] rtt={rtt_ns / 1e6:.3f}ms", action)
        else:
            self._count("failed", "failed", f"{text} [{request}]: Open Ephys answered {reply!r}", action)

    def _probe(self) -> None:
        self._new_socket()
        reply = self._request("IsAcquiring")
        if reply in ("0", "1"):
            with self._cond:
                self._state = "connected"
                self._count("reconnects")
            self._set_acquiring(reply == "1", "reconnected")
        else:
            with self._cond:
                self._next_probe_s = time.monotonic() + self.reconnect_interval_s

    def _lost(self, why: str) -> None:
        with self._cond:
            self._state = "disconnected"
            self._next_probe_s = time.monotonic() + self.reconnect_interval_s
            self._count("disconnects", "device", f"disconnected from {self.address}: {why}; asking again every "
                                                 f"{self.reconnect_interval_s:g} s")
        log.warning("%s: disconnected: %s", self.name, why)

    def _missed(self, command, channel, payload, action, why: str, text: str | None = None) -> None:
        text = text or describe(command, channel, payload, action)
        self._count("missed", "missed", f"{text}: not sent, {why}", action)

    def _set_acquiring(self, acquiring: bool, how: str) -> None:
        changed = acquiring != self._acquiring
        self._acquiring = acquiring
        if how == "status" and not changed:
            return
        if acquiring:
            self._emit("device", f"{how}: {self.address}, Open Ephys is acquiring")
        else:
            self._emit("device", f"{how}: {self.address}, Open Ephys is NOT acquiring: the plugin discards TTL "
                                 "events until acquisition starts")
            log.warning("%s: Open Ephys at %s is not acquiring; TTL events are recorded only while it acquires "
                        "(press play in the GUI)", self.name, self.address)

    # ---- sockets --------------------------------------------------------------------------------
    def _new_socket(self) -> None:
        """A fresh REQ socket (the old one, if any, is closed: it may be waiting for a lost reply)."""
        if self._sock is not None:
            self._sock.close(linger=0)
        sock = self._context.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.IMMEDIATE, 1)  # no queueing for an absent peer: nothing is delivered late
        sock.connect(self.address)
        self._sock = sock

    def _request(self, text: str):
        """Send ``text`` and return the reply; None when none came in time (the socket is then
        recreated), ``_NOT_CONNECTED`` when the request could not even be sent."""
        sock = self._sock
        timeout_ms = max(1, int(self.reply_timeout_ms))
        if not sock.poll(timeout_ms, zmq.POLLOUT):
            return _NOT_CONNECTED
        try:
            sock.send_string(text, zmq.NOBLOCK)
        except zmq.Again:
            return _NOT_CONNECTED
        if sock.poll(timeout_ms, zmq.POLLIN):
            return sock.recv().decode("utf-8", "replace")
        self._new_socket()  # lockstep: this socket would refuse to send again until the lost reply came
        return None

    def _release(self) -> None:
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None
        if self._own_context and self._context is not None:
            self._context.term()
            self._context = None
        if self.emulator is not None and self.endpoint == "emulator":
            self.emulator.close()
