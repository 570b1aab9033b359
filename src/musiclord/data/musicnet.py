"""`prepare_musicnet`: MusicNet's solo recordings (musicnet_metadata.csv, train_data/, test_data/).

Recordings are selected by the metadata's `ensemble` column; the class name is the ensemble
lower-cased without "Solo " (Solo Cello -> cello, Wind Quintet -> wind_quintet). Splits go by
recording: MusicNet's test_data recordings are the test split (unpaired), and a fraction of each
class's train_data recordings is held out as val.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from musiclord.audio import MelConfig
from musiclord.data.recordings import RecordingJob, probe_files, split_files, write_recordings
from musiclord.data.writer import DatasetWriter, check_output
from musiclord.errors import DataError

log = logging.getLogger(__name__)

METADATA = "musicnet_metadata.csv"
DEFAULT_ENSEMBLES = ("Solo Cello", "Solo Piano", "Solo Violin", "Wind Quintet")


@dataclass(frozen=True)
class MusicNetOptions:
    """What `prepare_musicnet` reads.

    Attributes:
        ensembles: values of the metadata's `ensemble` column, one class each.
        hop_seconds: step between clip starts (2.0: back-to-back clips).
        val_fraction: fraction of each class's train_data recordings held out as val.
        silence_db: a window this far below its file's peak (RMS, dB) is dropped.
        save_test_waves: keep the 16 kHz waves of test clips in waves/.
        seed: the val draw.
        workers: processes cutting files.
    """

    ensembles: tuple[str, ...] = DEFAULT_ENSEMBLES
    hop_seconds: float = 2.0
    val_fraction: float = 0.1
    silence_db: float = -40.0
    save_test_waves: bool = True
    seed: int = 0
    workers: int = 2


def class_name(ensemble: str) -> str:
    """"Solo Cello" -> "cello", "Wind Quintet" -> "wind_quintet"."""
    name = re.sub(r"^solo\s+", "", ensemble.strip(), flags=re.IGNORECASE)
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def read_metadata(root: Path) -> list[dict[str, str]]:
    """Rows of musicnet_metadata.csv (needs the `id` and `ensemble` columns)."""
    path = root / METADATA
    if not path.is_file():
        raise DataError(f"{root}: no {METADATA} (is this MusicNet's root folder?)")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"id", "ensemble"} <= set(rows[0]):
        raise DataError(f"{path}: expected the columns id and ensemble")
    return rows


def prepare_musicnet(
    root: str | Path,
    out: str | Path,
    options: MusicNetOptions = MusicNetOptions(),
    mel: MelConfig = MelConfig(),
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Cut MusicNet's recordings of the chosen ensembles into a dataset at `out`.

    Raises:
        DataError: a missing root or metadata, an unknown ensemble, a class with no usable
            clip, or an existing `out` without `force`.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such MusicNet folder")
    opts = options
    if opts.hop_seconds <= 0 or not 0 <= opts.val_fraction < 1:
        raise DataError("need hop_seconds > 0 and 0 <= val_fraction < 1")
    check_output(out, force)
    rows = read_metadata(root)
    known = sorted({r["ensemble"] for r in rows})
    lookup = {e.lower(): e for e in known}
    ensembles = []
    for e in opts.ensembles:
        if e.strip().lower() not in lookup:
            raise DataError(f"unknown MusicNet ensemble {e!r}; the metadata has {', '.join(known)}")
        ensembles.append(lookup[e.strip().lower()])
    classes = [class_name(e) for e in ensembles]
    if len(set(classes)) != len(classes):
        raise DataError(f"ensembles {', '.join(ensembles)} repeat a class")

    rng = np.random.default_rng(opts.seed)
    jobs: list[RecordingJob] = []
    missing: list[str] = []
    skipped: list[tuple[str, str]] = []
    capacity = 0
    for ens, cls in zip(ensembles, classes):
        ids = sorted((r["id"].strip() for r in rows if r["ensemble"] == ens), key=lambda s: (len(s), s))
        train, test = [], []
        for i in ids:
            if (root / "train_data" / f"{i}.wav").is_file():
                train.append(f"train_data/{i}.wav")
            elif (root / "test_data" / f"{i}.wav").is_file():
                test.append(f"test_data/{i}.wav")
            else:
                missing.append(i)
        train, n_max, bad = probe_files(root, train, mel.clip_seconds, opts.hop_seconds)
        test, n_max_test, bad_test = probe_files(root, test, mel.clip_seconds, opts.hop_seconds)
        skipped += bad + bad_test
        splits = split_files(train, opts.val_fraction, 0.0, rng) | {t: "test" for t in test}
        for rel in train + test:
            keep = splits[rel] == "test" and opts.save_test_waves
            jobs.append(RecordingJob(str(root / rel), rel, cls, splits[rel], opts.hop_seconds, opts.silence_db, keep, mel))
            capacity += (n_max | n_max_test)[rel]
        log.info("%s (%s): %d train/val and %d test recordings", cls, ens, len(train), len(test))

    options_out = dataclasses.asdict(opts) | {"root": str(root), "ensembles_by_class": dict(zip(classes, ensembles))}
    with DatasetWriter(out, source="musicnet", classes=classes, mel=mel, options=options_out,
                       capacity=capacity, force=force) as writer:  # fmt: skip
        if missing:
            log.warning("%d selected recordings have no audio in train_data/ or test_data/; skipped", len(missing))
            for i in missing:
                writer.skipped.append({"file": f"{i}.wav", "reason": "not found in train_data/ or test_data/"})
        for rel, reason in skipped:
            writer.skip(rel, reason)
        writer.options["dropped_silent_windows"] = write_recordings(writer, jobs, opts.workers, progress)
        return writer.finish()
