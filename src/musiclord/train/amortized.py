"""Stage 2 of LORD: amortization with an adversarial term (paper Fig. 2, right; section 6).

Stage 1 left a content code c_i for every training clip, an embedding e_y for every instrument
and a generator G. Stage 2 trains a content encoder E_c and a class encoder E_y so that new
audio needs no optimisation:

    L = w_rec · L_rec(G(E_c(x), E_y(x)), x) + w_content · ||E_c(x) - c_i||² + w_class · ||E_y(x) - e_y||²
        + w_adv · (-D(G(E_c(x), E_y(x))))
        [+ w_adv_translation · (-D(G(E_c(x), e_t), t)) + w_cycle · ||E_c(G(E_c(x), e_t)) - c_i||²]

The bracketed translation terms (off by default) judge x's content played by another
instrument t (`musiclord.train.amortized_losses`).

G starts from stage 1 and is fine-tuned; D is a reduced GANSynth critic trained with the
Wasserstein loss and a gradient penalty (`musiclord.models.discriminator`). The exported
model is the one with the lowest reconstruction loss on the val split (never the test split).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn

from musiclord.config import save_config, to_dict
from musiclord.data import Dataset
from musiclord.errors import CheckpointError, ConfigError, DataError
from musiclord.losses import ReconstructionLoss
from musiclord.models import LordModel
from musiclord.models.generator import normalise_content
from musiclord.models.discriminator import DiscriminatorConfig, build_discriminator
from musiclord.models.erasure import erase, fit_leace
from musiclord.train.common import (
    BatchIterator, DistEnv, NonFiniteGuard, TBWriter, all_reduce_mean, cleanup_distributed, cosine_lr_factor,
    init_distributed, load_mels, load_state, open_dataset, progress, save_state, seed_everything, set_lr,
    set_threads,
)
from musiclord.train.amortized_export import export, log_images, val_loss, val_mels
from musiclord.train.amortized_losses import TRANSLATION_SEED, amortized_loss, critic_update, translation_targets
from musiclord.train.augment import EQ_SEED, random_eq
from musiclord.train.config import TrainConfig
from musiclord.train.ema import WeightEMA, load_average
from musiclord.train.erasure import check_banks
from musiclord.train.latent import LATENT_FILE, read_latent
from musiclord.train.rerender import CROSS_SWAP_SEED, TARGET_SWAP_SEED, rerender_rows, swap_rerenders

log = logging.getLogger(__name__)

AMORTIZED_FILE = "amortized.pt"
AMORTIZED_KIND = "amortized"


def total_steps(cfg: TrainConfig, steps_per_epoch: int) -> int:
    """Steps of stage 2: `amortized.steps`, or `amortized.epochs` passes."""
    ac = cfg.amortized
    return ac.steps if ac.steps > 0 else max(1, ac.epochs * steps_per_epoch)


def _generator_state(state: dict[str, torch.Tensor], generator: nn.Module) -> dict[str, torch.Tensor]:
    """Stage-1 generator weights for this Generator: conv biases right before an AdaIN (which
    subtracts each channel's mean, cancelling them exactly) from older runs are dropped."""
    own = generator.state_dict()
    extra = [k for k in state if k not in own]
    if extra and all(re.fullmatch(r"blocks\.\d+\.conv[12]\.bias", k) for k in extra):
        log.info("dropping %d pre-AdaIN conv biases of an older stage-1 generator (no effect)", len(extra))
        state = {k: v for k, v in state.items() if k in own}
    return state


def _sync_grads(params: list[nn.Parameter], env: DistEnv) -> None:
    """Average gradients over processes (each process holds its slice of the global batch)."""
    if not env.distributed:
        return
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        all_reduce_mean(p.grad, env)


def train_amortized(cfg: TrainConfig, data_dir: str | Path, run_dir: str | Path, resume: bool = False,
                    stop_after: int | None = None, env: DistEnv | None = None) -> None:
    """Run stage 2 from RUN_DIR/latent.pt; write RUN_DIR/amortized.pt and RUN_DIR/model.pt.

    Args:
        cfg: the run's config (its `model` must match stage 1's).
        data_dir: the dataset stage 1 was trained on.
        run_dir: the run directory holding latent.pt.
        resume: continue from RUN_DIR/amortized.pt if it exists.
        stop_after: end this call after this many steps in all (a checkpoint is written), as an
            interrupted run would.
        env: the process (default: from torchrun's environment).

    Raises:
        CheckpointError: no or a foreign latent.pt; a resume checkpoint that does not fit.
        DataError: the dataset does not match stage 1. TrainingError: too many non-finite losses.
    """
    own_env = env is None
    env = env or init_distributed(cfg.device)
    try:
        _train(cfg, Path(data_dir), Path(run_dir), resume, stop_after, env)
    finally:
        if own_env:
            cleanup_distributed(env)


def content_targets(content: torch.Tensor, labels: torch.Tensor, n_classes: int, cfg: TrainConfig) -> torch.Tensor:
    """What the content encoder's output is compared to: the stage-1 codes (N, D, F) normalised as
    `model.content_norm` says and, with `amortized.erase_targets`, with the class (labels (N,))
    erased by LEACE fitted on them (a function of the codes alone: the same on every process and
    on resume)."""
    content = normalise_content(content, cfg.model.content_norm)
    if cfg.amortized.erase_targets:
        mean, matrix = fit_leace(content.flatten(1), labels, n_classes)
        content = erase(content, mean, matrix)
    return content


def _train(cfg: TrainConfig, data_dir: Path, run_dir: Path, resume: bool, stop_after: int | None,
           env: DistEnv) -> None:
    seed_everything(cfg.seed)
    set_threads(cfg.num_threads)
    ac = cfg.amortized
    dev = env.device
    lat = read_latent(run_dir / LATENT_FILE)
    # stage 1 trains no encoders: only the generator and code sizes must agree
    enc = {"enc_channels": cfg.model.enc_channels, "enc_blocks": cfg.model.enc_blocks}
    if dataclasses.replace(lat.model_config, **enc) != cfg.model:
        raise CheckpointError(f"{run_dir / LATENT_FILE}: stage 1 used other generator or code sizes than this "
                              "config (model.* must match stage 1 except enc_channels and enc_blocks)")
    ds = open_dataset(data_dir)
    if ac.erasure_banks:  # fail now, not after training at export
        check_banks(ds, tuple(Dataset.open(d) for d in ac.erasure_banks))
    classes = list(ds.classes)
    if classes != lat.classes:
        raise DataError(f"{data_dir}: classes {classes} differ from stage 1's {lat.classes}")
    translating = ac.w_cycle > 0 or ac.w_adv_translation > 0  # w_adv_translation > 0 implies w_adv > 0 (config)
    unknown = sorted(set(ac.translation_to) - set(classes)) if translating else []
    if unknown:
        raise ConfigError(f"amortized.translation_to: unknown class {unknown[0]!r} (classes: {', '.join(classes)}; "
                          "amortized.translation_to=[] judges translations into every class)")
    translate_to = tuple(classes.index(c) for c in ac.translation_to) if translating else ()
    mels = load_mels(ds)
    if int(lat.rows.max()) >= mels.shape[0]:
        raise DataError(f"{data_dir}: fewer clips than stage 1 was trained on")
    it = BatchIterator(mels, lat.rows.tolist(), ac.batch_size, seed=cfg.seed + 2, env=env)
    total = total_steps(cfg, it.steps_per_epoch)
    content_t, class_t, labels = lat.content.float(), lat.class_embeddings.float(), lat.labels
    content_t = content_targets(content_t, labels, len(classes), cfg)
    alt = rerender_rows(ds, lat.rows)
    n_alt = int((alt >= 0).any(1).sum())  # clips with a rerender
    cross = rerender_rows(ds, lat.rows, "cross") if ac.cross_prob > 0 else None
    n_cross = int((cross >= 0).any(1).sum()) if cross is not None else 0
    if ac.cross_prob > 0 and not n_cross:
        raise DataError(f"{data_dir} has no cross renders for amortized.cross_prob={ac.cross_prob}: prepare it with "
                        "`musiclord prepare synth --cross-fraction 1`, or set amortized.cross_prob=0")

    model = LordModel(cfg.model, classes)
    model.generator.load_state_dict(_generator_state(lat.generator_state, model.generator))
    model.class_embeddings.copy_(class_t)
    model.to(dev)
    ema = WeightEMA(model, ac.ema_decay) if ac.ema_decay > 0 else None
    use_adv = ac.w_adv > 0
    class_dev = class_t.to(dev)  # the stage-1 embeddings: the targets of translations
    disc = build_discriminator(DiscriminatorConfig(channels=ac.disc_channels,
                                                   n_classes=len(classes) if ac.disc_conditional else 0), dev)
    loss_fn = ReconstructionLoss.from_config(cfg.loss, dev)
    enc_params = list(model.content_encoder.parameters()) + list(model.class_encoder.parameters())
    gen_params = list(model.generator.parameters())
    opt = torch.optim.Adam([
        {"params": enc_params, "lr": ac.lr_encoders},
        {"params": gen_params, "lr": ac.lr_generator, "betas": (0.5, 0.9)},
    ])
    opt_d = torch.optim.Adam(disc.parameters(), lr=ac.lr_discriminator, betas=(0.5, 0.9))
    gp_gen = torch.Generator().manual_seed(cfg.seed + 3)
    guard = NonFiniteGuard(ac.max_nonfinite)
    ckpt = run_dir / AMORTIZED_FILE
    objects: dict[str, Any] = {"model": model, "disc": disc, "optimizer": opt, "optimizer_d": opt_d,
                               "gp_rng": gp_gen, "guard": guard, **({"ema": ema} if ema else {})}
    best: dict[str, Any] = {"val": float("inf"), "step": -1, "state": None}
    step = 0
    if resume and ckpt.exists():
        obj = load_state(ckpt, AMORTIZED_KIND, {k: v for k, v in objects.items() if k != "ema"}, map_location=dev)
        load_average(ckpt, obj, ema)
        if obj.get("latent_step") not in (None, lat.step):  # stage 1 went on after stage 2 began
            raise CheckpointError(
                f"{ckpt} was trained on the stage-1 codes of step {obj['latent_step']}, but stage 1 is now at step "
                f"{lat.step}: delete {ckpt} to train stage 2 afresh on the new codes")
        step = int(obj["step"])
        best = dict(obj.get("best", best))
        if env.is_main:
            log.info("resumed %s at step %d of %d", ckpt, step, total)
    val_x = val_mels(ds, ac.val_clips)
    if env.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / "config.yaml")
        if val_x is None:
            log.warning("%s has no val clips: the final stage-2 model is exported", data_dir)
        log.info("stage 2: %d clips (%d with a rerender, shown with p=%.2f; %d on another instrument, to the content "
                 "encoder with p=%.2f), %d steps of %d, adversarial %s, %d encoder + %d critic parameters",
                 len(lat.rows), n_alt, ac.rerender_prob if n_alt else 0.0, n_cross,
                 ac.cross_prob if n_cross else 0.0, total, ac.batch_size,
                 f"w={ac.w_adv}, on translations {ac.w_adv_translation}" if use_adv else "off",
                 sum(p.numel() for p in enc_params), sum(p.numel() for p in disc.parameters()))
    tb = TBWriter(run_dir / "tb", env)
    end = total if stop_after is None else min(total, stop_after)
    bar = progress(total, env, "stage 2", initial=step)
    t0, done0 = time.time(), step

    def checkpoint(at: int) -> None:
        if env.is_main:
            save_state(ckpt, AMORTIZED_KIND, objects, at, config=to_dict(cfg), classes=classes, best=best,
                       data_dir=str(data_dir), latent_step=int(lat.step))

    def averaged() -> Any:
        return ema.applied(model) if ema else nullcontext()

    def validate(at: int) -> None:
        if val_x is None:
            return
        with averaged():  # with amortized.ema_decay, the averaged weights are validated and exported
            val = val_loss(model, loss_fn, val_x, dev)
            if val < best["val"]:
                best.update(val=val, step=at, state={k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
        tb.scalars({"val/rec": val}, at)
        log.debug("step %d: val rec %.4f (best %.4f at %d)", at, val, best["val"], best["step"])

    model.train()
    disc.train()
    loss_fn.train()
    while step < end:
        f = cosine_lr_factor(step, total, 0, 0.1, True)
        set_lr(opt, f)
        pos, x = it.batch(step)
        clip, retarget, n_swapped, n_crossed = x, None, 0, 0
        if ac.rerender_target_prob > 0 and n_alt:
            x, retarget = swap_rerenders(x, pos, alt, mels, ac.rerender_target_prob, cfg.seed + TARGET_SWAP_SEED,
                                         step, it.batch_size, it.local_slice(it.batch_size))
        x_in = clip if ac.rerender_target_independent else x
        if ac.rerender_prob > 0 and n_alt:
            x_in, swapped = swap_rerenders(x_in, pos, alt, mels, ac.rerender_prob, cfg.seed, step, it.batch_size,
                                           it.local_slice(it.batch_size))
            n_swapped = int(swapped.sum())
        x_content = x_in
        if n_cross:
            x_content, crossed = swap_rerenders(x_in, pos, cross, mels, ac.cross_prob, cfg.seed + CROSS_SWAP_SEED,
                                                step, it.batch_size, it.local_slice(it.batch_size))
            n_crossed = int(crossed.sum())
        detach = retarget.to(dev) if retarget is not None and ac.rerender_target_detach else None
        # the same EQ curves for both inputs; a tensor comes back as it is when timbre_eq_db is 0
        eq = (ac.timbre_eq_db, ds.mel_config, cfg.seed + EQ_SEED, step, it.batch_size, it.local_slice(it.batch_size))
        x_eq = random_eq(x_in, *eq)
        x_content = x_eq if x_content is x_in else random_eq(x_content, *eq)
        x_in = x_eq
        x_content = x_content.to(dev) if x_content is not x_in else None  # None: the content encoder sees x_in
        x_in = x_in.to(dev) if x_in is not x else None  # None: the encoders see x itself (one copy to the device)
        x, pos = x.to(dev), pos.to(dev)
        y = labels.to(dev)[pos]
        y_to = None
        if translating:
            y_to = translation_targets(y, len(classes), cfg.seed + TRANSLATION_SEED, step, it.batch_size,
                                       it.local_slice(it.batch_size), translate_to)
        scal: dict[str, float] = {}
        if use_adv:
            scal.update(critic_update(model, disc, opt_d, x, y, ac, step, gp_gen,
                                      check=lambda loss: guard.check(loss, env, step),
                                      sync=lambda params: _sync_grads(params, env),
                                      y_to=y_to if ac.w_adv_translation > 0 else None, class_emb=class_dev))
        adv_on = use_adv and step >= ac.adv_warmup_steps
        loss, terms, parts = amortized_loss(model, disc if adv_on else None, loss_fn, x, y, content_t.to(dev)[pos],
                                            class_dev[y], ac, x_in, y_to=y_to, class_emb=class_dev,
                                            x_content=x_content, detach=detach)
        l_content, l_class = parts["content"], parts["class"]
        for name, tag in (("adversarial", "adv/generator"), ("adv_translation", "adv/generator_translation"),
                          ("cycle", "loss/cycle")):
            if name in parts:
                scal[tag] = parts[name].item()
        opt.zero_grad(set_to_none=True)
        if guard.check(loss, env, step):
            loss.backward()
            _sync_grads(enc_params + gen_params, env)
            if ac.grad_clip > 0:
                nn.utils.clip_grad_norm_(enc_params + gen_params, ac.grad_clip)
            opt.step()
            if ema:
                ema.update(model)
        step += 1
        bar.update()
        if step % ac.log_every == 0 or step == end:
            vals = torch.stack([v.detach() for v in terms.values()] + [l_content.detach(), l_class.detach(),
                                                                         loss.detach()])
            all_reduce_mean(vals, env)
            names = [f"rec/{k}" for k in terms] + ["loss/content", "loss/class", "loss/total"]
            scal.update({k: float(v) for k, v in zip(names, vals)})
            scal["lr/encoders"] = opt.param_groups[0]["lr"]
            scal["train/nonfinite"] = guard.total
            scal["train/clips_per_s"] = (step - done0) * ac.batch_size / max(1e-9, time.time() - t0)
            scal["train/rerenders_in_batch"] = n_swapped
            scal["train/cross_in_batch"] = n_crossed
            tb.scalars(scal, step)
            bar.set_postfix(rec=f"{scal['rec/total']:.4f}", content=f"{scal['loss/content']:.4f}")
        if ac.val_every and step % ac.val_every == 0 and step < end:
            validate(step)
        if ac.image_every and step % ac.image_every == 0 and env.is_main:
            log_images(model, x, y, tb, step, len(classes))
        if ac.checkpoint_every and step % ac.checkpoint_every == 0 and step < end:
            checkpoint(step)
    bar.close()
    if step >= total:
        validate(step)
    checkpoint(step)
    elapsed = time.time() - t0
    if env.is_main and step > done0:
        log.info("stage 2: %d steps in %.0f s (%.1f clips/s)", step - done0, elapsed,
                 (step - done0) * ac.batch_size / max(elapsed, 1e-9))
    if step >= total and env.is_main:
        if step == done0:  # resumed after the last step (killed while exporting): no batch drawn yet
            pos, x = it.batch(step - 1)
            x, y = x.to(dev), labels.to(dev)[pos.to(dev)]
        with averaged():
            log_images(model, x, y, tb, step, len(classes))
            export(model, best, cfg, run_dir, ds, val_x, loss_fn, dev, lat.step, step)
    tb.close()
