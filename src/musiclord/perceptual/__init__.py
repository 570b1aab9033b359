"""Perceptual networks for the reconstruction loss: Rho (a CP-ResNet instrument classifier that
musiclord trains itself) and VGG16 (weights from a local torchvision state dict)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from musiclord.checkpoint import load_checkpoint, save_checkpoint
from musiclord.config import from_dict, to_dict
from musiclord.errors import CheckpointError
from musiclord.perceptual.cpresnet import CPResNet, RhoConfig
from musiclord.perceptual.vgg import VGG16Features, load_vgg16

PERCEPTUAL_KIND = "perceptual"


def save_rho(net: CPResNet, path: str | Path, classes: list[str], meta: dict[str, Any] | None = None) -> None:
    """Write a Rho network as a musiclord checkpoint of kind "perceptual" (atomic)."""
    payload = {
        "rho_config": to_dict(net.cfg),
        "classes": list(classes),
        "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "meta": meta or {},
    }
    save_checkpoint(payload, path, kind=PERCEPTUAL_KIND)


def load_rho(path: str | Path, with_info: bool = False) -> Any:
    """Rebuild a Rho network (eval mode) from `save_rho`'s file.

    Returns:
        the network, or (network, classes, meta) when `with_info`.

    Raises:
        CheckpointError: missing, foreign, truncated or mismatched file.
    """
    obj = load_checkpoint(path, kind=PERCEPTUAL_KIND)
    try:
        net = CPResNet(from_dict(RhoConfig, obj["rho_config"]))
        net.load_state_dict(obj["state_dict"])
    except (KeyError, RuntimeError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: perceptual checkpoint does not match this musiclord ({str(e)[:120]})") from None
    net.eval()
    if with_info:
        return net, list(obj.get("classes", [])), dict(obj.get("meta", {}))
    return net


__all__ = ["CPResNet", "PERCEPTUAL_KIND", "RhoConfig", "VGG16Features", "load_rho", "load_vgg16", "save_rho"]
