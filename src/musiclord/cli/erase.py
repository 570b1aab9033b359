"""`musiclord erase --model RUN --data DATA --out FILE`: install a linear erasure of the instrument in a
trained model's content codes, fitted on the dataset's training codes (musiclord.train.erasure)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("erase", help="fit a linear erasure of the instrument from the content codes of a trained model")
    p.add_argument("--model", required=True, help="run directory, model.pt or 'pretrained' (a stage-2 model)")
    p.add_argument("--data", required=True, help="the prepared dataset it was trained on (train and rerender splits)")
    p.add_argument("--out", required=True, help="model file to write (a run directory gets model.pt)")
    p.add_argument("--max-clips", type=int, default=8000, help="training clips drawn for the fit (default 8000)")
    p.add_argument("--seed", type=int, default=0, help="the draw of clips")
    p.add_argument("--bank-data", action="append", default=[], metavar="DIR",
                   help="a dataset prepared with the same options and another --rerender-soundfont: its rerenders "
                        "(the same training clips in another bank) join the fit as one more bank (repeatable)")
    p.add_argument("--adapt-steps", type=int, default=0,
                   help="then fine-tune the generator to the erased codes for this many steps (default 0: off)")
    p.add_argument("--keep-translations", action="append", default=[], metavar="NAME",
                   help="while adapting, hold translations into this instrument to what the model made before "
                        "(the targets its critic judged, e.g. piano for the quality preset; repeatable)")
    p.add_argument("--centre", action="store_true",
                   help="replace each content channel's time mean by the training codes' mean before the fit "
                        "(the shipped model's erasure; give the adaptation several thousand steps)")
    p.set_defaults(func=_erase)


def _erase(args: argparse.Namespace) -> int:
    from pathlib import Path

    from musiclord.errors import ConfigError
    from musiclord.models.lord import MODEL_FILE
    from musiclord.train.erasure import erase_model

    if args.max_clips < 1 or args.adapt_steps < 0:
        raise ConfigError("--max-clips must be positive and --adapt-steps not negative")
    if args.keep_translations and not args.adapt_steps:
        raise ConfigError("--keep-translations applies to the adaptation: give --adapt-steps too")
    out = Path(args.out)
    if out.is_dir() or not out.suffix:
        out = out / MODEL_FILE
    s = erase_model(args.model, args.data, out, max_clips=args.max_clips, seed=args.seed, adapt_steps=args.adapt_steps,
                    bank_dirs=tuple(args.bank_data), keep=tuple(args.keep_translations), centre=args.centre)
    n = sum(s["clips"].values()) + sum(s["bank_clips"])
    print(f"erasure fitted on {n} codes of training clips in {2 + len(s['banks'])} banks (rank {s['rank']}, codes changed by "
          f"{100 * s['relative_change']:.1f}%{', centred' if args.centre else ''}) -> {out}")
    return 0
