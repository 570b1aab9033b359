"""An ordered map over worker processes (spawned, one torch thread each) with a tqdm bar."""

from __future__ import annotations

import logging
import multiprocessing as mp
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

log = logging.getLogger(__name__)

A = TypeVar("A")
R = TypeVar("R")


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)  # the workers already use every core between them


def ordered_map(
    fn: Callable[[A], R],
    items: Iterable[A],
    workers: int = 2,
    desc: str = "",
    total: int | None = None,
    progress: bool = True,
) -> Iterator[R]:
    """Yield `fn(item)` for each item, in order; `workers` <= 1 runs in this process.

    `fn` must be a module-level function (it is sent to spawned processes by name).
    """
    items = list(items)
    bar = tqdm(total=total if total is not None else len(items), desc=desc, disable=not progress, leave=False)
    try:
        if workers <= 1 or len(items) <= 1:
            for item in items:
                r = fn(item)
                bar.update(1 if total is None else _size(r))
                yield r
            return
        ctx = mp.get_context("spawn")  # fork after torch has started threads can deadlock
        with ctx.Pool(min(workers, len(items)), initializer=_init_worker) as pool:
            for r in pool.imap(fn, items, chunksize=1):
                bar.update(1 if total is None else _size(r))
                yield r
    finally:
        bar.close()


def _size(r: object) -> int:
    return len(r) if isinstance(r, (list, tuple)) else 1
