"""Recordings cut into clips: the shared engine of the MusicNet and folder sources.

Each file is read twice in bounded memory: once at its own rate for its peak, once resampled to
the dataset rate and cut into clip-long windows every `hop_s`. A window whose RMS lies more than
`silence_db` below the file's peak (or under -80 dBFS) is near-silent and dropped; the rest are
peak-normalised (as the synth clips are) and turned into log-mels in the worker.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from musiclord.audio import MelConfig, audio_info, logmel, stream_audio
from musiclord.data.parallel import Workers
from musiclord.data.render import HEADROOM
from musiclord.data.writer import DatasetWriter
from musiclord.errors import MusiclordError

log = logging.getLogger(__name__)

ABS_SILENCE_RMS = 1e-4  # -80 dBFS


@dataclass(frozen=True)
class RecordingJob:
    """One file to cut: its path, its name relative to the source root, class and split."""

    path: str
    rel: str
    cls: str
    split: str
    hop_s: float
    silence_db: float
    keep_wave: bool
    mel: MelConfig


@dataclass
class RecordingResult:
    job: RecordingJob
    starts: list[float]
    mels: np.ndarray | None  # (n, M, T) float16
    waves: list[np.ndarray]
    error: str | None = None
    n_windows: int = 0


def max_windows(seconds: float, clip_s: float, hop_s: float) -> int:
    """How many windows a recording of `seconds` can give at most."""
    return 0 if seconds < clip_s else int(math.floor((seconds - clip_s) / hop_s + 1e-9)) + 1


def probe_files(
    root: Path, rels: list[str], clip_s: float, hop_s: float
) -> tuple[list[str], dict[str, int], list[tuple[str, str]]]:
    """Read each file's header: (usable files, their most windows, skipped (file, reason) pairs).

    Unreadable files and files shorter than a clip are caught here, before the split, so a
    broken file never takes a split's place.
    """
    ok, n_max, skipped = [], {}, []
    for rel in rels:
        try:
            sr, _, frames = audio_info(root / rel)
        except MusiclordError as e:
            skipped.append((rel, str(e).split(": ", 1)[-1]))
            continue
        if frames == 0:
            skipped.append((rel, "the file holds no audio samples"))
        elif frames / max(sr, 1) < clip_s:
            skipped.append((rel, f"shorter than one {clip_s:g} s clip"))
        else:
            ok.append(rel)
            n_max[rel] = max_windows(frames / sr, clip_s, hop_s) + 1
    return ok, n_max, skipped


def cut_recording(job: RecordingJob) -> RecordingResult:
    """Cut one file into normalised clip windows and their log-mels (run in a worker)."""
    mel = job.mel
    n_clip, hop = mel.clip_samples, int(round(job.hop_s * mel.sample_rate))
    try:
        native_sr = audio_info(job.path)[0]
        peak = max((float(np.abs(b).max()) for b in stream_audio(job.path, native_sr)), default=0.0)
        if peak <= ABS_SILENCE_RMS:
            return RecordingResult(job, [], None, [], "silent")
        floor = max(ABS_SILENCE_RMS, peak * 10 ** (job.silence_db / 20))
        starts: list[float] = []
        clips: list[np.ndarray] = []
        buf = np.zeros(0, np.float32)
        buf_start = 0  # sample index of buf[0]
        next_start = 0
        total = 0
        n_windows = 0
        for block in stream_audio(job.path, mel.sample_rate):
            buf = np.concatenate([buf, block])
            total += len(block)
            while next_start + n_clip <= buf_start + len(buf):
                x = buf[next_start - buf_start : next_start - buf_start + n_clip]
                n_windows += 1
                if float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) >= floor:
                    starts.append(next_start / mel.sample_rate)
                    clips.append(x * (HEADROOM / max(float(np.abs(x).max()), 1e-9)))
                next_start += hop
            drop = min(len(buf), max(0, next_start - buf_start))
            buf, buf_start = buf[drop:], buf_start + drop
    except MusiclordError as e:
        return RecordingResult(job, [], None, [], str(e).split(": ", 1)[-1])
    except Exception as e:  # a decoder failing mid-file must not stop a long prepare
        return RecordingResult(job, [], None, [], f"unreadable ({e.__class__.__name__})")
    if total < n_clip:
        return RecordingResult(job, [], None, [], f"shorter than one {mel.clip_seconds:g} s clip")
    if not clips:
        return RecordingResult(job, [], None, [], "silent", n_windows)
    mels = np.concatenate([logmel(np.stack(clips[i : i + 64]), mel).numpy() for i in range(0, len(clips), 64)])
    return RecordingResult(job, starts, mels.astype(np.float16), clips if job.keep_wave else [], None, n_windows)


def write_recordings(writer: DatasetWriter, jobs: list[RecordingJob], workers: int, progress: bool) -> int:
    """Cut every job's file in worker processes and append its clips in job order.

    Unusable files are recorded with `writer.skip`. Returns the windows dropped as near-silent.
    """
    dropped = 0
    with Workers(workers) as pool:
        for res in pool.map(cut_recording, jobs, desc="cut recordings", progress=progress):
            job = res.job
            if res.error is not None:
                writer.skip(job.rel, res.error)
                continue
            dropped += res.n_windows - len(res.starts)
            stem = Path(job.rel).with_suffix("").as_posix().replace("/", "_")
            for i, (start, m) in enumerate(zip(res.starts, res.mels)):  # type: ignore[arg-type]
                writer.add(clip_id=f"{job.cls}-{stem}-{i:05d}", cls=job.cls, source=job.rel, start_s=start,
                           split=job.split, mel=m, wave=res.waves[i] if res.waves else None)  # fmt: skip
    return dropped


def split_files(files: list[str], val_fraction: float, test_fraction: float, rng: np.random.Generator) -> dict[str, str]:
    """Assign whole files to train/val/test: at least one train file, then val, then test."""
    order = [files[i] for i in rng.permutation(len(files))]
    n = len(order)
    n_test = min(int(round(n * test_fraction)), max(0, n - 1)) if test_fraction > 0 else 0
    if test_fraction > 0 and n_test == 0 and n >= 3:
        n_test = 1
    n_val = min(int(round(n * val_fraction)), max(0, n - 1 - n_test)) if val_fraction > 0 else 0
    if val_fraction > 0 and n_val == 0 and n - n_test >= 2:
        n_val = 1
    out = {f: "test" for f in order[:n_test]}
    out |= {f: "val" for f in order[n_test : n_test + n_val]}
    out |= {f: "train" for f in order[n_test + n_val :]}
    return out
