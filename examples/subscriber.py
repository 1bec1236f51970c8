"""Minimal subscriber to a running `rtpose run --publish tcp://127.0.0.1:5555 ...`.

    .venv/bin/python examples/subscriber.py tcp://127.0.0.1:5555 --bodypart snout

Prints the bodypart's measured and predicted position, the capture-to-receive
latency and the rules' trigger states, always for the newest pose (a slow
terminal skips frames instead of lagging behind). See docs/protocol.md for the
message format and examples/subscriber.c for the same in C.
"""

import argparse

from rtpose.client import EventMessage, PoseClient


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("address", nargs="?", default="tcp://127.0.0.1:5555")
    ap.add_argument("--bodypart", default="snout")
    ap.add_argument("--timeout", type=float, default=10.0, help="stop after this many seconds without a message")
    args = ap.parse_args()

    with PoseClient(args.address, newest_only=True, events=True, timeout_ms=int(args.timeout * 1000)) as client:
        for msg in client:  # ends when nothing arrives for --timeout seconds
            if isinstance(msg, EventMessage):
                print(f"event: rule {msg.rule} fired on frame {msg.frame_index}")
                continue
            k = msg.bodyparts.index(args.bodypart)
            x, y, likelihood = msg.pose[k]
            px, py, _ = msg.predicted[k]
            ahead_ms = (msg.t_target_ns - msg.t_capture_ns) / 1e6
            print(f"frame {msg.frame_index:6d}  {args.bodypart} ({x:6.1f}, {y:6.1f}) p={likelihood:.2f}  "
                  f"predicted +{ahead_ms:.0f} ms ({px:6.1f}, {py:6.1f})  latency {msg.receive_latency_ms:6.2f} ms  "
                  f"triggers {msg.trigger_states}")
        print(f"received {client.received}, missed {client.dropped} (publisher queue overflow)")


if __name__ == "__main__":
    main()
