"""`musiclord prepare synth|musicnet|folder`: build a dataset directory (a thin layer over musiclord.data)."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)


def _common(p: argparse.ArgumentParser, out_required: bool = True) -> None:
    p.add_argument("--out", required=out_required, metavar="DATA_DIR", help="dataset directory to create")
    p.add_argument("--force", action="store_true", help="replace an existing dataset at --out")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--val-fraction", type=float, default=0.1, help="held-out validation fraction (default 0.1)")
    p.add_argument("--mel", nargs="*", default=[], metavar="KEY=VALUE", help="MelConfig overrides, e.g. n_mels=80")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prepare", help="build a dataset: synth (rendered scores), musicnet or folder")
    src = p.add_subparsers(dest="source", metavar="SOURCE")
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])

    s = src.add_parser("synth", help="render music21's scores with FluidSynth: unpaired train, paired test")
    _common(s)
    s.add_argument("--classes", nargs="+", default=["cello", "piano", "violin", "flute"],
                   help="instrument classes: short names, GM program names or numbers")  # fmt: skip
    s.add_argument("--train-per-class", type=int, default=1000, help="training clips per class (paper: 4200)")
    s.add_argument("--test-windows", type=int, default=50, help="paired test windows (default 50)")
    s.add_argument("--aux-per-class", type=int, default=100, help="aux clips per class from a third bank")
    s.add_argument("--soundfont", default="", help="training soundfont (default FluidR3_GM, else TimGM6mb)")
    s.add_argument("--test-soundfont", default="", help="test soundfont (default MuseScore_General.sf3)")
    s.add_argument("--aux-soundfont", default="", help="aux soundfont (default TimGM6mb)")
    s.add_argument("--rerender-fraction", type=float, default=1.0,
                   help="share of the training clips also rendered with a second bank, for stage 2's encoders "
                        "(default 1; 0: none)")
    s.add_argument("--rerender-soundfont", default="", help="that second bank (default csound's sf_GMbank)")
    s.add_argument("--cross-fraction", type=float, default=0.0,
                   help="share of the training clips also rendered on another instrument, for stage 2's content "
                        "encoder (amortized.cross_prob; default 0: none)")
    s.add_argument("--cross-per-clip", type=int, default=1,
                   help="cross renders of each such clip, each on another instrument (default 1)")
    s.add_argument("--cross-vibrato", type=float, default=0.0, metavar="CENTS",
                   help="cross renders get a vibrato up to this deep, in cents (default 0: none)")
    s.add_argument("--test-vibrato", type=float, default=0.0, metavar="CENTS",
                   help="paired test renders of bowed and blown classes get a vibrato up to this deep (default 0)")
    s.set_defaults(func=_synth)

    m = src.add_parser("musicnet", help="MusicNet's solo recordings, split by recording")
    _common(m)
    m.add_argument("--root", required=True, help="MusicNet folder (musicnet_metadata.csv, train_data/, test_data/)")
    m.add_argument("--ensembles", nargs="+", default=["Solo Cello", "Solo Piano", "Solo Violin", "Wind Quintet"],
                   help="values of the metadata's ensemble column, one class each")  # fmt: skip
    m.add_argument("--hop-seconds", type=float, default=2.0, help="step between clip starts (default 2.0)")
    m.set_defaults(func=_musicnet)

    f = src.add_parser("folder", help="any folder of recordings, one subfolder per class")
    _common(f)
    f.add_argument("--root", required=True, help="folder with one subfolder of audio files per class")
    f.add_argument("--classes", nargs="+", default=[], help="subfolders to use (default: all)")
    f.add_argument("--hop-seconds", type=float, default=2.0, help="step between clip starts (default 2.0)")
    f.add_argument("--test-fraction", type=float, default=0.0, help="files held out as test (default 0)")
    f.set_defaults(func=_folder)


def _mel(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from musiclord.audio import MelConfig
    from musiclord.config import apply_overrides

    return apply_overrides(MelConfig(), args.mel)


def _done(out: object) -> int:
    from musiclord.data import Dataset, describe

    print(describe(Dataset.open(out)))  # type: ignore[arg-type]
    return 0


def _synth(args: argparse.Namespace) -> int:
    from musiclord.data import SynthOptions, prepare_synth

    opts = SynthOptions(
        classes=tuple(args.classes), train_per_class=args.train_per_class, val_fraction=args.val_fraction,
        test_windows=args.test_windows, aux_per_class=args.aux_per_class, soundfont=args.soundfont,
        test_soundfont=args.test_soundfont, aux_soundfont=args.aux_soundfont,
        rerender_fraction=args.rerender_fraction, rerender_soundfont=args.rerender_soundfont,
        cross_fraction=args.cross_fraction, cross_per_clip=args.cross_per_clip,
        cross_vibrato_cents=args.cross_vibrato, test_vibrato_cents=args.test_vibrato, seed=args.seed,
        workers=args.workers,
    )  # fmt: skip
    return _done(prepare_synth(args.out, opts, _mel(args), force=args.force, progress=not args.quiet))


def _musicnet(args: argparse.Namespace) -> int:
    from musiclord.data import MusicNetOptions, prepare_musicnet

    opts = MusicNetOptions(ensembles=tuple(args.ensembles), hop_seconds=args.hop_seconds,
                           val_fraction=args.val_fraction, seed=args.seed, workers=args.workers)  # fmt: skip
    return _done(prepare_musicnet(args.root, args.out, opts, _mel(args), force=args.force, progress=not args.quiet))


def _folder(args: argparse.Namespace) -> int:
    from musiclord.data import FolderOptions, prepare_folder

    opts = FolderOptions(classes=tuple(args.classes), hop_seconds=args.hop_seconds, val_fraction=args.val_fraction,
                         test_fraction=args.test_fraction, seed=args.seed, workers=args.workers)  # fmt: skip
    return _done(prepare_folder(args.root, args.out, opts, _mel(args), force=args.force, progress=not args.quiet))
