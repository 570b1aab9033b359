"""How much of a model's test error comes from the test bank at its *input*: the same test passages
translated from the test bank's renders and from the training bank's renders of the same notes.

Both are scored against the test bank's ground truth, as `musiclord evaluate` scores them (LSD after
Griffin-Lim), and the content-code probe (instrument from the content codes, 5-fold) is taken on
each. A model whose content encoder generalises across banks scores alike on both; a gap in the
probe shows that what the probe reads is the unfamiliar bank, not the instrument.

    python scripts/bank_shift.py --data runs/demo/data --model pretrained
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from musiclord.audio import invert, logmel
from musiclord.evaluate.adapters import load_translator, open_dataset
from musiclord.evaluate.lsd import lsd
from musiclord.evaluate.oracle import oracle_waves
from musiclord.evaluate.probe import paired_labels, probe_accuracy
from musiclord.evaluate.run import EvalOptions, fit_length, pick_passages


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="a synthetic dataset (note lists and the training bank)")
    ap.add_argument("--model", action="append", required=True, help="run directory, model.pt or 'pretrained'")
    ap.add_argument("--max-clips", type=int, default=32, help="passages, chosen as `musiclord evaluate` does")
    ap.add_argument("--gl-iters", type=int, default=32)
    args = ap.parse_args()
    ds = open_dataset(args.data)
    cfg, classes = ds.mel_config, list(ds.classes)
    cids = pick_passages(ds, classes, EvalOptions())[: args.max_clips]
    paired, n = ds.paired("test"), cfg.clip_samples
    test = np.stack([[fit_length(ds.load_wave(paired[c][k]), n) for k in classes] for c in cids])  # (C, K, N)
    train = oracle_waves(ds, args.data, classes, cids)
    if train is None:
        raise SystemExit(f"{args.data}: no note lists or training bank: nothing to compare")
    labels, passages = paired_labels(len(cids), len(classes))
    print(f"{len(cids)} test passages of {args.data}; LSD against the test bank's ground truth, "
          f"{args.gl_iters} GL iterations")
    print(f"{'model':24s} {'input bank':10s} " + " ".join(f"{'->' + c:>9s}" for c in classes) + f" {'mean':>6s} {'probe':>6s}")
    for run in args.model:
        tr = load_translator(run)
        for name, waves in (("test", test), ("training", train)):
            mels = logmel(torch.from_numpy(np.ascontiguousarray(waves.reshape(-1, n))), cfg)
            mels = mels.reshape(len(cids), len(classes), *mels.shape[1:])
            per_target = []
            for t, target in enumerate(classes):
                vals = []
                for s in range(len(classes)):
                    if s == t:
                        continue
                    with torch.no_grad():
                        out = invert(tr.translate_mel(mels[:, s], to=target).float(), cfg, n_iter=args.gl_iters)
                    vals.append(lsd(out.numpy()[:, :n], test[:, t]).mean())
                per_target.append(float(np.mean(vals)))
            with torch.no_grad():
                codes = tr.content_codes(mels.flatten(0, 1)).reshape(len(labels), -1).numpy()
            probe = probe_accuracy(codes, labels, groups=passages)["accuracy"]
            print(f"{run[-24:]:24s} {name:10s} " + " ".join(f"{v:9.2f}" for v in per_target)
                  + f" {np.mean(per_target):6.2f} {probe:6.3f}")


if __name__ == "__main__":
    main()
