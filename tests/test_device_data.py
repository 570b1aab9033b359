"""scripts/device_data.py: a dataset sent in chunks arrives bit for bit, skipped splits stay zero."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "device_data.py"


def _module():
    spec = importlib.util.spec_from_file_location("device_data", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_chunks_rebuild_the_sent_rows_exactly(tmp_path: Path) -> None:
    dd = _module()
    src = tmp_path / "data"
    src.mkdir()
    rng = np.random.default_rng(0)
    mels = rng.normal(size=(250, 8, 6)).astype(np.float16)
    np.save(src / "mels.npy", mels)
    splits = ["train"] * 120 + ["test"] * 30 + ["rerender"] * 100
    lines = [json.dumps({"index": i, "split": s}) + "\n" for i, s in enumerate(splits)]
    (src / "manifest.jsonl").write_text("".join(lines))
    (src / "dataset.json").write_text("{}")
    chunks = dd.pack(src, tmp_path / "x", skip={"test"}, mb=0.008)  # ~10 KB of rows per chunk
    assert len(chunks) > 1 and (chunks[0] / "dataset.json").exists()
    dst = tmp_path / "dst"
    assert sum(dd.unpack(c, dst) for c in chunks) == 220
    got = np.load(dst / "mels.npy")
    sent = np.array([s != "test" for s in splits])
    np.testing.assert_array_equal(got[sent], mels[sent])
    assert not got[~sent].any()
    assert (dst / "manifest.jsonl").read_text() == (src / "manifest.jsonl").read_text()
