"""Copy a trained run's model.pt into the package as the shipped pretrained model (float16).

Usage: python scripts/ship_pretrained.py RUN_DIR [METRICS_JSON]

The weights are stored in float16 (half the size; loading casts them back to float32), with the
run's config and, when given, the evaluation summary in the checkpoint's meta.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from musiclord.checkpoint import load_checkpoint, save_checkpoint
from musiclord.models import load_model, resolve_model_path

OUT = Path(__file__).resolve().parents[1] / "src" / "musiclord" / "pretrained" / "model.pt"


def main(run_dir: str, metrics: str | None = None) -> None:
    obj = load_checkpoint(resolve_model_path(run_dir), kind="model")
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in obj["state_dict"].items()}
    meta = dict(obj.get("meta", {}))
    config = Path(run_dir) / "config.yaml"
    if config.is_file():
        meta["train_config_yaml"] = config.read_text()
    if metrics:
        m = json.loads(Path(metrics).read_text())
        meta["evaluation_summary"] = json.dumps(m.get("models", m), default=str)[:20000]
    save_checkpoint({**obj, "state_dict": state, "meta": meta}, OUT, kind="model")
    model, _, _ = load_model(OUT)  # must load back
    assert all(p.dtype == torch.float32 for p in model.parameters())
    print(f"shipped {OUT} ({OUT.stat().st_size / 1e6:.1f} MB), classes {model.classes}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
