"""Where a model's translation error is, in the mel domain (no inversion, seconds on a CPU).

    python scripts/pair_errors.py --data runs/devfr --model runs/q5 [--model ...]

On a paired set (every passage played by every instrument), for each source s and target t:
RMS error in dB between G(E_c(x_s), e_t) and the ground truth x_t (the diagonal is the
reconstruction of x_s itself), and how far apart the content codes of the same notes are on
two instruments, ‖E_c(x_s) − E_c(x_t)‖ / ‖E_c(x_t)‖ (0 for codes free of the instrument).
A translation much worse than the target's own reconstruction, with distant codes, means the
code carries the source's way of playing (a piano's decay, a violin's sustain) rather than only
the notes. Figures only rank models; `musiclord evaluate` reports on audio.
"""

from __future__ import annotations

import argparse
import json
import math

import torch

from musiclord.evaluate.adapters import load_translator, open_dataset
from musiclord.evaluate.run import EvalOptions, pick_passages


@torch.no_grad()
def pair_errors(run: str, data: str) -> dict:
    """{"rms_db": K×K list (rows source, columns target), "code_distance": K×K list, "classes": [...]}"""
    tr = load_translator(run)
    model, classes = tr._model, tr.instruments
    ds = open_dataset(data)
    cids = pick_passages(ds, classes, EvalOptions())
    paired = ds.paired("test")
    k, n = len(classes), tr.mel_config.n_frames
    mel = ds.mel_tensor([paired[c][i] for c in cids for i in classes]).reshape(len(cids), k, -1, n)
    db = tr.mel_config.log_std * 10 / math.log(10)  # normalised log-mel units -> dB
    codes = [model.encode_content(mel[:, s]) for s in range(k)]
    rms = [[float(((model.decode(codes[s], model.class_embeddings[t].expand(len(cids), -1)) - mel[:, t])
                   .pow(2).mean(dim=(1, 2)).sqrt() * db).mean()) for t in range(k)] for s in range(k)]
    dist = [[float((codes[s] - codes[t]).norm() / codes[t].norm()) for t in range(k)] for s in range(k)]
    return {"run": run, "classes": classes, "passages": len(cids), "rms_db": rms, "code_distance": dist}


def _table(title: str, classes: list[str], rows: list[list[float]]) -> str:
    head = f"{title:<16}" + "".join(f"{c:>8}" for c in classes)
    return "\n".join([head] + [f"{s:<16}" + "".join(f"{v:8.2f}" for v in row) for s, row in zip(classes, rows)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="a paired dataset directory (dev or test split)")
    ap.add_argument("--model", action="append", required=True, help="run directory, model.pt or 'pretrained'")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    out = []
    for run in args.model:
        r = pair_errors(run, args.data)
        out.append(r)
        print(f"{run}: {r['passages']} passages; rows source, columns target")
        print(_table("RMS dB (mel)", r["classes"], r["rms_db"]))
        print(_table("code distance", r["classes"], r["code_distance"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
