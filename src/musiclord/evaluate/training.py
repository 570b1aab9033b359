"""Assembling the timbre classifier's training set from a dataset, and caching the result."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from musiclord.audio import invert, logmel
from musiclord.errors import DataError
from musiclord.evaluate.timbre import TimbreNet, cache_key, load_classifier, save_classifier, train_classifier

log = logging.getLogger(__name__)

TRAIN_SPLITS = ("train", "val", "aux")  # never "test": the classifier judges the test split


def training_set(ds: Any, opts: Any) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """Ground-truth clips of the train, val and aux splits, plus a Griffin-Lim round-tripped share.

    Args:
        ds: a Dataset.
        opts: EvalOptions (its `timbre` config, `gl_iters` is not used: the classifier's own is).

    Returns:
        mels (N, M, T), labels (N,), and a description (clips per split, round-tripped clips).
    """
    cfg = opts.timbre
    rng = np.random.default_rng(cfg.seed)
    classes = list(ds.classes)
    mels, labels, rt_mels, rt_labels = [], [], [], []
    counts: dict[str, int] = {}
    for split in TRAIN_SPLITS:
        for k, cls in enumerate(classes):
            recs = ds.select(split=split, cls=cls)
            if not recs:
                continue
            pick = [recs[i] for i in sorted(rng.permutation(len(recs))[: cfg.max_per_split_class])]
            m = ds.mel_tensor(pick)
            mels.append(m)
            labels += [k] * len(pick)
            counts[split] = counts.get(split, 0) + len(pick)
            n_rt = min(cfg.roundtrip_per_class, len(pick))
            if n_rt:
                rt_mels.append(m[:n_rt])
                rt_labels += [k] * n_rt
    if not mels:
        raise DataError("no train/val/aux clips to train the timbre classifier on")
    present = sorted(set(labels))
    if len(present) < len(classes):
        raise DataError(f"the timbre classifier needs clips of every class, missing {set(range(len(classes))) - set(present)}")
    t0 = time.time()
    rt = torch.cat(rt_mels)
    rt = logmel(invert(rt, ds.mel_config, n_iter=cfg.gl_iters), ds.mel_config)
    log.info("timbre classifier: %d clips round-tripped through Griffin-Lim in %.1f s", len(rt), time.time() - t0)
    x = torch.cat([*mels, rt])
    y = torch.tensor(labels + rt_labels, dtype=torch.long)
    info = {"clips_per_split": counts, "roundtrip_clips": len(rt), "train_clips": len(y), "splits": [s for s in TRAIN_SPLITS if s in counts]}
    return x, y, info


def get_classifier(ds: Any, data_dir: Path, cache_dir: Path, opts: Any) -> tuple[TimbreNet, dict[str, Any]]:
    """The cached classifier for this dataset and config, trained (and cached) when absent.

    Returns:
        (network in eval mode, description: splits, clip counts, cache file, seconds).
    """
    classes = list(ds.classes)
    key = cache_key(Path(data_dir), classes, opts.timbre)
    path = Path(cache_dir) / f"timbre-{key}.pt"
    cached = load_classifier(path, key, classes, opts.timbre)
    if cached is not None:
        log.info("timbre classifier: cached %s", path)
        net, stats = cached
        return net, {**stats, "cached": True}
    t0 = time.time()
    x, y, info = training_set(ds, opts)
    net = train_classifier(x, y, len(classes), ds.mel_config, opts.timbre)
    stats = {**info, "seconds": round(time.time() - t0, 1), "cache": path.name, "outputs": classes + ["other"]}
    save_classifier(net, path, key, classes, opts.timbre, stats)
    log.info("timbre classifier: trained on %d clips in %.0f s", len(y), time.time() - t0)
    return net, {**stats, "cached": False}
