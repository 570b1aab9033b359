"""Reading a dataset directory: `Dataset.open(dir)` with the memory-mapped log-mel cache."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch

from musiclord.audio import MelConfig, load_audio
from musiclord.config import from_dict
from musiclord.data.records import FORMAT, HEADER, MANIFEST, MELS, SPLITS, VERSION, ClipRecord, read_manifest, resolve_inside
from musiclord.errors import ConfigError, DataError

log = logging.getLogger(__name__)


def read_header(root: Path) -> dict[str, Any]:
    """dataset.json, with its format and version checked."""
    path = root / HEADER
    if not root.is_dir():
        raise DataError(f"{root}: no such dataset directory")
    if not path.is_file():
        raise DataError(f"{root}: not a musiclord dataset (no {HEADER}; run 'musiclord prepare')")
    try:
        header = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise DataError(f"{path}: not a musiclord dataset header")
    if header.get("version") != VERSION:
        raise DataError(
            f"{path}: dataset format version {header.get('version')!r} is not supported "
            f"(this musiclord reads version {VERSION}); prepare the dataset again"
        )
    if not isinstance(header.get("classes"), list) or not header["classes"]:
        raise DataError(f"{path}: no classes")
    return header


class Dataset:
    """A prepared dataset: class names, clip records and the float16 log-mel cache.

    Attributes:
        root: the dataset directory.
        classes: class names; `record.label` indexes them.
        mel_config: the `MelConfig` the log-mels were made with.
        records: every `ClipRecord`, in mels.npy row order.
        mels: (N, M, T) float16 memory-mapped log-mels (numpy, read-only).
        source: "synth", "musicnet" or "folder".
        options: the options the dataset was prepared with.
        skipped: the inputs skipped while preparing ({"file", "reason"} dicts).
    """

    def __init__(self, root: Path, header: dict[str, Any], records: list[ClipRecord], mels: np.ndarray) -> None:
        self.root = root
        self.header = header
        self.classes: list[str] = list(header["classes"])
        try:
            self.mel_config: MelConfig = from_dict(MelConfig, header.get("mel", {}))
        except ConfigError as e:
            raise DataError(f"{root / HEADER}: bad mel config ({e})") from None
        self.records = records
        self.mels = mels
        self.source: str = str(header.get("source", ""))
        self.options: dict[str, Any] = dict(header.get("options", {}))
        self.skipped: list[dict[str, str]] = list(header.get("skipped", []))

    @classmethod
    def open(cls, root: str | Path) -> "Dataset":
        """Open a dataset directory, checking version, records, paths and the cache shape.

        Raises:
            DataError: a missing or foreign directory, another format version, a bad record,
                a path that leaves the directory, or a cache that does not match the manifest.
        """
        root = Path(root)
        header = read_header(root)
        records = read_manifest(root / MANIFEST)
        classes = header["classes"]
        seen: set[str] = set()
        for i, r in enumerate(records):
            where = f"{MANIFEST}:{i + 1}"
            if r.index != i:
                raise DataError(f"{where}: index {r.index} out of order (expected {i})")
            if r.clip_id in seen:
                raise DataError(f"{where}: duplicate clip id {r.clip_id!r}")
            seen.add(r.clip_id)
            if not (0 <= r.label < len(classes)) or classes[r.label] != r.cls:
                raise DataError(f"{where}: class {r.cls!r} does not match label {r.label}")
            if r.wave is not None:
                resolve_inside(root, r.wave, where)
        try:
            mels = np.load(root / MELS, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as e:
            raise DataError(f"{root / MELS}: unreadable log-mel cache ({e})") from None
        ds = cls(root, header, records, mels)
        m = ds.mel_config
        if mels.dtype != np.float16 or mels.shape != (len(records), m.n_mels, m.n_frames):
            raise DataError(
                f"{root / MELS}: expected float16 {(len(records), m.n_mels, m.n_frames)}, "
                f"found {mels.dtype} {mels.shape}"
            )
        return ds

    def __len__(self) -> int:
        return len(self.records)

    def select(self, split: str | None = None, cls: str | None = None) -> list[ClipRecord]:
        """Records of one split and/or class (None: any), in row order."""
        if split is not None and split not in SPLITS:
            raise DataError(f"unknown split {split!r} (expected one of {', '.join(SPLITS)})")
        if cls is not None and cls not in self.classes:
            raise DataError(f"unknown class {cls!r} (this dataset has {', '.join(self.classes)})")
        return [r for r in self.records if (split is None or r.split == split) and (cls is None or r.cls == cls)]

    def mel_tensor(self, records: list[ClipRecord]) -> torch.Tensor:
        """Log-mels of `records`, in their order.

        Returns:
            (B, M, T) float32 tensor.
        """
        if not records:
            m = self.mel_config
            return torch.zeros(0, m.n_mels, m.n_frames)
        idx = np.fromiter((r.index for r in records), dtype=np.int64, count=len(records))
        return torch.from_numpy(np.asarray(self.mels[idx], dtype=np.float32))

    def load_wave(self, record: ClipRecord) -> np.ndarray:
        """The clip's saved waveform, (N,) float32 at the dataset's sample rate.

        Raises:
            DataError: the record has no saved wave.
        """
        if record.wave is None:
            raise DataError(f"clip {record.clip_id!r} has no saved waveform (only test clips do)")
        path = resolve_inside(self.root, record.wave, record.clip_id)
        return load_audio(path, self.mel_config.sample_rate)

    def paired(self, split: str = "test") -> dict[str, dict[str, ClipRecord]]:
        """Paired clips of a split: content_id -> {class: record} (unpaired clips are left out)."""
        out: dict[str, dict[str, ClipRecord]] = {}
        for r in self.records:
            if r.split == split and r.content_id is not None:
                out.setdefault(r.content_id, {})[r.cls] = r
        return out

    def counts(self) -> dict[str, dict[str, int]]:
        """Clips per split and class."""
        c = Counter((r.split, r.cls) for r in self.records)
        return {s: {k: c[(s, k)] for k in self.classes} for s in SPLITS if any(c[(s, k)] for k in self.classes)}

    def hours(self, split: str | None = None) -> float:
        """Audio duration of a split's clips (all clips when None), hours."""
        n = len(self.records) if split is None else sum(r.split == split for r in self.records)
        return n * self.mel_config.clip_seconds / 3600.0


def describe(ds: Dataset) -> str:
    """A human-readable summary: classes, clips and hours per split and class, pairs, skipped files."""
    counts = ds.counts()
    width = max(8, *(len(c) for c in ds.classes))
    lines = [
        f"dataset   {ds.root}",
        f"source    {ds.source} (format v{VERSION}), {len(ds)} clips of {ds.mel_config.clip_seconds:g} s, "
        f"{ds.hours():.2f} h",
        f"classes   {', '.join(ds.classes)}",
        "",
        f"{'split':<6} " + " ".join(f"{c:>{width}}" for c in ds.classes) + f" {'total':>8} {'hours':>7}",
    ]
    for split, per in counts.items():
        total = sum(per.values())
        lines.append(
            f"{split:<6} " + " ".join(f"{per[c]:>{width}}" for c in ds.classes) + f" {total:>8} {ds.hours(split):>7.2f}"
        )
    pairs = ds.paired("test")
    if pairs:
        full = sum(len(g) == len(ds.classes) for g in pairs.values())
        lines.append(f"\npaired test windows: {len(pairs)} ({full} rendered on every class)")
    else:
        lines.append("\npaired test windows: 0")
    lines.append(f"skipped files: {len(ds.skipped)}")
    for s in ds.skipped[:20]:
        lines.append(f"  {s.get('file')}: {s.get('reason')}")
    if len(ds.skipped) > 20:
        lines.append(f"  ... and {len(ds.skipped) - 20} more (see dataset.json)")
    return "\n".join(lines)
