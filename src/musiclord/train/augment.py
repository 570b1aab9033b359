"""Random equalisation of the encoders' input in stage 2: each clip's log-mel is coloured by a
smooth random gain curve over the mel bands (a few dB), while the encoders must still give the
clip's stage-1 codes and the generator still reconstructs the clip itself.

A sample bank differs from another mostly by such colourings (formants, brightness, body
resonances); encoders trained to ignore them should read an unseen bank's notes better (lower
content probe, lower LSD on the test bank). Silence (frames at the log floor) stays silent.
"""

from __future__ import annotations

import math

import torch

from musiclord.audio import MelConfig, silence_level

EQ_SEED = 11  # added to the run's seed, so the curves differ from the rerender swaps' draws
EQ_COMPONENTS = 4  # cosine components of a curve: smooth over the 128 bands (wiggles >= 1/4 of the range)


def eq_curves(n: int, n_mels: int, max_db: float, generator: torch.Generator) -> torch.Tensor:
    """(n, n_mels) random smooth gain curves in dB, each peaking at a magnitude drawn uniformly
    from [0, max_db]: a sum of EQ_COMPONENTS cosines over the band index with random amplitudes
    and phases."""
    m = torch.linspace(0.0, math.pi, n_mels)
    k = torch.arange(1, EQ_COMPONENTS + 1, dtype=torch.float32)
    amp = torch.rand(n, EQ_COMPONENTS, generator=generator) * 2 - 1
    phase = torch.rand(n, EQ_COMPONENTS, generator=generator) * 2 * math.pi
    curve = (amp[:, :, None] * torch.cos(k[None, :, None] * m[None, None] + phase[:, :, None])).sum(1)
    curve = curve / curve.abs().amax(dim=1, keepdim=True).clamp(min=1e-6)
    return curve * (torch.rand(n, 1, generator=generator) * max_db)


def random_eq(x: torch.Tensor, max_db: float, cfg: MelConfig, seed: int, step: int, batch_size: int,
              local: slice) -> torch.Tensor:
    """x (b, M, T) normalised log-mel, coloured by `eq_curves` (a new tensor; x is unchanged).

    The draw is a function of (seed, step) for the global batch, of which x is the `local` share,
    so a resumed or distributed run colours the same clips the same way. Bins at the log floor
    (silence) are left there, and nothing is pushed below it.
    """
    if max_db <= 0:
        return x
    g = torch.Generator().manual_seed(seed * 1000003 + step)
    db = eq_curves(batch_size, x.shape[1], max_db, g)[local]  # (b, M)
    gain = (db * (math.log(10.0) / 10.0) / cfg.log_std).to(x.device, x.dtype)  # dB of power -> normalised log
    floor = silence_level(cfg)
    sounding = x > floor + 1e-3
    return torch.where(sounding, torch.clamp(x + gain[:, :, None], min=floor), x)
