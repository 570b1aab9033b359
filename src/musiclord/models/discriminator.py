"""A reduced GANSynth-style critic on log-mel images and the WGAN-GP losses.

GANSynth (Engel et al. 2019) judges spectrogram images with a progressive-GAN discriminator:
stacks of 3x3 convolutions with leaky ReLU, 2x average-pool downsampling and channel doubling,
no batch normalisation. We keep that shape at a fraction of the width. With the Wasserstein loss
and a gradient penalty (Gulrajani et al. 2017) batch norm is not allowed: the penalty is taken
per sample, and batch statistics would couple the samples.

Class conditioning is by projection (Miyato and Koyama 2018): score = psi(h) + <embed(y), h>.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Sizes of the critic.

    Attributes:
        channels: width after the input layer; doubles at every downsampling.
        max_channels: cap on the width.
        n_down: 2x downsamplings after the stride-2 input layer (128x128 -> 4x4 with 4).
        n_classes: > 0 adds a projection term for class-conditional scores.
    """

    channels: int = 16
    max_channels: int = 128
    n_down: int = 4
    n_classes: int = 0


class _DownBlock(nn.Module):
    """conv3x3 -> LReLU -> avgpool 2, plus a 1x1 pooled skip (one conv per scale keeps it cheap)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C_in, H, W) -> (B, C_out, H // 2, W // 2)."""
        return F.avg_pool2d(F.leaky_relu(self.conv(x), 0.2) + self.skip(x), 2)


class Discriminator(nn.Module):
    """Wasserstein critic: log-mel image -> one real-valued score per clip.

    Args:
        cfg: critic sizes.
    """

    def __init__(self, cfg: DiscriminatorConfig = DiscriminatorConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        c = cfg.channels
        # a 4x4 stride-2 "patchify" input layer: full-resolution detail (the high bands the
        # paper's critic learned to police) enters the first features at a quarter of the cost
        self.inp = nn.Conv2d(1, c, 4, stride=2, padding=1)
        blocks = []
        for _ in range(cfg.n_down):
            c_out = min(2 * c, cfg.max_channels)
            blocks.append(_DownBlock(c, c_out))
            c = c_out
        self.blocks = nn.Sequential(*blocks)
        self.final = nn.Conv2d(c, c, 3, padding=1)
        self.head = nn.Linear(c, 1)
        self.embed = nn.Embedding(cfg.n_classes, c) if cfg.n_classes > 0 else None

    def forward(self, mel: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Score clips.

        Args:
            mel: (B, n_mels, T) normalised log-mel; n_mels and T divisible by 2**(n_down + 1).
            labels: (B,) class indices, used only by a class-conditional critic.

        Returns:
            (B,) scores (higher means "more real").
        """
        h = self.blocks(F.leaky_relu(self.inp(mel[:, None]), 0.2))
        h = F.leaky_relu(self.final(h), 0.2).mean(dim=(-2, -1))  # (B, C): any input size
        score = self.head(h)[:, 0]
        if self.embed is not None and labels is not None:
            score = score + (self.embed(labels) * h).sum(-1)
        return score


def build_discriminator(cfg: DiscriminatorConfig, device: torch.device | str) -> Discriminator:
    """The critic on `device`; on a CPU with its weights in channels-last layout, so that oneDNN
    runs its 2-D convolutions (and the gradient penalty's double backward) in NHWC: a demo-preset
    stage-2 step took 0.296 s instead of 0.353 s on 2 cores (median of 8 alternating rounds).
    Checkpoints are unaffected (a state dict loads into either layout)."""
    disc = Discriminator(cfg).to(device)
    return disc.to(memory_format=torch.channels_last) if torch.device(device).type == "cpu" else disc


def critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor, drift: float = 1e-3) -> torch.Tensor:
    """Wasserstein critic loss E[D(fake)] - E[D(real)], plus ProGAN's drift term drift * E[D(real)^2]
    (keeps the scores near zero; GANSynth uses 1e-3).

    Args:
        real_scores, fake_scores: (B,) critic outputs.
    """
    loss = fake_scores.mean() - real_scores.mean()
    if drift > 0:
        loss = loss + drift * real_scores.pow(2).mean()
    return loss


def generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """The generator's Wasserstein loss -E[D(fake)] for fake_scores (B,)."""
    return -fake_scores.mean()


def gradient_penalty(
    critic: nn.Module,
    real: torch.Tensor,
    fake: torch.Tensor,
    labels: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """WGAN-GP penalty E[(||grad_x D(x)||_2 - 1)^2] at random interpolates of real and fake.

    Args:
        critic: called as critic(x, labels).
        real, fake: (B, M, T) clips (fake is detached here).
        labels: (B,) class indices for a conditional critic, or None.
        generator: optional RNG for the interpolation weights (reproducible runs).

    Returns:
        Scalar penalty (multiply by the penalty weight, 10 in the paper).
    """
    fake = fake.detach()
    alpha = torch.rand(real.shape[0], 1, 1, generator=generator, device="cpu").to(real.device, real.dtype)
    x = (alpha * real.detach() + (1 - alpha) * fake).requires_grad_(True)
    scores = critic(x, labels)
    (grad,) = torch.autograd.grad(scores.sum(), x, create_graph=True)
    norms = grad.flatten(1).norm(dim=1)
    return (norms - 1).pow(2).mean()
