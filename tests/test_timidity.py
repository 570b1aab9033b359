"""A TiMidity++ patch set as a sample bank (data/timidity.py): parsing, checks, rendering."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from musiclord.data.render import HEADROOM, RenderJob, check_soundfont, render_chunk, timgm6mb
from musiclord.data.timidity import _programs, is_timidity_config
from musiclord.errors import DataError

FREEPATS = Path("/etc/timidity/freepats.cfg")


def test_programs_are_read_from_bank_0_only(tmp_path):
    cfg = tmp_path / "set.cfg"
    cfg.write_text("dir /x\n# 5 comment.pat\n0 piano.pat amp=90\n40 violin.pat\nbank 1\n42 cello.pat\n"
                   "drumset 0\n35 kick.pat\nbank 0\n73 flute.pat # flute\n")
    assert _programs(cfg) == {0, 40, 73}
    assert is_timidity_config(cfg) and not is_timidity_config(tmp_path / "bank.sf2")


def test_a_missing_config_or_program_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        check_soundfont(tmp_path / "none.cfg")
    if shutil.which("timidity") is None:
        cfg = tmp_path / "set.cfg"
        cfg.write_text("0 piano.pat\n")
        with pytest.raises(DataError, match="apt-get install timidity"):
            check_soundfont(cfg)
        return
    cfg = tmp_path / "set.cfg"
    cfg.write_text("0 piano.pat\n")
    assert check_soundfont(cfg, (0,)) == cfg
    with pytest.raises(DataError, match="no patch for GM program 42"):
        check_soundfont(cfg, (0, 42))


@pytest.mark.skipif(shutil.which("timidity") is None or not FREEPATS.is_file(),
                    reason="needs TiMidity++ and Debian's freepats")
def test_freepats_renders_the_note_in_its_own_sound():
    pytest.importorskip("fluidsynth")
    jobs = [RenderJob(((0.0, 1.5, 57),), (100,), 42), RenderJob(((0.0, 1.5, 57),), (100,), 42, (60.0, 5.0, 0.0))]
    plain, vibrato = render_chunk(str(FREEPATS), jobs, 2.0, 16000)
    ref = render_chunk(str(timgm6mb()), jobs[:1], 2.0, 16000)[0]
    assert plain.shape == (32000,) and abs(np.abs(plain).max() - HEADROOM) < 1e-4
    spec = np.abs(np.fft.rfft(plain[4000:20000] * np.hanning(16000)))
    freqs = np.fft.rfftfreq(16000, 1 / 16000)
    assert abs(freqs[spec.argmax()] / 220.0 - round(freqs[spec.argmax()] / 220.0)) < 0.02  # a harmonic of A3
    assert not np.allclose(plain, vibrato, atol=1e-3)  # the pitch wheel reaches TiMidity++
    assert np.corrcoef(plain, ref)[0, 1] < 0.9  # another bank's cello
    np.testing.assert_array_equal(plain, render_chunk(str(FREEPATS), jobs[:1], 2.0, 16000)[0])  # deterministic
