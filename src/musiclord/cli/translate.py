"""`musiclord translate INPUT --model RUN_DIR (--to NAME | --like REF) -o OUTPUT`."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "translate",
        help="translate recordings to another instrument",
        description="Translate an audio file (any length, format, channels, rate) or a folder of them "
        "to a trained instrument (--to) or to the timbre of a reference recording (--like). "
        "Writes 16 kHz mono WAVs.",
    )
    p.add_argument("input", type=Path, help="an audio file or a folder of audio files")
    p.add_argument("--model", required=True, help="a run directory, a model.pt file, or 'pretrained'")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--to", metavar="INSTRUMENT", help="a trained instrument (see --list)")
    target.add_argument("--like", type=Path, metavar="REFERENCE", help="take the timbre of this recording")
    target.add_argument("--list", action="store_true", help="list the model's instruments and exit")
    p.add_argument("-o", "--output", type=Path, help="output WAV (file input) or folder (folder input)")
    p.add_argument("--batch-size", type=int, default=8, help="2 s windows translated together (default 8)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--gl-iters", type=int, default=64, help="Griffin-Lim iterations (default 64)")
    p.add_argument("--latent-steps", type=int, default=200,
                   help="code-fitting steps per window for a stage-1-only model (default 200)")
    p.add_argument("--refine-steps", type=int, default=0,
                   help="refine each window's content code by this many steps after the encoder (default 0: off; slower)")
    p.add_argument("--no-gate", action="store_true", help="do not keep silent input frames silent")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from musiclord.audio import list_audio
    from musiclord.errors import AudioError, MusiclordError
    from musiclord.translate import TranslateConfig, Translator

    cfg = TranslateConfig(batch_size=args.batch_size, gl_iters=args.gl_iters, latent_steps=args.latent_steps,
                          refine_steps=args.refine_steps, gate=not args.no_gate)
    tr = Translator.from_checkpoint(args.model, device=args.device, cfg=cfg)
    if args.list:
        for name in tr.instruments:
            print(name)
        return 0
    if args.to is not None:
        tr.instrument_embedding(args.to)  # fail before any audio is read
    if args.output is None:
        raise MusiclordError("give an output path with -o/--output")
    if not args.input.exists():
        raise AudioError(f"{args.input}: no such file or folder")
    like = tr.like_embedding(args.like) if args.like is not None else None
    target = {"to": args.to} if like is None else {"like_embedding": like}

    if args.input.is_dir():
        files = list_audio(args.input)
        if not files:
            raise AudioError(f"{args.input}: no audio files in this folder")
        if args.output.exists() and not args.output.is_dir():
            raise MusiclordError(f"{args.output}: input is a folder, so the output must be a folder")
        dsts = [args.output / f.relative_to(args.input).with_suffix(".wav") for f in files]
        # take.flac beside take.wav would both write take.wav: name those take.flac.wav, take.wav.wav
        jobs = [(f, d.with_name(f.name + ".wav") if dsts.count(d) > 1 else d) for f, d in zip(files, dsts)]
    else:
        out = args.output / (args.input.stem + ".wav") if args.output.is_dir() else args.output
        jobs = [(args.input, out)]

    failed = []
    for src, dst in jobs:
        try:
            stats = tr.translate_file(src, dst, **target)
            log.info("%s -> %s (%.2f s)", src, dst, stats["seconds_out"])
        except AudioError as e:
            if len(jobs) == 1:
                raise
            log.error("skipped: %s", e)
            failed.append(src)
    if failed:
        raise MusiclordError(f"{len(failed)} of {len(jobs)} files failed: {', '.join(str(f) for f in failed)}")
    return 0
