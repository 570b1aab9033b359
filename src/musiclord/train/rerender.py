"""Stage 2's second sample bank: the encoders see a training clip's *rerender* (the same notes
played by another bank, `prepare synth`'s "rerender" split) in place of the clip, while the
generator still reconstructs the clip and the encoders still regress its stage-1 codes. Encoders
trained so read the notes rather than one bank's sound: on an unseen bank the content codes no
longer tell the instrument (docs/results.md). The same holds for "cross" renders (the notes on
another instrument), which only the content encoder sees.
"""

from __future__ import annotations

from typing import Any

import torch

TARGET_SWAP_SEED = 7  # added to the run's seed for the target swaps, so they differ from the input swaps
CROSS_SWAP_SEED = 13  # likewise for the content encoder's cross swaps


def rerender_rows(ds: Any, rows: torch.Tensor, split: str = "rerender") -> torch.Tensor:
    """For each training clip's mel row in `rows`, the row of its rerender (the same notes played
    by another sample bank, split "rerender", or on another instrument, split "cross"), or -1 when
    it has none: (len(rows),) long."""
    train = {r.clip_id: r.index for r in ds.records if r.split == "train"}
    alt = {train[r.content_id]: r.index for r in ds.records if r.split == split and r.content_id in train}
    return torch.tensor([alt.get(int(i), -1) for i in rows], dtype=torch.long)


def swap_rerenders(x: torch.Tensor, pos: torch.Tensor, alt: torch.Tensor, mels: torch.Tensor, prob: float,
                   seed: int, step: int, batch_size: int, local: slice) -> tuple[torch.Tensor, int]:
    """The encoders' input: x (b, M, T), the clips at positions `pos` (CPU) of this process's
    share `local` of a global batch of `batch_size`, each replaced by its rerender (row alt[pos],
    from `rerender_rows`) with probability `prob`. The draw is a function of (seed, step), so a
    resumed run swaps the same clips. Returns (input, clips swapped)."""
    g = torch.Generator().manual_seed(seed * 1000003 + step)
    u = torch.rand(batch_size, generator=g)[local]
    a = alt[pos]
    swap = (u < prob) & (a >= 0)
    n = int(swap.sum())
    if n == 0:
        return x, 0
    x_in = x.clone()
    x_in[swap.to(x.device)] = mels[a[swap]].to(x.device, x.dtype)
    return x_in, n
