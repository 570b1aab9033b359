"""The evaluator's two dependencies, behind thin adapters.

The evaluator only calls the public APIs of `musiclord.data.Dataset` (`.classes`, `.mel_config`,
`.select`, `.mel_tensor`, `.load_wave`, `.paired`) and `musiclord.translate.Translator`
(`.instruments`, `.mel_config`, `.meta`, `.translate_mel`, `.content_codes`, `.class_codes`);
`open_dataset` and `load_translator` open them, and `TranslatorLike` names what is used.
`_MiniTranslator` wraps a bare LordModel in that interface (the random-model control).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import torch

from musiclord.audio import MelConfig
from musiclord.data import Dataset
from musiclord.errors import MusiclordError
from musiclord.translate import TranslateConfig, Translator


class TranslatorLike(Protocol):
    """What the evaluator needs from a translator (musiclord.translate.Translator)."""

    instruments: list[str]
    mel_config: MelConfig
    meta: dict[str, Any]

    def translate_mel(self, mel: torch.Tensor, to: str | None = None, like_mel: torch.Tensor | None = None) -> torch.Tensor: ...

    def content_codes(self, mel: torch.Tensor) -> torch.Tensor: ...

    def class_codes(self, mel: torch.Tensor) -> torch.Tensor: ...


def open_dataset(data_dir: str | Path) -> Dataset:
    """`musiclord.data.Dataset.open(data_dir)`.

    Raises:
        DataError: no dataset there.
    """
    return Dataset.open(data_dir)


class _MiniTranslator:
    """Stage-2 style translation straight from a LordModel, ungated (used by the random-model control)."""

    def __init__(self, model: Any, mel_config: MelConfig, meta: dict[str, Any]) -> None:
        self.model = model
        self.mel_config = mel_config
        self.meta = meta
        self.instruments = list(model.classes)

    @torch.no_grad()
    def translate_mel(self, mel: torch.Tensor, to: str | None = None, like_mel: torch.Tensor | None = None) -> torch.Tensor:
        if like_mel is not None:
            emb = self.model.encode_class(like_mel)
        elif to is not None:
            emb = self.model.class_embeddings[self.model.class_index(to)]
        else:
            raise MusiclordError("translate_mel needs `to` or `like_mel`")
        return self.model.translate(mel, emb)

    @torch.no_grad()
    def content_codes(self, mel: torch.Tensor) -> torch.Tensor:
        return self.model.encode_content(mel)

    @torch.no_grad()
    def class_codes(self, mel: torch.Tensor) -> torch.Tensor:
        return self.model.encode_class(mel)


def load_translator(run_dir: str | Path, device: str = "cpu", cfg: TranslateConfig = TranslateConfig()) -> TranslatorLike:
    """`musiclord.translate.Translator.from_checkpoint(run_dir, device=device, cfg=cfg)`.

    Raises:
        CheckpointError: no usable model there.
    """
    return Translator.from_checkpoint(run_dir, device=device, cfg=cfg)
