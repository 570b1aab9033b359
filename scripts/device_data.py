"""Send a prepared dataset to a lent GPU machine (the `device` tool) in calls under its size limit.

    python scripts/device_data.py pack runs/data2 .xfer --skip aux,test --mb 50
    # one device call per chunk, carrying .xfer/cK (and scripts/ travels with the tree):
    python3 scripts/device_data.py unpack .xfer/c0 /tmp/data2

Each chunk holds blocks of consecutive mel rows, each a zlib of the rows' bytes regrouped by byte
position (lossless; float16 log-mels shrink to ~0.6-0.75), plus the dataset's other top-level files
(header, manifest, notes) in the first chunk. `pack` reads the dataset through musiclord's own
reader (checked); `unpack` needs only numpy, so it runs on a machine without musiclord installed. Rows of the `--skip` splits are not sent and stay zero on the other side: stage 2
reads only the train, val, rerender and cross splits. A machine held between calls keeps /tmp, so the
chunks add up there; a fresh machine needs them all again. Session 10 sent runs/data2 (282 MB)
in four calls of under 64 MiB this way (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import shutil
import zlib
from pathlib import Path

import numpy as np

BLOCK_ROWS = 100


def _shuffle(x: np.ndarray) -> bytes:
    return np.ascontiguousarray(x).view(np.uint8).reshape(-1, x.dtype.itemsize).T.tobytes()


def _unshuffle(raw: bytes, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    b = np.frombuffer(raw, np.uint8).reshape(dtype.itemsize, -1).T.copy()
    return b.view(dtype).reshape(shape)


def _row_runs(rows: list[int]) -> list[tuple[int, int]]:
    """Consecutive rows as [start, stop) runs of at most BLOCK_ROWS."""
    runs: list[tuple[int, int]] = []
    for r in rows:
        if runs and runs[-1][1] == r and r - runs[-1][0] < BLOCK_ROWS:
            runs[-1] = (runs[-1][0], r + 1)
        else:
            runs.append((r, r + 1))
    return runs


def pack(data_dir: str | Path, out: str | Path, skip: set[str], mb: float) -> list[Path]:
    """Write out/c0, out/c1, ... each under `mb` MB of blocks; returns the chunk folders."""
    from musiclord.data import Dataset
    from musiclord.data.records import MELS

    data_dir, out = Path(data_dir), Path(out)
    ds = Dataset.open(data_dir)
    mels = ds.mels
    rows = sorted(r.index for r in ds.records if r.split not in skip)
    if not rows:
        raise SystemExit(f"{data_dir}: no clips outside the skipped splits {sorted(skip)}")
    header = {"file": MELS, "shape": list(mels.shape), "dtype": str(mels.dtype)}
    chunks: list[Path] = []
    size = float("inf")
    for a, b in _row_runs(rows):
        blob = zlib.compress(_shuffle(mels[a:b]), 6)
        if size + len(blob) > mb * 1e6:
            chunks.append(out / f"c{len(chunks)}")
            chunks[-1].mkdir(parents=True, exist_ok=True)
            (chunks[-1] / "header.json").write_text(json.dumps(header))
            size = 0
        (chunks[-1] / f"rows_{a}_{b}.z").write_bytes(blob)
        size += len(blob)
    for f in data_dir.iterdir():
        if f.is_file() and f.name != MELS:
            shutil.copy(f, chunks[0] / f.name)
    return chunks


def unpack(chunk: str | Path, dst: str | Path) -> int:
    """Add one chunk's rows to dst/mels.npy (created zero-filled by the first); returns rows written."""
    chunk, dst = Path(chunk), Path(dst)
    header = json.loads((chunk / "header.json").read_text())
    dtype, shape = np.dtype(header["dtype"]), tuple(header["shape"])
    dst.mkdir(parents=True, exist_ok=True)
    path = dst / header["file"]
    mels = (np.lib.format.open_memmap(path, mode="r+") if path.exists()
            else np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape))
    if mels.shape != shape or mels.dtype != dtype:
        raise SystemExit(f"{path}: shape {mels.shape} {mels.dtype}, the chunk has {shape} {dtype}")
    n = 0
    for f in sorted(chunk.glob("rows_*.z")):
        a, b = (int(v) for v in f.stem.split("_")[1:])
        mels[a:b] = _unshuffle(zlib.decompress(f.read_bytes()), dtype, (b - a, *shape[1:]))
        n += b - a
    mels.flush()
    for f in chunk.iterdir():
        if f.name != "header.json" and f.suffix != ".z":
            shutil.copy(f, dst / f.name)
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("data_dir")
    p.add_argument("out")
    p.add_argument("--skip", default="aux,test", help="splits not sent (comma-separated)")
    p.add_argument("--mb", type=float, default=45.0, help="MB of rows per chunk (the working tree also travels)")
    u = sub.add_parser("unpack")
    u.add_argument("chunk")
    u.add_argument("dst")
    args = ap.parse_args()
    if args.cmd == "pack":
        for c in pack(args.data_dir, args.out, set(filter(None, args.skip.split(","))), args.mb):
            print(c, f"{sum(f.stat().st_size for f in c.iterdir()) / 1e6:.1f} MB")
    else:
        print(args.chunk, unpack(args.chunk, args.dst), "rows")


if __name__ == "__main__":
    main()
