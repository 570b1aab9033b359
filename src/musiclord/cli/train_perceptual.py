"""`musiclord train-perceptual`: placeholder until its issue lands."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-perceptual", help="(not yet available)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from musiclord.errors import MusiclordError

    raise MusiclordError("'train-perceptual' is not implemented yet")
