"""What stage 2 validates on and what it exports: the val clips and loss, the TensorBoard images,
and RUN_DIR/model.pt with the per-instrument embeddings chosen on val
(`musiclord.train.amortized`; `scripts/export_raw.py` calls the same export)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from musiclord.data import Dataset
from musiclord.errors import DataError
from musiclord.losses import ReconstructionLoss
from musiclord.models import LordModel, save_model
from musiclord.train.common import TBWriter
from musiclord.train.config import TrainConfig
from musiclord.train.erasure import with_erasure

log = logging.getLogger(__name__)


def val_records(ds: Any, val_clips: int) -> list[Any]:
    """The val records a stage-2 run validates on: the first `val_clips` (0: all)."""
    recs = ds.select(split="val")
    return recs[:val_clips] if val_clips > 0 else recs


def val_mels(ds: Any, val_clips: int) -> torch.Tensor | None:
    """The val clips (B, M, T) of `val_records`; None without any."""
    recs = val_records(ds, val_clips)
    return ds.mel_tensor(recs) if recs else None


@torch.no_grad()
def val_loss(model: LordModel, loss_fn: ReconstructionLoss, val_x: torch.Tensor, dev: torch.device,
             batch_size: int = 64, class_emb: torch.Tensor | None = None) -> float:
    """Mean reconstruction loss ("total") of G(E_c(x), E_y(x)) over val clips (B, M, T).

    class_emb (B, E), when given, replaces E_y(x) (e.g. the learned embedding of each clip's class).
    """
    was = model.training
    model.eval()
    tot, n = 0.0, 0
    for i in range(0, len(val_x), batch_size):
        x = val_x[i:i + batch_size].to(dev)
        e = model.encode_class(x) if class_emb is None else class_emb[i:i + batch_size].to(dev)
        tot += float(loss_fn(model.decode(model.encode_content(x), e), x)["total"]) * len(x)
        n += len(x)
    model.train(was)
    return tot / max(n, 1)


@torch.no_grad()
def log_images(model: LordModel, x: torch.Tensor, y: torch.Tensor, tb: TBWriter, step: int, n_classes: int) -> None:
    """Inputs, reconstructions and a translation grid (first clip of each class x every class)."""
    if tb.writer is None:
        return
    was = model.training
    model.eval()
    pick = [int((y == k).nonzero()[0]) for k in range(n_classes) if (y == k).any()][:4]
    src = x[pick]
    content = model.encode_content(src)
    tb.spectrograms("amortized/input", src, step, nrow=len(pick))
    tb.spectrograms("amortized/reconstruction", model.decode(content, model.encode_class(src)), step, nrow=len(pick))
    emb = model.class_embeddings
    grid = model.decode(content.repeat_interleave(n_classes, 0), emb.repeat(len(pick), 1))
    tb.spectrograms("amortized/translation", grid, step, nrow=n_classes)
    model.train(was)


def export(model: LordModel, best: dict[str, Any], cfg: TrainConfig, run_dir: Path, ds: Any,
           val_x: torch.Tensor | None, loss_fn: ReconstructionLoss, dev: torch.device,
           latent_steps: int, steps: int) -> None:
    """Write RUN_DIR/model.pt from the best-on-val weights.

    The per-instrument embedding used by `--to` is chosen on val between (a) the stage-1
    embedding, the target the class encoder regressed to and what G was trained on, and (b) the
    class encoder's mean over the instrument's val clips, what the fine-tuned G saw in stage 2;
    (a) wins ties, (b) only if it reconstructs the val clips better.
    """
    out = LordModel(model.cfg, model.classes)
    out.load_state_dict(best["state"] if best.get("state") is not None else model.state_dict())
    out.to(dev)
    erasure = None
    if cfg.amortized.content_erasure:  # before the embeddings are chosen: val sees the codes translation will
        try:
            banks = tuple(Dataset.open(d) for d in cfg.amortized.erasure_banks)
            out, erasure = with_erasure(out, ds, banks=banks, centre=cfg.amortized.erasure_centre)
        except DataError as e:  # a dataset too small for the fit must not lose the trained run
            log.warning("amortized.content_erasure: not fitted (%s); the model is exported without it", e)
            erasure = {"skipped": str(e)}
    choice, val_stage1, val_mean = "stage1", None, None
    if val_x is not None:
        recs = val_records(ds, len(val_x))
        y = torch.tensor([r.label for r in recs])
        val_stage1 = val_loss(out, loss_fn, val_x, dev, class_emb=out.class_embeddings.cpu()[y])
        with torch.no_grad():
            out.eval()
            codes = torch.cat([out.encode_class(val_x[i:i + 64].to(dev)).cpu() for i in range(0, len(val_x), 64)])
        means = out.class_embeddings.detach().cpu().clone()
        for k in range(len(out.classes)):
            if (y == k).any():
                means[k] = codes[y == k].mean(0)
        val_mean = val_loss(out, loss_fn, val_x, dev, class_emb=means[y])
        if val_mean < val_stage1:
            choice = "encoder_mean"
            out.class_embeddings.copy_(means.to(dev))
    if erasure and cfg.amortized.erasure_adapt_steps and "skipped" not in erasure:
        # after the choice: the generator adapts to the embeddings `--to` will use (as v9 was made),
        # and the translations the critic judged stay as stage 2 left them (ablation 61)
        from musiclord.train.erasure_adapt import adapt_generator  # imports val_loss from here

        ac = cfg.amortized
        judged = () if ac.w_adv_translation <= 0 else ac.translation_to or tuple(model.classes)
        erasure["adapt"] = adapt_generator(out, ds, loss_fn, ac.erasure_adapt_steps, seed=cfg.seed,
                                           keep=tuple(model.classes.index(c) for c in judged))
    meta = {
        "stage": "amortized",
        "adversarial": cfg.amortized.w_adv > 0,
        "w_adv": cfg.amortized.w_adv,
        "w_adv_translation": cfg.amortized.w_adv_translation,
        "w_cycle": cfg.amortized.w_cycle,
        "translation_to": list(cfg.amortized.translation_to),
        "latent_steps": int(latent_steps),
        "amortized_steps": int(steps),
        "best_step": int(best.get("step", steps)),
        "val_rec": None if best.get("val") in (None, float("inf")) else float(best["val"]),
        "class_embeddings": choice,
        "val_rec_stage1_embeddings": val_stage1,
        "val_rec_encoder_mean_embeddings": val_mean,
        "classes": list(model.classes),
        "erasure": erasure,
    }
    save_model(out.cpu(), run_dir / "model.pt", ds.mel_config, meta=meta)
    log.info("wrote %s (stage 2, best val step %s, class embeddings: %s)", run_dir / "model.pt",
             meta["best_step"], choice)
