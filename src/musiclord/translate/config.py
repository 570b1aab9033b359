"""Inference settings (`TranslateConfig`) and the checks on what a caller hands the translator:
the device and the waveform."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from musiclord.errors import AudioError, ConfigError, MusiclordError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TranslateConfig:
    """Inference settings.

    Attributes:
        batch_size: 2 s windows translated together.
        window_hop: frames between window starts (0: half a window, 50% overlap).
        block_seconds: length of the blocks inverted at once (Griffin-Lim).
        overlap_seconds: overlap of consecutive blocks (the cross-fade spans its middle half).
        block_batch: blocks inverted together when several are ready (0: 8 on a GPU, where one
            10 s block leaves it idle between kernel launches; 1 on a CPU, where it is faster).
        gl_iters: Griffin-Lim iterations.
        nnls_iters: iterations of the mel -> linear step before Griffin-Lim.
        normalize: peak-normalise the input to `peak` before analysis (the training clips were
            peak-normalised) and scale the output back, so loudness follows the input.
        peak: the analysis peak level.
        max_gain_db: never amplify the input by more than this (noise stays noise).
        gate: keep silence silent: output frames are pulled to the silence floor where the
            input frame is within `gate_low_db` of it, fully translated above `gate_high_db`.
        gate_low_db, gate_high_db: gate ramp, in dB above the log-mel floor.
        latent_steps: Adam steps of the per-window code fit for a stage-1-only model.
        latent_lr: its learning rate.
        refine_steps: Adam steps refining each window's content code after the encoder (0: off,
            the default): the code is fitted so that the generator, with the class encoder's
            embedding of the same window, reproduces the input, kept near the encoder's code by
            `refine_anchor`. Slower (one generator pass and its backward per step). Development
            sets (docs/results.md, ablation 28): LSD ratio 0.452 -> 0.437 on the training bank,
            1.046 -> 0.988 on an unseen one, but the probe there rises, and on the test bank
            it is slightly worse (0.630 -> 0.636): kept off.
        refine_lr, refine_anchor: its learning rate and the weight of mean((c - c_encoder)²).
        chunk_seconds: audio read per step when streaming a file (0: 30 s on a CPU, 80 s on a
            GPU, so that `block_batch` blocks come ready together).
    """

    batch_size: int = 8
    window_hop: int = 0
    block_seconds: float = 10.0
    overlap_seconds: float = 1.0
    block_batch: int = 0
    gl_iters: int = 64
    nnls_iters: int = 40
    normalize: bool = True
    peak: float = 0.9
    max_gain_db: float = 40.0
    gate: bool = True
    gate_low_db: float = 3.0
    gate_high_db: float = 12.0
    latent_steps: int = 200
    latent_lr: float = 0.05
    refine_steps: int = 0
    refine_lr: float = 0.01
    refine_anchor: float = 1.0
    chunk_seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.gl_iters < 1 or self.latent_steps < 0 or self.refine_steps < 0:
            raise ConfigError(f"--batch-size and --gl-iters must be >= 1, --latent-steps and --refine-steps >= 0 (got "
                              f"{self.batch_size}, {self.gl_iters}, {self.latent_steps}, {self.refine_steps})")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """None or "auto" -> CUDA if available, else CPU; "cuda" fails clearly when there is none."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise MusiclordError("--device cuda requested but no CUDA device is available")
    return torch.device(device)


def as_mono(wave: np.ndarray) -> np.ndarray:
    """(N,) or (N, channels) array -> (N,) float32 with non-finite samples set to 0."""
    x = np.asarray(wave, dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1)
    elif x.ndim != 1:
        raise AudioError(f"expected a waveform of shape (N,) or (N, channels), got {x.shape}")
    bad = ~np.isfinite(x)
    if bad.any():
        log.warning("%d non-finite samples replaced by 0", int(bad.sum()))
        x = np.where(bad, 0.0, x).astype(np.float32)
    return x
