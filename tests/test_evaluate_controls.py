"""The metrics can both succeed and fail (heavy: trains the real-size classifier).

An oracle that returns the true rendering must score high timbre and pitch and beat copying;
a translator that copies its input, a random-weight model and the class-mean spectrogram must
score low timbre."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_evaluate_helpers import CLASSES, make_dataset, make_random_model

from musiclord.evaluate import EvalOptions, evaluate, load_translator, open_dataset


class _Oracle:
    """Looks the source passage up in the paired test set and returns its true target rendering."""

    def __init__(self, data: Path, copy: bool = False) -> None:
        ds = open_dataset(data)
        self.copy = copy
        self.instruments = list(ds.classes)
        self.mel_config = ds.mel_config
        self.meta = {"stage": "oracle"}
        self.by_key: dict[bytes, dict[str, torch.Tensor]] = {}
        for by_cls in ds.paired("test").values():
            mels = {c: ds.mel_tensor([r])[0] for c, r in by_cls.items()}
            for m in mels.values():
                self.by_key[m.numpy().tobytes()] = mels

    def translate_mel(self, mel: torch.Tensor, to: str | None = None, like_mel: torch.Tensor | None = None) -> torch.Tensor:
        if self.copy:
            return mel.clone()
        return torch.stack([self.by_key[m.numpy().tobytes()][to] for m in mel])

    def content_codes(self, mel: torch.Tensor) -> torch.Tensor:
        return torch.randn(mel.shape[0], 4, 8, generator=torch.Generator().manual_seed(mel.shape[0]))

    def class_codes(self, mel: torch.Tensor) -> torch.Tensor:
        return mel.mean(-1)


@pytest.mark.heavy
def test_metrics_separate_an_oracle_from_copies_and_random_models(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "data", n_train=24, n_val=4, n_aux=12, n_test=8)
    models = [
        ("oracle", _Oracle(data)),
        ("copy", _Oracle(data, copy=True)),
        ("random", load_translator(make_random_model(tmp_path / "rnd"))),
    ]
    m = evaluate(models, data, tmp_path / "report", EvalOptions(max_clips=8, pitch_clips=2, control_clips=4))
    oracle, copy, rnd = (m["models"][n]["summary"] for n in ("oracle", "copy", "random"))
    assert m["timbre_classifier"]["test_accuracy_roundtrip"] >= 0.8
    assert oracle["timbre"] >= 0.8
    assert oracle["lsd_ratio"] < 1.0 and oracle["lsd"] == pytest.approx(oracle["lsd_ceiling"], rel=0.05)
    assert oracle["pitch"] >= 0.8
    assert copy["timbre"] <= 0.2 and copy["lsd_ratio"] >= 0.95
    assert rnd["timbre"] <= 1 / len(CLASSES) + 0.05
    assert m["controls"]["class_mean"]["timbre"] <= 1 / len(CLASSES)
    assert m["controls"]["random_model"]["timbre"] <= 1 / len(CLASSES) + 0.05
    assert oracle["class_probe"] >= 0.9 and abs(oracle["content_probe"] - oracle["probe_chance"]) < 0.25
