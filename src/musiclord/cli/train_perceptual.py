"""`musiclord train-perceptual`: train Rho, the CP-ResNet instrument classifier of the perceptual loss."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train-perceptual",
        help="train the Rho perceptual network (an instrument classifier)",
        description="Train a small CP-ResNet instrument classifier on the train split; its activations give the "
        "Rho perceptual loss (loss.w_rho, loss.rho_checkpoint).",
    )
    p.add_argument("--data", required=True, metavar="DATA_DIR")
    p.add_argument("--out", required=True, metavar="FILE", help="checkpoint to write (e.g. rho.pt)")
    p.add_argument("--force", action="store_true", help="replace an existing FILE")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. epochs=6 batch_size=64")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import logging

    from musiclord.config import apply_overrides
    from musiclord.errors import MusiclordError
    from musiclord.train.perceptual import PerceptualConfig, train_perceptual

    out = Path(args.out)
    if out.exists() and not args.force:
        raise MusiclordError(f"{out} exists: use --force to replace it")
    cfg = apply_overrides(PerceptualConfig(), list(args.overrides))
    acc = train_perceptual(args.data, out, cfg)
    logging.getLogger(__name__).info("wrote %s (accuracy %.3f)", out, acc)
    return 0
