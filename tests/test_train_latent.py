"""Stage 1: a tiny run converges, resumes identically, guards non-finite losses, exports a model."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from musiclord.config import apply_overrides
from musiclord.errors import CheckpointError, ConfigError
from musiclord.train.common import TrainingError
from musiclord.train.config import PRESETS, TrainConfig, resolve_config
from musiclord.train.latent import train_latent

CLASSES = ["piano", "violin", "cello", "flute"]


def write_tiny_dataset(root: Path, per_class: int = 8, val_per_class: int = 2, seed: int = 0,
                       n_mels: int = 128, n_frames: int = 128) -> Path:
    """A dataset directory in format version 1 (docs/design.md): each clip a random melody of
    bands whose harmonic pattern and brightness depend on the class."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    mels, lines = [], []
    m = np.arange(n_mels)[:, None]
    counts: dict[str, dict[str, int]] = {"train": {}, "val": {}}
    for split, n in (("train", per_class), ("val", val_per_class)):
        for label, cls in enumerate(CLASSES):
            counts[split][cls] = n
            for j in range(n):
                notes = rng.integers(10, 50, size=4).repeat(n_frames // 4)[None, :]
                img = np.full((n_mels, n_frames), -1.5)
                for h in range(1, 4):
                    amp = 3.0 * (0.3 + 0.7 * ((label + h) % 4) / 3)
                    img = img + amp * np.exp(-0.5 * ((m - notes * h ** 0.5 - 8 * (h - 1)) / (1 + label)) ** 2)
                idx = len(mels)
                mels.append(img.astype(np.float16))
                lines.append(json.dumps({"clip_id": f"{split}-{cls}-{j}", "cls": cls, "label": label,
                                         "source": f"{cls}/{j}.mid", "start_s": 0.0, "split": split, "index": idx,
                                         "content_id": None, "wave": None, "soundfont": None}))
    np.save(root / "mels.npy", np.stack(mels))
    (root / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    (root / "dataset.json").write_text(json.dumps({
        "format": "musiclord-dataset", "version": 1, "source": "synth", "classes": CLASSES, "mel": {},
        "options": {}, "counts": counts, "skipped": []}))
    return root


def tiny_cfg(**latent) -> TrainConfig:
    cfg = PRESETS["tiny"]
    return dataclasses.replace(cfg, latent=dataclasses.replace(cfg.latent, **latent), device="cpu")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("data"))


def _weights(run: Path) -> dict[str, torch.Tensor]:
    from musiclord.checkpoint import load_checkpoint

    return load_checkpoint(run / "latent.pt", kind="latent")["state"]["model"]


def fit_error(res, data: Path) -> tuple[float, float]:
    """(MSE of the stage-1 generator's reconstructions of the training clips from their codes,
    MSE of the mean image): a run that learned anything has the first far below the second."""
    from musiclord.models import Generator
    from musiclord.train.common import open_dataset

    target = torch.from_numpy(np.asarray(open_dataset(data).mels, dtype=np.float32))[res.rows]
    gen = Generator(res.model_config)
    gen.load_state_dict(res.generator_state)
    gen.eval()
    with torch.no_grad():
        pred = gen(res.content, res.class_embeddings[res.labels])
    return torch.mean((pred - target) ** 2).item(), torch.mean((target - target.mean(0)) ** 2).item()


def test_tiny_run_converges_and_exports(data, tmp_path, caplog):
    run = tmp_path / "run"
    cfg = tiny_cfg(steps=300, log_every=10, checkpoint_every=0)
    res = train_latent(cfg, data, run)
    assert (run / "config.yaml").exists() and (run / "model.pt").exists() and (run / "latent.pt").exists()
    assert res is not None and res.content.shape == (32, 4, 32) and res.class_embeddings.shape == (4, 16)
    err, base = fit_error(res, data)  # reconstruction through the learned codes beats the mean image by far
    assert err < 0.7 * base, (err, base)
    from musiclord.models import load_model

    model, _, meta = load_model(run)
    assert meta["stage"] == "latent"
    assert torch.equal(model.class_embeddings, res.class_embeddings)


def test_loss_decreases(data, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    train_latent(tiny_cfg(steps=100, log_every=5, checkpoint_every=0), data, run)
    acc = EventAccumulator(str(run / "tb"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert {"loss/l2", "loss/total", "loss/content_norm2"} <= set(tags)
    vals = [e.value for e in acc.Scalars("loss/l2")]
    assert vals[-1] < 0.7 * vals[0], vals
    assert {"mel/input", "mel/reconstruction", "mel/class_swap"} <= set(acc.Tags()["images"])


def test_resume_gives_identical_weights(data, tmp_path):
    cfg = tiny_cfg(steps=30, checkpoint_every=10)
    straight = tmp_path / "a"
    train_latent(cfg, data, straight)
    broken = tmp_path / "b"
    # an interrupted run: stops after step 17, its last checkpoint is from step 10
    train_latent(cfg, data, broken, stop_after=17)
    from musiclord.checkpoint import load_checkpoint

    assert load_checkpoint(broken / "latent.pt", kind="latent")["step"] == 17
    # simulate the kill between checkpoints: go back to the step-10 state by re-running to 10
    train_latent(cfg, data, tmp_path / "c", stop_after=10)
    (broken / "latent.pt").write_bytes((tmp_path / "c" / "latent.pt").read_bytes())
    train_latent(cfg, data, broken, resume=True)
    wa, wb = _weights(straight), _weights(broken)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def test_nonfinite_guard_stops(data, tmp_path):
    # a huge learning rate makes the loss overflow; the guard skips and then stops with a clear error
    cfg = tiny_cfg(steps=200, lr_generator=1e30, lr_embeddings=1e30, max_nonfinite=3, checkpoint_every=0)
    with pytest.raises(TrainingError, match="non-finite"):
        train_latent(cfg, data, tmp_path / "run")


def test_nonfinite_guard_counts_and_skips():
    from musiclord.train.common import NonFiniteGuard

    g = NonFiniteGuard(3)
    assert g.check(torch.tensor(1.0))
    assert not g.check(torch.tensor(float("nan")))
    assert not g.check(torch.tensor(float("inf")))
    assert g.check(torch.tensor(0.5)) and g.in_a_row == 0 and g.total == 2
    g.check(torch.tensor(float("nan")))
    g.check(torch.tensor(float("nan")))
    with pytest.raises(TrainingError):
        g.check(torch.tensor(float("nan")))


def test_resume_with_other_config_is_clear_error(data, tmp_path):
    run = tmp_path / "run"
    train_latent(tiny_cfg(steps=5, checkpoint_every=0), data, run)
    other = apply_overrides(tiny_cfg(steps=10), ["model.gen_channels=16"])
    with pytest.raises(CheckpointError):
        train_latent(other, data, run, resume=True)


def test_config_overrides_and_presets(tmp_path):
    assert set(PRESETS) == {"tiny", "demo", "paper", "quality"}
    cfg = resolve_config("tiny", ["latent.steps=7", "loss.w_l1=0.25", "model.content_dim=2"])
    assert (cfg.latent.steps, cfg.loss.w_l1, cfg.model.content_dim) == (7, 0.25, 2)
    with pytest.raises(ConfigError, match="unknown"):
        resolve_config("tiny", ["latent.nope=1"])
    with pytest.raises(ConfigError):
        resolve_config("tiny", ["latent.steps=1.5"])
    with pytest.raises(ConfigError):
        resolve_config("tiny", ["latent.cosine=maybe"])
    with pytest.raises(ConfigError, match="unknown config"):
        resolve_config("nosuchpreset")
    from musiclord.config import save_config

    save_config(cfg, tmp_path / "c.yaml")
    assert resolve_config(str(tmp_path / "c.yaml")) == cfg
    with pytest.raises(ConfigError):
        resolve_config("tiny", ["device=tpu"])


def test_cli_train_refuses_to_overwrite(data, tmp_path, capsys):
    from musiclord.cli import main

    run = tmp_path / "run"
    args = ["train", "--data", str(data), "--out", str(run), "--config", "tiny", "--stage", "latent",
            "latent.steps=3", "device=cpu"]
    assert main(args) == 0
    assert (run / "model.pt").exists() and (run / "config.yaml").exists()
    assert main(args) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(args + ["--force"]) == 0
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "x"), "--config", "tiny",
                 "latent.bogus=1"]) == 2


@pytest.mark.heavy  # three interpreters start on 2 cores
def test_sigkill_then_resume_matches_straight_run(data, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from musiclord.checkpoint import load_checkpoint

    def cmd(out: Path, *extra: str) -> list[str]:
        return [sys.executable, "-m", "musiclord.cli", "train", "--data", str(data), "--out", str(out), "--config",
                "tiny", "--stage", "latent", "latent.steps=120", "latent.checkpoint_every=7", "device=cpu", *extra]

    env = {**os.environ, "MUSICLORD_NO_PROGRESS": "1"}
    subprocess.run(cmd(tmp_path / "straight"), check=True, env=env, capture_output=True)
    run = tmp_path / "killed"
    proc = subprocess.Popen(cmd(run), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kill_after = 7 * int(np.random.default_rng().integers(1, 10)) + 3
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        ck = run / "latent.pt"
        if ck.exists():
            try:
                if load_checkpoint(ck, kind="latent")["step"] >= kill_after - 3:
                    break
            except CheckpointError:
                pass
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    subprocess.run(cmd(run, "--resume"), check=True, env=env, capture_output=True)
    wa, wb = _weights(tmp_path / "straight"), _weights(run)
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_tiny_run_on_cuda_learns_and_exports_a_cpu_loadable_model(data, tmp_path):
    from musiclord.checkpoint import load_checkpoint
    from musiclord.models import load_model

    run = tmp_path / "run"
    res = train_latent(dataclasses.replace(tiny_cfg(steps=300, checkpoint_every=100), device="cuda"), data, run)
    assert res is not None and res.content.device.type == "cpu"  # results come back to the host
    assert load_checkpoint(run / "latent.pt", kind="latent")["step"] == 300
    model, _, meta = load_model(run)  # a CUDA-trained model loads on the CPU
    assert meta["stage"] == "latent" and next(model.parameters()).device.type == "cpu"
    err, base = fit_error(res, data)  # the same fit criterion as the CPU run above
    assert err < 0.7 * base, (err, base)
