"""Rendering note windows with TiMidity++ and a GUS patch set: sample banks FluidSynth cannot load.

Each training bank the models see makes their content codes less tied to one bank's sound
(docs/results.md, ablations 12 and 60), and the free SoundFonts on Debian's package list are all
taken (FluidR3 trains, csound's rerenders, OPL3 joins the erasure, TimGM6mb, Merlin and MuseScore
are development and test banks). Debian's `freepats` is another: a GUS patch set of real
recordings, played by TiMidity++ (`apt-get install timidity freepats`), whose configuration file
(/etc/timidity/freepats.cfg) stands where a SoundFont path would (`prepare synth
--rerender-soundfont /etc/timidity/freepats.cfg`).

TiMidity++ always reads its system configuration before the one given, so a program the patch set
lacks falls back to the system's bank: `check_timidity_config` refuses a configuration that does
not name the programs asked for. Each window is its own MIDI file and its own TiMidity++ process
(about 35 ms), effects off, so that, as with FluidSynth, a window's audio depends on nothing else.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from musiclord.errors import DataError

if TYPE_CHECKING:
    from musiclord.data.render import RenderJob

TIMEOUT_S = 60


def is_timidity_config(path: str | Path) -> bool:
    """A TiMidity++ configuration (.cfg) rather than a SoundFont."""
    return Path(path).suffix.lower() == ".cfg"


def _programs(config: Path) -> set[int]:
    """GM programs (0-127) that the configuration's bank 0 names: lines "N patch-file ..." after a
    "bank 0" line or before any bank line."""
    found, bank = set(), 0
    for line in config.read_text(errors="replace").splitlines():
        line = line.split("#", 1)[0].strip()
        if m := re.match(r"bank\s+(\d+)", line):
            bank = int(m.group(1))
        elif line.startswith("drumset"):
            bank = -1
        elif bank == 0 and (m := re.match(r"(\d+)\s+\S", line)):
            found.add(int(m.group(1)))
    return found


def check_timidity_config(path: str | Path, programs: tuple[int, ...] = ()) -> Path:
    """The path if TiMidity++ is installed and the file is a configuration naming `programs`, else
    a DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"TiMidity++ configuration {path}: no such file")
    if shutil.which("timidity") is None:
        raise DataError(f"{path} needs TiMidity++: apt-get install timidity")
    missing = sorted(set(programs) - _programs(path))
    if missing:
        raise DataError(f"TiMidity++ configuration {path}: no patch for GM program {missing[0]} in bank 0")
    return path


def _midi(job: RenderJob, bends: list[tuple[int, int, int, int]], render_sr: int, path: Path) -> None:
    """Write one window as a MIDI file, with the pitch-wheel events (sample, 2, value, 0) of its
    vibrato (render._vibrato_events, at render_sr)."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(initial_tempo=120.0)
    inst = pretty_midi.Instrument(program=job.program)
    for (on, dur, pitch), vel in zip(job.notes, job.velocities):
        inst.notes.append(pretty_midi.Note(velocity=int(vel), pitch=int(pitch), start=on, end=on + max(dur, 1e-3)))
    inst.pitch_bends.extend(pretty_midi.PitchBend(value, when / render_sr) for when, _, value, _ in bends)
    pm.instruments.append(inst)
    pm.write(str(path))


def render_chunk_timidity(config: str, jobs: list[RenderJob], bends: list[list[tuple[int, int, int, int]]],
                          n_render: int, render_sr: int) -> list[np.ndarray]:
    """Render each job alone (with its pitch-wheel events in `bends`): (n_render,) float32 mono
    waves at render_sr (zero-padded)."""
    import soundfile as sf

    out = []
    with tempfile.TemporaryDirectory(prefix="musiclord-timidity-") as tmp:
        mid, wav = Path(tmp) / "w.mid", Path(tmp) / "w.wav"
        for job, job_bends in zip(jobs, bends):
            _midi(job, job_bends, render_sr, mid)
            cmd = ["timidity", "-c", config, "-Ow", "--output-mono", "-s", str(render_sr), "-EFreverb=0",
                   "-EFchorus=0", "-o", str(wav), str(mid)]
            try:
                subprocess.run(cmd, check=True, capture_output=True, timeout=TIMEOUT_S)
                x, sr = sf.read(wav, dtype="float32", always_2d=True)
            except (OSError, subprocess.SubprocessError, RuntimeError) as e:
                raise DataError(f"TiMidity++ could not render with {config} ({str(e)[:120]})") from None
            if sr != render_sr:
                raise DataError(f"TiMidity++ wrote {sr} Hz instead of {render_sr}")
            x = x.mean(axis=1)[:n_render]
            out.append(np.pad(x, (0, n_render - len(x))))
    return out
