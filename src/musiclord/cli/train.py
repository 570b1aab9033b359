"""`musiclord train`: stage 1 (latent optimization) and stage 2 (amortized encoders) of LORD."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import shutil
from pathlib import Path

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a LORD model on a prepared dataset",
        description="Train LORD: stage 1 optimizes per-clip content codes, class embeddings and the generator; "
        "stage 2 trains the encoders. Runs under torchrun for data-parallel training.",
    )
    p.add_argument("--data", required=True, metavar="DATA_DIR", help="dataset directory (musiclord prepare)")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory to create")
    p.add_argument("--config", default="demo", help="preset (tiny, demo, paper, quality) or a YAML file")
    p.add_argument("--stage", choices=("all", "latent", "amortized"), default="all")
    p.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR")
    p.add_argument("--force", action="store_true", help="replace an existing RUN_DIR")
    p.add_argument("--vgg-weights", metavar="FILE", help="torchvision VGG16 state dict (sets loss.vgg_weights)")
    p.add_argument("--rho", metavar="FILE", help="train-perceptual checkpoint (sets loss.rho_checkpoint)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. latent.steps=100")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from musiclord.errors import MusiclordError
    from musiclord.train.common import barrier, cleanup_distributed, init_distributed
    from musiclord.train.config import resolve_config
    from musiclord.train.latent import LATENT_FILE, train_latent

    overrides = list(args.overrides)
    if args.vgg_weights:
        overrides.append(f"loss.vgg_weights={args.vgg_weights}")
    if args.rho:
        overrides.append(f"loss.rho_checkpoint={args.rho}")
    cfg = resolve_config(args.config, overrides)
    run = Path(args.out)
    env = init_distributed(cfg.device)
    try:
        occupied = run.exists() and any(run.iterdir()) and not args.resume
        barrier(env)  # every rank has looked before rank 0 deletes anything
        if occupied:
            if not args.force:
                raise MusiclordError(f"{run} exists: use --resume to continue it or --force to replace it")
            if env.is_main:
                shutil.rmtree(run)
        barrier(env)
        if args.stage in ("all", "latent"):
            train_latent(cfg, args.data, run, resume=args.resume, env=env)
            barrier(env)  # rank 0 writes latent.pt last: every rank reads it for stage 2
        if args.stage in ("all", "amortized"):
            if importlib.util.find_spec("musiclord.train.amortized") is None:
                if args.stage == "amortized":
                    raise MusiclordError("stage 2 (amortized encoders) is not available in this musiclord")
                log.warning("stage 2 is not available yet: RUN_DIR/model.pt holds the stage-1 model")
            else:
                if not (run / LATENT_FILE).exists():
                    raise MusiclordError(f"{run}: no {LATENT_FILE}; run stage 1 first (--stage latent)")
                from musiclord.train.amortized import train_amortized

                train_amortized(cfg, args.data, run, resume=args.resume, env=env)
    finally:
        cleanup_distributed(env)
    return 0
