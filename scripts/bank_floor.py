"""What the sample bank alone costs on the paired test split: an oracle that plays the exact notes.

A model trained on one sample bank (FluidR3_GM) learns that bank's instruments; the test
ground truth is played by another bank (MuseScore_General). This script renders each test
passage's true notes with the training bank on the target instrument, i.e. a perfect translation
in the training bank's timbre, and scores it as `musiclord evaluate` scores a model: LSD against
the test rendering (raw and after mel + Griffin-Lim, as model outputs are) and pYIN pitch
accuracy, per instrument (`musiclord evaluate` reports the same oracle per pair, via
`musiclord.evaluate.oracle`). Those numbers are the floor of LSD and the ceiling of pitch accuracy for any model
that learned the training bank perfectly.

    python scripts/bank_floor.py --data runs/demo/data
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from musiclord.audio import invert, logmel
from musiclord.evaluate.adapters import open_dataset
from musiclord.evaluate.lsd import lsd
from musiclord.evaluate.oracle import oracle_waves
from musiclord.evaluate.pitch import raw_pitch_accuracy, track_f0
from musiclord.evaluate.run import EvalOptions, pick_passages


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--soundfont", default="", help="the bank to render with (default: the training bank)")
    ap.add_argument("--max-clips", type=int, default=16, help="passages, chosen as `musiclord evaluate` does")
    ap.add_argument("--pitch-clips", type=int, default=4)
    ap.add_argument("--gl-iters", type=int, default=32)
    args = ap.parse_args()
    ds = open_dataset(args.data)
    cfg = ds.mel_config
    classes = list(ds.classes)
    cids = pick_passages(ds, classes, EvalOptions())[: args.max_clips]
    bank = args.soundfont or ds.options.get("soundfonts", {}).get("train", "")
    oracle = oracle_waves(ds, args.data, classes, cids, bank=bank)  # (C, K, N): the true notes on `bank`
    if oracle is None:
        raise SystemExit(f"{args.data}: no note lists or no soundfont {bank!r}: nothing to render")
    paired = ds.paired("test")
    print(f"{len(cids)} test passages of {args.data}, rendered with {Path(bank).name}")
    print(f"{'instrument':10s} {'LSD raw':>8s} {'LSD GL':>8s} {'pitch':>6s}")
    rows = []
    for k, name in enumerate(classes):
        ref = np.stack([ds.load_wave(paired[c][name]) for c in cids])
        n = ref.shape[-1]
        out = oracle[:, k, :n]
        with torch.no_grad():
            gl = invert(logmel(torch.from_numpy(out), cfg), cfg, n_iter=args.gl_iters).numpy()[:, :n]
        p = args.pitch_clips
        f0o, vo = track_f0(gl[:p], cfg.sample_rate)
        f0r, vr = track_f0(ref[:p], cfg.sample_rate)
        ok, tot = raw_pitch_accuracy(f0o, vo, f0r, vr)
        row = (name, float(lsd(out, ref).mean()), float(lsd(gl, ref).mean()), ok / max(tot, 1))
        rows.append(row)
        print(f"{row[0]:10s} {row[1]:8.2f} {row[2]:8.2f} {row[3]:6.3f}", flush=True)
    print(f"{'mean':10s} {np.mean([r[1] for r in rows]):8.2f} {np.mean([r[2] for r in rows]):8.2f} "
          f"{np.mean([r[3] for r in rows]):6.3f}")


if __name__ == "__main__":
    main()
