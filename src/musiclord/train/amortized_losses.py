"""Stage 2's losses: reconstruction, regression to the stage-1 codes, the adversarial term, and
the *translation* terms.

Stage 2 of LORD only ever reconstructs: G(E_c(x), E_y(x)) against x. A translation, x's content
with another instrument's embedding, is never judged, and that is where the model is worst (a
piano played from a cello's code lacks the onsets and the silence between notes that a piano
has: docs/results.md). With `w_adv_translation` the class-conditional critic also sees
translations G(E_c(x), e_t) as fakes of their target class t, and the generator is trained to
make them pass (the StarGAN-VC recipe on LORD's stage 2); with `w_cycle` the content encoder
must read the source's stage-1 content code back from the translation (MUNIT's latent
reconstruction), so that the adversarial term cannot trade the notes for the target's texture.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from musiclord.losses import ReconstructionLoss
from musiclord.models import LordModel
from musiclord.models.discriminator import critic_loss, generator_loss, gradient_penalty
from musiclord.train.amortized_config import AmortizedConfig
from musiclord.train.common import frozen

TRANSLATION_SEED = 13  # added to the run's seed: the target draws differ from the swaps' and the EQ's


def translation_targets(y: torch.Tensor, n_classes: int, seed: int, step: int, batch_size: int,
                        local: slice, allowed: tuple[int, ...] = ()) -> torch.Tensor:
    """For clips of classes y (b,), a target class other than each clip's own, uniform over the
    others, or over the `allowed` ones when given (a clip whose class is the only allowed one
    keeps its own: its "translation" is a reconstruction with its class embedding): (b,) long on
    y's device. The draw is a function of (seed, step) for the global batch of `batch_size`, of
    which y is the `local` share (resumed and distributed runs draw alike)."""
    g = torch.Generator().manual_seed(seed * 1000003 + step)
    if not allowed or set(allowed) >= set(range(n_classes)):
        shift = torch.randint(1, n_classes, (batch_size,), generator=g)[local].to(y.device)
        return (y + shift) % n_classes
    u, y_cpu = torch.rand(batch_size, generator=g)[local], y.cpu()
    out = y_cpu.clone()
    for c in range(n_classes):
        others = torch.tensor([t for t in sorted(set(allowed)) if t != c] or [c])
        rows = y_cpu == c
        out[rows] = others[(u[rows] * len(others)).long()]
    return out.to(y.device)


def critic_update(model: LordModel, disc: nn.Module, opt_d: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                  ac: AmortizedConfig, step: int, gp_gen: torch.Generator,
                  check: Callable[[torch.Tensor], bool] = lambda loss: True,
                  sync: Callable[[list[nn.Parameter]], None] = lambda params: None,
                  y_to: torch.Tensor | None = None, class_emb: torch.Tensor | None = None) -> dict[str, float]:
    """The critic's `ac.n_critic` updates of one stage-2 step, on (B, M, T) mels x of classes y
    against the model's reconstructions, with the lazy gradient penalty (StyleGAN2: every
    gp_every-th critic step, scaled up). With target classes `y_to` (B,) and the embeddings
    `class_emb` (n_classes, E), the translations of x into y_to are fakes of class y_to too, and
    every other clip's penalty interpolates towards its translation instead of its
    reconstruction (same cost). `check` may veto a step (the non-finite guard), `sync` averages
    gradients over processes. Returns the scalars to log."""
    scal: dict[str, float] = {}
    for j in range(ac.n_critic):
        with torch.no_grad():
            content = model.encode_content(x)
            fake = model.decode(content, model.encode_class(x))
            fake_tr = None if y_to is None else model.decode(content, class_emb[y_to])
        real_s, fake_s = disc(x, y), disc(fake, y)
        if fake_tr is None:
            d_loss = critic_loss(real_s, fake_s, ac.drift)
        else:
            tr_s = disc(fake_tr, y_to)
            d_loss = critic_loss(real_s, torch.cat([fake_s, tr_s]), ac.drift)
            scal["adv/wasserstein_translation"] = (real_s.mean() - tr_s.mean()).item()
        if (step * ac.n_critic + j) % ac.gp_every == 0:
            gp_fake, gp_y = fake, y
            if fake_tr is not None:
                odd = (torch.arange(len(x), device=x.device) % 2 == 1)
                gp_fake = torch.where(odd[:, None, None], fake_tr, fake)
                gp_y = torch.where(odd, y_to, y)
            gp = gradient_penalty(disc, x, gp_fake, gp_y, generator=gp_gen)
            d_loss = d_loss + ac.gp_weight * ac.gp_every * gp
            scal["adv/gp"] = gp.item()
        opt_d.zero_grad(set_to_none=True)
        if check(d_loss):
            d_loss.backward()
            sync(list(disc.parameters()))
            opt_d.step()
    scal.update({"adv/critic": d_loss.item(), "adv/wasserstein": (real_s.mean() - fake_s.mean()).item()})
    return scal


def amortized_loss(model: LordModel, disc: nn.Module | None, loss_fn: ReconstructionLoss, x: torch.Tensor,
                   y: torch.Tensor, content_t: torch.Tensor, class_t: torch.Tensor, ac: AmortizedConfig,
                   x_in: torch.Tensor | None = None, y_to: torch.Tensor | None = None,
                   class_emb: torch.Tensor | None = None, x_content: torch.Tensor | None = None,
                   detach: torch.Tensor | None = None,
                   ) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The encoders' and generator's loss on a batch: reconstruction of x (B, M, T), regression to
    the stage-1 codes (content_t (B, D, F), class_t (B, class_dim)) and, when `disc` is given,
    the adversarial term (the critic's weights get no gradient). The encoders see `x_in` when
    given (x with some clips swapped for their rerenders, see `rerender_rows`), else x; the
    content encoder alone sees `x_content` when given (x_in with some clips swapped for their
    renders on another instrument).
    With target classes `y_to` (B,) and the embeddings `class_emb` (n_classes, E), the
    translations G(E_c(x_content or x_in), class_emb[y_to]) add `ac.w_adv_translation` times their adversarial
    term (when `disc` is given) and `ac.w_cycle` times ||E_c(translation) - content_t||².
    The clips where the (B,) bool mask `detach` is set reach the generator with their codes
    detached: their reconstruction and adversarial terms train the generator alone (the encoders
    still regress the stage-1 codes on them).

    Returns:
        (total loss, reconstruction terms, {"content", "class"[, "adversarial", "adv_translation",
        "cycle"]}).
    """
    x_in = x if x_in is None else x_in
    content, class_emb_x = model.encode_content(x_in if x_content is None else x_content), model.encode_class(x_in)
    if detach is None:
        pred = model.decode(content, class_emb_x)
    else:
        rows = detach[:, None]
        pred = model.decode(torch.where(rows[..., None], content.detach(), content),
                            torch.where(rows, class_emb_x.detach(), class_emb_x))
    terms = loss_fn(pred, x)
    parts = {"content": F.mse_loss(content, content_t), "class": F.mse_loss(class_emb_x, class_t)}
    loss = ac.w_rec * terms["total"] + ac.w_content * parts["content"] + ac.w_class * parts["class"]
    adv_tr = disc is not None and ac.w_adv_translation > 0
    translated = None
    if y_to is not None and (adv_tr or ac.w_cycle > 0):
        translated = model.decode(content, class_emb[y_to])
    if disc is not None:
        with frozen(disc):
            parts["adversarial"] = generator_loss(disc(pred, y))
            if adv_tr and translated is not None:
                parts["adv_translation"] = generator_loss(disc(translated, y_to))
        loss = loss + ac.w_adv * parts["adversarial"] + ac.w_adv_translation * parts.get("adv_translation", 0.0)
    if ac.w_cycle > 0 and translated is not None:
        parts["cycle"] = F.mse_loss(model.encode_content(translated), content_t)
        loss = loss + ac.w_cycle * parts["cycle"]
    return loss, terms, parts
