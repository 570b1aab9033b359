"""Machinery shared by the training loops: the learning-rate schedule and a DataLoader-free
batch iterator over a dataset's mels.

The rest lives beside it, one concern per file, and is re-exported here so that
`from musiclord.train.common import ...` keeps working:
`distributed` (devices, DistEnv, torch.distributed), `state` (seeding, RNG state, resumable
checkpoints, the non-finite guard), `tblog` (progress bars, TensorBoard).

Everything is rank-aware: logging, progress and checkpoint writes happen on rank 0 only.
"""

from __future__ import annotations

import contextlib
import logging
import math
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from musiclord.data import Dataset
from musiclord.errors import ConfigError, DataError
from musiclord.train.distributed import (
    DistEnv, all_reduce_mean, all_reduce_sum, barrier, cleanup_distributed, init_distributed, select_device,
)
from musiclord.train.state import (
    NonFiniteGuard, TrainingError, load_state, rng_state, save_state, seed_everything, set_rng_state, set_threads,
)
from musiclord.train.tblog import TBWriter, mel_grid, progress

__all__ = [
    "BatchIterator", "DistEnv", "NonFiniteGuard", "TBWriter", "TrainingError", "all_reduce_mean", "all_reduce_sum",
    "barrier", "cleanup_distributed", "cosine_lr_factor", "frozen", "init_distributed", "load_mels", "load_state",
    "mel_grid", "open_dataset", "progress", "rng_state", "save_state", "seed_everything", "select_device", "set_lr",
    "set_rng_state", "set_threads",
]

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# schedule


def cosine_lr_factor(step: int, total: int, warmup: int = 0, min_ratio: float = 0.0, cosine: bool = True) -> float:
    """Learning-rate multiplier at `step`: linear warm-up, then cosine decay to `min_ratio`."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if not cosine or total <= warmup:
        return 1.0
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t))


def set_lr(optimizer: torch.optim.Optimizer, factor: float) -> None:
    """Set every param group's lr to its "initial_lr" times `factor`."""
    for g in optimizer.param_groups:
        g.setdefault("initial_lr", g["lr"])
        g["lr"] = g["initial_lr"] * factor


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[nn.Module]:
    """Within the block `module`'s parameters take no gradient, while a loss computed through it
    still sends gradients to its inputs (a critic's or a classifier's verdict used as a loss);
    afterwards they are trainable again."""
    module.requires_grad_(False)
    try:
        yield module
    finally:
        module.requires_grad_(True)


# ---------------------------------------------------------------------------------------------
# data


class BatchIterator:
    """Shuffled batches of rows from an in-memory mel array, without a DataLoader.

    The order is a pure function of (seed, epoch), so the batch of any step can be recomputed
    after a resume, and every process sees the same global batch and takes its own slice.

    Args:
        mels: (N, M, T) float16/float32 tensor holding every row that `rows` refers to.
        rows: row indices (into `mels`) of the clips to iterate over.
        batch_size: global batch size (divisible by world_size).
        seed: shuffling seed.
        env: the process (its slice of each global batch).
        drop_last: skip the last incomplete batch of an epoch (keeps batch sizes equal).
    """

    def __init__(self, mels: torch.Tensor, rows: Sequence[int], batch_size: int, seed: int,
                 env: DistEnv | None = None, drop_last: bool = True) -> None:
        self.mels = mels
        self.rows = torch.as_tensor(list(rows), dtype=torch.long)
        self.env = env or DistEnv()
        if batch_size % self.env.world_size:
            raise ConfigError(f"batch size {batch_size} is not divisible by {self.env.world_size} processes")
        if len(self.rows) == 0:
            raise DataError("no training clips")
        self.batch_size = min(batch_size, len(self.rows)) if not drop_last else batch_size
        if drop_last and len(self.rows) < batch_size:
            self.batch_size = len(self.rows) - len(self.rows) % self.env.world_size
        self.seed = seed
        self.drop_last = drop_last
        self._perm_epoch = -1
        self._perm = self.rows

    @property
    def steps_per_epoch(self) -> int:
        n = len(self.rows)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def positions(self, step: int) -> torch.Tensor:
        """Positions (into `rows`) of the global batch of `step`: (batch_size,) long."""
        epoch, i = divmod(step, self.steps_per_epoch)
        if epoch != self._perm_epoch:
            g = torch.Generator().manual_seed(self.seed * 100003 + epoch)
            self._perm = torch.randperm(len(self.rows), generator=g)
            self._perm_epoch = epoch
        return self._perm[i * self.batch_size: (i + 1) * self.batch_size]

    def local_slice(self, n: int) -> slice:
        """This process's slice of a global batch of n items."""
        per = n // self.env.world_size
        return slice(self.env.rank * per, (self.env.rank + 1) * per)

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(positions (b,), mels (b, M, T) float32) of this process's share of step's batch.

        Positions index `rows` (i.e. the training clip numbering used by embedding tables).
        """
        pos = self.positions(step)[self.local_slice(self.batch_size)]
        return pos, self.mels[self.rows[pos]].float()

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        step = 0
        while True:
            yield self.batch(step)
            step += 1


def open_dataset(data_dir: str | Path) -> Dataset:
    """`musiclord.data.Dataset.open(data_dir)`.

    Raises:
        DataError: not a dataset directory.
    """
    return Dataset.open(data_dir)


def load_mels(dataset: Any) -> torch.Tensor:
    """The whole mel cache (N, M, T) as a float16 tensor in memory (fast random row access)."""
    arr = np.asarray(dataset.mels)
    return torch.from_numpy(np.array(arr, dtype=np.float16, copy=True))
