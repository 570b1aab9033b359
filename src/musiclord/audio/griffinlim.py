"""Log-mel -> waveform: non-negative least squares to a linear spectrogram, then fast Griffin-Lim.

Fast Griffin-Lim (Perraudin, Balazs and Sondergaard 2013) adds a momentum term to the classic
projection algorithm; with momentum 0.99 it reaches in 64 iterations what plain Griffin-Lim
needs about 250 for. Everything is batched torch, on CPU or CUDA.
"""

from __future__ import annotations

import functools

import torch

from musiclord.audio.mel import MelConfig, hann, log_denormalize, mel_basis, stft


@functools.lru_cache(maxsize=8)
def _lipschitz(cfg: MelConfig) -> float:
    """Largest eigenvalue of M^T M (the NNLS gradient's Lipschitz constant)."""
    m = mel_basis(cfg).double()
    return float(torch.linalg.matrix_norm(m, ord=2) ** 2)


def mel_to_linear(mel: torch.Tensor, cfg: MelConfig, n_iter: int = 40) -> torch.Tensor:
    """Non-negative least squares: the linear power spectrogram S >= 0 minimising ||M S - mel||².

    Solved by accelerated projected gradient (FISTA) from a non-negative transpose start, which
    matches scipy's NNLS (librosa's `mel_to_stft`) in quality far faster, for a whole batch.

    Args:
        mel: (B, n_mels, T) mel power.

    Returns:
        (B, n_freqs, T) linear power.
    """
    basis = mel_basis(cfg, mel.device, mel.dtype)  # (M, F)
    step = 1.0 / _lipschitz(cfg)
    # Start: the transpose scaled to each bin's filter mass, a good non-negative guess.
    mass = basis.sum(0).clamp(min=1e-8)[:, None]  # (F, 1)
    x = torch.matmul(basis.t(), mel) / mass
    y, t = x, 1.0
    for _ in range(n_iter):
        grad = torch.matmul(basis.t(), torch.matmul(basis, y) - mel)
        x_new = torch.clamp(y - step * grad, min=0.0)
        t_new = (1 + (1 + 4 * t * t) ** 0.5) / 2
        y = x_new + ((t - 1) / t_new) * (x_new - x)
        x, t = x_new, t_new
    return x


def istft(spec: torch.Tensor, cfg: MelConfig, length: int) -> torch.Tensor:
    """Inverse of `stft`: (B, n_freqs, T+1) complex -> (B, length) waveform."""
    return torch.istft(
        spec,
        n_fft=cfg.n_fft,
        hop_length=cfg.hop_length,
        win_length=cfg.win_length,
        window=hann(cfg, spec.device, spec.real.dtype),
        center=True,
        length=length,
    )


def griffin_lim(
    magnitude: torch.Tensor,
    cfg: MelConfig,
    length: int,
    n_iter: int = 64,
    momentum: float = 0.99,
    seed: int = 0,
) -> torch.Tensor:
    """Fast Griffin-Lim from a linear magnitude.

    Args:
        magnitude: (B, n_freqs, T+1) non-negative STFT magnitude (centred frames).
        length: output samples.
        n_iter: iterations.
        momentum: Perraudin's alpha (0 is plain Griffin-Lim).
        seed: seeds the random initial phase, so results are reproducible.

    Returns:
        (B, length) waveform.
    """
    gen = torch.Generator(device="cpu").manual_seed(seed)
    phase = torch.rand(magnitude.shape, generator=gen).to(magnitude.device) * (2 * torch.pi)
    angles = torch.polar(torch.ones_like(magnitude), phase)
    prev = torch.zeros_like(angles)
    eps = 1e-16
    for _ in range(n_iter):
        wave = istft(magnitude * angles, cfg, length)
        rebuilt = stft(wave, cfg)
        angles = rebuilt - (momentum / (1 + momentum)) * prev
        angles = angles / (angles.abs() + eps)
        prev = rebuilt
    return istft(magnitude * angles, cfg, length)


def invert(
    logmel: torch.Tensor,
    cfg: MelConfig = MelConfig(),
    n_iter: int = 64,
    momentum: float = 0.99,
    chunk: int = 16,
    nnls_iter: int = 40,
) -> torch.Tensor:
    """Normalised log-mel -> waveform (NNLS mel->linear, then fast Griffin-Lim).

    Args:
        logmel: (B, n_mels, T) or (n_mels, T) normalised log-mel (as `logmel` returns).
        cfg: the representation it was made with.
        n_iter: Griffin-Lim iterations (64 as in the paper).
        momentum: fast Griffin-Lim momentum.
        chunk: clips processed together (about 16 is fastest on a CPU: bigger batches fall out
            of cache).
        nnls_iter: projected-gradient iterations of the mel->linear step.

    Returns:
        (B, T * hop_length) float32 waveform (or (N,) for 2-D input): the exact length of the
        audio the log-mel came from.
    """
    squeeze = logmel.dim() == 2
    if squeeze:
        logmel = logmel[None]
    logmel = logmel.float()
    length = logmel.shape[-1] * cfg.hop_length
    outs = []
    for start in range(0, logmel.shape[0], max(1, chunk)):
        part = logmel[start : start + chunk]
        power = mel_to_linear(log_denormalize(part, cfg), cfg, n_iter=nnls_iter)
        mag = power.clamp(min=0).pow(1.0 / cfg.power)
        # The centred STFT has one frame more than the log-mel (its last frame was dropped):
        # repeat the final frame so the magnitude covers the whole output.
        mag = torch.cat([mag, mag[..., -1:]], dim=-1)
        outs.append(griffin_lim(mag, cfg, length, n_iter=n_iter, momentum=momentum))
    out = torch.cat(outs, 0)
    return out[0] if squeeze else out


def spectral_convergence(estimate: torch.Tensor, reference: torch.Tensor, cfg: MelConfig) -> torch.Tensor:
    """|| |STFT(ref)| - |STFT(est)| ||_F / || |STFT(ref)| ||_F per clip (lower is better).

    Args:
        estimate, reference: (B, N) waveforms of equal length.

    Returns:
        (B,) spectral convergence.
    """
    s_ref = stft(reference.float(), cfg).abs()
    s_est = stft(estimate.float(), cfg).abs()
    num = torch.linalg.vector_norm(s_ref - s_est, dim=(-2, -1))
    return num / torch.linalg.vector_norm(s_ref, dim=(-2, -1)).clamp(min=1e-12)
