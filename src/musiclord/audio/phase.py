"""Initial phase for Griffin-Lim: a phase-locked phase vocoder estimate from the magnitude alone.

Griffin-Lim from random phase spends most of its iterations agreeing on where the partials are.
For harmonic music the magnitude already says it: every spectral peak is a partial whose
frequency (by quadratic interpolation of the log-magnitude) gives its phase advance per hop, and
the bins around a peak share its phase, alternating by pi from bin to bin (the window is centred
in the frame). This is the phase-locked vocoder of Laroche and Dolson (1999) run from magnitude
only, in the spirit of phase-gradient heap integration (Prusa et al. 2017) but vectorised.

The magnitude is smoothed across frequency first: a non-negative least-squares estimate of the
spectrum from a mel spectrogram is spiky, and its spurious peaks would each claim a partial.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from musiclord.audio.mel import MelConfig


def smooth_freq(mag: torch.Tensor, width: int) -> torch.Tensor:
    """Smooth a magnitude across frequency with a normalised Hann kernel of `width` bins.

    Args:
        mag: (B, F, T) magnitude.
        width: odd kernel width in bins; 1 returns `mag` unchanged.

    Returns:
        (B, F, T) smoothed magnitude.
    """
    if width <= 1:
        return mag
    width += 1 - width % 2  # odd, so the output stays aligned
    kernel = torch.hann_window(width + 2, periodic=False, dtype=mag.dtype, device=mag.device)[1:-1]
    kernel = (kernel / kernel.sum())[None, None]  # (1, 1, width)
    b, f, t = mag.shape
    z = mag.transpose(1, 2).reshape(b * t, 1, f)
    z = F.conv1d(F.pad(z, (width // 2, width // 2), mode="replicate"), kernel)
    return z.reshape(b, t, f).transpose(1, 2)


def random_phase(shape: torch.Size | tuple[int, ...], seed: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Uniform phase in [0, 2 pi), reproducible for a seed whatever the device."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    return (torch.rand(shape, generator=gen) * (2 * math.pi)).to(device)


def vocoder_phase(mag: torch.Tensor, cfg: MelConfig, smooth: int = 5) -> torch.Tensor:
    """Phase-locked vocoder phase from a magnitude spectrogram.

    Each bin takes the frequency of the nearest spectral peak in its frame (the peak's
    interpolated frequency), its phase advances by that frequency times the hop from frame to
    frame, and it is offset by -pi * bin, the phase a window centred in the frame gives.

    Args:
        mag: (B, F, T) non-negative STFT magnitude (F = n_fft // 2 + 1, centred frames).
        cfg: the STFT parameters.
        smooth: width in bins of the frequency smoothing applied before peak picking.

    Returns:
        (B, F, T) phase in radians (not wrapped).
    """
    b, f, t = mag.shape
    log_mag = torch.log(smooth_freq(mag, smooth) + 1e-9)
    lo, mid, hi = log_mag[:, :-2], log_mag[:, 1:-1], log_mag[:, 2:]
    peak = torch.zeros_like(log_mag, dtype=torch.bool)
    peak[:, 1:-1] = (mid > lo) & (mid >= hi)
    curv = lo - 2 * mid + hi
    safe = torch.where(curv.abs() > 1e-9, curv, torch.ones_like(curv))
    offset = torch.where(curv.abs() > 1e-9, 0.5 * (lo - hi) / safe, torch.zeros_like(curv)).clamp(-0.5, 0.5)
    bins = torch.arange(f, device=mag.device)[None, :, None].expand(b, f, t)  # (B, F, T)
    k_star = bins.to(mag.dtype).clone()
    k_star[:, 1:-1] += offset  # interpolated peak frequency, in bins
    # The nearest peak below and above each bin (cummax / cummin of the peak indices).
    big = f + 10**6
    below = torch.where(peak, bins, torch.full_like(bins, -big)).cummax(1).values
    above = torch.where(peak, bins, torch.full_like(bins, big)).flip(1).cummin(1).values.flip(1)
    owner = torch.where(bins - below <= above - bins, below, above)
    owner = torch.where((below < 0) & (above >= f), bins, owner).clamp(0, f - 1)
    freq = torch.gather(k_star, 1, owner)  # (B, F, T) bins
    advance = (2 * math.pi * cfg.hop_length / cfg.n_fft) * freq
    return torch.cumsum(advance, dim=2) - math.pi * bins.to(mag.dtype)
