"""Reading and writing audio: any libsndfile format, any channels, any rate, in bounded memory."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from musiclord.errors import AudioError

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".au", ".opus")


def _open(path: Path) -> sf.SoundFile:
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, not an audio file")
    try:
        return sf.SoundFile(str(path))
    except Exception as e:  # libsndfile's messages name the format problem
        msg = str(e).split(":")[-1].strip() or e.__class__.__name__
        raise AudioError(f"{path}: not a readable audio file ({msg})") from None


def _sanitize(x: np.ndarray, path: Path) -> np.ndarray:
    bad = ~np.isfinite(x)
    if bad.any():
        log.warning("%s: %d non-finite samples replaced by 0", path, int(bad.sum()))
        x = np.where(bad, 0.0, x).astype(np.float32)
    return x


def audio_info(path: str | Path) -> tuple[int, int, int]:
    """(sample rate, channels, frames) of an audio file, without reading its samples."""
    path = Path(path)
    with _open(path) as f:
        return f.samplerate, f.channels, f.frames


def load_audio(path: str | Path, sr: int = 16000) -> np.ndarray:
    """Read an audio file as mono float32 at `sr` Hz.

    Args:
        path: any format libsndfile reads (WAV, FLAC, OGG/Vorbis, MP3 where supported, ...).
        sr: target sample rate; other rates are resampled with soxr (high quality).

    Returns:
        (N,) float32 waveform; multi-channel input is averaged to mono, non-finite samples
        become 0.

    Raises:
        AudioError: missing, unreadable or empty file, a directory, or a file too short to
            resample to one sample (the message names the file).
    """
    path = Path(path)
    with _open(path) as f:
        try:
            x = f.read(dtype="float32", always_2d=True)
        except Exception as e:
            raise AudioError(f"{path}: audio data is corrupt ({e.__class__.__name__})") from None
        file_sr = f.samplerate
    if x.shape[0] == 0:
        raise AudioError(f"{path}: the file holds no audio samples")
    n_in = x.shape[0]
    x = _sanitize(x.mean(axis=1).astype(np.float32), path)
    if file_sr != sr:
        x = soxr.resample(x, file_sr, sr, quality="HQ").astype(np.float32)
        if x.size == 0:
            raise AudioError(f"{path}: too short to resample ({n_in} samples at {file_sr} Hz)")
    return x


def stream_audio(path: str | Path, sr: int = 16000, block_seconds: float = 30.0) -> Iterator[np.ndarray]:
    """Yield a file's mono float32 audio at `sr` in consecutive blocks, holding one block at a time.

    The concatenation of the blocks equals `load_audio(path, sr)` up to resampler edge effects,
    so a one-hour file never sits in memory at once.

    Raises:
        AudioError: as `load_audio`, on the first `next()` (this is a generator).
    """
    path = Path(path)
    f = _open(path)
    with f:
        if f.frames == 0:
            raise AudioError(f"{path}: the file holds no audio samples")
        resampler = soxr.ResampleStream(f.samplerate, sr, 1, dtype="float32", quality="HQ") if f.samplerate != sr else None
        block = max(1, int(block_seconds * f.samplerate))
        n_read = 0
        while True:
            try:
                x = f.read(block, dtype="float32", always_2d=True)
            except Exception as e:
                raise AudioError(f"{path}: audio data is corrupt ({e.__class__.__name__})") from None
            last = x.shape[0] < block
            n_read += x.shape[0]
            x = _sanitize(x.mean(axis=1).astype(np.float32), path)
            if resampler is not None:
                x = resampler.resample_chunk(x, last=last)
            if x.size:
                yield x
            if last:
                break
        if n_read == 0:
            raise AudioError(f"{path}: the file holds no audio samples")


def save_audio(path: str | Path, wave: np.ndarray, sr: int = 16000) -> None:
    """Write a mono waveform as 16-bit PCM WAV, clipped to [-1, 1]."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    x = np.clip(np.nan_to_num(np.asarray(wave, dtype=np.float32)), -1.0, 1.0)
    sf.write(str(path), x, sr, subtype="PCM_16")


def list_audio(root: str | Path) -> list[Path]:
    """Audio files (by extension) under `root`, recursively, sorted."""
    root = Path(root)
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
