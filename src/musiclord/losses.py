"""Reconstruction losses of LORD (paper Eq. 3): weighted spectral and perceptual terms, each
returned under its own name so that every term is logged.

    total = w_l2·L2 + w_l1·L1 + w_multires·multi-scale L1 + w_flux·L1 of time differences + w_rho·Rho + w_vgg·VGG

Terms with weight 0 are not computed. Rho compares activations of a frozen CP-ResNet instrument
classifier (`musiclord train-perceptual`), VGG those of a frozen VGG16 loaded from a local
torchvision state dict; both compare pred and target through the same frozen network.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from musiclord.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LossConfig:
    """Weights of the reconstruction terms and the files of the perceptual networks.

    Attributes:
        w_l2: spectral mean squared error (the paper's w_f).
        w_l1: spectral mean absolute error.
        w_multires: mean absolute error of the log-mel average-pooled at `multires_scales`
            (coarse spectral envelope and dynamics; sharpens what L2 smooths).
        multires_scales: pooling factors (over both mel and time) of the multi-scale term.
        w_flux: mean absolute error of the frame-to-frame differences of the log-mel (onsets
            and decays: what a blurred note loses most).
        w_rho: Rho perceptual term (the paper's w_sound), needs `rho_checkpoint`.
        w_vgg: VGG16 perceptual term (the paper's w_vis); off when `vgg_weights` is empty.
        rho_checkpoint: a `musiclord train-perceptual` checkpoint.
        vgg_weights: a torchvision-format VGG16 state dict (features.0.weight, ...).
        vgg_taps: how many VGG16 stages (relu1_2, relu2_2, relu3_3, relu4_3) to compare.
    """

    w_l2: float = 1.0
    w_l1: float = 0.0
    w_multires: float = 0.0
    multires_scales: tuple[int, ...] = (2, 4, 8)
    w_flux: float = 0.0
    w_rho: float = 0.0
    w_vgg: float = 0.0
    rho_checkpoint: str = ""
    vgg_weights: str = ""
    vgg_taps: int = 3


def feature_distance(feats_pred: list[torch.Tensor], feats_target: list[torch.Tensor]) -> torch.Tensor:
    """Mean over taps of the mean absolute difference of two lists of activations."""
    terms = [(p - t).abs().mean() for p, t in zip(feats_pred, feats_target)]
    return torch.stack(terms).mean()


class ReconstructionLoss(nn.Module):
    """Named, weighted reconstruction terms between a generated and a target log-mel.

    Args:
        cfg: weights.
        rho: frozen network with `taps(mel (B,M,T)) -> list[Tensor]` (needed if w_rho > 0).
        vgg: frozen network with `taps(mel (B,M,T)) -> list[Tensor]` (used if w_vgg > 0).
    """

    def __init__(self, cfg: LossConfig, rho: nn.Module | None = None, vgg: nn.Module | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.w_rho > 0 and rho is None:
            raise ConfigError("loss.w_rho > 0 needs a Rho network (loss.rho_checkpoint)")
        self.rho = _freeze(rho) if rho is not None and cfg.w_rho > 0 else None
        self.vgg = _freeze(vgg) if vgg is not None and cfg.w_vgg > 0 else None
        self.weights = {
            "l2": cfg.w_l2,
            "l1": cfg.w_l1,
            "multires": cfg.w_multires,
            "flux": cfg.w_flux,
            "rho": cfg.w_rho if self.rho is not None else 0.0,
            "vgg": cfg.w_vgg if self.vgg is not None else 0.0,
        }

    @classmethod
    def from_config(cls, cfg: LossConfig, device: torch.device | str = "cpu") -> "ReconstructionLoss":
        """Build the loss, loading the perceptual networks its config names.

        A VGG weight of > 0 without a weights file turns the VGG term off and says so once.

        Raises:
            ConfigError / CheckpointError: Rho requested without a checkpoint; a missing or
                unreadable weights file.
        """
        from musiclord.perceptual import load_rho, load_vgg16

        rho = vgg = None
        if cfg.w_rho > 0:
            if not cfg.rho_checkpoint:
                raise ConfigError(
                    "loss.w_rho > 0 needs loss.rho_checkpoint (train one with `musiclord train-perceptual`)"
                )
            rho = load_rho(cfg.rho_checkpoint)
        if cfg.w_vgg > 0:
            if cfg.vgg_weights:
                vgg = load_vgg16(cfg.vgg_weights, taps=cfg.vgg_taps)
            else:
                log.warning("VGG perceptual term is off: no VGG16 weights given (loss.vgg_weights / --vgg-weights)")
        return cls(cfg, rho=rho, vgg=vgg).to(device)

    @property
    def active_terms(self) -> list[str]:
        """Names of the terms with a non-zero weight."""
        return [k for k, w in self.weights.items() if w > 0]

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Compute the terms.

        Args:
            pred: (B, M, T) generated normalised log-mel.
            target: (B, M, T) target normalised log-mel.

        Returns:
            {"l2": ..., "l1": ..., "multires": ..., "flux": ..., "rho": ..., "vgg": ... (active terms only),
            "total": weighted sum}; scalars.
        """
        if pred.shape != target.shape:
            raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
        terms: dict[str, torch.Tensor] = {}
        if self.weights["l2"] > 0:
            terms["l2"] = F.mse_loss(pred, target)
        if self.weights["l1"] > 0:
            terms["l1"] = F.l1_loss(pred, target)
        if self.weights["multires"] > 0:
            terms["multires"] = multiscale_l1(pred, target, self.cfg.multires_scales)
        if self.weights["flux"] > 0:
            terms["flux"] = F.l1_loss(pred.diff(dim=-1), target.diff(dim=-1))
        if self.rho is not None:
            terms["rho"] = feature_distance(self.rho.taps(pred), self.rho.taps(target))
        if self.vgg is not None:
            terms["vgg"] = feature_distance(self.vgg.taps(pred), self.vgg.taps(target))
        total = sum((self.weights[k] * v for k, v in terms.items()), pred.new_zeros(()))
        terms["total"] = total
        return terms

    def train(self, mode: bool = True) -> "ReconstructionLoss":
        """The perceptual networks stay in eval mode (frozen batch-norm statistics)."""
        super().train(mode)
        for net in (self.rho, self.vgg):
            if net is not None:
                net.eval()
        return self


def multiscale_l1(pred: torch.Tensor, target: torch.Tensor, scales: tuple[int, ...]) -> torch.Tensor:
    """Mean over scales of the L1 distance of (B, M, T) images average-pooled s×s."""
    terms = []
    for s in scales:
        p = F.avg_pool2d(pred[:, None], s, ceil_mode=True)
        t = F.avg_pool2d(target[:, None], s, ceil_mode=True)
        terms.append(F.l1_loss(p, t))
    if not terms:
        return pred.new_zeros(())
    return torch.stack(terms).mean()


def _freeze(net: nn.Module) -> nn.Module:
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net
