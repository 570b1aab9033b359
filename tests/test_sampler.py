"""A folder of per-note recordings as a sample bank (data/sampler.py), on a bank the test writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from musiclord.data.render import HEADROOM, RenderJob, check_soundfont, render_chunk
from musiclord.data.sampler import is_sample_bank, note_pitch
from musiclord.errors import DataError

sf = pytest.importorskip("soundfile")


def _bank(root: Path) -> Path:
    """Program 42: sine recordings (3 s, 22.05 kHz) of A2 and A3; a stray file that names no note."""
    (root / "cello").mkdir(parents=True)
    t = np.arange(int(3 * 22050)) / 22050
    for name, f0 in (("A2.wav", 110.0), ("A3.wav", 220.0)):
        sf.write(root / "cello" / name, 0.5 * np.sin(2 * np.pi * f0 * t), 22050)
    (root / "cello" / "F2 v2.wav").write_bytes(b"not audio")
    (root / "bank.json").write_text(json.dumps({"42": "cello"}))
    return root


def _peak_hz(x: np.ndarray, sr: int = 16000) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[spec.argmax()])


def test_note_names():
    assert note_pitch("A4.mp3") == 69 and note_pitch("Cs3.wav") == 49 and note_pitch("C-1.flac") == 0
    assert note_pitch("F2 v2.mp3") is None and note_pitch("README.md") is None and note_pitch("H2.wav") is None


def test_notes_play_the_nearest_recording_at_their_pitch(tmp_path):
    bank = _bank(tmp_path / "bank")
    assert is_sample_bank(bank) and not is_sample_bank(tmp_path)
    jobs = [RenderJob(((0.0, 1.5, 59),), (100,), 42),  # B3: A3 two semitones up
            RenderJob(((0.0, 1.5, 45),), (100,), 42),  # A2 as recorded
            RenderJob(((0.0, 1.5, 59),), (100,), 42, (80.0, 5.0, 0.0))]
    b3, a2, vib = render_chunk(str(bank), jobs, 2.0, 16000)
    assert b3.shape == (32000,) and abs(np.abs(b3).max() - HEADROOM) < 1e-4
    assert abs(_peak_hz(b3[1600:20000]) - 246.9) < 3 and abs(_peak_hz(a2[1600:20000]) - 110.0) < 3
    assert np.abs(b3[int(1.5 * 16000) + 2600:]).max() < 1e-6  # faded out 0.15 s after the note-off
    assert not np.allclose(b3, vib, atol=1e-3)
    np.testing.assert_array_equal(b3, render_chunk(str(bank), jobs[:1], 2.0, 16000)[0])


def test_a_bank_without_the_program_or_its_table_is_a_clear_error(tmp_path):
    bank = _bank(tmp_path / "bank")
    assert check_soundfont(bank, (42,)) == bank
    with pytest.raises(DataError, match="no folder for GM program 40"):
        check_soundfont(bank, (42, 40))
    (bank / "bank.json").write_text("[1, 2")
    with pytest.raises(DataError, match="unreadable bank.json"):
        check_soundfont(bank, (42,))
    empty = tmp_path / "empty"
    (empty / "v").mkdir(parents=True)
    (empty / "bank.json").write_text(json.dumps({"40": "v"}))
    with pytest.raises(DataError, match="no recordings named by their note"):
        check_soundfont(empty, (40,))
