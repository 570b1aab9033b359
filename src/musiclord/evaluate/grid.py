"""The translation grid (paper Fig. 1): rows = source clips (one per instrument), columns = the
source itself then every target instrument; one PNG per model plus one of the ground truth (the
same passages' true renderings), and a WAV for every cell."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from musiclord.audio import invert, save_audio
from musiclord.evaluate import figures

log = logging.getLogger(__name__)


def _save(out: Path, rel: str, wave: np.ndarray, sr: int) -> str:
    peak = float(np.abs(wave).max()) if wave.size else 0.0
    save_audio(out / rel, wave / peak * 0.9 if peak > 0.9 else wave, sr)
    return rel


def write_grids(
    ds: Any,
    classes: list[str],
    models: list[tuple[str, Any]],
    gt: Any,
    cells: dict[str, dict[tuple[int, int], tuple[torch.Tensor, np.ndarray]]],
    out: Path,
    opts: Any,
) -> dict[str, Any]:
    """Write the grids' PNGs and WAVs under `out` (figures/, audio/).

    Args:
        cells: per model name, per (source, target) index pair, the translations of every
            evaluated passage: mel (C, M, T) and wave (C, N).

    Returns:
        {"rows": [{"content_id", "source"}], "columns": [...], "ground_truth": {"png", "audio"},
        "models": {name: {"png", "audio"}}}, paths relative to `out`, audio as rows x columns.
    """
    from musiclord.evaluate.run import model_tags, slug

    cfg = ds.mel_config
    sr = cfg.sample_rate
    k = len(classes)
    rows = [(i % len(gt.cids), i) for i in range(k)]  # (passage index, source class)
    row_labels = [f"{classes[s]} · {gt.cids[c]}" for c, s in rows]
    col_labels = ["source"] + [f"→ {t}" for t in classes]
    result: dict[str, Any] = {
        "split": "test",
        "rows": [{"content_id": gt.cids[c], "source": classes[s]} for c, s in rows],
        "columns": ["source", *classes],
        "models": {},
    }
    # Ground truth: the same passage rendered on each instrument.
    gt_cells, gt_audio = [], []
    for r, (c, s) in enumerate(rows):
        mels = [gt.mel[c, s].numpy()] + [gt.mel[c, t].numpy() for t in range(k)]
        waves = [gt.wave[c, s]] + [gt.wave[c, t] for t in range(k)]
        gt_cells.append(mels)
        names = ["source"] + [slug(t) for t in classes]
        gt_audio.append([_save(out, f"audio/ground_truth/r{r}_{slug(classes[s])}_{n}.wav", w, sr) for n, w in zip(names, waves)])
    figures.plot_grid(gt_cells, row_labels, ["source"] + [f"true {t}" for t in classes], out / "figures/grid_ground_truth.png", "ground truth (test split)")
    result["ground_truth"] = {"png": "figures/grid_ground_truth.png", "audio": gt_audio}
    tags = model_tags([n for n, _ in models])
    for name, tr in models:
        tag = tags[name]
        with torch.no_grad():  # reconstructions (target == source) are not among the pairs
            rec_mel = torch.stack([tr.translate_mel(gt.mel[c : c + 1, s].to(opts.device), to=classes[s])[0].float().cpu() for c, s in rows])
        rec_wave = invert(rec_mel.to(opts.device), cfg, n_iter=opts.gl_iters).cpu().numpy()
        m_cells, m_audio = [], []
        for r, (c, s) in enumerate(rows):
            mels, waves = [gt.mel[c, s].numpy()], [gt.wave[c, s]]
            for t in range(k):
                if t == s:
                    mels.append(rec_mel[r].numpy())
                    waves.append(rec_wave[r])
                else:
                    mel, wave = cells[name][(s, t)]
                    mels.append(mel[c].numpy())
                    waves.append(wave[c])
            m_cells.append(mels)
            names = ["source"] + [f"to_{slug(t)}" for t in classes]
            m_audio.append([_save(out, f"audio/{tag}/r{r}_{slug(classes[s])}_{n}.wav", w, sr) for n, w in zip(names, waves)])
        png = f"figures/grid_{tag}.png"
        figures.plot_grid(m_cells, row_labels, col_labels, out / png, f"{name}: translations (test split)")
        result["models"][name] = {"png": png, "audio": m_audio}
    return result
