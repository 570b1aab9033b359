"""Products with the mel filterbank that skip its zeros.

Each linear-frequency bin lies under at most two mel filters, so the (n_mels, n_freqs) matrix is
98% zeros. Cut the frequency axis into blocks of adjacent bins: the filters that touch a block
form a short contiguous range, and the product is a sum of small dense products. At 128 mels and
1025 bins this does about a tenth of the dense arithmetic, which matters because the
mel->linear solver and the mel-refined Griffin-Lim multiply by the filterbank hundreds of times.
"""

from __future__ import annotations

import functools

import torch

from musiclord.audio.mel import MelConfig, mel_basis


class BandedMel:
    """The filterbank M as equal blocks of bins: `forward(y) = M @ y`, `adjoint(r) = M.T @ r`.

    The bins are cut into G blocks of equal size (a divisor of n_freqs near 40), so a (B, F, T)
    tensor is viewed as (B, G, F/G, T) without copying; each block's filters are padded to the
    widest block's count, and both products are one batched matmul plus one gather or scatter.
    Few large kernels rather than many small ones: small ones stall on a busy multi-core CPU.

    Args:
        basis: (M, F) filterbank.
        block: preferred bins per block.
    """

    def __init__(self, basis: torch.Tensor, block: int = 40) -> None:
        self.n_mels, self.n_freqs = basis.shape
        f = self.n_freqs
        size = min((d for d in range(1, f + 1) if f % d == 0), key=lambda d: (abs(d - block), d))
        groups = f // size
        blocks = basis.reshape(self.n_mels, groups, size).permute(1, 0, 2)  # (G, M, size)
        first, count = [], []
        for g in range(groups):
            rows = torch.nonzero(blocks[g].abs().sum(1) > 0).flatten()
            first.append(int(rows.min()) if rows.numel() else 0)
            count.append(int(rows.max()) + 1 - first[-1] if rows.numel() else 0)
        width = max(max(count), 1)
        rows = torch.tensor(first)[:, None] + torch.arange(width)[None]  # (G, width)
        valid = torch.arange(width)[None] < torch.tensor(count)[:, None]
        rows = torch.where(valid, rows, torch.full_like(rows, self.n_mels))  # padding -> a spare row
        padded = torch.cat([basis, basis.new_zeros(1, f)])  # (M + 1, F)
        w = torch.stack([padded[rows[g], g * size : (g + 1) * size] for g in range(groups)])  # (G, width, size)
        self.size, self.groups, self.width = size, groups, width
        self.rows = rows.flatten().to(basis.device)  # (G * width,)
        self.w = w.contiguous()
        self.w_t = w.transpose(1, 2).contiguous()  # (G, size, width)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """(B, F, T) -> (B, M, T), equal to `basis @ y`."""
        b, _, t = y.shape
        parts = torch.matmul(self.w, y.reshape(b, self.groups, self.size, t))  # (B, G, width, T)
        out = y.new_zeros(b, self.n_mels + 1, t)
        out.index_add_(1, self.rows, parts.reshape(b, self.groups * self.width, t))
        return out[:, : self.n_mels]

    def adjoint(self, r: torch.Tensor) -> torch.Tensor:
        """(B, M, T) -> (B, F, T), equal to `basis.T @ r`."""
        b, _, t = r.shape
        padded = torch.cat([r, r.new_zeros(b, 1, t)], dim=1)  # (B, M + 1, T)
        picked = padded.index_select(1, self.rows).reshape(b, self.groups, self.width, t)
        return torch.matmul(self.w_t, picked).reshape(b, self.n_freqs, t)


def interpolation(n_freqs: int, n_coarse: int) -> torch.Tensor:
    """(n_freqs, n_coarse) linear interpolation from a coarse frequency grid to a fine one.

    With n_fft = r * n_fft_coarse the coarse bin j sits on fine bin r * j; fine bins in between
    are interpolated linearly. (When the window fits in n_fft_coarse samples, the coarse STFT's
    bins are exactly the fine STFT's bins r * j.)
    """
    r = (n_freqs - 1) // (n_coarse - 1)
    if r * (n_coarse - 1) != n_freqs - 1:
        raise ValueError(f"interpolation: {n_freqs} bins are not a refinement of {n_coarse}")
    pos = torch.arange(n_freqs, dtype=torch.float64) / r
    lo = pos.floor().long().clamp(max=n_coarse - 1)
    frac = pos - lo
    u = torch.zeros(n_freqs, n_coarse, dtype=torch.float64)
    u[torch.arange(n_freqs), lo] = 1 - frac
    hi = (lo + 1).clamp(max=n_coarse - 1)
    u[torch.arange(n_freqs), hi] += frac
    return u


def inversion_basis(cfg: MelConfig, n_fft: int | None = None, device: torch.device | str = "cpu",
                    dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The mel filterbank seen from an STFT of `n_fft` points: (n_mels, n_fft // 2 + 1).

    `n_fft` None or cfg.n_fft gives `mel_basis(cfg)`. A smaller FFT (cfg.n_fft divided by a power
    of two) gets M U, U the linear interpolation of its power spectrum onto cfg's bins, so that
    M U p approximates the mel of the signal whose coarse power spectrum is p.
    """
    return _inversion_basis(cfg, None if n_fft == cfg.n_fft else n_fft, str(torch.device(device)), dtype)


@functools.lru_cache(maxsize=16)
def _inversion_basis(cfg: MelConfig, n_fft: int | None, device: str, dtype: torch.dtype) -> torch.Tensor:
    basis = mel_basis(cfg, "cpu", torch.float64)
    if n_fft is not None:
        basis = basis @ interpolation(cfg.n_freqs, n_fft // 2 + 1)
    return basis.to(device=device, dtype=dtype)


def filter_mass(cfg: MelConfig, n_fft: int | None = None, device: torch.device | str = "cpu",
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Each STFT bin's total filter weight, the column sums of `inversion_basis` (floored at 1e-8):
    (n_fft // 2 + 1,). The mel -> linear inversions spread a band's energy over its bins by it."""
    return inversion_basis(cfg, n_fft, device, dtype).sum(0).clamp(min=1e-8)


@functools.lru_cache(maxsize=8)
def scaled_inversion_basis(cfg: MelConfig, n_fft: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """`inversion_basis` with unit-norm columns (computed in float64), the column norms, and the
    Lipschitz constant of the scaled matrix: what the mel -> linear NNLS works with."""
    basis = inversion_basis(cfg, n_fft, dtype=torch.float64)  # (M, F)
    norms = torch.linalg.vector_norm(basis, dim=0).clamp(min=1e-8)  # (F,)
    scaled = basis / norms
    lipschitz = float(torch.linalg.matrix_norm(scaled, ord=2) ** 2)
    return scaled.float(), norms.float(), lipschitz


@functools.lru_cache(maxsize=16)
def _banded(cfg: MelConfig, device: str, dtype: torch.dtype, scaled: bool, n_fft: int | None) -> BandedMel:
    basis = inversion_basis(cfg, n_fft, device, dtype)
    if scaled:
        basis = basis / torch.linalg.vector_norm(basis, dim=0).clamp(min=1e-8)
    return BandedMel(basis)


def banded_mel(cfg: MelConfig, device: torch.device | str, dtype: torch.dtype, scaled: bool = False,
               n_fft: int | None = None) -> BandedMel:
    """The (cached) banded filterbank of `cfg` (seen from an `n_fft`-point STFT, see
    `inversion_basis`); `scaled` gives it unit-norm columns."""
    return _banded(cfg, str(torch.device(device)), dtype, scaled, None if n_fft == cfg.n_fft else n_fft)
