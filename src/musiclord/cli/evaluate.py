"""`musiclord evaluate --model RUN_DIR [--model RUN_DIR2 ...] --data DATA_DIR --out REPORT_DIR`."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="measure translation quality and write an HTML report",
        description="Evaluate one or more trained models on a dataset's paired test split: log-spectral "
        "distance on audio, timbre (the evaluator's own instrument classifier), pitch accuracy (pYIN), "
        "linear probes and t-SNE of the codes, translation grids with audio. Writes metrics.json, "
        "summary.txt, figures/, audio/ and index.html.",
    )
    p.add_argument("--model", action="append", required=True, metavar="RUN_DIR",
                   help="a run directory, a model.pt file or 'pretrained'; repeat to compare models")
    p.add_argument("--name", action="append", default=[], metavar="NAME",
                   help="display name of each --model, in order (default: the directory name)")
    p.add_argument("--data", required=True, type=Path, help="a prepared dataset directory")
    p.add_argument("--out", required=True, type=Path, help="report directory")
    p.add_argument("--max-clips", type=int, default=None,
                   help="paired test passages per pair for LSD and timbre (default 16; 0: all)")
    p.add_argument("--pitch-clips", type=int, default=None, help="passages per pair tracked by pYIN (default 4)")
    p.add_argument("--gl-iters", type=int, default=None, help="Griffin-Lim iterations of every inversion (default 64)")
    p.add_argument("--timbre-steps", type=int, default=None,
                   help="training steps of the evaluator's instrument classifier (default 240)")
    p.add_argument("--latent-steps", type=int, default=None,
                   help="code-fitting steps per window for a stage-1-only model (default 200, as translate)")
    p.add_argument("--refine-steps", type=int, default=None,
                   help="refine each window's content code by this many steps after the encoder, as translate "
                   "--refine-steps (default 0: off; slower)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--seed", type=int, default=0, help="passage selection and classifier seed")
    p.add_argument("--force", action="store_true", help="write into an existing report directory")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses

    import torch

    from musiclord.errors import MusiclordError
    from musiclord.evaluate import EvalOptions, evaluate, load_translator, summary_table
    from musiclord.translate import TranslateConfig

    names = list(args.name)
    if len(names) > len(args.model):
        raise MusiclordError(f"{len(names)} --name for {len(args.model)} --model")
    for m in args.model[len(names):]:
        names.append("pretrained" if m == "pretrained" else (Path(m).name if Path(m).is_dir() else Path(m).parent.name) or m)
    if len(set(names)) != len(names):
        raise MusiclordError(f"model names must differ (got {', '.join(names)}); give --name for each --model")
    if (args.out / "index.html").exists() and not args.force:
        raise MusiclordError(f"{args.out} already holds a report; use --force to overwrite it")
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise MusiclordError("--device cuda: no CUDA device available")
    changes = {"device": device, "seed": args.seed}
    for key in ("max_clips", "pitch_clips", "gl_iters"):
        value = getattr(args, key)
        if value is not None:
            if value < 0 or (key == "gl_iters" and value < 1):
                raise MusiclordError(f"--{key.replace('_', '-')} must be positive")
            changes[key] = value
    opts = EvalOptions()
    if args.timbre_steps is not None:
        if args.timbre_steps < 1:
            raise MusiclordError("--timbre-steps must be positive")
        changes["timbre"] = dataclasses.replace(opts.timbre, steps=args.timbre_steps)
    opts = dataclasses.replace(opts, **changes)
    cfg = TranslateConfig(**{k: getattr(args, k) for k in ("latent_steps", "refine_steps") if getattr(args, k) is not None})
    models = [(n, load_translator(m, device=device, cfg=cfg)) for n, m in zip(names, args.model)]
    metrics = evaluate(models, args.data, args.out, opts)
    print(summary_table(metrics))
    print(f"report: {(args.out / 'index.html').resolve()}")
    return 0
