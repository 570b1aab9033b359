"""The inference bundle: generator, encoders and the learned class embeddings, saved as one
self-describing checkpoint (kind "model") that rebuilds without any training code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from musiclord.audio.mel import MelConfig
from musiclord.checkpoint import load_checkpoint, save_checkpoint
from musiclord.config import from_dict, to_dict
from musiclord.errors import CheckpointError, ConfigError
from musiclord.models.config import ModelConfig
from musiclord.models.encoders import ClassEncoder, ContentEncoder
from musiclord.models.erasure import erase
from musiclord.models.generator import Generator, normalise_content

MODEL_FILE = "model.pt"


class LordModel(nn.Module):
    """Everything translation needs.

    Attributes:
        cfg: model sizes.
        classes: instrument names, in class-index order.
        generator: content code + class embedding -> log-mel.
        content_encoder: log-mel -> content code (stage 2).
        class_encoder: log-mel -> class embedding (stage 2).
        class_embeddings: (K, class_dim) buffer, the embedding of each trained instrument.
    """

    def __init__(self, cfg: ModelConfig, classes: list[str]) -> None:
        super().__init__()
        self.cfg = cfg
        self.classes = list(classes)
        self.generator = Generator(cfg)
        self.content_encoder = ContentEncoder(cfg)
        self.class_encoder = ClassEncoder(cfg)
        self.register_buffer("class_embeddings", torch.zeros(len(classes), cfg.class_dim))
        if cfg.content_erasure:  # the identity until `set_erasure`
            n = cfg.content_dim * cfg.content_frames
            self.register_buffer("erase_mean", torch.zeros(n))
            self.register_buffer("erase_matrix", torch.zeros(n, n))

    def class_index(self, name: str) -> int:
        """Index of an instrument by name; CheckpointError-free ValueError listing known names."""
        if name not in self.classes:
            raise KeyError(name)
        return self.classes.index(name)

    def encode_content(self, mel: torch.Tensor, erased: bool = True) -> torch.Tensor:
        """mel (B, n_mels, n_frames) -> content (B, content_dim, content_frames), normalised per
        channel as `cfg.content_norm` says and erased as `cfg.content_erasure` says (what the
        generator sees; `erased=False`: the codes before the erasure)."""
        content = normalise_content(self.content_encoder(mel), self.cfg.content_norm)
        if self.cfg.content_erasure and erased:
            content = erase(content, self.erase_mean, self.erase_matrix)
        return content

    def set_erasure(self, mean: torch.Tensor, matrix: torch.Tensor) -> None:
        """Install a fitted erasure (`fit_leace` on flattened codes: mean (D*F,), matrix (D*F, D*F))."""
        if not self.cfg.content_erasure:
            raise ValueError("set_erasure: this model was built with content_erasure=False")
        self.erase_mean.copy_(mean)
        self.erase_matrix.copy_(matrix)

    def encode_class(self, mel: torch.Tensor) -> torch.Tensor:
        """mel (B, n_mels, T) -> class embedding (B, class_dim)."""
        return self.class_encoder(mel)

    def decode(self, content: torch.Tensor, class_emb: torch.Tensor) -> torch.Tensor:
        """content (B, content_dim, content_frames), class_emb (B, class_dim) -> (B, n_mels, n_frames)."""
        return self.generator(content, class_emb)

    def translate(self, mel: torch.Tensor, class_emb: torch.Tensor) -> torch.Tensor:
        """Re-render clips with another timbre.

        Args:
            mel: (B, n_mels, n_frames) normalised log-mel of the source clips.
            class_emb: (B, class_dim) or (class_dim,) target class embedding.

        Returns:
            (B, n_mels, n_frames) normalised log-mel.
        """
        if class_emb.dim() == 1:
            class_emb = class_emb.expand(mel.shape[0], -1)
        return self.decode(self.encode_content(mel), class_emb)


def save_model(
    model: LordModel, path: str | Path, mel_cfg: MelConfig, meta: dict[str, Any] | None = None
) -> None:
    """Write the inference bundle atomically (weights, configs, class names, free-form meta)."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {
        "model_config": to_dict(model.cfg),
        "mel_config": to_dict(mel_cfg),
        "classes": list(model.classes),
        "state_dict": state,
        "meta": meta or {},
    }
    save_checkpoint(payload, path, kind="model")


def resolve_model_path(path: str | Path) -> Path:
    """A run directory or a checkpoint file -> the model file; 'pretrained' -> the shipped model."""
    if str(path) == "pretrained":
        from musiclord.pretrained import pretrained_path

        return pretrained_path()
    p = Path(path)
    if p.is_dir():
        p = p / MODEL_FILE
    if not p.exists():
        raise CheckpointError(f"no trained model at {path} (expected a run directory holding {MODEL_FILE})")
    return p


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[LordModel, MelConfig, dict[str, Any]]:
    """Rebuild a LordModel from `save_model`'s file (or a run directory holding one).

    Returns:
        (model in eval mode, its MelConfig, meta dict).

    Raises:
        CheckpointError: missing, corrupt, foreign or mismatched file.
    """
    p = resolve_model_path(path)
    obj = load_checkpoint(p, kind="model", map_location=map_location)
    try:
        cfg = from_dict(ModelConfig, obj["model_config"])
        mel_cfg = from_dict(MelConfig, obj["mel_config"])
        model = LordModel(cfg, list(obj["classes"]))
        model.load_state_dict(obj["state_dict"])
    except (ConfigError, KeyError, RuntimeError, TypeError, ValueError) as e:
        raise CheckpointError(f"{p}: model checkpoint does not match this musiclord ({str(e)[:120]})") from None
    model.eval()
    return model, mel_cfg, dict(obj.get("meta", {}))
