"""`prepare_folder`: any folder of recordings, one subfolder per class, any audio format.

ROOT/<class>/**/<file> (files found by `musiclord.audio.list_audio`). Splits go by file: a
fraction of each class's files is held out as val (and, if asked, as test); windows as for
MusicNet.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from musiclord.audio import MelConfig, list_audio
from musiclord.data.recordings import RecordingJob, probe_files, split_files, write_recordings
from musiclord.data.writer import DatasetWriter, check_output
from musiclord.errors import DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FolderOptions:
    """What `prepare_folder` reads.

    Attributes:
        classes: subfolders to use, in this order (empty: every subfolder, sorted).
        hop_seconds: step between clip starts.
        val_fraction, test_fraction: fraction of each class's files held out (a class with
            several files gets at least one val file; test only when test_fraction > 0).
        silence_db: a window this far below its file's peak (RMS, dB) is dropped.
        save_test_waves: keep the 16 kHz waves of test clips in waves/.
        seed: the split draw.
        workers: processes cutting files.
    """

    classes: tuple[str, ...] = ()
    hop_seconds: float = 2.0
    val_fraction: float = 0.1
    test_fraction: float = 0.0
    silence_db: float = -40.0
    save_test_waves: bool = True
    seed: int = 0
    workers: int = 2


def prepare_folder(
    root: str | Path,
    out: str | Path,
    options: FolderOptions = FolderOptions(),
    mel: MelConfig = MelConfig(),
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Cut the recordings under ROOT/<class>/ into a dataset at `out`.

    Raises:
        DataError: a missing root, fewer than two classes, a class with no audio file or no
            usable clip, or an existing `out` without `force`.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder")
    opts = options
    if opts.hop_seconds <= 0 or not (0 <= opts.val_fraction and 0 <= opts.test_fraction and opts.val_fraction + opts.test_fraction < 1):
        raise DataError("need hop_seconds > 0 and val_fraction + test_fraction < 1")
    check_output(out, force)
    subdirs = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    classes = list(opts.classes) or subdirs
    unknown = [c for c in classes if c not in subdirs]
    if unknown:
        raise DataError(f"{root}: no class folder {', '.join(unknown)} (found {', '.join(subdirs) or 'none'})")
    if len(classes) < 2:
        raise DataError(f"{root}: need at least two class subfolders, found {', '.join(classes) or 'none'}")

    rng = np.random.default_rng(opts.seed)
    jobs: list[RecordingJob] = []
    skipped: list[tuple[str, str]] = []
    capacity = 0
    for cls in classes:
        files = [p.relative_to(root).as_posix() for p in list_audio(root / cls)]
        if not files:
            raise DataError(f"class {cls!r} has no audio file under {root / cls}")
        files, n_max, bad = probe_files(root, files, mel.clip_seconds, opts.hop_seconds)
        skipped += bad
        splits = split_files(files, opts.val_fraction, opts.test_fraction, rng)
        for rel in files:
            keep = splits[rel] == "test" and opts.save_test_waves
            jobs.append(RecordingJob(str(root / rel), rel, cls, splits[rel], opts.hop_seconds, opts.silence_db, keep, mel))
            capacity += n_max[rel]
    options_out = dataclasses.asdict(opts) | {"root": str(root), "classes": classes}
    with DatasetWriter(out, source="folder", classes=classes, mel=mel, options=options_out,
                       capacity=capacity, force=force) as writer:  # fmt: skip
        for rel, reason in skipped:
            writer.skip(rel, reason)
        writer.options["dropped_silent_windows"] = write_recordings(writer, jobs, opts.workers, progress)
        return writer.finish()
