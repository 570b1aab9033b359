"""Rendering note windows with FluidSynth (pyfluidsynth) and General MIDI programs (or, for a
TiMidity++ configuration or a folder of per-note recordings, data/timidity.py and data/sampler.py).

Every chunk of windows is rendered by a fresh synthesiser, one window after another with all
sound stopped and a flush between them, so a window's audio depends only on its chunk and never
on which worker process drew it: a prepare is deterministic for a seed. The soundfont's samples
stay loaded in each process (FluidSynth shares them between synthesisers), so a fresh
synthesiser costs about 0.1 s.
"""

from __future__ import annotations

import logging
from ctypes import c_int, c_void_p
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr

from musiclord.data.corpus import Note
from musiclord.data.sampler import check_sample_bank, is_sample_bank, render_chunk_samples
from musiclord.data.timidity import check_timidity_config, is_timidity_config, render_chunk_timidity
from musiclord.errors import DataError

log = logging.getLogger(__name__)

RENDER_SR = 32000  # rendered above the target rate, then resampled, to avoid the synth's aliasing
HEADROOM = 0.891  # peak after normalisation, -1 dBFS
SILENT_PEAK = 1e-4
FLUSH_S = 0.05
BEND_STEP_S = 0.005  # a vibrato moves the pitch wheel this often
BEND_RANGE = 2  # pitch-wheel sensitivity, semitones (set on every channel: GM's default)
SOUNDFONT_DIRS = ("/usr/share/sounds/sf2", "/usr/share/sounds/sf3", "/usr/share/soundfonts")


def _fluidsynth():  # type: ignore[no-untyped-def]
    try:
        import fluidsynth
    except ImportError as e:
        raise DataError(f"synth needs pyfluidsynth and libfluidsynth: pip install 'musiclord[data]' ({e})") from None
    return fluidsynth


def timgm6mb() -> Path:
    """TimGM6mb.sf2, the small GM bank bundled with pretty-midi."""
    try:
        import pretty_midi
    except ImportError:
        raise DataError("synth needs the data extra: pip install 'musiclord[data]'") from None
    return Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"


def find_soundfont(role: str) -> Path:
    """Default sample bank for "train" (FluidR3_GM), "test" (MuseScore_General), "aux" (TimGM6mb) or
    "rerender" (csound's sf_GMbank, Debian's csound-soundfont).

    A missing system bank falls back to TimGM6mb (with a warning).
    """
    wanted = {"train": "FluidR3_GM.sf2", "test": "MuseScore_General.sf3", "aux": None, "rerender": "sf_GMbank.sf2"}[role]
    if wanted is not None:
        for d in SOUNDFONT_DIRS:
            p = Path(d) / wanted
            if p.is_file():
                return p
        log.warning("%s not found in %s; the %s renders use TimGM6mb", wanted, ", ".join(SOUNDFONT_DIRS), role)
    return timgm6mb()


def check_soundfont(path: str | Path, programs: tuple[int, ...] = ()) -> Path:
    """The path if it is a SoundFont file (.sf2 or .sf3: a RIFF "sfbk" chunk), a TiMidity++
    configuration (data/timidity.py) or a folder of per-note recordings (data/sampler.py) playing
    `programs`, else a DataError."""
    if is_timidity_config(path):
        return check_timidity_config(path, programs)
    if is_sample_bank(path):
        return check_sample_bank(path, programs)
    path = Path(path)
    if not path.is_file():
        raise DataError(f"soundfont {path}: no such file")
    with open(path, "rb") as f:
        head = f.read(12)
    if head[:4] != b"RIFF" or head[8:12] != b"sfbk":
        raise DataError(f"soundfont {path}: not a SoundFont (.sf2/.sf3) file")
    return path


@dataclass(frozen=True)
class RenderJob:
    """One clip to render: notes (onset_s, duration_s, pitch) with velocities, on a GM program,
    with an optional vibrato (depth in cents, rate in Hz, starting phase in radians) played by the
    pitch wheel (0 cents: none)."""

    notes: tuple[Note, ...]
    velocities: tuple[int, ...]
    program: int
    vibrato: tuple[float, float, float] = (0.0, 0.0, 0.0)


# reverb and chorus off: their state would carry from one clip into the next; samples (Vorbis in
# .sf3) are decoded when first played rather than all at load (15 s for MuseScore_General.sf3)
_SETTINGS = {"synth.reverb.active": 0, "synth.chorus.active": 0, "synth.dynamic-sample-loading": 1}
MAX_PROGRAMS = 15  # programs one render chunk may use: a MIDI channel each, channel 9 (drums) left out
_KEEP: dict[str, object] = {}  # per process: a synth holding each soundfont, so reloads hit the sample cache
_WRITE_FLOAT = None


def _write_float(fs, synth, n: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    """n mono float32 samples (pyfluidsynth's get_samples is 16-bit and dithered, so not repeatable)."""
    global _WRITE_FLOAT
    if _WRITE_FLOAT is None:
        _WRITE_FLOAT = fs.cfunc(
            "fluid_synth_write_float", c_int, ("synth", c_void_p, 1), ("len", c_int, 1), ("lout", c_void_p, 1),
            ("loff", c_int, 1), ("lincr", c_int, 1), ("rout", c_void_p, 1), ("roff", c_int, 1), ("rincr", c_int, 1),
        )  # fmt: skip
    buf = np.zeros((n, 2), np.float32)
    if n > 0:
        _WRITE_FLOAT(synth.synth, n, buf.ctypes.data, 0, 2, buf.ctypes.data, 1, 2)
    return buf.mean(axis=1)


def _vibrato_events(vibrato: tuple[float, float, float], n: int) -> list[tuple[int, int, int, int]]:
    """Pitch-wheel events (sample, 2, value, 0) every BEND_STEP_S over n samples at RENDER_SR for a
    vibrato (cents, Hz, phase); none when its depth is 0."""
    cents, hz, phase = vibrato
    if cents <= 0:
        return []
    t = np.arange(0, n, int(BEND_STEP_S * RENDER_SR))
    bend = np.rint(cents / (100 * BEND_RANGE) * 8192 * np.sin(2 * np.pi * hz * t / RENDER_SR + phase))
    return [(int(a), 2, int(b), 0) for a, b in zip(t, np.clip(bend, -8192, 8191))]


def render_chunk(soundfont: str, jobs: list[RenderJob], clip_s: float, sample_rate: int) -> list[np.ndarray | None]:
    """Render clips with one fresh synthesiser.

    Args:
        soundfont: .sf2/.sf3 path, a TiMidity++ .cfg or a sample bank's folder (each job then
            renders by itself).
        jobs: the clips, rendered in order.
        clip_s: clip length, seconds.
        sample_rate: output rate (the synth runs at RENDER_SR).

    Returns:
        per job, a (clip_s * sample_rate,) float32 wave peak-normalised to HEADROOM, or None
        when the render is silent.
    """
    n_out = int(round(clip_s * sample_rate))
    n_render = int(round(clip_s * RENDER_SR))
    # a TiMidity++ configuration or a folder of recordings: FluidSynth cannot play them; each job alone
    if is_timidity_config(soundfont):
        bends = [_vibrato_events(j.vibrato, n_render) for j in jobs]
        waves = render_chunk_timidity(soundfont, jobs, bends, n_render, RENDER_SR)
        return [_finish(x, n_out, sample_rate) for x in waves]
    if is_sample_bank(soundfont):
        return [_finish(x, n_out, sample_rate) for x in render_chunk_samples(soundfont, jobs, n_render, RENDER_SR)]
    fs = _fluidsynth()
    if soundfont not in _KEEP:
        keep = fs.Synth(samplerate=float(RENDER_SR), **_SETTINGS)
        if keep.sfload(soundfont) < 0:
            raise DataError(f"soundfont {soundfont}: FluidSynth cannot load it")
        _KEEP[soundfont] = keep
    synth = fs.Synth(samplerate=float(RENDER_SR), gain=0.5, **_SETTINGS)
    try:
        sfid = synth.sfload(soundfont)
        # one channel per program, selected once: with dynamic sample loading a program change
        # would unload the previous preset's samples and decode them again for the next clip
        programs = sorted({job.program for job in jobs})
        if len(programs) > MAX_PROGRAMS:
            raise ValueError(f"a render chunk may use at most {MAX_PROGRAMS} programs")
        channel = {p: (i if i < 9 else i + 1) for i, p in enumerate(programs)}  # channel 9 is GM drums
        for p, ch in channel.items():
            synth.program_select(ch, sfid, 0, p)
            for ctrl, val in ((101, 0), (100, 0), (6, BEND_RANGE), (38, 0)):  # RPN 0: pitch-wheel sensitivity
                synth.cc(ch, ctrl, val)
        out: list[np.ndarray | None] = []
        for job in jobs:
            ch = channel[job.program]
            events = []
            for (on, dur, pitch), vel in zip(job.notes, job.velocities):
                t0 = int(round(on * RENDER_SR))
                events.append((t0, 1, pitch, int(vel)))
                events.append((max(t0 + 1, int(round((on + dur) * RENDER_SR))), 0, pitch, 0))
            events += _vibrato_events(job.vibrato, n_render)
            events.sort(key=lambda e: (e[0], e[1]))  # note-offs before note-ons at the same sample
            pieces, t = [], 0
            for when, kind, pitch, vel in events:
                when = min(when, n_render)
                pieces.append(_write_float(fs, synth, when - t))
                t = when
                if kind == 2:
                    synth.pitch_bend(ch, pitch)
                elif kind:
                    synth.noteon(ch, pitch, vel)
                else:
                    synth.noteoff(ch, pitch)
            pieces.append(_write_float(fs, synth, n_render - t))
            synth.all_sounds_off(ch)
            synth.pitch_bend(ch, 0)
            _write_float(fs, synth, int(FLUSH_S * RENDER_SR))
            out.append(_finish(np.concatenate(pieces)[:n_render], n_out, sample_rate))
        return out
    finally:
        synth.delete()


def _finish(x: np.ndarray, n_out: int, sample_rate: int) -> np.ndarray | None:
    """A render at RENDER_SR -> (n_out,) float32 at sample_rate peak-normalised to HEADROOM; None if silent."""
    y = soxr.resample(x, RENDER_SR, sample_rate, quality="HQ").astype(np.float32)
    y = np.pad(y, (0, max(0, n_out - len(y))))[:n_out]
    peak = float(np.abs(y).max())
    return None if peak < SILENT_PEAK else y * (HEADROOM / peak)
