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
    """For each training clip's mel row in `rows`, the rows of its rerenders (the same notes played
    by another sample bank, split "rerender", or on another instrument, split "cross"), padded
    with -1 where a clip has fewer than the most any clip has: (len(rows), K) long, K >= 1."""
    train = {r.clip_id: r.index for r in ds.records if r.split == "train"}
    alt: dict[int, list[int]] = {}
    for r in ds.records:
        if r.split == split and r.content_id in train:
            alt.setdefault(train[r.content_id], []).append(r.index)
    k = max((len(v) for v in alt.values()), default=1)
    return torch.tensor([(alt.get(int(i), []) + [-1] * k)[:k] for i in rows], dtype=torch.long).view(len(rows), k)


def swap_rerenders(x: torch.Tensor, pos: torch.Tensor, alt: torch.Tensor, mels: torch.Tensor, prob: float,
                   seed: int, step: int, batch_size: int, local: slice) -> tuple[torch.Tensor, torch.Tensor]:
    """The encoders' input: x (b, M, T), the clips at positions `pos` (CPU) of this process's
    share `local` of a global batch of `batch_size`, each replaced with probability `prob` by one
    of its rerenders (rows alt[pos], (N, K) from `rerender_rows`, drawn uniformly among the
    clip's). The draw is a function of (seed, step), so a resumed run swaps the same clips.
    Returns (input, (b,) bool CPU mask of the clips swapped)."""
    g = torch.Generator().manual_seed(seed * 1000003 + step)
    u = torch.rand(batch_size, generator=g)[local]
    pick = torch.rand(batch_size, generator=g)[local]  # drawn after u: u is as it was with one per clip
    a = alt[pos]
    n_alt = (a >= 0).sum(1)
    swap = (u < prob) & (n_alt > 0)
    if not swap.any():
        return x, swap
    col = (pick * n_alt).long().clamp(max=a.shape[1] - 1)
    rows = a.gather(1, col[:, None])[:, 0]
    x_in = x.clone()
    x_in[swap.to(x.device)] = mels[rows[swap]].to(x.device, x.dtype)
    return x_in, swap
