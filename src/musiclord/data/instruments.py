"""General MIDI instruments: class names, program numbers and the pitch ranges they play well."""

from __future__ import annotations

import re
from dataclasses import dataclass

from musiclord.errors import DataError

# Short class names -> GM program (0-based).
ALIASES: dict[str, int] = {
    "piano": 0, "harpsichord": 6, "celesta": 8, "glockenspiel": 9, "vibraphone": 11, "marimba": 12,
    "xylophone": 13, "organ": 19, "accordion": 21, "harmonica": 22, "guitar": 24, "steel_guitar": 25,
    "electric_guitar": 27, "bass": 32, "electric_bass": 33, "violin": 40, "viola": 41, "cello": 42,
    "contrabass": 43, "double_bass": 43, "harp": 46, "timpani": 47, "strings": 48, "choir": 52,
    "trumpet": 56, "trombone": 57, "tuba": 58, "french_horn": 60, "horn": 60, "soprano_sax": 64,
    "alto_sax": 65, "saxophone": 65, "tenor_sax": 66, "baritone_sax": 67, "oboe": 68, "english_horn": 69,
    "bassoon": 70, "clarinet": 71, "piccolo": 72, "flute": 73, "recorder": 74, "pan_flute": 75,
}  # fmt: skip

# GM program -> (lowest, highest) MIDI pitch it plays well; programs not listed use DEFAULT_RANGE.
RANGES: dict[int, tuple[int, int]] = {
    0: (21, 108), 1: (21, 108), 2: (21, 108), 3: (21, 108), 4: (28, 103), 5: (28, 103), 6: (29, 89),
    7: (36, 96), 8: (60, 108), 9: (79, 108), 10: (60, 96), 11: (53, 89), 12: (45, 96), 13: (65, 108),
    19: (36, 96), 21: (53, 89), 22: (60, 84), 24: (40, 84), 25: (40, 84), 26: (40, 86), 27: (40, 86),
    32: (28, 67), 33: (28, 67), 34: (28, 67), 35: (28, 67),
    40: (55, 96),  # violin G3..C7
    41: (48, 84),  # viola C3..C6
    42: (36, 84),  # cello C2..C6 (thumb position)
    43: (28, 67),  # contrabass E1..G4
    44: (36, 96), 45: (36, 96), 46: (24, 103), 47: (40, 57), 48: (36, 96), 49: (36, 96), 52: (48, 81),
    56: (54, 84),  # trumpet F#3..C6
    57: (40, 72), 58: (28, 58), 59: (54, 82), 60: (41, 77), 61: (40, 84),
    64: (56, 87), 65: (49, 81), 66: (44, 76), 67: (36, 69),
    68: (58, 91),  # oboe Bb3..G6
    69: (52, 81), 70: (34, 72),
    71: (50, 91),  # clarinet D3..G6
    72: (74, 108),
    73: (59, 96),  # flute B3..C7
    74: (72, 98), 75: (60, 96),
}  # fmt: skip
DEFAULT_RANGE = (36, 96)
MIN_COMMON_RANGE = 12


@dataclass(frozen=True)
class Instrument:
    """A synthesised class: its name, GM program and comfortable MIDI pitch range (inclusive)."""

    name: str
    program: int
    low: int
    high: int


def _normalise(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


def gm_names() -> list[str]:
    """The 128 General MIDI program names, normalised (e.g. "acoustic_grand_piano")."""
    try:
        import pretty_midi
    except ImportError:
        raise DataError("synth needs the data extra: pip install 'musiclord[data]'") from None
    return [_normalise(n) for n in pretty_midi.INSTRUMENT_MAP]


def resolve_instrument(name: str | int) -> Instrument:
    """A class name, GM program name or number (0-127) -> `Instrument`.

    Raises:
        DataError: an unknown name (the message lists the valid short names).
    """
    key = _normalise(str(name))
    program: int | None = None
    if key.isdigit():
        program = int(key)
        if not 0 <= program <= 127:
            raise DataError(f"GM program {program} out of range 0-127")
        inverse = {p: n for n, p in reversed(list(ALIASES.items()))}
        key = inverse.get(program) or gm_names()[program]
    elif key in ALIASES:
        program = ALIASES[key]
    else:
        names = gm_names()
        if key in names:
            program = names.index(key)
    if program is None:
        raise DataError(
            f"unknown instrument {str(name)!r}; use one of {', '.join(sorted(ALIASES))}, "
            "a General MIDI program name (e.g. acoustic_grand_piano) or a program number 0-127"
        )
    low, high = RANGES.get(program, DEFAULT_RANGE)
    return Instrument(key, program, low, high)


def resolve_instruments(names: list[str] | tuple[str, ...]) -> list[Instrument]:
    """Resolve class names, refusing duplicates and fewer than two classes."""
    insts = [resolve_instrument(n) for n in names]
    if len(insts) < 2:
        raise DataError("need at least two instrument classes")
    for attr in ("name", "program"):
        vals = [getattr(i, attr) for i in insts]
        dup = sorted({v for v in vals if vals.count(v) > 1}, key=str)
        if dup:
            raise DataError(f"instrument classes repeat {attr} {', '.join(map(str, dup))}")
    return insts


def common_range(insts: list[Instrument]) -> tuple[int, int]:
    """The MIDI pitch range every instrument plays well (inclusive).

    Raises:
        DataError: the ranges overlap by less than an octave.
    """
    low, high = max(i.low for i in insts), min(i.high for i in insts)
    if high - low < MIN_COMMON_RANGE:
        raise DataError(
            f"instruments {', '.join(i.name for i in insts)} share less than an octave of pitch range "
            f"(MIDI {low}..{high}); choose instruments with overlapping ranges"
        )
    return low, high
