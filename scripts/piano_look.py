"""Spectrograms of translations next to the truth, to look at: source, ground truth, then each model.

    python scripts/piano_look.py --data runs/devfr --model runs/q5 --model runs/q7tr \
        --source cello --target piano --out docs/piano_translation_adv_dev.png

Takes the first `--passages` paired passages of the split (sorted ids) and prints, per model, the
RMS distance to the truth in normalised log-mel and the share of near-silent bins (below -1.5,
the dark gaps between piano notes) against the truth's.
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from musiclord.evaluate.adapters import load_translator, open_dataset  # noqa: E402

DARK = -1.5  # normalised log-mel below which a bin counts as near-silent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="a prepared dataset with a paired split")
    ap.add_argument("--model", action="append", required=True, help="run directory, model.pt or 'pretrained'")
    ap.add_argument("--source", default="cello")
    ap.add_argument("--target", default="piano")
    ap.add_argument("--split", default="test")
    ap.add_argument("--passages", type=int, default=3)
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
    fig, ax = plt.subplots(len(rows), len(cids), figsize=(3.2 * len(cids), 2.0 * len(rows)), squeeze=False)
    for i, (name, mel) in enumerate(rows):
        for j in range(len(cids)):
            ax[i, j].imshow(mel[j].numpy(), origin="lower", aspect="auto", vmin=-2.5, vmax=3, cmap="magma")
            ax[i, j].set_xticks([])
            ax[i, j].set_yticks([])
        ax[i, 0].set_ylabel(name, fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out, dpi=60)


if __name__ == "__main__":
    main()
