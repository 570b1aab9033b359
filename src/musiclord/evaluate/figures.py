"""Figures: the translation grid (paper Fig. 1) and t-SNE scatter plots (paper Fig. 4), as PNG.

matplotlib runs headless (Agg backend); every function writes one file and closes its figure.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def _plt():  # type: ignore[no-untyped-def]
    try:
        import matplotlib
    except ImportError as e:  # pragma: no cover - the eval extra is missing
        from musiclord.errors import MusiclordError

        raise MusiclordError("figures need matplotlib: pip install 'musiclord[eval]'") from e
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_grid(
    cells: list[list[np.ndarray]],
    row_labels: list[str],
    col_labels: list[str],
    path: Path,
    title: str,
    vmin: float | None = None,
    vmax: float | None = None,
) -> None:
    """A grid of log-mel images.

    Args:
        cells: rows x columns of (M, T) normalised log-mel arrays.
        row_labels, col_labels: axis labels (source clips; "source" then target instruments).
        path: the PNG to write.
        title: figure title.
        vmin, vmax: shared colour range (default: 1st and 99.9th percentiles of all cells).
    """
    plt = _plt()
    n_rows, n_cols = len(cells), len(cells[0])
    allv = np.concatenate([c.ravel() for row in cells for c in row])
    vmin = float(np.percentile(allv, 1)) if vmin is None else vmin
    vmax = float(np.percentile(allv, 99.9)) if vmax is None else vmax
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.9 * n_cols + 0.6, 1.7 * n_rows + 0.6), squeeze=False)
    for i, row in enumerate(cells):
        for j, mel in enumerate(row):
            ax = axes[i][j]
            ax.imshow(mel, origin="lower", aspect="auto", cmap="magma", vmin=vmin, vmax=vmax, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(col_labels[j], fontsize=9)
            if j == 0:
                ax.set_ylabel(row_labels[i], fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_tsne(points: np.ndarray, labels: np.ndarray, names: list[str], path: Path, title: str) -> None:
    """A 2-D scatter coloured by class.

    Args:
        points: (N, 2) embedding.
        labels: (N,) class indices into `names`.
        path: the PNG to write.
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    cmap = plt.get_cmap("tab10")
    for k, name in enumerate(names):
        sel = labels == k
        if sel.any():
            ax.scatter(points[sel, 0], points[sel, 1], s=9, color=cmap(k % 10), label=name, alpha=0.8)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=7, markerscale=1.5, loc="best")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
