"""Rho: a small receptive-field-regularized CP-ResNet (Koutini et al. 2020) over log-mel images.

CP-ResNet keeps the receptive field of a ResNet in the range that generalises on spectrograms by
replacing the 3x3 kernels of the later blocks with 1x1 ones. Trained by musiclord as an
instrument classifier (`musiclord train-perceptual`), its intermediate activations are the
"Rho" perceptual loss of the paper.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class RhoConfig:
    """CP-ResNet sizes.

    Attributes:
        n_classes: instruments it classifies.
        channels: channels of the three stages.
        kernels: kernel size of each of the six residual blocks (two per stage); the 1s at the
            end are the receptive-field regularization.
    """

    n_classes: int = 4
    channels: tuple[int, ...] = (16, 32, 64)
    kernels: tuple[int, ...] = (3, 3, 3, 1, 1, 1)


class _Block(nn.Module):
    """Two k x k convolutions with batch norm and a residual path (1x1 projection if needed)."""

    def __init__(self, c_in: int, c_out: int, k: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, k, padding=k // 2, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.skip = nn.Identity() if c_in == c_out else nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C_in, H, W) -> (B, C_out, H, W)."""
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return F.relu(h + self.skip(x))


class CPResNet(nn.Module):
    """Log-mel -> instrument logits, with feature taps for the perceptual loss.

    Args:
        cfg: sizes.
    """

    def __init__(self, cfg: RhoConfig) -> None:
        super().__init__()
        if len(cfg.kernels) != 2 * len(cfg.channels):
            raise ValueError("RhoConfig: kernels needs two entries per stage")
        self.cfg = cfg
        c0 = cfg.channels[0]
        self.stem = nn.Sequential(nn.Conv2d(1, c0, 5, stride=2, padding=2, bias=False), nn.BatchNorm2d(c0), nn.ReLU())
        stages = []
        c_in = c0
        for s, c in enumerate(cfg.channels):
            k1, k2 = cfg.kernels[2 * s], cfg.kernels[2 * s + 1]
            stages.append(nn.Sequential(_Block(c_in, c, k1), _Block(c, c, k2)))
            c_in = c
        self.stages = nn.ModuleList(stages)
        self.head = nn.Sequential(nn.Conv2d(c_in, cfg.n_classes, 1, bias=False), nn.BatchNorm2d(cfg.n_classes))

    def taps(self, mel: torch.Tensor) -> list[torch.Tensor]:
        """mel (B, M, T) -> activations of the stem and of each stage, (B, C_i, H_i, W_i)."""
        x = self.stem(mel[:, None])
        taps = [x]
        for i, stage in enumerate(self.stages):
            x = stage(x)
            taps.append(x)
            if i < len(self.stages) - 1:
                x = F.max_pool2d(x, 2)
        return taps

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """mel (B, M, T) -> logits (B, n_classes)."""
        x = self.taps(mel)[-1]
        return self.head(x).mean(dim=(-2, -1))
