"""What a training run shows: progress bars and TensorBoard logs (scalars, spectrogram grids,
Griffin-Lim audio), on rank 0 only."""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

import torch

from musiclord.train.distributed import DistEnv

log = logging.getLogger(__name__)


def progress(total: int, env: DistEnv, desc: str, initial: int = 0):
    """A tqdm bar on rank 0, a silent stand-in elsewhere (or when tqdm is unavailable)."""
    if env.is_main:
        try:
            from tqdm.auto import tqdm

            return tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True, leave=False,
                        disable=os.environ.get("MUSICLORD_NO_PROGRESS") == "1")
        except ImportError:  # pragma: no cover
            pass
    return _NoBar()


class _NoBar:
    def update(self, n: int = 1) -> None: ...
    def set_postfix(self, *a: Any, **k: Any) -> None: ...
    def close(self) -> None: ...


class TBWriter:
    """A SummaryWriter that does nothing off rank 0 (or when disabled).

    Args:
        log_dir: RUN_DIR/tb.
        env: the process; only rank 0 writes.
        enabled: False makes every call a no-op.
    """

    def __init__(self, log_dir: str | Path, env: DistEnv, enabled: bool = True) -> None:
        self.writer = None
        if enabled and env.is_main:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                log.warning("tensorboard is not installed (pip install 'musiclord[train]'): no TensorBoard logs")
            else:
                self.writer = SummaryWriter(str(log_dir))

    def scalars(self, values: dict[str, float | torch.Tensor], step: int) -> None:
        """Log scalars under their names (e.g. "loss/l2")."""
        if self.writer is None:
            return
        for k, v in values.items():
            self.writer.add_scalar(k, float(v), step)

    def spectrograms(self, tag: str, mels: torch.Tensor, step: int, nrow: int = 4) -> None:
        """Log a grid image of (B, M, T) normalised log-mels (low frequencies at the bottom)."""
        if self.writer is None:
            return
        self.writer.add_image(tag, mel_grid(mels, nrow), step)

    def audio(self, tag: str, mel: torch.Tensor, step: int, mel_cfg: Any) -> None:
        """Invert (M, T) or (B, M, T) normalised log-mels with Griffin-Lim and log the audio."""
        if self.writer is None:
            return
        from musiclord.audio import invert

        wave = invert(mel.detach().float().cpu().reshape(-1, *mel.shape[-2:]), mel_cfg)
        for i, w in enumerate(wave):
            peak = w.abs().max().clamp_min(1e-6)
            self.writer.add_audio(f"{tag}/{i}", (w / peak * 0.9)[None], step, sample_rate=mel_cfg.sample_rate)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()


def mel_grid(mels: torch.Tensor, nrow: int = 4, vmin: float = -2.0, vmax: float = 3.5) -> torch.Tensor:
    """(B, M, T) log-mels -> (3, H, W) image in [0, 1]: a grid of `nrow` columns, 2-pixel gaps,
    low frequencies at the bottom, a dark-to-bright colour ramp."""
    mels = mels.detach().float().cpu()
    b, m, t = mels.shape
    ncol = min(nrow, b)
    nr = math.ceil(b / ncol)
    pad = 2
    img = torch.ones(nr * (m + pad) - pad, ncol * (t + pad) - pad)
    x = ((mels - vmin) / (vmax - vmin)).clamp(0, 1).flip(1)
    for i in range(b):
        r, c = divmod(i, ncol)
        img[r * (m + pad): r * (m + pad) + m, c * (t + pad): c * (t + pad) + t] = x[i]
    # a magma-like ramp without matplotlib: black -> purple -> orange -> pale yellow
    rgb = torch.stack([img.pow(0.6), img.pow(1.6), (0.5 * torch.sin(math.pi * img) + 0.5 * img.pow(3))], 0)
    return rgb.clamp(0, 1)
