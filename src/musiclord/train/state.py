"""Reproducible, resumable training state: seeding, the global RNG states, atomic training
checkpoints (weights, optimizers, RNGs, counters) and the non-finite loss guard."""

from __future__ import annotations

import json
import logging
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from musiclord.checkpoint import load_checkpoint, save_checkpoint
from musiclord.errors import CheckpointError, MusiclordError
from musiclord.train.distributed import DistEnv, all_reduce_sum

log = logging.getLogger(__name__)


class TrainingError(MusiclordError):
    """Training cannot go on (e.g. too many non-finite losses in a row)."""


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
