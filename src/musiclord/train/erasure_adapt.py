"""Fine-tune the generator to the erased content codes (`musiclord erase --adapt-steps N`).

The erasure (models/erasure.py) moves every content code by a few percent in the directions where
the training instruments differ; the generator was trained on the codes before it. This pass
trains the generator alone, for a few hundred steps at the rate stage 2's cosine schedule ends
with (1e-5; its full 1e-4 without the weight average lifted val loss from 0.32 to 0.5), to
reconstruct the `train` clips from their erased codes and their instrument's embedding (the one
`--to` uses): the encoders, the class embeddings and the erasure stay fixed. Only the training
bank's clips are targets, as in stage 2 (the rerenders as targets pull the generator towards
the mean of two banks: ablation 43).

Reconstruction alone has no critic, and stage 2's critic is what kept the gaps between piano
strikes dark (it judged translations into piano): adapted so, the generator lost 0.45 dB into
piano. `keep` names such targets: every batch clip of another class is also translated into each
of them by the adapting generator from its erased code and held (MSE on normalised log-mel) to
what the unadapted generator makes of its unerased code, so that those translations stay as stage
2 left them (ablation 61: into piano 0.14 dB from v8 on the test split instead of 0.45, the other
targets keep their gain). The weights kept are those with the lowest reconstruction loss on the
val split (step 0, the unadapted generator, included).
"""

from __future__ import annotations

import copy
import logging

import numpy as np
import torch
from tqdm import tqdm

from musiclord.data import Dataset
from musiclord.losses import ReconstructionLoss
from musiclord.models.lord import LordModel
from musiclord.train.amortized_export import val_loss

log = logging.getLogger(__name__)


def adapt_generator(model: LordModel, ds: Dataset, loss_fn: ReconstructionLoss, steps: int, batch_size: int = 16,
                    lr: float = 1e-5, val_every: int = 100, val_clips: int = 256, seed: int = 0,
                    keep: tuple[int, ...] = (), keep_weight: float = 1.0) -> dict:
    """Train `model.generator` in place on erased codes; returns {"val": {step: loss}, "best_step"}.

    Args:
        model: a model with its erasure installed (cfg.content_erasure), on its device.
        ds: its training dataset (batches from "train", validation from "val").
        loss_fn: the reconstruction loss the model was trained with.
        steps: optimiser steps (0: nothing changes).
        keep: class indices whose translations (from every other class) are held to the
            unadapted generator's on the unerased codes, with weight `keep_weight`.
    """
    if not model.cfg.content_erasure:
        raise ValueError("adapt_generator: the model has no erasure to adapt to")
    dev = next(model.parameters()).device
    rows = ds.select("train")
    val = ds.select("val")
    val = [val[i] for i in np.sort(np.random.default_rng(seed).permutation(len(val))[:val_clips])]
    val_x = ds.mel_tensor(val) if val else None
    val_e = model.class_embeddings.detach().cpu()[torch.tensor([r.label for r in val], dtype=torch.long)]
    rng = np.random.default_rng(seed + 1)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    gen = model.generator
    for p in gen.parameters():
        p.requires_grad_(True)
    teacher = copy.deepcopy(gen).eval() if keep else None
    opt = torch.optim.Adam(gen.parameters(), lr=lr, betas=(0.5, 0.999))
    history: dict[int, float] = {}
    best = (float("inf"), 0, copy.deepcopy(gen.state_dict()))

    def validate(step: int) -> None:
        nonlocal best
        if val_x is None:
            return
        history[step] = val_loss(model, loss_fn, val_x, dev, class_emb=val_e)
        if history[step] < best[0]:
            best = (history[step], step, copy.deepcopy(gen.state_dict()))

    validate(0)
    for step in tqdm(range(1, steps + 1), desc="adapt generator", unit="step", leave=False):
        batch = [rows[i] for i in rng.integers(0, len(rows), batch_size)]
        x = ds.mel_tensor(batch).to(dev)
        y = torch.tensor([r.label for r in batch], device=dev)
        with torch.no_grad():
            content = model.encode_content(x)
            raw = model.encode_content(x, erased=False) if keep else None
        gen.train()
        loss = loss_fn(gen(content, model.class_embeddings[y]), x)["total"]
        for t in keep:  # translations into t as the unadapted generator made them from the unerased codes
            other = y != t
            if other.any():
                e_t = model.class_embeddings[t].expand(int(other.sum()), -1)
                with torch.no_grad():
                    target = teacher(raw[other], e_t)
                loss = loss + keep_weight * torch.nn.functional.mse_loss(gen(content[other], e_t), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        gen.eval()
        if step % val_every == 0 or step == steps:
            validate(step)
    gen.load_state_dict(best[2])
    for p in model.parameters():
        p.requires_grad_(False)
    if history:
        log.info("generator adapted: val %.4f at step 0, best %.4f at step %d", history[0], best[0], best[1])
    return {"val": {str(k): round(v, 5) for k, v in history.items()}, "best_step": best[1], "steps": steps, "lr": lr,
            "keep": [model.classes[t] for t in keep], "keep_weight": keep_weight}
