"""The evaluator's instrument classifier on a tiny synthetic set: it learns timbre across sample
banks, and it can fail: class-mean spectrograms and smeared clips are not called instruments."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from test_evaluate_helpers import CLASSES, synth_clip

from musiclord.audio import MelConfig, logmel
from musiclord.evaluate.timbre import (
    TimbreConfig,
    _blur_freq,
    _blur_time,
    _shift_bins,
    cache_key,
    classify,
    load_classifier,
    save_classifier,
    train_classifier,
)

CFG = MelConfig()


def _set(n: int, banks: tuple[int, ...], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    waves, labels = [], []
    for bank in banks:
        for k, cls in enumerate(CLASSES):
            for _ in range(n):
                waves.append(synth_clip(cls, [int(p) for p in rng.integers(55, 80, int(rng.integers(3, 6)))], bank, rng))
                labels.append(k)
    return logmel(np.stack(waves), CFG), torch.tensor(labels)


def test_augmentations_keep_shape_and_do_what_they_say() -> None:
    x = torch.randn(128, 128)
    assert torch.equal(_blur_time(x, 1), x)
    b = _blur_time(x, 9)
    assert b.shape == x.shape and b.std() < 0.5 * x.std()
    assert _blur_freq(x, 5).shape == x.shape
    s = _shift_bins(x, 2, -9.0)
    assert torch.equal(s[2:], x[:-2]) and torch.all(s[:2] == -9.0)


def test_classifier_learns_timbre_across_banks_and_rejects_controls(tmp_path: Path) -> None:
    torch.manual_seed(0)
    x, y = _set(12, (0, 2), seed=0)
    xt, yt = _set(4, (1,), seed=1)  # a sample bank the classifier never saw
    cfg = TimbreConfig(steps=200, batch_size=32, channels=8, seed=0)
    net = train_classifier(x, y, len(CLASSES), CFG, cfg)
    acc = (classify(net, xt) == yt).float().mean().item()
    assert acc >= 0.75, acc
    # Controls: each class's mean spectrogram, and heavily smeared clips, must not count as the class.
    means = torch.stack([x[y == k].mean(0) for k in range(len(CLASSES))])
    assert (classify(net, means) == torch.arange(len(CLASSES))).float().mean().item() <= 1 / 3
    smeared = torch.stack([_blur_freq(_blur_time(m, 31), 5) for m in xt])
    assert (classify(net, smeared) == yt).float().mean().item() <= 0.35
    # The cache round trips and is keyed by dataset and settings.
    (tmp_path / "dataset.json").write_text("{}")
    key = cache_key(tmp_path, CLASSES, cfg)
    save_classifier(net, tmp_path / "c.pt", key, CLASSES, cfg, {"n": 1})
    loaded = load_classifier(tmp_path / "c.pt", key, CLASSES, cfg)
    assert loaded is not None and loaded[1] == {"n": 1}
    assert torch.equal(classify(loaded[0], xt), classify(net, xt))
    assert load_classifier(tmp_path / "c.pt", cache_key(tmp_path, CLASSES, TimbreConfig(seed=1)), CLASSES, cfg) is None


def test_classifier_is_seeded() -> None:
    x, y = _set(3, (0,), seed=0)
    cfg = TimbreConfig(steps=3, batch_size=8, seed=3)
    a = train_classifier(x, y, len(CLASSES), CFG, cfg)
    b = train_classifier(x, y, len(CLASSES), CFG, cfg)
    for pa, pb in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(pa, pb)
