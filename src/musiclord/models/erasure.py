"""Linear erasure of the instrument from content codes (LEACE, Belrose et al. 2023).

A content code should say what is played, not what plays it; a linear probe still reads the
instrument from the codes of an unseen sample bank (docs/results.md, "Targets"). LEACE is the
least-squares edit of a vector that leaves every class with the same mean, so that no linear
classifier does better than a constant on the data it was fitted on:

    r(x) = x - A (x - mu),   A = W+ P W,

with W = Sigma^(-1/2) the whitening of the codes, P the orthogonal projector onto the columns of
W Sigma_xz (Sigma_xz the covariance of the codes with the one-hot class; rank <= K - 1) and W+
its pseudo-inverse. It acts on the whole code of one window, flattened (D * F values; the
translator always encodes windows of the model's width), because the probe reads that: fitted on
each frame's vector alone (a D x D map shared by all frames) it changed the codes by 40% and the
probe by 0.04 only, the instrument sitting in how codes evolve inside the window, not in their
level (docs/results.md, ablation 58).

`fit_centred_leace` first replaces each code channel's time mean by the fitting codes' global mean
(an unseen bank's instruments differ most there), then fits LEACE; the two affine maps compose
into one, so the model holds a single erasure either way (ablations 70 and 76).
"""

from __future__ import annotations

import torch


def fit_leace(x: torch.Tensor, labels: torch.Tensor, num_classes: int, eps: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """Fit the erasure of `labels` from `x`.

    Args:
        x: (N, D) code vectors (e.g. every frame of many clips).
        labels: (N,) integer classes in [0, num_classes).
        num_classes: K.
        eps: eigenvalues below eps * the largest are treated as zero (a rank-deficient covariance).

    Returns:
        (mean (D,), A (D, D)) in float32, for `erase`.
    """
    if x.dim() != 2 or labels.shape != (x.shape[0],):
        raise ValueError(f"fit_leace: need x (N, D) and labels (N,), got {tuple(x.shape)} and {tuple(labels.shape)}")
    if labels.unique().numel() < 2:
        raise ValueError("fit_leace: the codes need at least two classes")
    x = x.double()
    mean = x.mean(0)
    xc = x - mean
    z = torch.nn.functional.one_hot(labels.long(), num_classes).double()
    sigma = xc.T @ xc / len(x)
    sigma_xz = xc.T @ (z - z.mean(0)) / len(x)
    evals, evecs = torch.linalg.eigh(sigma)
    keep = evals > eps * evals.max()
    v, s = evecs[:, keep], evals[keep]
    whiten = v @ torch.diag(s.rsqrt()) @ v.T
    unwhiten = v @ torch.diag(s.sqrt()) @ v.T
    u, sv, _ = torch.linalg.svd(whiten @ sigma_xz, full_matrices=False)
    u = u[:, sv > eps * max(float(sv.max()), 1e-30)]
    a = unwhiten @ (u @ u.T) @ whiten
    return mean.float(), a.float()


def time_mean_operators(dims: int, frames: int,
                        dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """(spread (C, C*F), centre (C*F, C*F)) for codes of C = dims // frames channels flattened channel
    by channel: spread has ones over each channel's frames (x @ spread.T / F is each channel's time
    mean; m @ spread puts per-channel values back on every frame), and x @ centre is x less them."""
    chans = dims // frames
    spread = torch.kron(torch.eye(chans, dtype=dtype), torch.ones(1, frames, dtype=dtype))
    return spread, torch.eye(dims, dtype=dtype) - spread.T @ spread / frames


def fit_centred_leace(x: torch.Tensor, labels: torch.Tensor, num_classes: int,
                      frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`fit_leace` on codes whose channel means over time are replaced by the fitting codes' global
    means, composed with that replacement into one erasure.

    Args:
        x: (N, C * F) flattened codes of C channels by F = `frames` frames.
        labels, num_classes: as `fit_leace`.

    Returns:
        (mean (C*F,), A (C*F, C*F)) in float32, for `erase`. With y = x @ centre + g @ spread the
        centred codes (g: the global channel means) and (mean, A0) their LEACE, the composite
        x - (x - mean) @ A.T needs A.T = I - centre @ (I - A0.T); the centred codes' mean serves as
        its own: its channel means are already the global ones, so centring and LEACE both leave it
        where it is (an exact fixed point: no solve, so the fit repeats to the bit).
    """
    x = x.double()
    n, dims = x.shape
    if frames < 1 or dims % frames:
        raise ValueError(f"fit_centred_leace: {dims} values per code are not channels of {frames} frames")
    spread, centre = time_mean_operators(dims, frames)
    g = x.reshape(n, dims // frames, frames).mean(-1).mean(0)  # (C,) the global channel means
    mean, a = fit_leace(x @ centre + g @ spread, labels, num_classes)
    a_t = torch.eye(dims, dtype=x.dtype) - centre @ (torch.eye(dims, dtype=x.dtype) - a.double().T)
    return mean, a_t.T.float()


def erase(content: torch.Tensor, mean: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """content (B, D, F) -> (B, D, F), its flattened code x replaced by x - A (x - mean).

    mean: (D * F,); a: (D * F, D * F), from `fit_leace` on flattened codes.
    """
    x = content.flatten(1)
    return (x - (x - mean.to(x.dtype)) @ a.to(x.dtype).T).reshape(content.shape)
