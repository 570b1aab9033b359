"""The `musiclord` console script: one subcommand per pipeline stage, each a thin layer over the
library. Every user error ends as one line on stderr and a non-zero exit."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from musiclord import __version__
from musiclord.errors import MusiclordError

# Subcommand modules, each with `register(subparsers)`; a module that sets `func` on its parser.
SUBCOMMANDS = ("prepare", "data", "train", "train_perceptual", "erase", "translate", "evaluate", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="musiclord",
        description="Translate music between instruments by disentangling content from instrument (LORD).",
    )
    parser.add_argument("--version", action="version", version=f"musiclord {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"musiclord.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except MusiclordError as e:
        print(f"musiclord: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("musiclord: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
