"""prepare_musicnet on a MusicNet-shaped fixture (the real metadata table) and prepare_folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from musiclord.data import Dataset, FolderOptions, MusicNetOptions, class_name, prepare_folder, prepare_musicnet
from musiclord.data.recordings import max_windows
from musiclord.errors import DataError

METADATA = Path("/work/shared/data/musicnet/musicnet_metadata.csv")
SR = 44100
# real MusicNet ids: (ensemble, train ids, test ids); 2298, 2191 and 1759 are in MusicNet's test set
FIXTURE = {
    "Solo Cello": (["2217", "2218", "2219"], ["2298"]),
    "Solo Violin": (["2186", "2241"], ["2191"]),
    "Solo Piano": (["1733", "1734"], ["1759"]),
    "Wind Quintet": (["2075", "2076"], []),
}


def _tone(seconds: float, f0: float, seed: int, silent_from: float | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.1 * np.sin(2 * np.pi * 2 * f0 * t) + 0.001 * rng.standard_normal(len(t))
    if silent_from is not None:
        x[int(silent_from * SR) :] = 0.0
    return x.astype(np.float32)


def make_musicnet(root: Path) -> dict[str, float]:
    """A MusicNet-shaped folder: the real metadata and short 44.1 kHz WAVs for a few real ids."""
    root.mkdir(parents=True)
    if METADATA.is_file():
        shutil.copy(METADATA, root / "musicnet_metadata.csv")
    else:  # the shared copy is missing: the same columns and ids
        rows = ["id,composer,composition,movement,ensemble,source,transcriber,catalog_name,seconds"]
        rows += [f"{i},x,x,x,{e},x,x,x,10" for e, (tr, te) in FIXTURE.items() for i in tr + te]
        (root / "musicnet_metadata.csv").write_text("\n".join(rows) + "\n")
    durations = {}
    for k, (ens, (train, test)) in enumerate(FIXTURE.items()):
        for j, i in enumerate(train + test):
            sub = "train_data" if i in train else "test_data"
            # 7 s, of which the last 2.5 s are digital silence: 3 sounding windows of 2 s
            (root / sub).mkdir(exist_ok=True)
            sf.write(root / sub / f"{i}.wav", _tone(7.0, 110.0 * (k + 2) + 7 * j, seed=j, silent_from=4.5), SR)
            (root / sub.replace("data", "labels")).mkdir(exist_ok=True)
            (root / sub.replace("data", "labels") / f"{i}.csv").write_text("start_time,end_time,instrument,note\n")
            durations[i] = 7.0
    return durations


def test_class_names():
    assert [class_name(e) for e in FIXTURE] == ["cello", "violin", "piano", "wind_quintet"]


def test_musicnet_fixture(tmp_path):
    make_musicnet(tmp_path / "mn")
    (tmp_path / "mn" / "train_data" / "2220.wav").write_bytes(b"RIFF....WAVEjunk")  # a corrupt cello file
    out = prepare_musicnet(tmp_path / "mn", tmp_path / "ds", MusicNetOptions(workers=1, val_fraction=0.34), progress=False)
    ds = Dataset.open(out)
    assert ds.classes == ["cello", "piano", "violin", "wind_quintet"] and ds.source == "musicnet"
    by_file: dict[str, set[str]] = {}
    for r in ds.records:
        by_file.setdefault(r.source, set()).add(r.split)
    assert all(len(s) == 1 for s in by_file.values())  # split by recording
    assert {f for f, s in by_file.items() if s == {"test"}} == {"test_data/2298.wav", "test_data/2191.wav", "test_data/1759.wav"}
    assert {f for f, s in by_file.items() if s == {"val"}} and all(f.startswith("train_data/") for f, s in by_file.items() if s != {"test"})
    # 7 s files, silent after 4.5 s: windows at 0 and 2 s sound, the one at 4 s is mostly silence but
    # over -40 dB re peak (0.5 s of tone), so 3 windows per file, 0 from the silent tail
    per_file = {f: sum(r.source == f for r in ds.records) for f in by_file}
    assert set(per_file.values()) == {3} and max_windows(7.0, 2.0, 2.0) == 3
    assert sorted(r.start_s for r in ds.records if r.source == "train_data/2217.wav") == [0.0, 2.0, 4.0]
    assert not ds.paired() and all(r.content_id is None for r in ds.records)
    test = ds.select("test", "cello")
    wave = ds.load_wave(test[0])
    assert wave.shape == (32000,) and abs(float(np.abs(wave).max()) - 0.891) < 0.01  # resampled to 16 kHz
    skipped = {s["file"]: s["reason"] for s in ds.skipped}
    assert "train_data/2220.wav" in skipped
    assert sum(r == "not found in train_data/ or test_data/" for r in skipped.values()) > 100  # ids without audio
    x = ds.mel_tensor(ds.select("train"))
    assert bool(x.isfinite().all()) and x.shape[1:] == (128, 128)
    header = json.loads((out / "dataset.json").read_text())
    assert header["counts"]["test"]["wind_quintet"] == 0 and header["options"]["hop_seconds"] == 2.0


def test_musicnet_hop_and_bad_input(tmp_path):
    make_musicnet(tmp_path / "mn")
    out = prepare_musicnet(tmp_path / "mn", tmp_path / "ds", MusicNetOptions(ensembles=("Solo Cello", "solo violin"),
                           hop_seconds=1.0, workers=1), progress=False)  # fmt: skip
    ds = Dataset.open(out)
    assert ds.classes == ["cello", "violin"]
    # hop 1 s: starts 0..5 s, the windows at 4 and 5 s hold 0.5 s and 0 s of tone; 5 s is dropped
    assert sorted(r.start_s for r in ds.records if r.source == "train_data/2217.wav") == [0.0, 1.0, 2.0, 3.0, 4.0]
    with pytest.raises(DataError, match="unknown MusicNet ensemble 'Solo Kazoo'.*Solo Cello"):
        prepare_musicnet(tmp_path / "mn", tmp_path / "x", MusicNetOptions(ensembles=("Solo Cello", "Solo Kazoo")))
    with pytest.raises(DataError, match="no such MusicNet folder"):
        prepare_musicnet(tmp_path / "nowhere", tmp_path / "x")
    for f in (tmp_path / "mn" / "train_data").glob("2186.wav"):
        f.unlink()
    (tmp_path / "mn" / "train_data" / "2241.wav").write_bytes(b"")  # empty
    sf.write(tmp_path / "mn" / "test_data" / "2191.wav", np.zeros(SR * 5, np.float32), SR)  # silent
    with pytest.raises(DataError, match="'violin' has no usable"):
        prepare_musicnet(tmp_path / "mn", tmp_path / "x", MusicNetOptions(ensembles=("Solo Cello", "Solo Violin"), workers=1),
                         progress=False)  # fmt: skip
    assert not (tmp_path / "x").exists()


def test_folder_source(tmp_path):
    root = tmp_path / "rec"
    for k, cls in enumerate(("flute", "oboe")):
        (root / cls / "sub").mkdir(parents=True)
        for j in range(4):
            fmt = ("wav", "flac", "ogg", "wav")[j]
            path = root / cls / ("sub" if j == 3 else "") / f"take{j}.{fmt}"
            x = _tone(4.5, 300.0 + 50 * k + 10 * j, seed=j)
            sf.write(path, x[::2] if j == 1 else x, SR // 2 if j == 1 else SR)  # one file at 22.05 kHz
    (root / "oboe" / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt ")
    sf.write(root / "oboe" / "quiet.wav", np.zeros(SR * 3, np.float32), SR)
    (root / "oboe" / "notes.txt").write_text("not audio")
    out = prepare_folder(root, tmp_path / "ds", FolderOptions(val_fraction=0.25, test_fraction=0.25, workers=1), progress=False)
    ds = Dataset.open(out)
    assert ds.classes == ["flute", "oboe"] and ds.source == "folder"
    assert {s["file"] for s in ds.skipped} == {"oboe/broken.wav", "oboe/quiet.wav"}
    splits = {}
    for r in ds.records:
        splits.setdefault(r.source, set()).add(r.split)
    assert all(len(s) == 1 for s in splits.values())
    assert "flute/sub/take3.wav" in splits and "flute/take2.ogg" in splits
    for cls in ds.classes:
        assert {next(iter(splits[f])) for f in splits if f.startswith(cls + "/")} == {"train", "val", "test"}
    assert all(r.wave is not None for r in ds.select("test")) and all(r.wave is None for r in ds.select("train"))
    assert len(ds.select(cls="flute")) == 4 * 2  # 4.5 s files: windows at 0 and 2 s


def test_folder_bad_input(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        prepare_folder(tmp_path / "nowhere", tmp_path / "ds")
    root = tmp_path / "rec"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    sf.write(root / "a" / "x.wav", _tone(3.0, 440.0, 0), SR)
    with pytest.raises(DataError, match="class 'b' has no audio file"):
        prepare_folder(root, tmp_path / "ds")
    sf.write(root / "b" / "short.wav", _tone(1.0, 440.0, 0), SR)
    with pytest.raises(DataError, match="'b' has no usable"):
        prepare_folder(root, tmp_path / "ds", FolderOptions(workers=1), progress=False)
    assert not (tmp_path / "ds").exists()
