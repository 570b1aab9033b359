"""Rendering note windows from a folder of per-note recordings: a sample bank without a SoundFont.

More training banks make the content codes less tied to one bank's sound (docs/results.md,
ablations 60 and 66), and free sample sets also come as plain recordings of single notes, e.g. the
MIT-licensed tonejs-instruments on the npm registry (`scripts/tonejs_bank.sh` fetches cello,
piano, violin and flute). Such a bank is a directory holding `bank.json`, {"GM program": "folder"}
relative to it; each folder holds one file per recorded note, named by the note ("A2.mp3", "Cs4.wav":
s for sharp; other names are ignored). The directory stands where a SoundFont path would
(`prepare synth --rerender-soundfont DIR`).

A note plays the recording nearest in pitch, resampled (linear interpolation, the pitch wheel's
vibrato included) to the note's pitch, scaled by its velocity, and faded out over RELEASE_S after
its note-off (or ends with the recording). Nothing is random: a window's audio depends on it alone.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from musiclord.errors import DataError

if TYPE_CHECKING:
    from musiclord.data.render import RenderJob

BANK_FILE = "bank.json"
RELEASE_S = 0.15
_NOTE = re.compile(r"^([A-G])(s?)(-?\d)\.(wav|flac|ogg|mp3)$")
_PITCH_CLASS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def is_sample_bank(path: str | Path) -> bool:
    """A directory of per-note recordings (it holds bank.json) rather than a SoundFont."""
    return Path(path).is_dir() and (Path(path) / BANK_FILE).is_file()


def note_pitch(name: str) -> int | None:
    """MIDI pitch of a file named after its note ("A4.mp3" -> 69, "Cs3.wav" -> 49); None otherwise."""
    m = _NOTE.match(name)
    return None if m is None else 12 * (int(m.group(3)) + 1) + _PITCH_CLASS[m.group(1)] + (m.group(2) == "s")


def _programs(bank: Path) -> dict[int, Path]:
    try:
        table = json.loads((bank / BANK_FILE).read_text())
        return {int(k): bank / v for k, v in table.items()}
    except (OSError, ValueError, TypeError, AttributeError) as e:
        raise DataError(f"sample bank {bank}: unreadable {BANK_FILE} ({e})") from None


def check_sample_bank(path: str | Path, programs: tuple[int, ...] = ()) -> Path:
    """The path if it is a sample bank with recordings for every program in `programs`, else a DataError."""
    path = Path(path)
    table = _programs(path)
    for p in programs:
        if p not in table:
            raise DataError(f"sample bank {path}: no folder for GM program {p} in {BANK_FILE}")
        if not any(note_pitch(f.name) is not None for f in table[p].glob("*")):
            raise DataError(f"sample bank {path}: {table[p]} holds no recordings named by their note (e.g. A4.mp3)")
    return path


@lru_cache(maxsize=16)
def _recordings(folder: str, sample_rate: int) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """(root pitches (R,), mono float32 recordings at sample_rate) of a folder, sorted by pitch."""
    import soundfile as sf
    import soxr

    found = sorted((note_pitch(f.name), f) for f in Path(folder).iterdir() if note_pitch(f.name) is not None)
    waves = []
    for _, f in found:
        try:
            x, sr = sf.read(f, dtype="float32", always_2d=True)
        except (OSError, RuntimeError) as e:
            raise DataError(f"sample bank: cannot read {f} ({e})") from None
        waves.append(soxr.resample(x.mean(axis=1), sr, sample_rate).astype(np.float32))
    return np.array([p for p, _ in found]), tuple(waves)


def _cents(vibrato: tuple[float, float, float], t: np.ndarray) -> np.ndarray:
    cents, hz, phase = vibrato
    return cents * np.sin(2 * np.pi * hz * t + phase) if cents > 0 else np.zeros_like(t)


def render_chunk_samples(bank: str, jobs: list[RenderJob], n_render: int, render_sr: int) -> list[np.ndarray]:
    """Render each job: (n_render,) float32 mono waves at render_sr."""
    table = _programs(Path(bank))
    out = []
    release = int(RELEASE_S * render_sr)
    for job in jobs:
        if job.program not in table:
            raise DataError(f"sample bank {bank}: no folder for GM program {job.program}")
        roots, waves = _recordings(str(table[job.program]), render_sr)
        y = np.zeros(n_render, np.float32)
        for (on, dur, pitch), vel in zip(job.notes, job.velocities):
            k = int(np.abs(roots - pitch).argmin())
            src = waves[k]
            t0 = int(round(on * render_sr))
            n = min(n_render - t0, int(round(dur * render_sr)) + release)
            if n <= 0:
                continue
            t = (t0 + np.arange(n)) / render_sr
            step = 2.0 ** ((pitch - roots[k] + _cents(job.vibrato, t) / 100) / 12)  # source samples per output sample
            pos = np.concatenate([[0.0], np.cumsum(step[:-1])])
            n = min(n, int(np.searchsorted(pos, len(src) - 1)))
            note = np.interp(pos[:n], np.arange(len(src)), src)
            held = int(round(dur * render_sr))
            if n > held:  # the release after the note-off
                note[held:] *= np.linspace(1.0, 0.0, release)[: n - held]
            y[t0 : t0 + n] += (vel / 127.0) ** 1.5 * note.astype(np.float32)
        out.append(y)
    return out
