"""How far the summary's LSD ratio and pitch accuracy could move with other test passages.

A percentile bootstrap over passages: resample the passages with replacement (the same draw for
every instrument pair, since a passage is played on all of them), recompute the statistic as the
summary does, and report the 2.5th and 97.5th percentiles. It measures sampling noise over
passages only; the test bank, the renderer and the evaluator's own networks are held fixed.
"""

from __future__ import annotations

import numpy as np


def _percentiles(values: list[float]) -> list[float | None]:
    vals = np.asarray(values, dtype=np.float64)
    vals = vals[np.isfinite(vals)]
    return [float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))] if vals.size else [None, None]


def passage_bootstrap(lsd_model: np.ndarray, lsd_copy: np.ndarray, pitch_correct: np.ndarray,
                      pitch_total: np.ndarray, reps: int = 1000, seed: int = 0) -> dict[str, list[float | None]]:
    """95% intervals of the LSD ratio and the raw pitch accuracy.

    Args:
        lsd_model, lsd_copy: (K, C) LSD of each pair's translation and of copying the source, per
            pair (K) and passage (C).
        pitch_correct, pitch_total: (K, P) frames correct and frames counted per pair and pitch
            passage (P, the first P of the C passages).
        reps: bootstrap draws.

    Returns:
        {"lsd_ratio_ci": [lo, hi], "pitch_ci": [lo, hi]} (None where there is nothing to resample).
    """
    rng = np.random.default_rng(seed)
    n_c, n_p = lsd_model.shape[1], pitch_total.shape[1]
    ratios, pitches = [], []
    for _ in range(reps if n_c else 0):
        idx = rng.integers(0, n_c, n_c)
        ratios.append(lsd_model[:, idx].mean() / lsd_copy[:, idx].mean())
    for _ in range(reps if n_p else 0):
        idx = rng.integers(0, n_p, n_p)
        total = pitch_total[:, idx].sum(1)
        ok = total > 0  # the summary averages the pairs' accuracies over pairs with voiced frames
        pitches.append((pitch_correct[:, idx].sum(1)[ok] / total[ok]).mean() if ok.any() else np.nan)
    return {"lsd_ratio_ci": _percentiles(ratios), "pitch_ci": _percentiles(pitches)}
