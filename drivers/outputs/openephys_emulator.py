"""An in-process stand-in for the Open Ephys GUI's Network Events plugin, for tests and dry runs.

It binds a ZeroMQ REP socket, like the plugin, and answers each request the way the plugin's
``NetworkEvents::handleSpecialMessages`` does (open-ephys-plugins/network-events,
``Source/NetworkEvents.cpp`` at commit f064e04, 2022-09-16; docs/hardware.md section 5):

=====================================  ===========================================================
request                                reply
=====================================  ===========================================================
``TTL Line=L State=S``                 ``TTLHandled: Line=L State=S`` (L 1..256; the event is only
                                       added while acquisition runs); ``InvalidChannel`` for any
                                       other L. Without ``Line=``: line 1; without ``State=``: 0
``StartAcquisition``/``StopAcquisition``  ``StartedAcquisition``/``StoppedAcquisition``
``StartRecord`` / ``StopRecord``       ``StartedRecording`` (``NotHandled`` if already
                                       recording, as in the plugin) / ``StoppedRecording``
``IsAcquiring`` / ``IsRecording``      ``1`` or ``0``
anything else                          ``NotHandled``
=====================================  ===========================================================

Commands and keys are case-insensitive; every request, handled or not, is also what the plugin
broadcasts as a text message (kept here in :attr:`messages`).

Faults for tests: :meth:`swallow` makes the next requests go unanswered (the REP socket is then
closed and bound again, as the plugin's restartConnection does: a REP socket cannot skip a reply),
and :meth:`stop`/:meth:`start` take the endpoint away and bring it back on the same port.
"""

from __future__ import annotations

import re
import threading
import time

import zmq

#: The plugin's receive timeout (``Responder::RECV_TIMEOUT_MS``): how often its thread looks up.
RECV_TIMEOUT_MS = 100
_TOKEN = re.compile(r"""(?:[^\s'"]+|'[^']*'|"[^"]*")+""")


def juce_int(text: str) -> int:
    """JUCE ``String::getIntValue``: optional spaces and sign, the leading digits; 0 when none."""
    m = re.match(r"\s*([+-]?)(\d*)", text)
    digits = m.group(2) if m else ""
    if not digits:
        return 0
    value = int(digits)
    return -value if m.group(1) == "-" else value


def parse_parameters(text: str) -> dict[str, str]:
    """``NetworkEvents::parseNetworkMessage``: ``key=value`` tokens, keys case-insensitive (lower-cased here)."""
    params: dict[str, str] = {}
    for token in _TOKEN.findall(text):
        key, eq, value = token.partition("=")
        if eq:
            params[key.lower()] = value.strip("'\"")
    return params


class NetworkEventsEmulator:
    """REP endpoint answering the Network Events plugin's commands (see module doc).

    ``endpoint``: where to bind; ``tcp://127.0.0.1:*`` picks a free port (then :attr:`endpoint`
    is the real one and a restart binds the same port again).
    """

    def __init__(self, endpoint: str = "tcp://127.0.0.1:*", *, acquiring: bool = True,
                 context: zmq.Context | None = None):
        self.endpoint = endpoint
        self.acquiring = acquiring
        self.recording = False
        self.messages: list[str] = []  # every request received, in order
        self.ttl_events: list[tuple[int, int]] = []  # (line 1..256, state) added while acquiring
        self.replies: list[str] = []  # every reply sent, in order
        self.swallowed = 0  # requests left unanswered by swallow()
        self._swallow = 0
        self._own_context = context is None
        self._ctx = context  # a private one is made by start(): handle() alone needs no sockets
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stop = False
        self._sock: zmq.Socket | None = None
        self._go = threading.Event()  # cleared by pause(): replies wait
        self._go.set()

    # ---- lifecycle ------------------------------------------------------------------
    def start(self) -> str:
        """Bind and start answering; returns the bound endpoint."""
        if self._thread is not None:
            return self.endpoint
        self._bind()
        self._stop = False
        self._thread = threading.Thread(target=self._serve, name="openephys-emulator", daemon=True)
        self._thread.start()
        return self.endpoint

    def stop(self) -> None:
        """Stop answering and unbind (the endpoint stays known for a later :meth:`start`)."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop = True
        self._go.set()
        thread.join()
        self._close_socket()

    def close(self) -> None:
        self.stop()
        if self._own_context and self._ctx is not None:
            self._ctx.term()
            self._ctx = None

    def __enter__(self) -> "NetworkEventsEmulator":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- faults and inspection ------------------------------------------------------------
    def swallow(self, n: int = 1) -> None:
        """Execute the next ``n`` requests but send no reply to them (a reply lost on the way)."""
        with self._cond:
            self._swallow += n

    def pause(self) -> None:
        """Hold every reply (requests are still received and executed) until :meth:`resume`: a GUI
        that is busy, for tests of what queues up meanwhile."""
        self._go.clear()

    def resume(self) -> None:
        self._go.set()

    def wait_for(self, predicate, timeout: float) -> bool:
        """Block until ``predicate(self)`` holds (re-checked after every request). For tests."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout)

    # ---- the plugin's command handling ------------------------------------------------------
    def handle(self, text: str) -> str:
        """The reply the plugin gives to ``text`` (and its effect on acquisition, recording, TTLs)."""
        cmd = text.split(" ", 1)[0].lower()
        params = parse_parameters(text[len(cmd):]) if "=" in text else {}
        if cmd == "startacquisition":
            self.acquiring = True
            return "StartedAcquisition"
        if cmd == "stopacquisition":
            self.acquiring = False
            return "StoppedAcquisition"
        if cmd == "startrecord":
            if not self.recording:
                self.recording = True
                return "StartedRecording"
            return "NotHandled"  # the plugin falls through to its last line when already recording
        if cmd == "stoprecord":
            self.recording = False
            return "StoppedRecording"
        if cmd == "isacquiring":
            return "1" if self.acquiring else "0"
        if cmd == "isrecording":
            return "1" if self.recording else "0"
        if cmd == "ttl":
            line, state = 0, 0
            for key, value in params.items():
                if key == "line":
                    number = juce_int(value)
                    if not 1 <= number <= 256:
                        return "InvalidChannel"
                    line = number - 1
                elif key == "state":
                    state = 1 if juce_int(value) else 0
            if self.acquiring:
                self.ttl_events.append((line + 1, state))
            return f"TTLHandled: Line={line + 1} State={state}"
        return "NotHandled"

    # ---- internals --------------------------------------------------------------------------
    def _bind(self) -> None:
        if self._ctx is None:
            self._ctx = zmq.Context()
        sock = self._ctx.socket(zmq.REP)
        sock.setsockopt(zmq.LINGER, 0)
        # Rebinding the port a socket closed a moment ago can fail until libzmq has released it.
        deadline = time.monotonic() + 5.0
        while True:
            try:
                sock.bind(self.endpoint)
                break
            except zmq.ZMQError as exc:
                if exc.errno != zmq.EADDRINUSE or time.monotonic() > deadline:
                    sock.close(linger=0)
                    raise
                time.sleep(0.01)
        self.endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self._sock = sock

    def _close_socket(self) -> None:
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None

    def _serve(self) -> None:
        while not self._stop:
            sock = self._sock
            if not sock.poll(RECV_TIMEOUT_MS, zmq.POLLIN):
                continue
            text = sock.recv().decode("utf-8", "replace")
            with self._cond:
                self.messages.append(text)
                reply = self.handle(text)  # executed either way: a swallowed request loses only its reply
                swallow = self._swallow > 0
                if swallow:
                    self._swallow -= 1
                    self.swallowed += 1
                else:
                    self.replies.append(reply)
                self._cond.notify_all()
            if swallow:
                self._close_socket()  # the plugin's restartConnection: a fresh REP socket on the same port
                self._bind()
            else:
                while not self._go.wait(RECV_TIMEOUT_MS / 1000):
                    if self._stop:
                        return
                sock.send_string(reply)
