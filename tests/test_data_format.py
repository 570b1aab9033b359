"""The dataset directory format: writer -> Dataset.open round trip, version and path checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from musiclord.audio import MelConfig
from musiclord.data import ClipRecord, Dataset, describe
from musiclord.data.records import MANIFEST
from musiclord.data.writer import DatasetWriter, _shrink_npy
from musiclord.errors import DataError

MEL = MelConfig()


def _write(out, n_train=3, n_test=2, capacity=20, force=False):
    rng = np.random.default_rng(0)
    mels = {}
    with DatasetWriter(out, source="folder", classes=["a", "b"], mel=MEL, options={"x": 1},
                       capacity=capacity, force=force) as w:  # fmt: skip
        for cls in ("a", "b"):
            for i in range(n_train):
                m = rng.standard_normal((MEL.n_mels, MEL.n_frames)).astype(np.float16)
                r = w.add(clip_id=f"{cls}-{i}", cls=cls, source=f"{cls}/f{i}.wav", start_s=2.0 * i, split="train", mel=m)
                mels[r.clip_id] = m
            for i in range(n_test):
                m = rng.standard_normal((MEL.n_mels, MEL.n_frames)).astype(np.float16)
                wave = 0.5 * np.sin(np.arange(MEL.clip_samples) * 0.05 * (i + 1)).astype(np.float32)
                r = w.add(clip_id=f"test-{i}-{cls}", cls=cls, source=f"p{i}", start_s=0.0, split="test",
                          mel=m, content_id=f"t{i}", wave=wave)  # fmt: skip
                mels[r.clip_id] = m
        w.skip("a/bad.wav", "corrupt")
        return w.finish(), mels


def test_round_trip(tmp_path):
    out, mels = _write(tmp_path / "ds")
    ds = Dataset.open(out)
    assert ds.classes == ["a", "b"] and ds.mel_config == MEL and len(ds) == 10
    assert ds.mels.shape == (10, 128, 128) and ds.mels.dtype == np.float16
    assert isinstance(ds.mels, np.memmap)
    train_b = ds.select(split="train", cls="b")
    assert [r.clip_id for r in train_b] == ["b-0", "b-1", "b-2"] and all(r.label == 1 for r in train_b)
    x = ds.mel_tensor(train_b[::-1])  # order of the records, not of the rows
    assert x.dtype == torch.float32 and x.shape == (3, 128, 128)
    assert torch.equal(x[0], torch.from_numpy(mels["b-2"].astype(np.float32)))
    pairs = ds.paired()
    assert set(pairs) == {"t0", "t1"} and set(pairs["t1"]) == {"a", "b"}
    wave = ds.load_wave(pairs["t1"]["a"])
    expect = 0.5 * np.sin(np.arange(MEL.clip_samples) * 0.1)
    assert wave.shape == (MEL.clip_samples,) and np.abs(wave - expect).max() < 1e-3  # 16-bit WAV
    with pytest.raises(DataError, match="no saved waveform"):
        ds.load_wave(train_b[0])
    assert ds.counts() == {"train": {"a": 3, "b": 3}, "test": {"a": 2, "b": 2}}
    assert ds.skipped == [{"file": "a/bad.wav", "reason": "corrupt"}]
    text = describe(ds)
    assert "paired test windows: 2" in text and "a/bad.wav" in text
    with pytest.raises(DataError, match="unknown class"):
        ds.select(cls="zebra")


def test_shrink_npy_keeps_rows(tmp_path):
    path = tmp_path / "x.npy"
    m = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(1000, 3, 4))
    m[:] = np.arange(12000).reshape(1000, 3, 4) % 1000
    m.flush()
    del m
    _shrink_npy(path, 17)
    a = np.load(path, mmap_mode="r")
    assert a.shape == (17, 3, 4)
    np.testing.assert_array_equal(a, (np.arange(12000).reshape(1000, 3, 4) % 1000)[:17].astype(np.float16))


def test_existing_output_needs_force(tmp_path):
    out, _ = _write(tmp_path / "ds")
    with pytest.raises(DataError, match="--force"):
        _write(out)
    _write(out, n_train=1, force=True)
    assert len(Dataset.open(out)) == 6
    other = tmp_path / "notes"
    other.mkdir()
    (other / "mine.txt").write_text("keep me")
    with pytest.raises(DataError, match="not a musiclord dataset"):
        _write(other, force=True)
    assert (other / "mine.txt").read_text() == "keep me"


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with DatasetWriter(tmp_path / "ds", source="folder", classes=["a", "b"], mel=MEL, options={}, capacity=4) as w:
            w.add(clip_id="x", cls="a", source="a/x.wav", start_s=0, split="train", mel=np.zeros((128, 128)))
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_class_without_training_clip_is_an_error(tmp_path):
    with pytest.raises(DataError, match="'b' has no usable"):
        with DatasetWriter(tmp_path / "ds", source="folder", classes=["a", "b"], mel=MEL, options={}, capacity=4) as w:
            w.add(clip_id="x", cls="a", source="a/x.wav", start_s=0, split="train", mel=np.zeros((128, 128)))
            w.finish()
    assert list(tmp_path.iterdir()) == []


def _edit_manifest(out, fn):
    path = out / MANIFEST
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    fn(rows)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.mark.parametrize("bad", ["../outside.wav", "/etc/passwd", "waves/../../x.wav", "C:/x.wav"])
def test_paths_leaving_the_directory_are_rejected(tmp_path, bad):
    out, _ = _write(tmp_path / "ds")

    def edit(rows):
        rows[-1]["wave"] = bad

    _edit_manifest(out, edit)
    with pytest.raises(DataError, match="leaves the dataset directory|must be relative"):
        Dataset.open(out)


def test_symlink_escape_is_rejected(tmp_path):
    out, _ = _write(tmp_path / "ds")
    (tmp_path / "secret.wav").write_bytes(b"x")
    (out / "waves" / "link.wav").symlink_to(tmp_path / "secret.wav")

    def edit(rows):
        rows[-1]["wave"] = "waves/link.wav"

    _edit_manifest(out, edit)
    with pytest.raises(DataError, match="leaves the dataset directory"):
        Dataset.open(out)


def test_version_and_consistency_checks(tmp_path):
    out, _ = _write(tmp_path / "ds")
    header = json.loads((out / "dataset.json").read_text())
    (out / "dataset.json").write_text(json.dumps(header | {"version": 99}))
    with pytest.raises(DataError, match="version 99"):
        Dataset.open(out)
    (out / "dataset.json").write_text(json.dumps(header))

    def relabel(rows):
        rows[0]["label"] = 1

    _edit_manifest(out, relabel)
    with pytest.raises(DataError, match="does not match label"):
        Dataset.open(out)

    def drop(rows):
        rows[0]["label"] = 0
        rows.pop()

    _edit_manifest(out, drop)
    with pytest.raises(DataError, match="expected float16"):
        Dataset.open(out)
    with pytest.raises(DataError, match="not a musiclord dataset"):
        Dataset.open(tmp_path)


def test_record_json_round_trip():
    r = ClipRecord("c", "a", 0, "a/x.wav", 1.5, "val", 3, None, None, None)
    assert ClipRecord.from_dict(json.loads(r.to_json())) == r
    with pytest.raises(DataError, match="unknown split"):
        ClipRecord.from_dict(json.loads(r.to_json()) | {"split": "dev"})
