"""A pool of spawned worker processes (one torch thread each), mapped in order with a tqdm bar."""

from __future__ import annotations

import logging
import multiprocessing as mp
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from tqdm import tqdm

log = logging.getLogger(__name__)

A = TypeVar("A")
R = TypeVar("R")


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)  # the workers already use every core between them


class Workers:
    """`workers` processes, started on first use and reused by every `map` until closed.

    With workers <= 1 everything runs in this process. Functions must be module-level (spawned
    processes import them by name), and a script using this needs the `if __name__ == "__main__"`
    guard, as with any multiprocessing.
    """

    def __init__(self, workers: int = 2) -> None:
        self.workers = workers
        self._pool: Any = None

    def __enter__(self) -> "Workers":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def map(
        self,
        fn: Callable[[A], R],
        items: Iterable[A],
        desc: str = "",
        total: int | None = None,
        progress: bool = True,
    ) -> Iterator[R]:
        """Yield `fn(item)` for each item, in order; the bar counts items, or len(result) with `total`."""
        items = list(items)
        bar = tqdm(total=total if total is not None else len(items), desc=desc, disable=not progress, leave=False)
        try:
            if self.workers <= 1 or len(items) <= 1:
                results: Iterable[R] = map(fn, items)
            else:
                if self._pool is None:
                    # spawn, not fork: forking after torch has started threads can deadlock
                    self._pool = mp.get_context("spawn").Pool(self.workers, initializer=_init_worker)
                results = self._pool.imap(fn, items, chunksize=1)
            for r in results:
                bar.update(len(r) if total is not None and isinstance(r, (list, tuple)) else 1)
                yield r
        finally:
            bar.close()
