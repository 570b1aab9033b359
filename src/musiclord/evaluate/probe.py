"""Disentanglement probes: cross-validated linear probes and 2-D t-SNE embeddings of codes."""

from __future__ import annotations

import logging
import warnings

import numpy as np

log = logging.getLogger(__name__)


def wilson_interval(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval (95% for z = 1.96) of a proportion p observed on n trials."""
    if n <= 0 or not np.isfinite(p):
        return float("nan"), float("nan")
    mid = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(mid - half), float(mid + half)


def paired_labels(passages: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(labels, groups), each (passages * classes,), of a paired split's clips read passage by
    passage with the classes in order inside each: the class index, and the passage index that
    `probe_accuracy(groups=...)` keeps in one fold."""
    return np.tile(np.arange(classes), passages), np.repeat(np.arange(passages), classes)


def probe_accuracy(features: np.ndarray, labels: np.ndarray, folds: int = 5, seed: int = 0,
                   repeats: int = 5, kind: str = "linear", groups: np.ndarray | None = None) -> dict[str, float]:
    """Cross-validated accuracy of a classifier reading `labels` from `features`.

    Standardised features, then L2-regularised logistic regression (`kind` "linear", the probe
    the targets name) or a one-hidden-layer MLP (`kind` "mlp", 256 ReLU units, L2 1e-2: what a
    nonlinear reader finds, which a linear erasure of the instrument does not bound), stratified
    K folds, repeated with `repeats` different shuffles so that the figure does not hang on one
    split into folds. Every clip is predicted once per repeat by a classifier that did not see it.

    Paired clips (one passage played by every instrument) need `groups` (the passage of each
    clip): the folds then keep a passage's renders together. Without it, a held-out clip's
    passage sits in the training folds under the other instruments, and a reader that knows the
    passage answers "one of the others": the accuracy falls below what the codes hold about the
    instrument, below chance when the codes are mostly the passage (session 20: v8's test probe
    0.38 by clips, 0.58 by passages; an MLP 0.10 by clips).

    Args:
        features: (N, D) codes (flatten them first).
        labels: (N,) integer classes.
        folds: K (reduced to the smallest class size when that is smaller, at least 2).
        seed: fold shuffling of the first repeat (then seed + 1, ...).
        repeats: repetitions of the K-fold split.
        kind: "linear" or "mlp".
        groups: (N,) group of each clip (None: every clip its own); K is then also at most the
            number of groups.

    Returns:
        {"accuracy": held-out accuracy averaged over the repeats, "ci95": its 95% Wilson interval
        over the N clips (how far another sample of N clips could move it; a few points of fold
        noise come on top), "std": spread of the per-fold accuracies, "chance": share of the
        most frequent class, "folds": K, "repeats", "n": N, "kind", "grouped"}.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    y = np.asarray(labels)
    counts = np.unique(y, return_counts=True)[1]
    chance = float(counts.max() / counts.sum())
    k = int(min(folds, counts.min(), len(np.unique(groups)) if groups is not None else folds))
    out = {"chance": chance, "folds": k, "repeats": repeats, "n": len(y), "kind": kind, "grouped": groups is not None}
    if len(counts) < 2 or k < 2:
        return {"accuracy": float("nan"), "ci95": [float("nan")] * 2, "std": float("nan"), **out}
    if kind == "linear":
        head = LogisticRegression(C=1.0, max_iter=2000)
    elif kind == "mlp":
        from sklearn.neural_network import MLPClassifier

        head = MLPClassifier(hidden_layer_sizes=(256,), alpha=1e-2, max_iter=500, random_state=seed)
    else:
        raise ValueError(f"probe kind must be 'linear' or 'mlp', got {kind!r}")
    clf = make_pipeline(StandardScaler(), head)
    accs, fold_accs = [], []
    for r in range(max(1, repeats)):
        split = StratifiedKFold if groups is None else StratifiedGroupKFold
        cv = split(n_splits=k, shuffle=True, random_state=seed + r)
        with warnings.catch_warnings():  # an MLP short of max_iter on a few hundred clips still reads them
            warnings.simplefilter("ignore", ConvergenceWarning)
            hit = cross_val_predict(clf, x, y, cv=cv, groups=groups) == y
        accs.append(hit.mean())
        fold_accs += [hit[test].mean() for _, test in cv.split(x, y, groups)]
    acc = float(np.mean(accs))
    return {"accuracy": acc, "ci95": list(wilson_interval(acc, len(y))), "std": float(np.std(fold_accs)), **out}


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
