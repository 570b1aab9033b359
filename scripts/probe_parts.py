"""Where the instrument hides in the content codes: the content probe on the whole codes, on their
per-channel statistics over time, and on the per-channel-normalised codes, with confusion matrices.

    python scripts/probe_parts.py --data runs/data2 --model runs/q5 [--model ...] [--split test]

The test split's passages are played by every instrument, so any accuracy above chance (0.25) is
the instrument leaking into the codes. Probes as `musiclord evaluate` (5-fold logistic
regression, repeated 5 times; 95% Wilson interval). Each probe reads one view of the codes:
- whole: the flattened (D, F) codes, what `evaluate` reports;
- means, deviations: each channel's mean (level), or standard deviation (spread), over the F
  frames (D numbers); statistics: both (2 D numbers);
- centred: the codes with each channel's mean removed (`model.content_norm=mean` sees these);
- normalised: the codes with each channel's mean and deviation removed (the pattern alone);
- whole (MLP): the whole codes read by a one-hidden-layer MLP instead (`probe_accuracy(kind="mlp")`),
  what a nonlinear reader finds where a linear erasure (`musiclord erase`) left the linear probe
  near chance.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from musiclord.evaluate.adapters import load_translator, open_dataset
from musiclord.evaluate.probe import paired_labels, probe_accuracy


def views(codes: torch.Tensor) -> dict[str, np.ndarray]:
    """codes (N, D, F) -> {view name: (N, features)}."""
    mean, std = codes.mean(-1, keepdim=True), codes.std(-1, keepdim=True)
    return {
        "whole": codes.flatten(1).numpy(),
        "means": mean.flatten(1).numpy(),
        "deviations": std.flatten(1).numpy(),
        "statistics": torch.cat([mean, std], 1).flatten(1).numpy(),
        "centred": (codes - mean).flatten(1).numpy(),
        "normalised": ((codes - mean) / (std + 1e-5)).flatten(1).numpy(),
    }


def confusion(features: np.ndarray, labels: np.ndarray, groups: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """(n, n) row-normalised confusion of one 5-fold cross-validated probe, folds by passage (rows: true class)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    pred = cross_val_predict(clf, features, labels, groups=groups,
                             cv=StratifiedGroupKFold(5, shuffle=True, random_state=seed))
    m = np.zeros((n, n))
    np.add.at(m, (labels, pred), 1)
    return m / m.sum(1, keepdims=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="a prepared dataset with a paired split")
    ap.add_argument("--model", action="append", required=True, help="run directory, model.pt or 'pretrained'")
    ap.add_argument("--split", default="test")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    ds = open_dataset(args.data)
    classes = list(ds.classes)
    paired = ds.paired(args.split)
    recs = [paired[c][k] for c in sorted(paired) for k in classes]
    labels, passages = paired_labels(len(paired), len(classes))  # folds keep a passage's renders together
    mel = ds.mel_tensor(recs)
    out = {}
    for run in args.model:
        tr = load_translator(run)
        with torch.no_grad():
            codes = torch.cat([tr.content_codes(mel[i:i + 64]).float().cpu() for i in range(0, len(mel), 64)])
        res = {}
        print(f"{run}: {len(recs)} clips of the {args.split} split, codes {tuple(codes.shape[1:])}, "
              f"classes {classes}")
        for name, x in views(codes).items():
            p = probe_accuracy(x, labels, groups=passages)
            cm = confusion(x, labels, passages, len(classes))
            res[name] = {"accuracy": p["accuracy"], "ci95": p["ci95"], "confusion": np.round(cm, 3).tolist()}
            lo, hi = p["ci95"]
            print(f"  {name:10s} {p['accuracy']:.3f} [{lo:.2f}, {hi:.2f}]  recall per class "
                  + " ".join(f"{c}:{cm[k, k]:.2f}" for k, c in enumerate(classes)))
        p = probe_accuracy(codes.flatten(1).numpy(), labels, kind="mlp", groups=passages)
        res["whole_mlp"] = {"accuracy": p["accuracy"], "ci95": p["ci95"]}
        print(f"  {'whole (MLP)':10s} {p['accuracy']:.3f} [{p['ci95'][0]:.2f}, {p['ci95'][1]:.2f}]")
        out[run] = res
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
