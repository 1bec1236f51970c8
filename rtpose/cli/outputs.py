"""The closed-loop outputs of ``rtpose run``: recording, ZeroMQ, LSL, rules, serial/TTL, Open Ephys.

Turns command-line options into pipeline stages and sinks. Each output's own
module does the work; this file only wires options to constructors.
"""

from __future__ import annotations

import argparse

from ..errors import ConfigError
from ..metadata import ModelMetadata
from ..sinks.zmq_pub import PAYLOAD_FORMATS


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--record", metavar="OUT.h5", default=None,
                        help="record poses, timestamps and events (DeepLabCut .h5 + .csv and sidecar CSVs)")
    parser.add_argument("--record-video", metavar="OUT.avi", default=None,
                        help="also record every captured frame (.avi MJPG or .mp4), with a frame/timestamp index CSV")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the files of an existing --record/--record-video (default: refuse)")
    parser.add_argument("--publish", metavar="ADDR", default=None,
                        help="publish poses over ZeroMQ, e.g. tcp://127.0.0.1:5555 or ipc:///tmp/rtpose")
    parser.add_argument("--publish-remote", action="store_true",
                        help="allow --publish to bind a non-loopback interface (reachable from the network)")
    parser.add_argument("--publish-format", choices=PAYLOAD_FORMATS, default="msgpack",
                        help="payload encoding of --publish: msgpack (default) or json, for clients without "
                             "MessagePack such as MATLAB and Bonsai (docs/protocol.md)")
    add_lsl_argument(parser)
    parser.add_argument("--rules", metavar="FILE", default=None, help="trigger rules (YAML, see docs/rules.md)")
    parser.add_argument("--serial", metavar="PORT", default=None,
                        help="trigger device: a serial port (/dev/ttyACM0, COM3), 'emulator', 'log' or 'null'")
    parser.add_argument("--output", metavar="SPEC", action="append", default=[],
                        help="another trigger output for the rules, repeatable: openephys:tcp://HOST:5556 marks TTL "
                             "events in an Open Ephys recording (its Network Events plugin; docs/hardware.md); "
                             "openephys:emulator for a dry run")


def add_lsl_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lsl", metavar="NAME", default=None,
                        help="stream poses to Lab Streaming Layer as MoCap stream NAME, stamped with each frame's "
                             "capture time (needs pip install 'rtpose[lsl]')")


def lsl_sink(args: argparse.Namespace):
    """The --lsl sink, or None."""
    if not getattr(args, "lsl", None):
        return None
    from ..sinks.lsl import LslOutletSink

    return LslOutletSink(args.lsl)


def build_outputs(args: argparse.Namespace, metadata: ModelMetadata, *, scorer: str, n_streams: int,
                  settings: dict | None = None) -> tuple[list, list]:
    """Return ``(stages, sinks)`` for the options given, in the order trigger outputs (--serial, then
    each --output), publisher, LSL, recorder (the recorder last, so it records the device events of
    the same batch). ``settings``: how the run was set up, recorded beside the poses
    (``<stem>_settings.json``).

    Everything that can be refused is refused here, before the model runs a frame: a recording
    that would replace files, a bad rules file, an address, a rule the trigger device cannot
    execute. Whatever was opened before such an error is closed again."""
    stages: list = []
    sinks: list = []
    try:
        if args.record:
            from ..recording import RecorderSink

            recorder = RecorderSink(args.record, scorer=scorer, overwrite=args.overwrite, settings=settings)
            recorder.check_outputs(n_streams)  # refuse to replace a recording before anything opens
            sinks.append(recorder)
        if args.record_video:
            from ..recording.recorder import refuse_existing
            from ..recording.video import planned_video_paths

            refuse_existing(planned_video_paths(args.record_video, n_streams), args.overwrite)
        if args.rules:
            from ..rules import load_rules

            stages.append(load_rules(args.rules, metadata.pose_names, layout=metadata.layout))
        if args.publish_format != "msgpack" and not args.publish:
            raise ConfigError(f"--publish-format {args.publish_format} formats the --publish stream; add --publish ADDR")
        lsl = lsl_sink(args)
        if lsl is not None:
            sinks.insert(0, lsl)
        if args.publish:
            from ..sinks.zmq_pub import ZmqPublisherSink

            sinks.insert(0, ZmqPublisherSink(args.publish, allow_remote=args.publish_remote,
                                             payload_format=args.publish_format))
        outputs = [(args.serial, None)] if args.serial else []
        outputs += [(spec, spec) for spec in args.output]
        for i, (spec, name) in enumerate(outputs):
            from ..drivers.outputs import open_output, parse_spec
            from ..sinks.trigger import TriggerSink

            if name is not None and parse_spec(spec)[0] != "openephys":
                raise ConfigError(f"--output {spec}: a serial trigger device is given with --serial; --output "
                                  "takes openephys:tcp://HOST:PORT or openephys:emulator")
            output = open_output(spec)
            sinks.insert(i, TriggerSink(output, name=None if name is None else f"trigger:{output.name}"))
            for stage in stages:  # every command a rule can send, checked against the device now
                output.check_actions(stage.command_templates())
    except BaseException:
        for sink in sinks:  # release what was opened or bound (a serial port, a socket)
            sink.close()
        raise
    return stages, sinks
