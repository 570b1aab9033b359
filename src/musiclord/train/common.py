"""Machinery shared by the training loops: devices, torch.distributed, seeding, resumable
checkpoints (weights, optimizer, RNG), TensorBoard, the non-finite guard, progress bars, the
learning-rate schedule and a DataLoader-free batch iterator over a dataset's mels.

Everything here is rank-aware: logging, progress and checkpoint writes happen on rank 0 only.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.distributed as dist

from musiclord.checkpoint import load_checkpoint, save_checkpoint
from musiclord.errors import ConfigError, DataError, MusiclordError

log = logging.getLogger(__name__)


class TrainingError(MusiclordError):
    """Training cannot go on (e.g. too many non-finite losses in a row)."""


# ---------------------------------------------------------------------------------------------
# devices and processes


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


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed python, numpy and torch; ask torch for deterministic kernels where it has them."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def set_threads(n: int) -> None:
    """Torch CPU threads (0 keeps torch's default)."""
    if n > 0:
        torch.set_num_threads(n)


# ---------------------------------------------------------------------------------------------
# checkpoints


def rng_state() -> dict[str, Any]:
    """The global RNG states (torch CPU, CUDA, numpy, python) as tensors, loadable with
    weights_only=True."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    state["numpy"] = torch.tensor(np.frombuffer(json.dumps(_np_state()).encode(), dtype=np.uint8).copy())
    state["python"] = torch.tensor(np.frombuffer(json.dumps(_py_state()).encode(), dtype=np.uint8).copy())
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` captured."""
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if "numpy" in state:
        s = json.loads(bytes(state["numpy"].tolist()).decode())
        np.random.set_state((s[0], np.array(s[1], dtype=np.uint32), s[2], s[3], s[4]))
    if "python" in state:
        s = json.loads(bytes(state["python"].tolist()).decode())
        random.setstate((s[0], tuple(s[1]), s[2]))


def _np_state() -> list:
    s = np.random.get_state()
    return [s[0], s[1].tolist(), int(s[2]), int(s[3]), float(s[4])]


def _py_state() -> list:
    s = random.getstate()
    return [s[0], list(s[1]), s[2]]


def save_state(path: str | Path, kind: str, objects: dict[str, Any], step: int, **extra: Any) -> None:
    """Write a resumable training state atomically.

    Args:
        path: checkpoint file.
        kind: checkpoint kind ("latent", "amortized", ...).
        objects: name -> object with `state_dict()` (modules, optimizers, schedulers,
            torch.Generator via `get_state`), all saved under "state/<name>".
        step: optimisation steps done.
        **extra: plain values (config dicts, counters) stored at the top level.
    """
    states: dict[str, Any] = {}
    for name, obj in objects.items():
        if isinstance(obj, torch.Generator):
            states[name] = obj.get_state()
        else:
            if hasattr(obj, "module") and isinstance(obj, torch.nn.parallel.DistributedDataParallel):
                obj = obj.module
            states[name] = _to_cpu(obj.state_dict())
    payload = {"step": int(step), "state": states, "rng": rng_state(), **extra}
    save_checkpoint(payload, path, kind=kind)


def load_state(path: str | Path, kind: str, objects: dict[str, Any], map_location: str | torch.device = "cpu",
               restore_rng: bool = True) -> dict[str, Any]:
    """Restore what `save_state` wrote into `objects` (in place) and the global RNGs.

    Returns:
        The whole checkpoint dict (its "step" and the extras).

    Raises:
        CheckpointError: missing, truncated, foreign or of another kind; objects that do not
            match the file.
    """
    from musiclord.errors import CheckpointError

    obj = load_checkpoint(path, kind=kind, map_location=map_location)
    states = obj.get("state", {})
    for name, target in objects.items():
        if name not in states:
            raise CheckpointError(f"{path}: no saved state for {name!r}")
        try:
            if isinstance(target, torch.Generator):
                target.set_state(states[name].cpu())
            else:
                if isinstance(target, torch.nn.parallel.DistributedDataParallel):
                    target = target.module
                target.load_state_dict(states[name])
        except (RuntimeError, KeyError, ValueError, TypeError) as e:
            raise CheckpointError(f"{path}: saved {name!r} does not match this run ({str(e)[:120]})") from None
    if restore_rng and "rng" in obj:
        set_rng_state(obj["rng"])
    return obj


def _to_cpu(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu()
    if isinstance(x, dict):
        return {k: _to_cpu(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_to_cpu(v) for v in x]
    if isinstance(x, tuple):
        return tuple(_to_cpu(v) for v in x)
    return x


# ---------------------------------------------------------------------------------------------
# schedule, guard, progress


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


class NonFiniteGuard:
    """Skips steps whose loss is NaN or inf, counts them, and stops after too many in a row.

    Args:
        max_in_a_row: consecutive non-finite losses tolerated before `TrainingError`.
    """

    def __init__(self, max_in_a_row: int = 20) -> None:
        self.max_in_a_row = max(1, max_in_a_row)
        self.in_a_row = 0
        self.total = 0

    def check(self, loss: torch.Tensor, env: DistEnv | None = None, step: int | None = None) -> bool:
        """True if the step may go on; False (and counted) if the loss is non-finite on any rank.

        Raises:
            TrainingError: `max_in_a_row` non-finite losses in a row.
        """
        bad = torch.tensor([0.0 if torch.isfinite(loss.detach()).all() else 1.0], device=loss.device)
        if env is not None:
            all_reduce_sum(bad, env)
        if bad.item() == 0:
            self.in_a_row = 0
            return True
        self.in_a_row += 1
        self.total += 1
        log.warning("non-finite loss at step %s: step skipped (%d in a row, %d in all)", step, self.in_a_row, self.total)
        if self.in_a_row >= self.max_in_a_row:
            raise TrainingError(
                f"training stopped: {self.in_a_row} non-finite losses in a row (at step {step}); "
                "lower the learning rates or check the data"
            )
        return False

    def state_dict(self) -> dict[str, int]:
        return {"in_a_row": self.in_a_row, "total": self.total}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.in_a_row = int(state.get("in_a_row", 0))
        self.total = int(state.get("total", 0))


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


# ---------------------------------------------------------------------------------------------
# TensorBoard


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


def open_dataset(data_dir: str | Path):
    """`musiclord.data.Dataset.open(data_dir)`; until that package is installed, a minimal reader
    of the same on-disk format (docs/design.md) with `.classes`, `.mel_config`, `.records`,
    `.mels` and `.select`.

    Raises:
        DataError: not a dataset directory.
    """
    try:
        from musiclord.data import Dataset
    except ImportError:
        return _MiniDataset(Path(data_dir))
    return Dataset.open(data_dir)


@dataclass(frozen=True)
class _Record:
    clip_id: str
    cls: str
    label: int
    split: str
    index: int


class _MiniDataset:
    """Reads dataset.json, manifest.jsonl and mels.npy (memory-mapped); format version 1."""

    def __init__(self, root: Path) -> None:
        from musiclord.audio import MelConfig
        from musiclord.config import from_dict

        meta_path = root / "dataset.json"
        if not meta_path.is_file():
            raise DataError(f"{root}: not a musiclord dataset (no dataset.json)")
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != "musiclord-dataset" or meta.get("version") != 1:
            raise DataError(f"{root}: unsupported dataset format")
        self.classes = list(meta["classes"])
        self.mel_config = from_dict(MelConfig, meta.get("mel", {}))
        self.records = []
        for line in (root / "manifest.jsonl").read_text().splitlines():
            if line.strip():
                d = json.loads(line)
                self.records.append(_Record(d["clip_id"], d["cls"], int(d["label"]), d["split"], int(d["index"])))
        self.mels = np.load(root / "mels.npy", mmap_mode="r")

    def select(self, split: str | None = None, cls: str | None = None) -> list:
        return [r for r in self.records if (split is None or r.split == split) and (cls is None or r.cls == cls)]

    def mel_tensor(self, records: Sequence[Any]) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self.mels[[r.index for r in records]], dtype=np.float32))


def load_mels(dataset: Any) -> torch.Tensor:
    """The whole mel cache (N, M, T) as a float16 tensor in memory (fast random row access)."""
    arr = np.asarray(dataset.mels)
    return torch.from_numpy(np.array(arr, dtype=np.float16, copy=True))
