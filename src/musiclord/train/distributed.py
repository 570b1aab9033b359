"""torch.distributed for the training loops: the device, where this process stands (`DistEnv`),
joining and leaving the process group under torchrun, all-reduce and barrier.

Every helper is an identity or no-op in a plain single-process run.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from musiclord.errors import ConfigError

log = logging.getLogger(__name__)


def select_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """"auto" | "cpu" | "cuda" -> a torch.device (the local rank's GPU under torchrun).

    Raises:
        ConfigError: "cuda" requested but not available.
    """
    if name not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"device must be auto, cpu or cuda, got {name!r}")
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError("device=cuda but no CUDA device is available")
    return torch.device("cuda", local_rank % torch.cuda.device_count())


@dataclass(frozen=True)
class DistEnv:
    """Where this process stands in a (possibly single-process) run.

    Attributes:
        rank: global rank (0 in a plain run).
        world_size: number of processes.
        local_rank: rank on this machine (picks the GPU).
        device: this process's device.
        initialized: whether torch.distributed was initialised by `init_distributed`.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    initialized: bool = False

    @property
    def is_main(self) -> bool:
        """True on rank 0, the process that logs and writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "auto") -> DistEnv:
    """Read torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT) and join the
    process group: gloo on CPU, nccl on CUDA. Without WORLD_SIZE > 1 it is a plain run."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = select_device(device, local_rank)
    if world <= 1:
        return DistEnv(0, 1, 0, dev, False)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    initialized = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
        initialized = True
    log.info("process %d of %d on %s", rank, world, dev)
    return DistEnv(rank, world, local_rank, dev, initialized)


def cleanup_distributed(env: DistEnv) -> None:
    """Leave the process group if `init_distributed` joined it."""
    if env.initialized and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_mean(x: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """In-place mean of a tensor over processes (identity in a plain run); returns x."""
    if env.distributed:
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
        x /= env.world_size
    return x


def all_reduce_sum(x: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """In-place sum of a tensor over processes (identity in a plain run); returns x."""
    if env.distributed:
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x


def barrier(env: DistEnv) -> None:
    """Wait for every process (no-op in a plain run)."""
    if env.distributed:
        dist.barrier()
