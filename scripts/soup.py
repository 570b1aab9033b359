"""Average the weights of model bundles ("model soup", Wortsman et al. 2022) into one bundle.

    python scripts/soup.py OUT/model.pt RUN_A/model.pt RUN_B/model.pt [...]

Meaningful only for runs that started from the same weights (one stage 1, one seed); the bundles'
configs must agree (the first one's is kept). docs/results.md, ablation 50: two draws of v7's
recipe averaged so score worse than either.
"""

from __future__ import annotations

import sys

import torch

from musiclord.checkpoint import load_checkpoint, save_checkpoint


def main(out: str, sources: list[str]) -> None:
    objs = [load_checkpoint(s, kind="model") for s in sources]
    first = objs[0]["state_dict"]
    for s, o in zip(sources[1:], objs[1:]):
        if o["model_config"] != objs[0]["model_config"] or set(o["state_dict"]) != set(first):
            sys.exit(f"error: {s} is another architecture than {sources[0]}")
    state = {k: torch.stack([o["state_dict"][k].float() for o in objs]).mean(0).to(v.dtype) if v.is_floating_point()
             else v for k, v in first.items()}
    meta = dict(objs[0].get("meta", {}), soup=list(sources))
    save_checkpoint({**objs[0], "state_dict": state, "meta": meta}, out, kind="model")


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__.split("\n\n")[1].strip())
    main(sys.argv[1], sys.argv[2:])
