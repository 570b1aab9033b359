"""Which samples a SoundFont's presets play: the check that no training bank holds the test bank's.

Free General MIDI banks borrow from each other: MuseScore_General (our test bank) takes its cello
from GeneralUser GS, sample for sample. A bank that shares the test bank's samples for a program
would let the test hear in training what it claims is a new bank, so `prepare synth` renders
nothing on such a program (data/synth.py). A sample is known by its name, sample rate and loop
length in frames, which an SF3's compression keeps; name and rate alone collide across unrelated
banks (csound's "Flute G#5", 3753 frames with a 16-frame loop, is not MuseScore_General's).

Reads the RIFF `pdta` list of an SF2 or SF3 file (presets -> instruments -> sample headers);
the sample data are never read. Other banks (a TiMidity++ configuration, a folder of
recordings) have no such table: nothing is known of them, and nothing is reported shared.
"""

from __future__ import annotations

import struct
from pathlib import Path

from musiclord.errors import DataError

SampleKey = tuple[str, int, int]  # (sample name, sample rate, loop length in frames)

_INSTRUMENT, _SAMPLE_ID = 41, 53  # generator operators: a preset zone's instrument, an instrument zone's sample
_RECORDS = {"phdr": (38, "<20sHHHIII"), "pbag": (4, "<HH"), "pgen": (4, "<HH"), "inst": (22, "<20sH"),
            "ibag": (4, "<HH"), "igen": (4, "<HH"), "shdr": (46, "<20sIIIIIBbHH")}


def _chunks(data: bytes, start: int, end: int):  # type: ignore[no-untyped-def]
    """(id, offset, size) of the RIFF chunks in data[start:end]."""
    while start + 8 <= end:
        cid, size = data[start : start + 4], struct.unpack("<I", data[start + 4 : start + 8])[0]
        yield cid, start + 8, size
        start += 8 + size + (size & 1)


def _pdta(path: Path) -> dict[str, list[tuple]]:
    """The preset table's records, reading the file's top-level chunk headers and the `pdta`
    list only (the sample data, most of the file, are skipped)."""
    size_all = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(12)
        if head[:4] != b"RIFF" or head[8:12] != b"sfbk":
            raise DataError(f"{path}: not a SoundFont (SF2/SF3) file")
        pos = 12
        while pos + 8 <= size_all:
            f.seek(pos)
            hdr = f.read(12)
            cid, size = hdr[:4], struct.unpack("<I", hdr[4:8])[0]
            if cid == b"LIST" and hdr[8:12] == b"pdta":
                data = f.read(size - 4)
                raw = {c.decode("latin1"): data[o : o + n] for c, o, n in _chunks(data, 0, len(data))}
                if not set(_RECORDS) <= set(raw):
                    break
                return {k: [struct.unpack(fmt, raw[k][i : i + n]) for i in range(0, len(raw[k]) - n + 1, n)]
                        for k, (n, fmt) in _RECORDS.items()}
            pos += 8 + size + (size & 1)
    raise DataError(f"{path}: SoundFont without a complete preset table (pdta)")


def _name(raw: bytes) -> str:
    return raw.split(b"\0")[0].decode("latin1")


def preset_samples(path: str | Path, programs: set[int] | None = None) -> dict[int, frozenset[SampleKey]]:
    """The samples each General MIDI program (bank 0) of an SF2/SF3 file can play.

    Args:
        path: the SoundFont.
        programs: only these programs (None: all of bank 0's).

    Returns:
        {program: frozenset of SampleKey}, for the programs the bank has.
    """
    t = _pdta(Path(path))
    phdr, pbag, pgen, inst, ibag, igen, shdr = (t[k] for k in _RECORDS)
    out: dict[int, frozenset[SampleKey]] = {}
    for i, (_, program, bank, first_bag, *_rest) in enumerate(phdr[:-1]):
        if bank != 0 or (programs is not None and program not in programs):
            continue
        keys = set()
        for b in range(first_bag, phdr[i + 1][3]):
            for oper, inst_id in pgen[pbag[b][0] : pbag[b + 1][0]]:
                if oper != _INSTRUMENT or inst_id + 1 >= len(inst):
                    continue
                for z in range(inst[inst_id][1], inst[inst_id + 1][1]):
                    for op2, sample_id in igen[ibag[z][0] : ibag[z + 1][0]]:
                        if op2 == _SAMPLE_ID and sample_id < len(shdr):
                            name, _, _, loop_start, loop_end, rate, *_ = shdr[sample_id]
                            keys.add((_name(name), int(rate), int(loop_end) - int(loop_start)))
        out[program] = frozenset(keys)
    return out


def is_soundfont(path: str | Path) -> bool:
    return Path(path).suffix.lower() in (".sf2", ".sf3") and Path(path).is_file()


def shared_with_test(bank: str | Path, programs: set[int], test_bank: str | Path,
                     test_programs: set[int]) -> dict[int, int]:
    """{program of `bank` (among `programs`): how many of its samples `test_bank` plays on one of
    `test_programs`}, for the programs that share any; {} when either is not an SF2/SF3 file or
    both are the same file (`prepare synth` warns of that case on its own)."""
    if not (is_soundfont(bank) and is_soundfont(test_bank)) or Path(bank).resolve() == Path(test_bank).resolve():
        return {}
    heard = set().union(*preset_samples(test_bank, test_programs).values())
    shared = {p: len(keys & heard) for p, keys in preset_samples(bank, programs).items()}
    return {p: n for p, n in sorted(shared.items()) if n}
