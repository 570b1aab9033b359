"""Export the last raw iterate of a stage-2 run as a model bundle, the way the run exported its own.

    python scripts/export_raw.py RUN DATA OUT

With `amortized.ema_decay` a run validates and exports the moving average of its weights; its
RUN/amortized.pt still holds the weights as trained. This writes those as OUT/model.pt through
the run's own export (`train.amortized_export.export`: the per-instrument embeddings chosen on val),
with RUN's config.yaml beside it, so that the average and the raw weights of one trajectory can
be scored side by side (`scripts/dev_eval.py`; docs/results.md, ablation 51). DATA is the
dataset the run was trained on.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from musiclord.checkpoint import load_checkpoint
from musiclord.config import load_config
from musiclord.losses import ReconstructionLoss
from musiclord.models import LordModel
from musiclord.train.amortized import AMORTIZED_KIND
from musiclord.train.amortized_export import export, val_mels
from musiclord.train.common import open_dataset
from musiclord.train.config import TrainConfig


def main(run: Path, data: Path, out: Path) -> None:
    cfg = load_config(TrainConfig, run / "config.yaml")
    ck = load_checkpoint(run / "amortized.pt", kind=AMORTIZED_KIND)
    ds = open_dataset(data)
    model = LordModel(cfg.model, list(ds.classes))
    model.load_state_dict(ck["state"]["model"])
    val_x = val_mels(ds, cfg.amortized.val_clips)
    dev = torch.device("cpu")
    out.mkdir(parents=True, exist_ok=True)
    export(model, {"state": None, "step": ck["step"]}, cfg, out, ds, val_x, ReconstructionLoss.from_config(cfg.loss, dev),
           dev, int(ck["latent_step"]), int(ck["step"]))
    (out / "config.yaml").write_text((run / "config.yaml").read_text())


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__.split("\n\n")[1].strip())
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
