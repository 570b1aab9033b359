"""prepare_synth on a tiny size: instruments, windows, rendering, pairing, determinism."""

from __future__ import annotations

import json

import numpy as np
import pytest

from musiclord.audio import MelConfig
from musiclord.data import Dataset, SynthOptions, common_range, prepare_synth, resolve_instrument, resolve_instruments
from musiclord.data.corpus import Line, cut_windows
from musiclord.data.render import HEADROOM, RenderJob, find_soundfont, render_chunk, timgm6mb
from musiclord.errors import DataError

pytest.importorskip("music21")
pytest.importorskip("fluidsynth")


def test_instrument_names():
    assert resolve_instrument("cello").program == 42
    assert resolve_instrument("Violin").program == 40
    assert resolve_instrument(73).name == "flute"
    assert resolve_instrument("acoustic grand piano").program == 0
    with pytest.raises(DataError, match="unknown instrument 'kazoo'.*cello.*violin"):
        resolve_instrument("kazoo")
    with pytest.raises(DataError, match="repeat"):
        resolve_instruments(["horn", "french_horn"])
    lo, hi = common_range(resolve_instruments(["cello", "piano", "violin", "flute"]))
    assert 55 <= lo <= 60 and 79 <= hi <= 89 and hi - lo >= 12
    with pytest.raises(DataError, match="less than an octave"):
        common_range(resolve_instruments(["contrabass", "piccolo"]))


def test_cut_windows_properties():
    # a scale of eighth notes over 4 octaves: wide enough that some windows need no shift, some cannot fit
    notes = tuple((0.5 * i, 0.5, 40 + i % 48) for i in range(200))
    rng = np.random.default_rng(0)
    wins = cut_windows(Line("p", "v", notes), rng, clip_s=2.0, bpm_range=(90, 130), pitch_range=(59, 84),
                       velocity_range=(60, 100), jitter_s=0.01, min_notes=3, min_fill=0.5)  # fmt: skip
    assert len(wins) > 5
    starts = [w.start_q for w in wins]
    assert starts == sorted(starts)
    for a, b in zip(wins, wins[1:]):  # disjoint in the score
        assert a.start_q + 2.0 * a.bpm / 60 <= b.start_q + 1e-3  # starts are rounded to 1e-4
    for w in wins:
        assert 90 <= w.bpm <= 130 and w.transpose % 12 == 0
        assert all(59 <= p <= 84 for _, _, p in w.notes)
        assert all(0 <= on and on + d <= 2.0 + 1e-6 for on, d, _ in w.notes)
        assert all(60 <= v <= 100 for v in w.velocities) and len(w.velocities) == len(w.notes)
        assert sum(d for _, d, _ in w.notes) >= 1.0


def test_render_plays_the_note():
    jobs = [RenderJob(((0.0, 1.5, 69),), (100,), 73), RenderJob(((0.0, 1.5, 57),), (100,), 42)]
    a4, a3 = render_chunk(str(timgm6mb()), jobs, 2.0, 16000)
    for wave, f0 in ((a4, 440.0), (a3, 220.0)):
        assert wave.shape == (32000,) and abs(np.abs(wave).max() - HEADROOM) < 1e-4
        spec = np.abs(np.fft.rfft(wave[4000:20000] * np.hanning(16000)))
        freqs = np.fft.rfftfreq(16000, 1 / 16000)
        # the fundamental or one of its first harmonics carries the most energy
        peak = freqs[np.argmax(spec)]
        assert min(abs(peak / f0 - k) for k in (1, 2, 3)) < 0.03, peak
    again = render_chunk(str(timgm6mb()), jobs, 2.0, 16000)
    np.testing.assert_array_equal(again[0], a4)  # a fresh synthesiser per chunk: repeatable


def _pitch_cents(wave: np.ndarray, sr: int, f0: float) -> np.ndarray:
    """Per 64 ms frame, the frequency of the strongest peak near f0 (parabolic interpolation), in
    cents from f0."""
    n = 1024
    out = []
    for s in range(0, len(wave) - n, n // 2):
        spec = np.abs(np.fft.rfft(wave[s:s + n] * np.hanning(n), 8 * n))
        lo, hi = int(f0 * 0.8 * 8 * n / sr), int(f0 * 1.25 * 8 * n / sr)
        k = lo + int(np.argmax(spec[lo:hi]))
        a, b, c = np.log(spec[k - 1:k + 2] + 1e-12)
        out.append(1200 * np.log2((k + 0.5 * (a - c) / (a - 2 * b + c)) * sr / (8 * n) / f0))
    return np.array(out)


def test_vibrato_bends_the_pitch_by_its_depth():
    note = ((0.0, 2.0, 69),)
    plain, wobbly = render_chunk(str(timgm6mb()), [RenderJob(note, (100,), 73),
                                                   RenderJob(note, (100,), 73, (50.0, 5.0, 0.0))], 2.0, 16000)
    p, w = _pitch_cents(plain[4000:28000], 16000, 440.0), _pitch_cents(wobbly[4000:28000], 16000, 440.0)
    assert p.std() < 8
    # a 50-cent sine has an RMS of 35 cents: the pitch wheel's range is what the depth assumes
    assert 25 < w.std() < 45 and w.max() - w.min() > 70, (w.std(), w.max() - w.min())
    again = render_chunk(str(timgm6mb()), [RenderJob(note, (100,), 73), RenderJob(note, (100,), 73, (50.0, 5.0, 0.0))],
                         2.0, 16000)
    np.testing.assert_array_equal(again[1], wobbly)
    # the wheel is reset: a clip after a vibrato one is played in tune
    after = render_chunk(str(timgm6mb()), [RenderJob(note, (100,), 73, (50.0, 5.0, 1.0)), RenderJob(note, (100,), 73)],
                         2.0, 16000)[1]
    assert np.abs(after - plain).max() < 1e-3  # (the synthesiser's state leaves ~1e-6 of difference)


def _note_rows(out) -> dict:
    """A dataset's notes.jsonl rows by clip id."""
    rows = [json.loads(line) for line in (out / "notes.jsonl").read_text().splitlines()]
    return {r["clip_id"]: r for r in rows}


def _tiny(out, cache, **kw):
    bank = str(timgm6mb())
    kw.setdefault("rerender_fraction", 0.0)
    opts = SynthOptions(classes=("cello", "violin"), train_per_class=6, test_windows=3, aux_per_class=2,
                        soundfont=bank, test_soundfont=bank, aux_soundfont=bank, workers=1,
                        cache_dir=str(cache), **kw)  # fmt: skip
    return prepare_synth(out, opts, MelConfig(), progress=False)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    return _tiny(root / "ds", root / "cache"), root


def test_tiny_synth_dataset(tiny):
    out, _ = tiny
    ds = Dataset.open(out)
    assert ds.classes == ["cello", "violin"] and ds.source == "synth"
    assert ds.counts() == {s: {"cello": n, "violin": n} for s, n in (("train", 6), ("val", 1), ("test", 3), ("aux", 2))}
    x = ds.mel_tensor(ds.records)
    assert x.shape == (len(ds), 128, 128) and bool(x.isfinite().all())
    assert float(x.std(dim=(1, 2)).min()) > 0.1  # every clip holds sound, not a constant image
    # unpaired splits: each score window is used once, by one class only
    unpaired = [(r.source, r.start_s) for r in ds.records if r.split != "test"]
    assert len(set(unpaired)) == len(unpaired)
    assert all(r.content_id is None and r.wave is None for r in ds.records if r.split != "test")
    # test: every window rendered by every class, from pieces never used for training
    pairs = ds.paired()
    assert len(pairs) == 3 and all(set(g) == {"cello", "violin"} for g in pairs.values())
    for g in pairs.values():
        assert g["cello"].source == g["violin"].source and g["cello"].start_s == g["violin"].start_s
        assert ds.load_wave(g["cello"]).shape == (32000,)
    test_pieces = {r.source.split("#")[0] for r in ds.select("test")}
    assert test_pieces == set(ds.options["test_pieces"])
    assert not test_pieces & {r.source.split("#")[0] for r in ds.records if r.split != "test"}
    # the score of every clip is kept, inside the common range
    rows = [json.loads(line) for line in (out / "notes.jsonl").read_text().splitlines()]
    assert [r["clip_id"] for r in rows] == [r.clip_id for r in ds.records]
    lo, hi = ds.options["pitch_range"]
    assert all(lo <= n[2] <= hi for r in rows for n in r["notes"])


def test_synth_is_deterministic_for_a_seed(tiny, tmp_path):
    out, root = tiny
    again = _tiny(tmp_path / "again", root / "cache")
    assert (again / "manifest.jsonl").read_text() == (out / "manifest.jsonl").read_text()
    np.testing.assert_array_equal(np.load(again / "mels.npy"), np.load(out / "mels.npy"))
    other = _tiny(tmp_path / "other", root / "cache", seed=1)
    assert (other / "manifest.jsonl").read_text() != (out / "manifest.jsonl").read_text()


def test_rerenders_replay_training_clips_and_leave_the_rest_alone(tiny, tmp_path):
    out, root = tiny
    fluid = find_soundfont("train")
    if fluid.name != "FluidR3_GM.sf2":
        pytest.skip("needs a second sample bank (Debian's fluid-soundfont-gm)")
    again = _tiny(tmp_path / "rr", root / "cache", rerender_fraction=0.5, rerender_soundfont=str(fluid))
    ds, base = Dataset.open(again), Dataset.open(out)
    rr = ds.select(split="rerender")
    train = {r.clip_id: r for r in ds.select(split="train")}
    assert len(rr) == 6 and all(r.content_id in train for r in rr)
    assert {r.cls for r in rr} == {"cello", "violin"}
    assert all(r.soundfont == "FluidR3_GM.sf2" and train[r.content_id].cls == r.cls for r in rr)
    notes = {json.loads(line)["clip_id"]: json.loads(line)["notes"] for line in (again / "notes.jsonl").read_text().splitlines()}
    assert all(notes[r.clip_id] == notes[r.content_id] for r in rr)
    # every other clip is rendered (and stored) exactly as without rerenders
    n = len(base)
    np.testing.assert_array_equal(np.load(again / "mels.npy")[:n], np.load(out / "mels.npy"))
    assert [r.clip_id for r in ds.records[:n]] == [r.clip_id for r in base.records]
    # another bank: the same notes sound different
    a = ds.mel_tensor(rr)
    b = ds.mel_tensor([train[r.content_id] for r in rr])
    assert float((a - b).abs().mean()) > 0.1


def test_cross_renders_play_training_notes_on_other_instruments(tiny, tmp_path):
    out, root = tiny
    again = _tiny(tmp_path / "cx", root / "cache", cross_fraction=1.0)
    ds, base = Dataset.open(again), Dataset.open(out)
    cx = ds.select(split="cross")
    train = {r.clip_id: r for r in ds.select(split="train")}
    assert len(cx) == 12 and {r.content_id for r in cx} == set(train)
    assert all(train[r.content_id].cls == r.cls for r in cx)  # labelled with the clip they re-render
    lines = (again / "notes.jsonl").read_text().splitlines()
    rows = {json.loads(line)["clip_id"]: json.loads(line) for line in lines}
    own = {"cello": 42, "violin": 40}
    assert all(rows[r.clip_id]["notes"] == rows[r.content_id]["notes"] for r in cx)
    assert all(rows[r.content_id]["program"] == own[r.cls] != rows[r.clip_id]["program"] for r in cx)
    assert len({rows[r.clip_id]["program"] for r in cx}) >= 4  # drawn from many instruments, not one
    n = len(base)
    np.testing.assert_array_equal(np.load(again / "mels.npy")[:n], np.load(out / "mels.npy"))
    a = ds.mel_tensor(cx)
    b = ds.mel_tensor([train[r.content_id] for r in cx])
    assert float((a - b).abs().mean()) > 0.1


def test_several_cross_renders_per_clip_with_vibrato(tiny, tmp_path):
    out, root = tiny
    one = Dataset.open(_tiny(tmp_path / "c1", root / "cache", cross_fraction=1.0))
    two = _tiny(tmp_path / "c2", root / "cache", cross_fraction=1.0, cross_per_clip=2, cross_vibrato_cents=40.0)
    ds = Dataset.open(two)
    rows = _note_rows(two)
    cx = ds.select(split="cross")
    assert len(cx) == 24
    by_clip: dict[str, list[int]] = {}
    for r in cx:
        by_clip.setdefault(r.content_id, []).append(rows[r.clip_id]["program"])
        assert rows[r.clip_id]["notes"] == rows[r.content_id]["notes"]
    assert all(len(set(p)) == 2 and rows[c]["program"] not in p for c, p in by_clip.items())
    # the first render of each clip keeps its program and bank; vibrato only on cross renders, within depth
    first = {r.clip_id: r for r in one.select(split="cross")}
    one_rows = _note_rows(tmp_path / "c1")
    mine = {r.clip_id: r for r in cx}
    assert all(rows[c]["program"] == one_rows[c]["program"] and mine[c].soundfont == r.soundfont
               for c, r in first.items())
    depths = [rows[r.clip_id]["vibrato"][0] for r in cx]
    assert 0 <= min(depths) and max(depths) <= 40 and len(set(depths)) == 24
    assert all("vibrato" not in rows[r.clip_id] for r in ds.records if r.split != "cross")
    np.testing.assert_array_equal(np.load(two / "mels.npy")[:len(Dataset.open(out))], np.load(out / "mels.npy"))
    with pytest.raises(DataError, match="cross_per_clip"):
        _tiny(tmp_path / "c0", root / "cache", cross_fraction=1.0, cross_per_clip=0)


def test_test_vibrato_plays_on_bowed_and_blown_test_renders_only(tiny, tmp_path):
    from musiclord.evaluate.lsd import lsd
    from musiclord.evaluate.oracle import oracle_waves

    out, root = tiny
    vib = _tiny(tmp_path / "v", root / "cache", test_vibrato_cents=40.0)
    ds = Dataset.open(vib)
    rows = _note_rows(vib)
    test = ds.select(split="test")
    depths = [rows[r.clip_id]["vibrato"][0] for r in test]
    assert len(depths) == 6 and 0 < min(depths) and max(depths) <= 40 and len(set(depths)) == 6
    assert all("vibrato" not in rows[r.clip_id] for r in ds.records if r.split != "test")
    # the test renders change, nothing else does
    plain = Dataset.open(out)
    a, b = np.load(vib / "mels.npy"), np.load(out / "mels.npy")
    for i, r in enumerate(plain.records):
        assert ds.records[i].clip_id == r.clip_id
        assert np.array_equal(a[i], b[i]) != (r.split == "test"), r.clip_id
    # the oracle replays the vibrato: on the tiny set's one bank it is the ground truth again
    cids = sorted(ds.paired())
    oracle = oracle_waves(ds, vib, ["cello", "violin"], cids)
    truth = np.stack([[ds.load_wave(ds.paired()[c][k]) for k in ("cello", "violin")] for c in cids])
    assert lsd(oracle.reshape(6, -1), truth.reshape(6, -1)).max() < 1.0
    # a piano cannot bend its notes: its test renders stay plain
    bank = str(timgm6mb())
    mixed = prepare_synth(tmp_path / "pv", SynthOptions(
        classes=("piano", "violin"), train_per_class=2, test_windows=2, aux_per_class=0, rerender_fraction=0.0,
        soundfont=bank, test_soundfont=bank, aux_soundfont=bank, workers=1, cache_dir=str(root / "cache"),
        test_vibrato_cents=40.0), MelConfig(), progress=False)  # fmt: skip
    assert {c for c, r in _note_rows(mixed).items() if "vibrato" in r} == {f"test-t{t:04d}-violin" for t in range(2)}
    with pytest.raises(DataError, match="test_vibrato_cents"):
        _tiny(tmp_path / "bad", root / "cache", test_vibrato_cents=-1.0)


def test_render_chunks_hold_at_most_fifteen_programs():
    from musiclord.data.instruments import resolve_instrument
    from musiclord.data.synth import _Clip, _split_programs

    cello = resolve_instrument("cello")
    clips = [_Clip(f"c{i}", "cross", cello, None, "bank", "x", p) for i, p in enumerate([*range(20), 3, 19, 40])]
    parts = _split_programs(clips)
    assert [c for part in parts for c in part] == clips  # same clips, same order
    assert [len({c.program for c in part}) for part in parts] == [15, 7]


def test_synth_refuses_bad_requests(tmp_path):
    with pytest.raises(DataError, match="unknown instrument"):
        prepare_synth(tmp_path / "x", SynthOptions(classes=("cello", "kazoo")))
    with pytest.raises(DataError, match="no such file"):
        prepare_synth(tmp_path / "x", SynthOptions(classes=("cello", "violin"), soundfont=str(tmp_path / "none.sf2")))
    bad = tmp_path / "bad.sf2"
    bad.write_bytes(b"not a soundfont at all")
    with pytest.raises(DataError, match="not a SoundFont"):
        prepare_synth(tmp_path / "x", SynthOptions(classes=("cello", "violin"), test_soundfont=str(bad)))
    assert not (tmp_path / "x").exists()


def test_sample_bank_oracle_replays_the_test_notes(tiny, tmp_path):
    from musiclord.evaluate.lsd import lsd
    from musiclord.evaluate.oracle import oracle_waves

    out, _ = tiny
    ds = Dataset.open(out)
    classes, cids = ["cello", "violin"], sorted(ds.paired())
    oracle = oracle_waves(ds, out, classes, cids)
    truth = np.stack([[ds.load_wave(ds.paired()[c][k]) for k in classes] for c in cids])
    assert oracle is not None and oracle.shape == truth.shape == (3, 2, 32000)
    # the tiny set renders train and test with one bank: the oracle is the ground truth again
    same = lsd(oracle.reshape(6, -1), truth.reshape(6, -1))
    other = lsd(np.roll(oracle, 1, axis=0).reshape(6, -1), truth.reshape(6, -1))  # other passages' notes
    assert same.max() < 1.0 and other.min() > 3 * same.max(), (same, other)
    (tmp_path / "ds").mkdir()  # no notes.jsonl: left out
    assert oracle_waves(ds, tmp_path / "ds", classes, cids) is None
