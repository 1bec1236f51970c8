"""The closed-loop outputs of ``rtpose run``: recording, ZeroMQ, rules, serial/TTL.

Turns command-line options into pipeline stages and sinks. Each output's own
module does the work; this file only wires options to constructors.
"""

from __future__ import annotations

import argparse

from ..metadata import ModelMetadata


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--record", metavar="OUT.h5", default=None,
                        help="record poses, timestamps and events (DeepLabCut .h5 + .csv and sidecar CSVs)")
    parser.add_argument("--record-video", metavar="OUT.avi", default=None,
                        help="also record every captured frame (.avi MJPG or .mp4), with a frame/timestamp index CSV")
    parser.add_argument("--publish", metavar="ADDR", default=None,
                        help="publish poses over ZeroMQ, e.g. tcp://127.0.0.1:5555 or ipc:///tmp/rtpose")
    parser.add_argument("--publish-remote", action="store_true",
                        help="allow --publish to bind a non-loopback interface (reachable from the network)")
    parser.add_argument("--rules", metavar="FILE", default=None, help="trigger rules (YAML, see docs/rules.md)")
    parser.add_argument("--serial", metavar="PORT", default=None,
                        help="trigger device: a serial port (/dev/ttyACM0, COM3), 'emulator', 'log' or 'null'")


def build_outputs(args: argparse.Namespace, metadata: ModelMetadata, *, scorer: str,
                  settings: dict | None = None) -> tuple[list, list]:
    """Return ``(stages, sinks)`` for the options given. Sinks are built last-opened-first-closed safe.
    ``settings``: how the run was set up, recorded beside the poses (``<stem>_settings.json``)."""
    stages: list = []
    sinks: list = []
    if args.rules:
        from ..rules import load_rules

        stages.append(load_rules(args.rules, metadata.bodyparts))
    if args.serial:
        from ..drivers.outputs import open_output
        from ..sinks.trigger import TriggerSink

        sinks.append(TriggerSink(open_output(args.serial)))
    if args.publish:
        from ..sinks.zmq_pub import ZmqPublisherSink

        sinks.append(ZmqPublisherSink(args.publish, allow_remote=args.publish_remote))
    if args.record:
        from ..recording import RecorderSink

        sinks.append(RecorderSink(args.record, scorer=scorer, settings=settings))
    return stages, sinks
