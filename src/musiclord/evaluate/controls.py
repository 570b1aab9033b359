"""Controls that show the timbre metric can fail.

- `class_mean`: the target class's mean spectrogram (mean of its train-split log-mels), inverted:
  it has the target's average spectral shape but plays no notes; a sound timbre metric must not
  call it the target instrument, and its LSD shows what "right average, no content" scores.
- `random_model`: a LordModel with random weights (seeded) of the sizes of the first evaluated
  model that is a LordModel, translating the first few test passages: a barely trained model
  must score low too.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from musiclord.audio import invert, logmel
from musiclord.evaluate.adapters import _MiniTranslator
from musiclord.evaluate.lsd import lsd
from musiclord.evaluate.timbre import classify

log = logging.getLogger(__name__)


def class_means(ds: Any, classes: list[str], split: str = "train", chunk: int = 256) -> torch.Tensor:
    """(K, M, T) mean normalised log-mel of each class's clips in `split`."""
    out = []
    for cls in classes:
        recs = ds.select(split=split, cls=cls)
        total = None
        for i in range(0, len(recs), chunk):
            s = ds.mel_tensor(recs[i : i + chunk]).double().sum(0)
            total = s if total is None else total + s
        out.append((total / max(1, len(recs))).float())
    return torch.stack(out)


def _random_translator(tr: Any, classes: list[str], seed: int) -> _MiniTranslator | None:
    model = getattr(tr, "model", None)
    cfg = getattr(model, "cfg", None)
    if model is None or cfg is None:
        return None
    from musiclord.models import LordModel

    torch.manual_seed(seed)
    rnd = LordModel(cfg, classes)
    rnd.class_embeddings.normal_()
    rnd.eval()
    return _MiniTranslator(rnd, tr.mel_config, {"stage": "random"})


def run_controls(ds: Any, classes: list[str], models: list[tuple[str, Any]], gt: Any, net: Any, opts: Any) -> dict[str, Any]:
    """Score the controls with the same classifier and LSD as the models.

    Returns:
        {"class_mean": {...}, "random_model": {...} or absent}, each with the share classified
        as the target ("timbre"), the mean LSD against the target's ground truth ("lsd") and
        the split used.
    """
    cfg = ds.mel_config
    sr = cfg.sample_rate
    k = len(classes)
    out: dict[str, Any] = {}
    means = class_means(ds, classes)
    mean_wave = invert(means, cfg, n_iter=opts.gl_iters)
    pred = classify(net, logmel(mean_wave, cfg)).numpy()
    mean_wave = mean_wave.numpy()
    lsds = [float(lsd(np.repeat(mean_wave[t : t + 1], len(gt.cids), 0), gt.wave[:, t], sr).mean()) for t in range(k)]
    out["class_mean"] = {
        "split": "train means vs test ground truth",
        "timbre": float((pred == np.arange(k)).mean()),
        "predicted": [classes[p] if p < k else "other" for p in pred],
        "lsd": float(np.mean(lsds)),
    }
    rnd = next((r for r in (_random_translator(tr, classes, opts.seed) for _, tr in models) if r is not None), None)
    if rnd is not None:
        n = min(opts.control_clips, len(gt.cids))
        pairs = [(s, t) for s in range(k) for t in range(k) if s != t]
        with torch.no_grad():
            mel = torch.cat([rnd.translate_mel(gt.mel[:n, s], to=classes[t]) for s, t in pairs])
        wave = invert(mel, cfg, n_iter=opts.gl_iters)
        pred = classify(net, logmel(wave, cfg)).numpy().reshape(len(pairs), n)
        wave = wave.numpy().reshape(len(pairs), n, -1)
        target = np.array([t for _, t in pairs])[:, None]
        out["random_model"] = {
            "split": "test",
            "clips": n * len(pairs),
            "timbre": float((pred == target).mean()),
            "lsd": float(np.mean([lsd(wave[i], gt.wave[:n, t], sr).mean() for i, (_, t) in enumerate(pairs)])),
        }
    return out

