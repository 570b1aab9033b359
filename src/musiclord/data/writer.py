"""Writing a dataset directory atomically: rows go to a temp directory, renamed into place at the end.

The log-mel cache is a float16 .npy opened with `numpy.lib.format.open_memmap` at an upper bound
of rows and filled incrementally; `finish` shrinks it to the rows written, writes the manifest and
dataset.json, and only then renames the temp directory to the output, so a killed prepare leaves
no half-written dataset behind.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from musiclord.audio import MelConfig, save_audio
from musiclord.config import to_dict
from musiclord.data.records import FORMAT, HEADER, MANIFEST, MELS, SPLITS, VERSION, WAVES, ClipRecord, write_manifest
from musiclord.errors import DataError

log = logging.getLogger(__name__)


def check_output(out: str | Path, force: bool) -> Path:
    """Refuse an existing output directory unless `force`, and never delete a non-dataset directory."""
    out = Path(out)
    if out.exists():
        if not force:
            raise DataError(f"{out} exists; pass --force to overwrite it")
        if not out.is_dir():
            raise DataError(f"{out} exists and is not a directory")
        if any(out.iterdir()) and not (out / HEADER).is_file():
            raise DataError(f"{out} exists and is not a musiclord dataset; refusing to overwrite it")
    return out


def _shrink_npy(path: Path, n_rows: int) -> None:
    """Cut a C-order .npy file to its first `n_rows` rows, in place (header rewritten, same length)."""
    with open(path, "r+b") as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(f)
        offset = f.tell()
        new_shape = (n_rows,) + tuple(shape[1:])
        text = repr({"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": fortran, "shape": new_shape})
        header_len = offset - (6 + 2 + (2 if version == (1, 0) else 4))
        if len(text) + 1 > header_len:  # fewer digits never need more room
            raise DataError(f"{path}: cannot shrink the header")
        f.seek(offset - header_len)
        f.write((text + " " * (header_len - len(text) - 1) + "\n").encode("latin1"))
        f.truncate(offset + n_rows * int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize)


class DatasetWriter:
    """Builds one dataset directory; use as a context manager (the temp directory goes on error).

    Args:
        out: the dataset directory to create.
        source: "synth", "musicnet" or "folder".
        classes: class names; a record's label is its index here.
        mel: the log-mel representation of mels.npy.
        options: the source's options (stored in dataset.json).
        capacity: upper bound on the rows to be written.
        force: replace an existing dataset at `out`.
    """

    def __init__(
        self,
        out: str | Path,
        *,
        source: str,
        classes: list[str],
        mel: MelConfig,
        options: dict[str, Any],
        capacity: int,
        force: bool = False,
    ) -> None:
        self.out = check_output(out, force)
        self.source, self.classes, self.mel, self.options = source, list(classes), mel, options
        self.force = force
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.tmp-", dir=self.out.parent))
        (self.tmp / WAVES).mkdir()
        self.capacity = max(1, int(capacity))
        self.mels = np.lib.format.open_memmap(
            self.tmp / MELS, mode="w+", dtype=np.float16, shape=(self.capacity, mel.n_mels, mel.n_frames)
        )
        self.records: list[ClipRecord] = []
        self.skipped: list[dict[str, str]] = []
        self._ids: set[str] = set()

    def __enter__(self) -> "DatasetWriter":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.abort()

    def add(
        self,
        *,
        clip_id: str,
        cls: str,
        source: str,
        start_s: float,
        split: str,
        mel: np.ndarray,
        content_id: str | None = None,
        wave: np.ndarray | None = None,
        soundfont: str | None = None,
    ) -> ClipRecord:
        """Append one clip: its (M, T) log-mel row and, if given, its 16 kHz wave (saved to waves/)."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}")
        if clip_id in self._ids:
            raise ValueError(f"duplicate clip id {clip_id!r}")
        index = len(self.records)
        if index >= self.capacity:
            raise ValueError(f"more clips than the capacity {self.capacity}")
        self.mels[index] = mel
        wave_rel = None
        if wave is not None:
            wave_rel = f"{WAVES}/{clip_id}.wav"
            save_audio(self.tmp / wave_rel, wave, self.mel.sample_rate)
        rec = ClipRecord(
            clip_id=clip_id,
            cls=cls,
            label=self.classes.index(cls),
            source=source,
            start_s=round(float(start_s), 4),
            split=split,
            index=index,
            content_id=content_id,
            wave=wave_rel,
            soundfont=soundfont,
        )
        self._ids.add(clip_id)
        self.records.append(rec)
        return rec

    def skip(self, file: str, reason: str) -> None:
        """Record an unusable input (it is listed in dataset.json's "skipped")."""
        log.warning("skipped %s: %s", file, reason)
        self.skipped.append({"file": str(file), "reason": reason})

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for r in self.records:
            out.setdefault(r.split, {c: 0 for c in self.classes})[r.cls] += 1
        return {s: out[s] for s in SPLITS if s in out}

    def finish(self, require_train: bool = True) -> Path:
        """Check every class has training clips, write manifest and header, move into place."""
        counts = self.counts()
        if require_train:
            empty = [c for c in self.classes if counts.get("train", {}).get(c, 0) == 0]
            if empty:
                raise DataError(f"class {', '.join(repr(c) for c in empty)} has no usable training clip")
        n = len(self.records)
        self.mels.flush()
        del self.mels
        if n < self.capacity:
            _shrink_npy(self.tmp / MELS, n)
        write_manifest(self.tmp / MANIFEST, self.records)
        header = {
            "format": FORMAT,
            "version": VERSION,
            "source": self.source,
            "classes": self.classes,
            "mel": to_dict(self.mel),
            "options": self.options,
            "counts": counts,
            "skipped": self.skipped,
        }
        (self.tmp / HEADER).write_text(json.dumps(header, indent=2) + "\n", encoding="utf-8")
        old = None
        if self.out.exists():
            check_output(self.out, self.force)
            old = self.out.parent / f".{self.out.name}.old-{os.getpid()}"
            self.out.rename(old)
        os.chmod(self.tmp, 0o755)
        self.tmp.rename(self.out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        log.info("wrote %d clips to %s", n, self.out)
        return self.out

    def abort(self) -> None:
        """Remove the temp directory (nothing is left at `out`)."""
        if hasattr(self, "mels"):
            del self.mels
        shutil.rmtree(self.tmp, ignore_errors=True)
