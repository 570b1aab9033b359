"""The dataset directory format (version 1): `ClipRecord` rows of manifest.jsonl and their checks.

A dataset directory holds dataset.json (header), manifest.jsonl (one `ClipRecord` per line),
mels.npy (float16 (N, M, T) normalised log-mel, row i = record with index i) and waves/ (16 kHz
WAVs of test clips). See docs/design.md.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from musiclord.errors import DataError

log = logging.getLogger(__name__)

FORMAT = "musiclord-dataset"
VERSION = 1
SPLITS = ("train", "val", "test", "aux", "rerender", "cross")
HEADER = "dataset.json"
MANIFEST = "manifest.jsonl"
MELS = "mels.npy"
WAVES = "waves"


@dataclass(frozen=True)
class ClipRecord:
    """One 2 s clip of a dataset.

    Attributes:
        clip_id: unique id within the dataset (also the stem of its wave file).
        cls: class (instrument) name, one of the dataset's classes.
        label: index of `cls` in the dataset's classes.
        source: the file or piece it was cut from, relative to the source root
            (a corpus path with a voice for synth, e.g. "bach/bwv1.6.mxl#Soprano").
        start_s: start of the clip in the source, seconds (synth: at the window's tempo).
        split: "train", "val", "test", "aux", "rerender" (a training clip's notes played by
            another sample bank; its content_id is that training clip's clip_id) or "cross" (a
            training clip's notes on another instrument; content_id and cls as a rerender's).
        index: row of its log-mel in mels.npy.
        content_id: shared by the renders of one passage on every instrument (paired test
            clips); for a rerender or cross render, the clip_id of the training clip it re-renders; None for
            unpaired clips.
        wave: path of its 16 kHz WAV relative to the dataset directory, or None.
        soundfont: file name of the sample bank that rendered it (synth), else None.
    """

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

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "manifest") -> "ClipRecord":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        missing = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING} - set(d)
        if unknown or missing:
            raise DataError(f"{where}: bad record (unknown fields {sorted(unknown)}, missing {sorted(missing)})")
        try:
            rec = cls(
                clip_id=str(d["clip_id"]),
                cls=str(d["cls"]),
                label=int(d["label"]),
                source=str(d["source"]),
                start_s=float(d["start_s"]),
                split=str(d["split"]),
                index=int(d["index"]),
                content_id=None if d.get("content_id") is None else str(d["content_id"]),
                wave=None if d.get("wave") is None else str(d["wave"]),
                soundfont=None if d.get("soundfont") is None else str(d["soundfont"]),
            )
        except (TypeError, ValueError) as e:
            raise DataError(f"{where}: bad record ({e})") from None
        if rec.split not in SPLITS:
            raise DataError(f"{where}: unknown split {rec.split!r} (expected one of {', '.join(SPLITS)})")
        return rec


def check_relative(path: str, where: str) -> PurePosixPath:
    """A manifest path must be relative and stay inside its root (no absolute paths, no '..')."""
    p = PurePosixPath(path)
    if not path or p.is_absolute() or path.startswith("~") or "\\" in path or ":" in p.parts[0]:
        raise DataError(f"{where}: path {path!r} must be relative to the dataset directory")
    if ".." in p.parts:
        raise DataError(f"{where}: path {path!r} leaves the dataset directory")
    return p


def resolve_inside(root: Path, path: str, where: str) -> Path:
    """`root / path`, refusing any path (or symlink) that resolves outside `root`."""
    check_relative(path, where)
    root_r = root.resolve()
    full = (root / path).resolve()
    if full != root_r and root_r not in full.parents:
        raise DataError(f"{where}: path {path!r} leaves the dataset directory")
    return full


def write_manifest(path: Path, records: list[ClipRecord]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(r.to_json() + "\n")


def read_manifest(path: Path) -> list[ClipRecord]:
    """Parse manifest.jsonl; every record is checked, paths included."""
    if not path.is_file():
        raise DataError(f"{path}: missing (not a musiclord dataset directory?)")
    records = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path.name}:{i}"
            try:
                d = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{where}: not JSON ({e.msg})") from None
            if not isinstance(d, dict):
                raise DataError(f"{where}: a record must be a JSON object")
            rec = ClipRecord.from_dict(d, where)
            check_relative(rec.source, where)
            if rec.wave is not None:
                check_relative(rec.wave, where)
            records.append(rec)
    return records
