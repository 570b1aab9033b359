"""Versioned checkpoints: atomic writes, safe loads (`weights_only=True`), clear errors.

A checkpoint is one dict of tensors and plain values:
    {"format": "musiclord", "version": FORMAT_VERSION, "kind": str, ...payload}
It never contains pickled Python objects, so loading never executes code.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from musiclord.errors import CheckpointError

FORMAT = "musiclord"
FORMAT_VERSION = 1
HEADER_KEYS = ("format", "version", "kind")


def save_checkpoint(payload: dict[str, Any], path: str | Path, kind: str) -> None:
    """Write `payload` atomically to `path`: temp file in the same directory, fsync, rename.

    A process killed mid-write leaves the previous checkpoint intact. Header keys in `payload` (as
    in a loaded checkpoint written again) are replaced by this format's header and `kind`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {k: v for k, v in payload.items() if k not in HEADER_KEYS}
    obj = {"format": FORMAT, "version": FORMAT_VERSION, "kind": kind, **body}
    buf = io.BytesIO()
    torch.save(obj, buf)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(buf.getbuffer())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(
    path: str | Path, kind: str | tuple[str, ...] | None = None, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Load a musiclord checkpoint without unpickling code.

    Args:
        path: the checkpoint file.
        kind: accepted kind(s) (e.g. "latent", "amortized", "perceptual"); None accepts any.
        map_location: where tensors are loaded.

    Raises:
        CheckpointError: missing, truncated, not a musiclord checkpoint, wrong kind or version.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, foreign pickle with code, random bytes...
        reason = str(e).strip().splitlines()[0][:120] if str(e).strip() else e.__class__.__name__
        raise CheckpointError(f"{path}: not a readable musiclord checkpoint ({reason})") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a musiclord checkpoint (foreign file)")
    if obj.get("version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {obj.get('version')} is not supported "
            f"(this musiclord reads version {FORMAT_VERSION})"
        )
    kinds = (kind,) if isinstance(kind, str) else kind
    if kinds is not None and obj.get("kind") not in kinds:
        raise CheckpointError(f"{path}: a {obj.get('kind')!r} checkpoint, expected {' or '.join(kinds)}")
    return obj
