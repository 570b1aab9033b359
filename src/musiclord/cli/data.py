"""`musiclord data info DATA_DIR`: classes, clip counts per split and class, hours, pairs, skipped files."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="inspect a prepared dataset")
    cmds = p.add_subparsers(dest="data_command", metavar="COMMAND")
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])
    info = cmds.add_parser("info", help="classes, clip counts per split and class, hours, paired test windows")
    info.add_argument("data_dir", metavar="DATA_DIR")
    info.set_defaults(func=_info)


def _info(args: argparse.Namespace) -> int:
    from musiclord.data import Dataset, describe

    print(describe(Dataset.open(args.data_dir)))
    return 0
