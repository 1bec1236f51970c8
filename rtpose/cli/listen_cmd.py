"""``rtpose listen ADDR``: print an rtpose pose stream, one line per message.

With ``--json`` each line is one JSON object (see docs/protocol.md), flushed
immediately, for shell scripts: ``rtpose listen tcp://127.0.0.1:5555 --json | jq .latency_ms``.
``latency_ms`` is capture-to-receive time on this machine's CLOCK_MONOTONIC.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys

from ..errors import ConfigError


def register(sub) -> None:
    p = sub.add_parser("listen", help="print the pose stream of a running `rtpose run --publish ...`",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("address", metavar="ADDR", help="publisher endpoint, e.g. tcp://127.0.0.1:5555 or ipc:///tmp/rtpose")
    p.add_argument("--count", type=int, default=None, metavar="N", help="exit after N messages (default: run until Ctrl-C)")
    p.add_argument("--json", action="store_true", help="one JSON object per line instead of a human-readable line")
    p.add_argument("--newest", action="store_true", help="skip to the newest pose whenever this terminal falls behind")
    p.add_argument("--events", action="store_true", help="also print rule events (topic 'event')")
    p.add_argument("--timeout", type=float, default=None, metavar="S",
                   help="give up (exit status 2) when no message arrives for S seconds")
    p.set_defaults(func=main)


def human_line(msg) -> str:
    from ..client import EventMessage

    if isinstance(msg, EventMessage):
        return f"{msg.stream_id} #{msg.frame_index} EVENT {msg.kind} {msg.rule}"
    parts = [f"{msg.stream_id} #{msg.frame_index} {msg.receive_latency_ms:7.2f} ms |"]
    for k, bp in enumerate(msg.bodyparts):
        x, y, p = (float(v) for v in msg.pose[k])
        parts.append(f"{bp} {x:6.1f},{y:6.1f} ({p:.2f})")
    if msg.trigger_states:
        parts.append("|")
        parts.extend(f"{r}={'ON' if on else 'off'}" for r, on in msg.trigger_states.items())
    return " ".join(parts)


#: Without --timeout, how long a silence lasts before listen says (on stderr) why nothing arrives.
QUIET_NOTE_MS = 5000


def _receive(client, timeout_ms: int | None, noted: list[str]):
    """The next message. Without a timeout, wait forever but say on stderr what the silence means
    (each different reason once per silence, so a long wait prints a line, not a stream)."""
    from ..client import ReceiveTimeout

    if timeout_ms is not None:
        return client.recv(timeout_ms)
    while True:
        skipped = client.skipped
        try:
            msg = client.recv(QUIET_NOTE_MS)
            noted.clear()
            return msg
        except ReceiveTimeout:
            kind, reason = client.silence(client.skipped - skipped)
            if kind not in noted:
                noted[:] = [kind]
                print(f"rtpose listen: still waiting: {reason}", file=sys.stderr, flush=True)


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # SIGTERM/SIGHUP end listen like Ctrl-C: exit status 130, socket closed


def main(args: argparse.Namespace) -> int:
    from ..client import PoseClient
    from .common import STOP_SIGNALS

    if args.count is not None and args.count < 1:
        raise ConfigError(f"--count must be >= 1, got {args.count}")
    if args.timeout is not None and not (math.isfinite(args.timeout) and args.timeout > 0):
        raise ConfigError(f"--timeout must be a finite number of seconds > 0, got {args.timeout}")
    timeout_ms = None if args.timeout is None else max(1, int(args.timeout * 1000))
    printed = 0
    noted: list = []
    previous = {sig: signal.signal(sig, _interrupt) for sig in STOP_SIGNALS if sig != signal.SIGINT}
    try:
        with PoseClient(args.address, newest_only=args.newest, events=args.events) as client:
            while args.count is None or printed < args.count:
                msg = _receive(client, timeout_ms, noted)
                line = json.dumps(msg.to_json(), separators=(",", ":")) if args.json else human_line(msg)
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
                printed += 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, and keep Python from
        # complaining while flushing stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
