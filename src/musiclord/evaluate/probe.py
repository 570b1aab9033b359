"""Disentanglement probes: cross-validated linear probes and 2-D t-SNE embeddings of codes."""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)


def probe_accuracy(features: np.ndarray, labels: np.ndarray, folds: int = 5, seed: int = 0) -> dict[str, float]:
    """Cross-validated accuracy of a linear classifier reading `labels` from `features`.

    Standardised features, L2-regularised logistic regression (sklearn), stratified K folds.

    Args:
        features: (N, D) codes (flatten them first).
        labels: (N,) integer classes.
        folds: K (reduced to the smallest class size when that is smaller, at least 2).
        seed: fold shuffling.

    Returns:
        {"accuracy": mean held-out accuracy, "std": its spread over folds, "chance": share of
        the most frequent class, "folds": K, "n": N}.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    y = np.asarray(labels)
    counts = np.unique(y, return_counts=True)[1]
    chance = float(counts.max() / counts.sum())
    k = int(min(folds, counts.min()))
    if len(counts) < 2 or k < 2:
        return {"accuracy": float("nan"), "std": float("nan"), "chance": chance, "folds": k, "n": len(y)}
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    scores = cross_val_score(clf, x, y, cv=cv)
    return {"accuracy": float(scores.mean()), "std": float(scores.std()), "chance": chance, "folds": k, "n": len(y)}


def tsne_2d(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """(N, D) -> (N, 2) t-SNE embedding (perplexity adapted to small N)."""
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    x = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    x = (x - x.mean(0)) / (x.std(0) + 1e-8)
    perplexity = float(max(2.0, min(30.0, (len(x) - 1) / 3)))
    # One OpenMP thread: beside torch's own threads, sklearn's Barnes-Hut threads spin and made a
    # 24-point embedding take 20 s on 2 cores (0.3 s with one thread).
    with threadpool_limits(1):
        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)
