"""Spectrograms of translations next to the truth, to look at: source, ground truth, then each model.

    python scripts/piano_look.py --data runs/devfr --model runs/q5 --model runs/q7tr \
        --source cello --target piano --out docs/piano_translation_adv_dev.png

Takes the first `--passages` paired passages of the split (sorted ids) and prints, per model, the
RMS distance to the truth in normalised log-mel and the share of near-silent bins (below -1.5,
the dark gaps between piano notes) against the truth's. With `--pitch` a last row shows the pYIN
pitch tracks of the true and the translated audio (after Griffin-Lim, as `musiclord evaluate`
scores them) and each model's raw pitch accuracy on these passages is printed.
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from musiclord.audio import invert  # noqa: E402
from musiclord.evaluate.adapters import load_translator, open_dataset  # noqa: E402
from musiclord.evaluate.pitch import track_f0  # noqa: E402
from musiclord.evaluate.run import pitch_accuracy  # noqa: E402

DARK = -1.5  # normalised log-mel below which a bin counts as near-silent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="a prepared dataset with a paired split")
    ap.add_argument("--model", action="append", required=True, help="run directory, model.pt or 'pretrained'")
    ap.add_argument("--source", default="cello")
    ap.add_argument("--target", default="piano")
    ap.add_argument("--split", default="test")
    ap.add_argument("--passages", type=int, default=3)
    ap.add_argument("--pitch", action="store_true", help="add a row of pitch tracks (truth and each model)")
    ap.add_argument("--out", required=True, help="PNG to write")
    args = ap.parse_args()
    ds = open_dataset(args.data)
    paired = ds.paired(args.split)
    cids = sorted(paired)[: args.passages]
    src = ds.mel_tensor([paired[c][args.source] for c in cids])
    truth = ds.mel_tensor([paired[c][args.target] for c in cids])
    rows = [(f"source {args.source}", src), (f"truth {args.target}", truth)]
    for run in args.model:
        with torch.no_grad():
            out = load_translator(run).translate_mel(src, to=args.target).float()
        rows.append((f"{run} -> {args.target}", out))
        print(f"{run}: RMS to truth {(out - truth).pow(2).mean().sqrt():.3f}, near-silent bins "
              f"{(out < DARK).float().mean():.3f} (truth {(truth < DARK).float().mean():.3f})")
    n_rows = len(rows) + int(args.pitch)
    fig, ax = plt.subplots(n_rows, len(cids), figsize=(3.2 * len(cids), 2.0 * n_rows), squeeze=False)
    if args.pitch:
        _pitch_row(ax[-1], rows[1:], ds.mel_config)
    for i, (name, mel) in enumerate(rows):
        for j in range(len(cids)):
            ax[i, j].imshow(mel[j].numpy(), origin="lower", aspect="auto", vmin=-2.5, vmax=3, cmap="magma")
            ax[i, j].set_xticks([])
            ax[i, j].set_yticks([])
        ax[i, 0].set_ylabel(name, fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out, dpi=60)


def _pitch_row(ax, rows: list, cfg) -> None:
    """Pitch tracks (MIDI) of the truth (first of `rows`, black) and the translations, one passage per axis."""
    tracks = []
    for name, mel in rows:
        f0, voiced = track_f0(invert(mel, cfg).numpy(), cfg.sample_rate)
        tracks.append((name, f0, voiced))
    _, f0_t, v_t = tracks[0]
    for name, f0, v in tracks[1:]:
        acc = [pitch_accuracy(f0[j], v[j], f0_t[j], v_t[j]) for j in range(len(f0))]
        print(f"{name}: raw pitch accuracy {', '.join('-' if a is None else f'{a:.2f}' for a in acc)}")
    for j, a in enumerate(ax):
        for k, (name, f0, v) in enumerate(tracks):
            midi = np.where(v[j], 69 + 12 * np.log2(np.maximum(f0[j], 1e-3) / 440), np.nan)
            a.plot(midi, color="black" if k == 0 else f"C{k - 1}", lw=2.5 if k == 0 else 1.0,
                   label=name if j == 0 else None)
        a.set_xticks([])
        a.tick_params(labelsize=6)
    ax[0].set_ylabel("pitch (MIDI)", fontsize=7)
    ax[0].legend(fontsize=5, loc="lower left")


if __name__ == "__main__":
    main()
