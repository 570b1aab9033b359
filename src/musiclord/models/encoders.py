"""Stage-2 encoders (AdaIN-VC style): log-mel -> content code, log-mel -> class embedding."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from musiclord.models.config import ModelConfig


class ConvBlock(nn.Module):
    """Two 1-D convolutions with a residual path, optional instance norm and x2 downsampling."""

    def __init__(self, channels: int, kernel_size: int, downsample: bool, instance_norm: bool) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.conv1 = nn.Conv1d(channels, channels, kernel_size, padding=pad)
        self.conv2 = nn.Conv1d(channels, channels, kernel_size, padding=pad)
        self.norm = nn.InstanceNorm1d(channels, affine=False) if instance_norm else nn.Identity()
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, T) -> (B, C, T) or (B, C, T // 2)."""
        h = F.leaky_relu(self.norm(self.conv1(x)), 0.2)
        h = F.leaky_relu(self.norm(self.conv2(h)), 0.2)
        x = x + h
        return F.avg_pool1d(x, 2) if self.downsample else x


class ContentEncoder(nn.Module):
    """Log-mel -> content code. Instance normalisation strips per-channel statistics (the global
    timbre) at every block, AdaIN-VC's inductive bias against instrument leakage."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        c = cfg.enc_channels
        self.inp = nn.Conv1d(cfg.n_mels, c, cfg.kernel_size, padding=cfg.kernel_size // 2)
        self.blocks = nn.Sequential(
            *(ConvBlock(c, cfg.kernel_size, downsample=i < cfg.n_up, instance_norm=True) for i in range(cfg.enc_blocks))
        )
        self.out = nn.Conv1d(c, cfg.content_dim, 1)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """mel (B, n_mels, n_frames) -> (B, content_dim, content_frames)."""
        return self.out(self.blocks(self.inp(mel)))


class ClassEncoder(nn.Module):
    """Log-mel -> class (instrument) embedding, pooled over time: one timbre vector per clip."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        c = cfg.enc_channels
        self.inp = nn.Conv1d(cfg.n_mels, c, cfg.kernel_size, padding=cfg.kernel_size // 2)
        self.blocks = nn.Sequential(
            *(ConvBlock(c, cfg.kernel_size, downsample=i < cfg.n_up, instance_norm=False) for i in range(cfg.enc_blocks))
        )
        self.out = nn.Sequential(nn.Linear(2 * c, c), nn.LeakyReLU(0.2), nn.Linear(c, cfg.class_dim))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """mel (B, n_mels, T) -> (B, class_dim); any T (mean and max pooling over time)."""
        h = self.blocks(self.inp(mel))
        pooled = torch.cat([h.mean(-1), h.amax(-1)], dim=-1)
        return self.out(pooled)
