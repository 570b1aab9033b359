"""The SoundFont sample table (data/sf2info.py) and prepare synth's refusal to train on the test
bank's samples."""

import json
import logging
import shutil
import struct

import pytest

from musiclord.audio import MelConfig
from musiclord.data import Dataset
from musiclord.data.render import timgm6mb
from musiclord.data.sf2info import preset_samples, shared_with_test
from musiclord.data.synth import SynthOptions, prepare_synth
from musiclord.errors import DataError


def _chunk(cid: bytes, body: bytes) -> bytes:
    return cid + struct.pack("<I", len(body)) + body + b"\0" * (len(body) & 1)


def write_sf2(path, samples, presets):
    """A SoundFont with no sample data: `samples` [(name, rate, loop length)], `presets` {(bank,
    program): [sample index, ...]}, each preset one instrument with a zone per sample."""
    rec = {k: [] for k in ("phdr", "pbag", "pgen", "inst", "ibag", "igen")}
    for (bank, program), ids in presets.items():
        rec["phdr"].append(struct.pack("<20sHHHIII", f"P{program}".encode(), program, bank, len(rec["pbag"]), 0, 0, 0))
        rec["pbag"].append(struct.pack("<HH", len(rec["pgen"]), 0))
        rec["pgen"].append(struct.pack("<HH", 41, len(rec["inst"])))
        rec["inst"].append(struct.pack("<20sH", f"I{program}".encode(), len(rec["ibag"])))
        for s in ids:
            rec["ibag"].append(struct.pack("<HH", len(rec["igen"]), 0))
            rec["igen"].append(struct.pack("<HH", 53, s))
    rec["phdr"].append(struct.pack("<20sHHHIII", b"EOP", 0, 0, len(rec["pbag"]), 0, 0, 0))
    rec["pbag"].append(struct.pack("<HH", len(rec["pgen"]), 0))
    rec["pgen"].append(struct.pack("<HH", 0, 0))
    rec["inst"].append(struct.pack("<20sH", b"EOI", len(rec["ibag"])))
    rec["ibag"].append(struct.pack("<HH", len(rec["igen"]), 0))
    rec["igen"].append(struct.pack("<HH", 0, 0))
    shdr = [struct.pack("<20sIIIIIBbHH", n.encode(), 0, 4000, 100, 100 + loop, r, 60, 0, 0, 1)
            for n, r, loop in [*samples, ("EOS", 0, 0)]]
    pdta = b"pdta" + b"".join(_chunk(k.encode(), b"".join(v)) for k, v in rec.items()) + _chunk(b"shdr", b"".join(shdr))
    body = b"sfbk" + _chunk(b"LIST", b"sdta" + _chunk(b"smpl", b"")) + _chunk(b"LIST", pdta)
    path.write_bytes(_chunk(b"RIFF", body))
    return path


def test_preset_samples_and_what_a_bank_shares_with_the_test_bank(tmp_path):
    test = write_sf2(tmp_path / "test.sf2", [("Cello C2", 30000, 900), ("Violin A4", 44100, 500),
                                             ("Flute C5", 32000, 700), ("Oboe C5", 44100, 300)],
                     {(0, 42): [0], (0, 40): [1], (0, 73): [2], (0, 68): [3]})
    # program 43 borrows the test bank's cello; 40's sample has the test violin's name at another
    # rate, 68's the test oboe's name and rate with another loop (other recordings); program 41
    # of bank 1 is not General MIDI's
    other = write_sf2(tmp_path / "other.sf2",
                      [("Cello C2", 30000, 900), ("Violin A4", 22050, 500), ("Cello D3", 30000, 800),
                       ("Flute C5", 32000, 700), ("Oboe C5", 44100, 16)],
                      {(0, 43): [0, 2], (0, 40): [1], (0, 42): [2], (1, 41): [0], (0, 73): [3], (0, 68): [4]})
    assert preset_samples(other) == {43: {("Cello C2", 30000, 900), ("Cello D3", 30000, 800)},
                                     40: {("Violin A4", 22050, 500)}, 42: {("Cello D3", 30000, 800)},
                                     73: {("Flute C5", 32000, 700)}, 68: {("Oboe C5", 44100, 16)}}
    assert preset_samples(other, {40}) == {40: {("Violin A4", 22050, 500)}}
    assert shared_with_test(other, {40, 41, 42, 43, 68, 73}, test, {40, 42, 68}) == {43: 1}
    assert shared_with_test(other, {40, 41, 42, 43, 68, 73}, test, {40, 42, 68, 73}) == {43: 1, 73: 1}
    assert shared_with_test(test, {40, 42}, test, {40, 42}) == {}  # the same file: prepare synth warns of it apart
    assert shared_with_test(tmp_path / "freepats.cfg", {40}, test, {40}) == {}  # not a SoundFont: nothing known
    (tmp_path / "bad.sf2").write_bytes(b"RIFF\0\0\0\0WAVEfmt ")
    with pytest.raises(DataError, match="not a SoundFont"):
        preset_samples(tmp_path / "bad.sf2")
    (tmp_path / "nopdta.sf2").write_bytes(_chunk(b"RIFF", b"sfbk" + _chunk(b"LIST", b"sdta")))
    with pytest.raises(DataError, match="preset table"):
        preset_samples(tmp_path / "nopdta.sf2")


def test_prepare_synth_renders_nothing_on_the_test_banks_samples(tmp_path, caplog):
    # a copy of the test bank as rerender bank: every program that plays a class's samples is refused
    copy = shutil.copy(timgm6mb(), tmp_path / "copy.sf2")
    bank = str(timgm6mb())
    banned = set(shared_with_test(copy, set(range(128)), bank, {40, 42}))
    assert {40, 42} <= banned and len(banned) < 40  # the classes' own, and the few programs borrowing them
    opts = SynthOptions(classes=("cello", "violin"), train_per_class=6, test_windows=2, aux_per_class=1,
                        soundfont=bank, test_soundfont=bank, aux_soundfont=str(copy), workers=1, rerender_fraction=1.0,
                        rerender_soundfont=str(copy), cross_fraction=1.0, cache_dir=str(tmp_path / "cache"))
    with caplog.at_level(logging.WARNING):
        ds = Dataset.open(prepare_synth(tmp_path / "ds", opts, MelConfig(), progress=False))
    assert "plays the test bank's samples on programs" in caplog.text
    aux = [r.getMessage() for r in caplog.records if "the aux bank" in r.getMessage()]
    assert len(aux) == 1 and "programs [40, 42]" in aux[0] and "timbre classifier" in aux[0]  # the classes' only
    assert not ds.select("rerender")
    cross = ds.select("cross")
    assert len(cross) == 12
    rows = [json.loads(line) for line in (tmp_path / "ds" / "notes.jsonl").read_text().splitlines()]
    programs = {r["clip_id"]: r["program"] for r in rows}
    on_copy = [programs[r.clip_id] for r in cross if r.soundfont == "copy.sf2"]
    assert on_copy and not set(on_copy) & banned


def test_the_default_training_banks_share_no_sample_with_the_test_bank():
    # a false match here would silently drop rerenders from every default dataset (session 22:
    # csound's "Flute G#5" has MuseScore_General's name and rate, but is another recording)
    from musiclord.data.render import find_soundfont
    from musiclord.data.synth import CROSS_PROGRAMS

    test = find_soundfont("test")
    if test.name != "MuseScore_General.sf3":
        pytest.skip("needs Debian's musescore-general-soundfont")
    for role in ("train", "rerender"):
        bank = find_soundfont(role)
        assert shared_with_test(bank, set(CROSS_PROGRAMS) | {0, 40, 42, 73}, test, {0, 40, 42, 73}) == {}, bank
