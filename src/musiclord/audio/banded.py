"""Products with the mel filterbank that skip its zeros.

Each linear-frequency bin lies under at most two mel filters, so the (n_mels, n_freqs) matrix is
98% zeros. Cut the frequency axis into blocks of adjacent bins: the filters that touch a block
form a short contiguous range, and the product is a sum of small dense products. At 128 mels and
1025 bins this does about a twentieth of the dense arithmetic, which matters because the
mel->linear solver and the mel-refined Griffin-Lim multiply by the filterbank hundreds of times.
"""

from __future__ import annotations

import functools

import torch

from musiclord.audio.mel import MelConfig, mel_basis


class BandedMel:
    """The filterbank M as blocks: `forward(y) = M @ y`, `adjoint(r) = M.T @ r`.

    Args:
        basis: (M, F) filterbank.
        block: bins per block.
    """

    def __init__(self, basis: torch.Tensor, block: int = 64) -> None:
        self.n_mels, self.n_freqs = basis.shape
        self.blocks: list[tuple[int, int, int, int, torch.Tensor, torch.Tensor]] = []
        for lo in range(0, self.n_freqs, block):
            hi = min(lo + block, self.n_freqs)
            if self.n_freqs - hi < block // 4:  # fold a short remainder into this block
                hi = self.n_freqs
            rows = torch.nonzero(basis[:, lo:hi].abs().sum(1) > 0).flatten()
            if rows.numel():
                m0, m1 = int(rows.min()), int(rows.max()) + 1
                w = basis[m0:m1, lo:hi].contiguous()
                self.blocks.append((lo, hi, m0, m1, w, w.t().contiguous()))
            if hi == self.n_freqs:
                break

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """(B, F, T) -> (B, M, T), equal to `basis @ y`."""
        out = y.new_zeros(y.shape[0], self.n_mels, y.shape[-1])
        for lo, hi, m0, m1, w, _ in self.blocks:
            out[:, m0:m1] += torch.matmul(w, y[:, lo:hi])
        return out

    def adjoint(self, r: torch.Tensor) -> torch.Tensor:
        """(B, M, T) -> (B, F, T), equal to `basis.T @ r`."""
        out = r.new_zeros(r.shape[0], self.n_freqs, r.shape[-1])
        for lo, hi, m0, m1, _, wt in self.blocks:
            out[:, lo:hi] = torch.matmul(wt, r[:, m0:m1])
        return out


@functools.lru_cache(maxsize=16)
def _banded(cfg: MelConfig, device: str, dtype: torch.dtype, scaled: bool) -> BandedMel:
    basis = mel_basis(cfg, device, dtype)
    if scaled:
        basis = basis / torch.linalg.vector_norm(basis, dim=0).clamp(min=1e-8)
    return BandedMel(basis)


def banded_mel(cfg: MelConfig, device: torch.device | str, dtype: torch.dtype, scaled: bool = False) -> BandedMel:
    """The (cached) banded filterbank of `cfg`; `scaled` gives it unit-norm columns."""
    return _banded(cfg, str(torch.device(device)), dtype, scaled)
