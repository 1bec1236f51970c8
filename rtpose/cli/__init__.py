"""The ``rtpose`` command. Each subcommand lives in its own module with a
``register(subparsers)`` function; this file only assembles them."""

from __future__ import annotations

import argparse
import importlib
import re
import sys

from ..errors import RtposeError

#: Subcommand modules, in the order ``rtpose --help`` lists them.
COMMANDS = (
    "run",
    "analyze",
    "demo",
    "info",
    "listen",
    "benchmark",
    "export",
    "render",
    "plot",
    "outliers",
    "replay",
)


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(prog="rtpose", description="Real-time closed-loop pose inference.")
    parser.add_argument("--version", action="version", version=f"rtpose {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}_cmd").register(sub)
    for p in (parser, *sub.choices.values()):  # the modules' docstrings double as --help text
        p.description = plain_text(p.description)
        for action in p._actions:
            action.help = plain_text(action.help)
    for action in sub._choices_actions:
        action.help = plain_text(action.help)
    return parser


_ROLE = re.compile(r":[a-z]+:`~?([^`]*)`")  # :mod:`rtpose.client`, :func:`~.x`
_LITERAL = re.compile(r"``([^`]*)``|`([^`]*)`")


def plain_text(text: str | None) -> str | None:
    """Help text without reStructuredText markup: ``code``, `code` and :role:`name` become plain words."""
    if not text:
        return text
    text = _ROLE.sub(r"\1", text)
    return _LITERAL.sub(lambda m: m.group(1) if m.group(1) is not None else m.group(2), text)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except RtposeError as exc:
        print(f"rtpose {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except MemoryError:  # a size rtpose could not check beforehand (e.g. a huge image file)
        print(f"rtpose {args.command}: error: out of memory; use smaller frames or batches (--batch), "
              "or close other programs", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
