"""The evaluator's two dependencies, behind thin adapters.

The evaluator only calls the public APIs of `musiclord.data.Dataset` (`.classes`, `.mel_config`,
`.select`, `.mel_tensor`, `.load_wave`, `.paired`) and `musiclord.translate.Translator`
(`.instruments`, `.mel_config`, `.meta`, `.translate_mel`, `.content_codes`, `.class_codes`).
When those modules are not importable (a partial checkout), minimal readers of the documented
formats (docs/design.md: dataset directory version 1 and the `model.pt` bundle) stand in, so the
evaluator and its tests never depend on anything else.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from musiclord.audio import MelConfig, load_audio
from musiclord.config import from_dict
from musiclord.errors import DataError, MusiclordError

log = logging.getLogger(__name__)


class TranslatorLike(Protocol):
    """What the evaluator needs from a translator (musiclord.translate.Translator)."""

    instruments: list[str]
    mel_config: MelConfig
    meta: dict[str, Any]

    def translate_mel(self, mel: torch.Tensor, to: str | None = None, like_mel: torch.Tensor | None = None) -> torch.Tensor: ...

    def content_codes(self, mel: torch.Tensor) -> torch.Tensor: ...

    def class_codes(self, mel: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class _Record:
    """The fields of a ClipRecord the fallback reader needs."""

    clip_id: str
    cls: str
    label: int
    source: str
    start_s: float
    split: str
    index: int
    content_id: str | None = None
    wave: str | None = None
    soundfont: str | None = None


class _MiniDataset:
    """Read-only reader of a dataset directory (format version 1), used when musiclord.data is absent."""

    def __init__(self, root: Path) -> None:
        self.root = root
        meta = json.loads((root / "dataset.json").read_text())
        if meta.get("format") != "musiclord-dataset" or meta.get("version") != 1:
            raise DataError(f"{root}: not a musiclord dataset (version 1)")
        self.classes: list[str] = list(meta["classes"])
        self.mel_config: MelConfig = from_dict(MelConfig, meta["mel"])
        fields = set(_Record.__dataclass_fields__)
        with open(root / "manifest.jsonl") as f:
            self.records = [_Record(**{k: v for k, v in json.loads(line).items() if k in fields}) for line in f if line.strip()]
        self.mels = np.load(root / "mels.npy", mmap_mode="r")

    def select(self, split: str | None = None, cls: str | None = None) -> list[_Record]:
        return [r for r in self.records if (split is None or r.split == split) and (cls is None or r.cls == cls)]

    def mel_tensor(self, records: list[Any]) -> torch.Tensor:
        idx = [r.index for r in records]
        return torch.from_numpy(np.asarray(self.mels[idx], dtype=np.float32))

    def load_wave(self, record: Any) -> np.ndarray:
        if not record.wave:
            raise DataError(f"{record.clip_id}: no waveform saved")
        path = (self.root / record.wave).resolve()
        if self.root.resolve() not in path.parents:
            raise DataError(f"{record.wave}: path leaves the dataset directory")
        return load_audio(path, self.mel_config.sample_rate)

    def paired(self, split: str = "test") -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for r in self.select(split=split):
            if r.content_id is not None:
                out.setdefault(r.content_id, {})[r.cls] = r
        return out


def open_dataset(data_dir: str | Path) -> Any:
    """`musiclord.data.Dataset.open(data_dir)`, or the fallback reader.

    Raises:
        DataError: no dataset there.
    """
    root = Path(data_dir)
    if not (root / "dataset.json").is_file():
        raise DataError(f"{root}: not a dataset directory (no dataset.json); run `musiclord prepare` first")
    try:
        from musiclord.data import Dataset  # type: ignore[attr-defined]
    except ImportError:
        log.debug("musiclord.data not available: reading %s with the evaluator's reader", root)
        return _MiniDataset(root)
    return Dataset.open(root)


class _MiniTranslator:
    """Stage-2 style translation straight from a LordModel (fallback for musiclord.translate)."""

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


def load_translator(run_dir: str | Path, device: str = "cpu") -> TranslatorLike:
    """`musiclord.translate.Translator.from_checkpoint(run_dir)`, or the fallback.

    Raises:
        CheckpointError: no usable model there.
    """
    try:
        from musiclord.translate import Translator  # type: ignore[attr-defined]
    except ImportError:
        from musiclord.models import load_model

        model, mel_cfg, meta = load_model(run_dir, map_location=device)
        log.debug("musiclord.translate not available: using the evaluator's translator for %s", run_dir)
        return _MiniTranslator(model, mel_cfg, meta)
    try:
        return Translator.from_checkpoint(run_dir, device=device)
    except TypeError:
        return Translator.from_checkpoint(run_dir)
