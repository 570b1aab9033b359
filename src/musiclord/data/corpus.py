"""Monophonic note lines from music21's bundled corpus, and 2 s windows cut from them.

A *piece* is one corpus file (a Bach chorale, a fiddle tune); a *line* is one voice of it (the
chorale's soprano, alto, tenor, bass; the tune's melody). Parsing is slow (0.1-0.3 s a file), so
each file's lines are cached as JSON under the cache directory.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from musiclord.errors import DataError

log = logging.getLogger(__name__)

CACHE_VERSION = 1
# (corpus sub-folder, file extension): Bach chorales (4 voices each) and Ryan's Mammoth fiddle tunes.
COLLECTIONS = (("bach", ".mxl"), ("ryansMammoth", ".abc"))

Note = tuple[float, float, int]  # (onset, duration, MIDI pitch); quarters in a Line, seconds in a Window


@dataclass(frozen=True)
class Line:
    """One monophonic voice of a piece; notes in quarter lengths, sorted, non-overlapping."""

    piece: str
    voice: str
    notes: tuple[Note, ...]


@dataclass(frozen=True)
class Window:
    """A clip's worth of one line, at one tempo and octave, with its performance.

    Attributes:
        piece, voice: where it comes from.
        start_q: start in the line, quarter lengths.
        bpm: quarter notes per minute.
        transpose: semitones added (a whole number of octaves).
        notes: (onset_s, duration_s, pitch) relative to the clip start, within the clip.
        velocities: MIDI velocity of each note.
    """

    piece: str
    voice: str
    start_q: float
    bpm: float
    transpose: int
    notes: tuple[Note, ...]
    velocities: tuple[int, ...]

    @property
    def start_s(self) -> float:
        return self.start_q * 60.0 / self.bpm


def corpus_root() -> Path:
    try:
        import music21
    except ImportError:
        raise DataError("synth needs the data extra: pip install 'musiclord[data]'") from None
    return Path(music21.__file__).parent / "corpus"


def list_pieces() -> list[str]:
    """Corpus files to draw from, relative to music21's corpus folder, sorted."""
    root = corpus_root()
    out = []
    for folder, ext in COLLECTIONS:
        out += sorted(str(p.relative_to(root)) for p in (root / folder).glob(f"*{ext}"))
    if not out:
        raise DataError(f"music21's corpus at {root} holds none of {[c for c, _ in COLLECTIONS]}")
    return out


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "musiclord" / "corpus"


def _monophonic(notes: list[Note]) -> tuple[Note, ...]:
    """Sort by onset, keep the highest of simultaneous notes, cut overlaps."""
    notes.sort(key=lambda n: (n[0], -n[2]))
    out: list[Note] = []
    for on, dur, p in notes:
        if out and abs(out[-1][0] - on) < 1e-6:
            continue
        if out and out[-1][0] + out[-1][1] > on:
            out[-1] = (out[-1][0], on - out[-1][0], out[-1][2])
        out.append((on, dur, p))
    return tuple(n for n in out if n[1] > 1e-6)


def parse_piece(rel: str) -> list[Line]:
    """Parse one corpus file into its monophonic lines (chords keep their top note)."""
    from music21 import corpus, stream

    s = corpus.parse(rel, forceSource=True)
    scores = list(s.scores) if isinstance(s, stream.Opus) else [s]
    lines = []
    for si, sc in enumerate(scores):
        parts = list(sc.parts) or [sc]
        for pi, part in enumerate(parts):
            notes: list[Note] = []
            for n in part.flatten().stripTies().notes:
                ql = float(n.duration.quarterLength)
                if ql <= 0:  # grace notes
                    continue
                pitch = n.pitch.midi if n.isNote else max(p.midi for p in n.pitches)
                notes.append((float(n.offset), ql, int(pitch)))
            name = part.partName or f"part{pi}"
            voice = name if len(scores) == 1 else f"{si}.{name}"
            if notes:
                lines.append(Line(rel, voice, _monophonic(notes)))
    return lines


def load_piece(rel: str, cache_dir: Path | None) -> list[Line]:
    """`parse_piece` through a JSON cache (keyed by path, music21 version, cache version)."""
    path = None
    if cache_dir is not None:
        # the version from the package metadata: importing music21 itself takes seconds
        version = importlib.metadata.version("music21")
        key = hashlib.sha1(f"{rel}|{version}|{CACHE_VERSION}".encode()).hexdigest()[:16]
        path = cache_dir / f"{Path(rel).stem}-{key}.json"
        if path.is_file():
            try:
                rows = json.loads(path.read_text())
                return [Line(rel, v, tuple(tuple(n) for n in ns)) for v, ns in rows]  # type: ignore[misc]
            except (ValueError, TypeError):
                log.debug("corrupt cache file %s; parsing again", path)
    try:
        lines = parse_piece(rel)
    except Exception as e:  # music21 raises many kinds on odd files; one bad tune must not stop us
        log.warning("music21 could not parse %s (%s); skipped", rel, e.__class__.__name__)
        lines = []
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps([[ln.voice, [list(n) for n in ln.notes]] for ln in lines]))
        tmp.replace(path)
    return lines


def cut_windows(
    line: Line,
    rng: np.random.Generator,
    *,
    clip_s: float,
    bpm_range: tuple[float, float],
    pitch_range: tuple[int, int],
    velocity_range: tuple[int, int],
    jitter_s: float,
    min_notes: int,
    min_fill: float,
) -> list[Window]:
    """Cut a line into consecutive, disjoint clip-long windows, each at its own random tempo.

    A window keeps the notes sounding in it (a note begun earlier starts at 0, one running past
    the end is cut), is moved by whole octaves into `pitch_range` (a random choice when several
    octaves fit), and is dropped when no octave fits, it has fewer than `min_notes` notes, or
    notes sound for less than `min_fill` of its length (near-empty windows).
    """
    notes = line.notes
    if not notes:
        return []
    lo, hi = pitch_range
    end_q = max(on + d for on, d, _ in notes)
    q0 = notes[0][0]
    out = []
    while q0 < end_q:
        bpm = float(rng.uniform(*bpm_range))
        sec_per_q = 60.0 / bpm
        len_q = clip_s / sec_per_q
        q1 = q0 + len_q
        inside = [(on, d, p) for on, d, p in notes if on < q1 and on + d > q0]
        # the performance is drawn before any check so a window's draw never depends on another's fate
        jitter = rng.normal(0.0, jitter_s, size=len(inside)) if jitter_s > 0 else np.zeros(len(inside))
        vel = rng.integers(velocity_range[0], velocity_range[1] + 1, size=len(inside))
        shift_pick = rng.random()
        start_q, q0 = q0, q1
        if len(inside) < min_notes:
            continue
        pmin, pmax = min(p for *_, p in inside), max(p for *_, p in inside)
        shifts = [12 * k for k in range(-6, 7) if lo <= pmin + 12 * k and pmax + 12 * k <= hi]
        if not shifts:
            continue
        shift = shifts[int(shift_pick * len(shifts))]
        timed: list[Note] = []
        for (on, d, p), j in zip(inside, jitter):
            t0 = max(0.0, (on - start_q) * sec_per_q + (float(j) if on >= start_q else 0.0))
            t1 = min(clip_s, (on + d - start_q) * sec_per_q + float(j))
            if t1 - t0 > 0.03:
                timed.append((round(t0, 4), round(t1 - t0, 4), p + shift))
        if len(timed) < min_notes or sum(d for _, d, _ in timed) < min_fill * clip_s:
            continue
        out.append(Window(line.piece, line.voice, round(start_q, 4), round(bpm, 3), shift, tuple(timed),
                          tuple(int(v) for v in vel[: len(timed)])))  # fmt: skip
    return out
