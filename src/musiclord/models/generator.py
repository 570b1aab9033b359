"""The generator: an AdaIN-VC-style decoder (Chou, Yeh and Lee 2019) over log-mel frames.

1-D convolutions run over time with mel bands as channels. The content code (a short sequence)
is upsampled to the clip's frame rate; every block normalises each channel over time (instance
normalisation) and re-styles it with a scale and shift predicted from the class embedding.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from musiclord.models.config import ModelConfig


class AdaINParams(nn.Module):
    """Class embedding -> the scale and shift of every AdaIN layer (one shared MLP)."""

    def __init__(self, class_dim: int, hidden: int, n_params: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(class_dim, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, n_params),
        )

    def forward(self, class_emb: torch.Tensor) -> torch.Tensor:
        """class_emb (B, E) -> (B, n_params)."""
        return self.net(class_emb)


def adain(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Adaptive instance normalisation.

    Args:
        x: (B, C, T) activations.
        scale, shift: (B, C) style parameters.

    Returns:
        (B, C, T): x normalised per channel over time, then scaled by (1 + scale) and shifted.
    """
    if x.shape[-1] > 1:
        # torch's fused instance norm (the same (x - mean) / sqrt(var + eps)): 2.7x faster than
        # composing it from mean/var/sub/div, forward + backward, and closer to float64 gradients
        return torch.addcmul(shift[..., None], F.instance_norm(x, eps=eps), 1 + scale[..., None])
    return shift[..., None].expand_as(x).clone()  # one frame: x - mean is 0


class AdaINBlock(nn.Module):
    """conv -> AdaIN -> LeakyReLU -> conv -> AdaIN -> LeakyReLU, residual, optional x2 upsampling."""

    def __init__(self, channels: int, kernel_size: int, upsample: bool) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.upsample = upsample
        # No bias before AdaIN: instance norm removes it, so it would get no real gradient and
        # Adam would turn rounding noise into full-size steps (and break DDP parity).
        self.conv1 = nn.Conv1d(channels, channels, kernel_size, padding=pad, bias=False)
        self.conv2 = nn.Conv1d(channels, channels, kernel_size, padding=pad, bias=False)
        self.n_params = 4 * channels

    def forward(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """x (B, C, T), params (B, 4C) -> (B, C, T) or (B, C, 2T) when upsampling."""
        s1, b1, s2, b2 = params.chunk(4, dim=-1)
        if self.upsample:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        h = F.leaky_relu(adain(self.conv1(x), s1, b1), 0.2)
        h = F.leaky_relu(adain(self.conv2(h), s2, b2), 0.2)
        return x + h


def normalise_content(content: torch.Tensor, mode: str, eps: float = 1e-5) -> torch.Tensor:
    """content (B, D, F) as the generator sees it (`ModelConfig.content_norm`): unchanged for
    "none"; each channel's mean over the F frames removed for "mean"; and its deviation set to 1
    as well for "standard"."""
    if mode == "none":
        return content
    centred = content - content.mean(-1, keepdim=True)
    if mode == "mean":
        return centred
    return centred * torch.rsqrt(centred.pow(2).mean(-1, keepdim=True) + eps)


class Generator(nn.Module):
    """Content code + class embedding -> normalised log-mel.

    Args:
        cfg: model sizes.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c = cfg.gen_channels
        self.inp = nn.Conv1d(cfg.content_dim, c, 1)
        self.blocks = nn.ModuleList(
            AdaINBlock(c, cfg.kernel_size, upsample=i < cfg.n_up) for i in range(cfg.gen_blocks)
        )
        self.style = AdaINParams(cfg.class_dim, cfg.adain_hidden, sum(b.n_params for b in self.blocks))
        self.out = nn.Sequential(nn.LeakyReLU(0.2), nn.Conv1d(c, cfg.n_mels, 1))

    def forward(self, content: torch.Tensor, class_emb: torch.Tensor) -> torch.Tensor:
        """Generate.

        Args:
            content: (B, content_dim, content_frames) content codes.
            class_emb: (B, class_dim) class embeddings.

        Returns:
            (B, n_mels, content_frames * 2**n_up) normalised log-mel.
        """
        params = self.style(class_emb).split([b.n_params for b in self.blocks], dim=-1)
        x = self.inp(normalise_content(content, self.cfg.content_norm))
        for block, p in zip(self.blocks, params):
            x = block(x, p)
        return self.out(x)
