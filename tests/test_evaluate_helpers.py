"""Builders shared by the evaluation tests: a tiny dataset directory in the documented format
(docs/design.md, version 1) and a random-weight model saved with musiclord.models.save_model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from musiclord.audio import MelConfig, logmel, save_audio
from musiclord.config import to_dict

SR = 16000
CLASSES = ["flute", "reed", "string"]
# Harmonic amplitude profiles: the instruments' timbres (and per-bank variations of them).
PROFILES = {
    "flute": lambda n: np.where(n == 1, 1.0, 0.08 / n),
    "reed": lambda n: np.where(n % 2 == 1, 1.0 / n, 0.0),
    "string": lambda n: 1.0 / n**0.7,
}


def synth_clip(cls: str, pitches: list[int], bank: int, rng: np.random.Generator) -> np.ndarray:
    """A 2 s monophonic phrase: one note per pitch, equal lengths, harmonic tone of `cls`."""
    n = 2 * SR
    t = np.arange(n // len(pitches)) / SR
    harm = np.arange(1, 13)
    amps = PROFILES[cls](harm) * (1 + 0.25 * np.random.default_rng(100 + bank).uniform(-1, 1, len(harm)))
    out = []
    for p in pitches:
        f0 = 440.0 * 2 ** ((p - 69) / 12)
        ok = harm * f0 < SR / 2
        vib = 0.004 * np.sin(2 * np.pi * 5.5 * t) if cls == "string" else 0.0  # string vibrato
        phase = 2 * np.pi * f0 * np.cumsum(np.ones_like(t) + vib) / SR
        tone = (amps[ok, None] * np.sin(harm[ok, None] * phase[None] + rng.uniform(0, 6.28, (ok.sum(), 1)))).sum(0)
        if cls == "flute":  # breath noise
            tone = tone + 0.05 * rng.standard_normal(len(t))
        env = np.minimum(1.0, t / 0.02) * (np.exp(-3 * t) if cls == "string" else 1.0) * np.minimum(1.0, (t[-1] - t) / 0.02 + 1e-3)
        out.append(tone * env)
    x = np.concatenate(out)
    x = np.pad(x, (0, n - len(x)))
    return (0.9 * x / (np.abs(x).max() + 1e-9)).astype(np.float32)


def make_dataset(
    root: Path, n_train: int = 8, n_val: int = 2, n_aux: int = 4, n_test: int = 6, seed: int = 0,
    classes: list[str] | None = None,
) -> Path:
    """Write a tiny dataset: train/val (bank 0), aux (bank 2), paired test (bank 1, waves saved)."""
    classes = list(classes or CLASSES)
    rng = np.random.default_rng(seed)
    cfg = MelConfig()
    root.mkdir(parents=True, exist_ok=True)
    records, waves = [], []

    def add(cls: str, split: str, bank: int, pitches: list[int], content_id: str | None) -> None:
        i = len(records)
        clip_id = f"{split}-{cls}-{i:04d}"
        w = synth_clip(cls, pitches, bank, rng)
        wave = None
        if split == "test":
            wave = f"waves/{clip_id}.wav"
            save_audio(root / wave, w, SR)
        records.append({"clip_id": clip_id, "cls": cls, "label": classes.index(cls), "source": f"piece{content_id or i}",
                        "start_s": 0.0, "split": split, "index": i, "content_id": content_id, "wave": wave,
                        "soundfont": f"bank{bank}"})
        waves.append(w)

    def phrase() -> list[int]:
        return [int(p) for p in rng.integers(55, 80, int(rng.integers(3, 6)))]

    for split, n, bank in (("train", n_train, 0), ("val", n_val, 0), ("aux", n_aux, 2)):
        for cls in classes:
            for _ in range(n):
                add(cls, split, bank, phrase(), None)
    for j in range(n_test):
        pitches = phrase()
        for cls in classes:
            add(cls, "test", 1, pitches, f"c{j:03d}")
    mels = logmel(np.stack(waves), cfg).numpy().astype(np.float16)
    np.save(root / "mels.npy", mels)
    with open(root / "manifest.jsonl", "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    counts: dict[str, dict[str, int]] = {}
    for r in records:
        counts.setdefault(r["split"], {}).setdefault(r["cls"], 0)
        counts[r["split"]][r["cls"]] += 1
    meta = {"format": "musiclord-dataset", "version": 1, "source": "synth", "classes": classes, "mel": to_dict(cfg),
            "options": {}, "counts": counts, "skipped": []}
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


def make_random_model(run_dir: Path, seed: int = 0, classes: list[str] | None = None) -> Path:
    """A random-weight LordModel of tiny sizes, saved as RUN_DIR/model.pt (stage "amortized")."""
    import torch

    from musiclord.models import LordModel, ModelConfig, save_model

    torch.manual_seed(seed)
    cfg = ModelConfig(content_dim=4, content_frames=32, class_dim=8, gen_channels=16, gen_blocks=2, kernel_size=3,
                      adain_hidden=16, enc_channels=16, enc_blocks=2)
    model = LordModel(cfg, list(classes or CLASSES))
    model.class_embeddings.normal_()
    save_model(model, run_dir / "model.pt", MelConfig(), {"stage": "amortized"})
    return run_dir
