"""Codes for a stage-1-only model by latent optimisation (its encoders are untrained).

LORD's stage 1 learns codes only for the training clips. For a new clip we do what stage 1 did
for a training clip, with the generator frozen: optimise a content code (from zero) and a class
embedding (from the mean of the learned embeddings) by Adam so that G(c, e) reproduces the clip.
Slower than an encoder but honest: it uses nothing the model was not trained with.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def fit_codes(
    generator: nn.Module,
    mel: torch.Tensor,
    content_shape: tuple[int, int],
    class_init: torch.Tensor,
    steps: int = 200,
    lr: float = 0.05,
    content_decay: float = 1e-3,
    fit_class: bool = True,
    content_init: torch.Tensor | None = None,
    anchor: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fit content codes and class embeddings to clips through a frozen generator.

    Args:
        generator: G(content (B,Cc,Tc), class_emb (B,E)) -> (B,M,T).
        mel: (B, M, T) target normalised log-mel.
        content_shape: (Cc, Tc).
        class_init: (E,) or (B, E) starting class embedding.
        steps: Adam steps.
        lr: Adam learning rate.
        content_decay: weight of the activation decay mean(c²) (stage 1's regulariser).
        fit_class: optimise the class embedding jointly (else keep class_init).
        content_init: (B, Cc, Tc) starting codes (an encoder's, to refine them), else zeros.
        anchor: weight of mean((c - content_init)²), keeping refined codes near the encoder's.

    Returns:
        (content (B, Cc, Tc), class_emb (B, E)), detached.
    """
    b = mel.shape[0]
    mel = mel.detach()
    start = torch.zeros(b, *content_shape, device=mel.device) if content_init is None else content_init.detach()
    content = start.clone().requires_grad_(True)
    emb = class_init.detach().to(mel.device).expand(b, -1).clone().requires_grad_(fit_class)
    params = [content] + ([emb] if fit_class else [])
    opt = torch.optim.Adam(params, lr=lr)
    flags = [p.requires_grad for p in generator.parameters()]
    for p in generator.parameters():
        p.requires_grad_(False)
    try:
        with torch.enable_grad():
            for _ in range(max(0, steps)):
                opt.zero_grad(set_to_none=True)
                pred = generator(content, emb)
                loss = F.mse_loss(pred, mel) + content_decay * content.pow(2).mean()
                if anchor:
                    loss = loss + anchor * (content - start).pow(2).mean()
                loss.backward()
                opt.step()
    finally:
        for p, f in zip(generator.parameters(), flags):
            p.requires_grad_(f)
    return content.detach(), emb.detach()
