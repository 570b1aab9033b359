"""What the sample bank alone costs on the paired test split: an oracle that plays the exact notes.

A model trained on one sample bank (FluidR3_GM) learns that bank's instruments; the test
ground truth is played by another bank (MuseScore_General). This script renders each test
passage's true notes with the training bank on the target instrument, i.e. a perfect translation
in the training bank's timbre, and scores it as `musiclord evaluate` scores a model: LSD against
the test rendering (raw and after mel + Griffin-Lim, as model outputs are) and pYIN pitch
accuracy. Those numbers are the floor of LSD and the ceiling of pitch accuracy for any model
that learned the training bank perfectly.

    python scripts/bank_floor.py --data runs/demo/data
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from musiclord.audio import invert, logmel
from musiclord.data.instruments import resolve_instruments
from musiclord.data.render import RenderJob, find_soundfont, render_chunk
from musiclord.evaluate.adapters import open_dataset
from musiclord.evaluate.lsd import lsd
from musiclord.evaluate.pitch import raw_pitch_accuracy, track_f0
from musiclord.evaluate.run import EvalOptions, _pick_passages


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
    notes = {}
    for line in (Path(args.data) / "notes.jsonl").read_text().splitlines():
        row = json.loads(line)
        notes[row["clip_id"]] = row["notes"]
    classes = list(ds.classes)
    cids = _pick_passages(ds, classes, EvalOptions())[: args.max_clips]
    paired = ds.paired("test")
    bank = args.soundfont or str(find_soundfont("train"))
    print(f"{len(cids)} test passages of {args.data}, rendered with {Path(bank).name}")
    print(f"{'instrument':10s} {'LSD raw':>8s} {'LSD GL':>8s} {'pitch':>6s}")
    rows = []
    for inst in resolve_instruments(classes):
        recs = [paired[c][inst.name] for c in cids]
        jobs = [RenderJob(tuple((a, b, p) for a, b, p, _ in notes[r.clip_id]),
                          tuple(v for *_, v in notes[r.clip_id]), inst.program) for r in recs]
        ref = np.stack([ds.load_wave(r) for r in recs])
        n = ref.shape[-1]
        out = np.stack([w[:n] for w in render_chunk(bank, jobs, cfg.clip_seconds, cfg.sample_rate)])
        with torch.no_grad():
            gl = invert(logmel(torch.from_numpy(out), cfg), cfg, n_iter=args.gl_iters).numpy()[:, :n]
        p = args.pitch_clips
        f0o, vo = track_f0(gl[:p], cfg.sample_rate)
        f0r, vr = track_f0(ref[:p], cfg.sample_rate)
        ok, tot = raw_pitch_accuracy(f0o, vo, f0r, vr)
        row = (inst.name, float(lsd(out, ref).mean()), float(lsd(gl, ref).mean()), ok / max(tot, 1))
        rows.append(row)
        print(f"{row[0]:10s} {row[1]:8.2f} {row[2]:8.2f} {row[3]:6.3f}", flush=True)
    print(f"{'mean':10s} {np.mean([r[1] for r in rows]):8.2f} {np.mean([r[2] for r in rows]):8.2f} "
          f"{np.mean([r[3] for r in rows]):6.3f}")


if __name__ == "__main__":
    main()
