"""scripts/device_data.py: a dataset sent in chunks arrives bit for bit, skipped splits stay zero."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from musiclord.audio import MelConfig
from musiclord.data import Dataset
from musiclord.data.writer import DatasetWriter

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "device_data.py"
MEL = MelConfig()


def _module():
    spec = importlib.util.spec_from_file_location("device_data", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_chunks_rebuild_the_sent_rows_exactly(tmp_path: Path) -> None:
    dd = _module()
    rng = np.random.default_rng(0)
    splits = ["train"] * 12 + ["test"] * 4 + ["val"] * 8
    with DatasetWriter(tmp_path / "data", source="folder", classes=["a", "b"], mel=MEL, options={},
                       capacity=len(splits)) as w:  # fmt: skip
        for i, split in enumerate(splits):
            m = rng.standard_normal((MEL.n_mels, MEL.n_frames)).astype(np.float16)
            w.add(clip_id=f"c{i}", cls="ab"[i % 2], source=f"f{i}.wav", start_s=0.0, split=split, mel=m)
        src = w.finish()
    chunks = dd.pack(src, tmp_path / "x", skip={"test"}, mb=0.2)  # ~6 rows of random float16 per chunk
    assert len(chunks) > 1
    dst = tmp_path / "dst"
    assert sum(dd.unpack(c, dst) for c in chunks) == 20
    got, want = Dataset.open(dst), Dataset.open(src)
    sent = np.array([s != "test" for s in splits])
    np.testing.assert_array_equal(got.mels[sent], want.mels[sent])
    assert not got.mels[~sent].any()
    assert [r.clip_id for r in got.records] == [r.clip_id for r in want.records]
