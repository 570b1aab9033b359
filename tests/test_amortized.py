"""Stage 2: the WGAN-GP critic and losses, and a tiny amortized run on a tiny stage-1 run."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from musiclord.checkpoint import load_checkpoint
from musiclord.errors import CheckpointError, ConfigError
from musiclord.models import load_model
from musiclord.models.discriminator import (
    Discriminator, DiscriminatorConfig, critic_loss, generator_loss, gradient_penalty,
)
from musiclord.train.amortized import train_amortized
from musiclord.train.amortized_config import AMORTIZED_PRESETS, AmortizedConfig
from musiclord.train.config import PRESETS, TrainConfig
from musiclord.train.latent import read_latent, train_latent

CLASSES = ["piano", "violin", "cello"]


def write_dataset(root: Path, per_class: int = 8, val_per_class: int = 2, seed: int = 0) -> Path:
    """A format-1 dataset of 128x128 clips: random melodies whose harmonic pattern depends on the class."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    m = np.arange(128)[:, None]
    mels, lines = [], []
    for split, n in (("train", per_class), ("val", val_per_class)):
        for label, cls in enumerate(CLASSES):
            for j in range(n):
                notes = rng.integers(10, 50, size=4).repeat(32)[None, :]
                img = np.full((128, 128), -1.5)
                for h in range(1, 4):
                    amp = 3.0 * (0.3 + 0.7 * ((label + h) % 3) / 2)
                    img = img + amp * np.exp(-0.5 * ((m - notes * h ** 0.5 - 8 * (h - 1)) / (1 + label)) ** 2)
                lines.append(json.dumps({"clip_id": f"{split}-{cls}-{j}", "cls": cls, "label": label,
                                         "source": f"{cls}/{j}", "start_s": 0.0, "split": split,
                                         "index": len(mels), "content_id": None, "wave": None, "soundfont": None}))
                mels.append(img.astype(np.float16))
    np.save(root / "mels.npy", np.stack(mels))
    (root / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    (root / "dataset.json").write_text(json.dumps({
        "format": "musiclord-dataset", "version": 1, "source": "synth", "classes": CLASSES, "mel": {},
        "options": {}, "counts": {}, "skipped": []}))
    return root


def tiny_cfg(**amortized) -> TrainConfig:
    cfg = PRESETS["tiny"]
    am = dataclasses.replace(AMORTIZED_PRESETS["tiny"], **amortized)
    return dataclasses.replace(cfg, device="cpu", latent=dataclasses.replace(cfg.latent, steps=40), amortized=am)


@pytest.fixture(scope="module")
def stage1(tmp_path_factory) -> tuple[Path, Path]:
    """(data_dir, run_dir holding latent.pt) from the real stage-1 trainer."""
    root = tmp_path_factory.mktemp("stage1")
    data = write_dataset(root / "data")
    train_latent(tiny_cfg(), data, root / "run")
    return data, root / "run"


def _copy_run(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    (dst / "latent.pt").write_bytes((src / "latent.pt").read_bytes())
    return dst


pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------------------ critic


@pytest.mark.parametrize("n_classes", [0, 3])
def test_discriminator_scores_one_per_clip_any_size(n_classes):
    torch.manual_seed(0)
    d = Discriminator(DiscriminatorConfig(channels=4, n_classes=n_classes))
    labels = torch.tensor([0, 2]) if n_classes else None
    for t in (128, 64, 256):
        s = d(torch.randn(2, 128, t), labels)
        assert s.shape == (2,) and torch.isfinite(s).all()


def test_projection_makes_the_score_depend_on_the_label():
    torch.manual_seed(0)
    d = Discriminator(DiscriminatorConfig(channels=4, n_classes=3))
    torch.nn.init.normal_(d.embed.weight)
    x = torch.randn(1, 128, 128).repeat(3, 1, 1)
    s = d(x, torch.tensor([0, 1, 2]))
    assert s.unique().numel() == 3
    plain = Discriminator(DiscriminatorConfig(channels=4))
    assert plain(x).unique().numel() == 1


def test_gradient_penalty_finite_positive_and_differentiable():
    torch.manual_seed(0)
    d = Discriminator(DiscriminatorConfig(channels=4, n_classes=3))
    real, fake = torch.randn(4, 128, 128), torch.randn(4, 128, 128)
    gp = gradient_penalty(d, real, fake, torch.tensor([0, 1, 2, 0]))
    assert torch.isfinite(gp) and gp > 0
    gp.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in d.parameters())


def test_gradient_penalty_is_zero_for_a_unit_gradient_critic():
    class Linear(torch.nn.Module):  # D(x) = <w, x> with ||w|| = 1: gradient norm exactly 1
        def __init__(self) -> None:
            super().__init__()
            w = torch.randn(128 * 128)
            self.w = torch.nn.Parameter(w / w.norm())

        def forward(self, x, labels=None):
            return x.flatten(1) @ self.w

    gp = gradient_penalty(Linear(), torch.randn(3, 128, 128), torch.randn(3, 128, 128))
    assert gp.item() == pytest.approx(0.0, abs=1e-8)


def test_wasserstein_losses_have_the_right_signs():
    real, fake = torch.full((4,), 2.0), torch.full((4,), -1.0)
    assert critic_loss(real, fake, drift=0.0).item() == pytest.approx(-3.0)
    assert critic_loss(real, fake, drift=0.1).item() == pytest.approx(-3.0 + 0.4)
    assert generator_loss(fake).item() == pytest.approx(1.0)


def test_amortized_config_validates_and_presets_exist():
    assert set(AMORTIZED_PRESETS) == {"tiny", "demo", "paper", "quality"}
    assert PRESETS["demo"].amortized == AMORTIZED_PRESETS["demo"]
    with pytest.raises(ConfigError):
        AmortizedConfig(n_critic=0)
    with pytest.raises(ConfigError):
        AmortizedConfig(w_adv=-1.0)
    for flag in ("rerender_target_independent", "rerender_target_detach"):  # no effect without rerender targets
        with pytest.raises(ConfigError, match="rerender_target_prob > 0"):
            AmortizedConfig(**{flag: True})
        AmortizedConfig(rerender_target_prob=0.5, **{flag: True})


# ------------------------------------------------------------------------------ training


def _regression_error(model, data: Path, run: Path) -> tuple[float, float]:
    """(content, class) MSE of the encoders against the stage-1 codes on the training clips."""
    lat = read_latent(run)
    mels = torch.from_numpy(np.load(data / "mels.npy").astype(np.float32))[lat.rows]
    with torch.no_grad():
        c = model.encode_content(mels)
        e = model.encode_class(mels)
    return (float(torch.mean((c - lat.content) ** 2)),
            float(torch.mean((e - lat.class_embeddings[lat.labels]) ** 2)))


def test_train_amortized_learns_the_codes_and_exports(stage1, tmp_path):
    data, src = stage1
    run = _copy_run(src, tmp_path / "run")
    from musiclord.models import LordModel

    cfg = tiny_cfg(steps=60, w_adv=0.0, val_every=20, checkpoint_every=0, lr_encoders=3e-3)
    torch.manual_seed(0)
    before = _regression_error(LordModel(cfg.model, CLASSES), data, run)
    train_amortized(cfg, data, run)
    model, mel_cfg, meta = load_model(run)
    after = _regression_error(model, data, run)
    assert after[0] < 0.5 * before[0], (before, after)
    assert after[1] < 0.5 * before[1], (before, after)
    assert meta["stage"] == "amortized" and meta["adversarial"] is False
    assert meta["best_step"] in (20, 40, 60) and np.isfinite(meta["val_rec"])
    assert meta["class_embeddings"] in ("stage1", "encoder_mean")
    if meta["class_embeddings"] == "stage1":
        assert torch.equal(model.class_embeddings, read_latent(run).class_embeddings)
    assert (run / "amortized.pt").exists()


def test_adversarial_run_logs_and_marks_the_model(stage1, tmp_path):
    data, src = stage1
    run = _copy_run(src, tmp_path / "run")
    train_amortized(tiny_cfg(steps=4, w_adv=0.1, n_critic=2, gp_every=1, val_every=0, log_every=1), data, run)
    meta = load_model(run)[2]
    assert meta["stage"] == "amortized" and meta["adversarial"] is True
    ck = load_checkpoint(run / "amortized.pt", kind="amortized")
    assert ck["step"] == 4 and "disc" in ck["state"] and "optimizer_d" in ck["state"]
    tb_files = list((run / "tb").rglob("events.*"))
    if tb_files:  # tensorboard installed: the adversarial terms are logged
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        acc = EventAccumulator(str(tb_files[0].parent))
        acc.Reload()
        tags = set(acc.Tags()["scalars"])
        assert {"adv/critic", "adv/gp", "adv/generator", "loss/content", "loss/class", "rec/total"} <= tags


def test_resume_matches_an_uninterrupted_run(stage1, tmp_path):
    data, src = stage1
    cfg = tiny_cfg(steps=6, w_adv=0.1, gp_every=2, val_every=3, checkpoint_every=0)
    a = _copy_run(src, tmp_path / "a")
    train_amortized(cfg, data, a)
    b = _copy_run(src, tmp_path / "b")
    train_amortized(cfg, data, b, stop_after=4)
    assert not (b / "model.pt").exists() or load_model(b)[2].get("stage") != "amortized"
    train_amortized(cfg, data, b, resume=True)
    wa = load_checkpoint(a / "amortized.pt", kind="amortized")["state"]
    wb = load_checkpoint(b / "amortized.pt", kind="amortized")["state"]
    for part in ("model", "disc"):
        for k in wa[part]:
            torch.testing.assert_close(wa[part][k], wb[part][k], rtol=1e-5, atol=1e-6, msg=f"{part}.{k}")


def test_resume_after_the_last_step_exports_the_model(stage1, tmp_path):
    """Killed while exporting (the last checkpoint written, model.pt not yet): resuming exports it,
    the weights those of the uninterrupted run."""
    data, src = stage1
    cfg = tiny_cfg(steps=4, w_adv=0.1, val_every=2, checkpoint_every=0)
    run = _copy_run(src, tmp_path / "run")
    train_amortized(cfg, data, run)
    first = load_model(run)[0].state_dict()
    (run / "model.pt").unlink()
    train_amortized(cfg, data, run, resume=True)
    model, _, meta = load_model(run)
    assert meta["stage"] == "amortized"
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, first[k], msg=k)


def test_resume_refuses_stage2_trained_on_older_stage1_codes(stage1, tmp_path):
    data, src = stage1
    run = _copy_run(src, tmp_path / "run")
    cfg = tiny_cfg(steps=6, w_adv=0.0, val_every=0, checkpoint_every=0)
    train_amortized(cfg, data, run, stop_after=3)
    longer = dataclasses.replace(cfg, latent=dataclasses.replace(cfg.latent, steps=cfg.latent.steps + 4))
    train_latent(longer, data, run, resume=True)  # stage 1 goes on: its codes change
    before = (run / "amortized.pt").read_bytes()
    with pytest.raises(CheckpointError, match="stage-1 codes of step 40.*now at step 44"):
        train_amortized(longer, data, run, resume=True)
    assert (run / "amortized.pt").read_bytes() == before  # nothing lost


def test_missing_or_mismatched_stage1_is_a_clear_error(stage1, tmp_path):
    data, src = stage1
    with pytest.raises(CheckpointError, match="latent"):
        train_amortized(tiny_cfg(), data, tmp_path / "empty")
    run = _copy_run(src, tmp_path / "run")
    cfg = tiny_cfg()
    bad = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, gen_channels=cfg.model.gen_channels * 2))
    with pytest.raises(CheckpointError, match="generator"):
        train_amortized(bad, data, run)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_adversarial_run_on_cuda(stage1, tmp_path):
    data, src = stage1
    run = _copy_run(src, tmp_path / "run")
    cfg = dataclasses.replace(tiny_cfg(steps=40, w_adv=0.1, n_critic=2, gp_every=2, val_every=20, lr_encoders=3e-3),
                              device="cuda")
    torch.manual_seed(0)
    from musiclord.models import LordModel

    before = _regression_error(LordModel(cfg.model, CLASSES), data, run)
    train_amortized(cfg, data, run)
    model, _, meta = load_model(run)
    assert meta["stage"] == "amortized" and meta["adversarial"] is True
    after = _regression_error(model, data, run)
    assert after[0] < before[0], (before, after)


def test_timbre_eq_run_trains_and_records_the_setting(stage1, tmp_path):
    data, src = stage1
    run = _copy_run(src, tmp_path / "run")
    train_amortized(tiny_cfg(steps=6, w_adv=0.0, val_every=0, timbre_eq_db=6.0), data, run)
    meta = load_model(run)[2]
    assert meta["stage"] == "amortized"
    from musiclord.config import load_config
    from musiclord.train.config import TrainConfig

    assert load_config(TrainConfig, run / "config.yaml").amortized.timbre_eq_db == 6.0


def test_cpu_critic_is_channels_last_and_scores_as_the_plain_one():
    """`build_discriminator` only changes the weights' layout: same scores, same gradient
    penalty, a state dict that loads into a plain critic."""
    from musiclord.models.discriminator import build_discriminator

    torch.manual_seed(0)
    cfg = DiscriminatorConfig(channels=4, n_classes=3)
    fast = build_discriminator(cfg, "cpu")
    assert fast.inp.weight.is_contiguous(memory_format=torch.channels_last)
    plain = Discriminator(cfg)
    plain.load_state_dict(fast.state_dict())
    x, y = torch.randn(3, 128, 128), torch.tensor([0, 1, 2])
    torch.testing.assert_close(fast(x, y), plain(x, y), atol=1e-5, rtol=1e-4)
    fake = torch.randn(3, 128, 128)
    g = torch.Generator().manual_seed(1)
    gp_fast = gradient_penalty(fast, x, fake, y, generator=g)
    g = torch.Generator().manual_seed(1)
    torch.testing.assert_close(gp_fast, gradient_penalty(plain, x, fake, y, generator=g), atol=1e-4, rtol=1e-3)


def test_translation_targets_are_other_classes_and_reproducible():
    from musiclord.train.amortized_losses import translation_targets

    y = torch.tensor([0, 1, 2, 3] * 64)
    a = translation_targets(y, 4, seed=5, step=3, batch_size=256, local=slice(0, 256))
    assert (a != y).all() and a.min() >= 0 and a.max() <= 3
    assert torch.equal(a, translation_targets(y, 4, seed=5, step=3, batch_size=256, local=slice(0, 256)))
    assert not torch.equal(a, translation_targets(y, 4, seed=5, step=4, batch_size=256, local=slice(0, 256)))
    counts = torch.bincount(a[y == 0], minlength=4)
    assert counts[0] == 0 and (counts[1:] >= 10).all()  # every other class is drawn (each ~21 of 64)
    # two processes' shares of the global batch draw what one process draws for it
    half = [translation_targets(y[s], 4, 5, 3, 256, s) for s in (slice(0, 128), slice(128, 256))]
    assert torch.equal(torch.cat(half), a)
    # only some targets allowed: the others translate into them, the allowed class keeps its own
    only = translation_targets(y, 4, seed=5, step=3, batch_size=256, local=slice(0, 256), allowed=(1,))
    assert (only == 1).all()
    two = translation_targets(y, 4, seed=5, step=3, batch_size=256, local=slice(0, 256), allowed=(1, 3))
    assert (two[y == 1] == 3).all() and (two[y == 3] == 1).all()
    assert set(torch.bincount(two[y == 0], minlength=4).nonzero().flatten().tolist()) == {1, 3}
    half = [translation_targets(y[s], 4, 5, 3, 256, s, allowed=(1, 3)) for s in (slice(0, 128), slice(128, 256))]
    assert torch.equal(torch.cat(half), two)


def test_translation_terms_judge_translations_and_read_back_the_content():
    """The critic sees translations as fakes of their target class; the generator's terms exist
    only when asked for, and their gradient reaches the generator and the content encoder."""
    from musiclord.models import LordModel
    from musiclord.models.discriminator import build_discriminator
    from musiclord.losses import ReconstructionLoss
    from musiclord.train.amortized_losses import amortized_loss, critic_update

    torch.manual_seed(0)
    cfg = tiny_cfg(w_adv=0.1, w_adv_translation=0.1, w_cycle=1.0)
    model = LordModel(cfg.model, CLASSES)
    disc = build_discriminator(DiscriminatorConfig(channels=4, n_classes=3), "cpu")
    x, y, y_to = torch.randn(4, 128, 128), torch.tensor([0, 1, 2, 0]), torch.tensor([1, 2, 0, 2])
    emb = torch.randn(3, cfg.model.class_dim)
    content_t = torch.randn(4, cfg.model.content_dim, cfg.model.content_frames)
    loss_fn = ReconstructionLoss.from_config(cfg.loss, "cpu")
    opt_d = torch.optim.Adam(disc.parameters(), lr=1e-3)
    scal = critic_update(model, disc, opt_d, x, y, cfg.amortized, 0, torch.Generator().manual_seed(0),
                         y_to=y_to, class_emb=emb)
    assert {"adv/wasserstein_translation", "adv/gp", "adv/critic"} <= set(scal)
    opt_d.zero_grad(set_to_none=True)
    loss, _, parts = amortized_loss(model, disc, loss_fn, x, y, content_t, emb[y], cfg.amortized, y_to=y_to,
                                    class_emb=emb)
    assert {"adversarial", "adv_translation", "cycle"} <= set(parts)
    with torch.no_grad():
        expect = -disc(model.decode(model.encode_content(x), emb[y_to]), y_to).mean()
    torch.testing.assert_close(parts["adv_translation"].detach(), expect, atol=1e-5, rtol=1e-4)
    gen = list(model.generator.parameters())
    g_adv = torch.autograd.grad(parts["adv_translation"], gen, retain_graph=True, allow_unused=True)
    assert sum(float(g.abs().sum()) for g in g_adv if g is not None) > 0
    (g_cyc,) = torch.autograd.grad(parts["cycle"], [model.content_encoder.inp.weight], retain_graph=True)
    assert g_cyc.abs().sum() > 0
    loss.backward()
    assert all(p.grad is None for p in disc.parameters())
    plain = dataclasses.replace(cfg.amortized, w_adv_translation=0.0, w_cycle=0.0)
    _, _, parts0 = amortized_loss(model, disc, loss_fn, x, y, content_t, emb[y], plain, y_to=y_to, class_emb=emb)
    assert set(parts0) == {"content", "class", "adversarial"}
    with pytest.raises(ConfigError, match="w_adv_translation"):
        AmortizedConfig(w_adv=0.0, w_adv_translation=0.1)


def test_translation_run_trains_resumes_and_logs(stage1, tmp_path):
    data, src = stage1
    cfg = tiny_cfg(steps=6, w_adv=0.1, w_adv_translation=0.1, w_cycle=1.0, gp_every=2, val_every=3,
                   checkpoint_every=0, log_every=1, translation_to=("piano",))
    a = _copy_run(src, tmp_path / "a")
    train_amortized(cfg, data, a)
    b = _copy_run(src, tmp_path / "b")
    train_amortized(cfg, data, b, stop_after=3)
    train_amortized(cfg, data, b, resume=True)
    meta = load_model(a)[2]
    assert meta["w_adv_translation"] == 0.1 and meta["w_cycle"] == 1.0 and meta["translation_to"] == ["piano"]
    sa, sb = load_model(a)[0].state_dict(), load_model(b)[0].state_dict()
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], atol=1e-5, rtol=1e-4, msg=k)
    bad = dataclasses.replace(cfg, amortized=dataclasses.replace(cfg.amortized, translation_to=("tuba",)))
    with pytest.raises(ConfigError, match="translation_to: unknown class 'tuba'"):
        train_amortized(bad, data, b)
    # without translation terms the target list is unused (a preset's list does not stop other datasets)
    off = dataclasses.replace(bad.amortized, w_adv_translation=0.0, w_cycle=0.0, steps=2)
    train_amortized(dataclasses.replace(bad, amortized=off), data, _copy_run(src, tmp_path / "c"))


def test_content_norm_runs_both_stages_on_normalised_codes(tmp_path):
    """With `model.content_norm` stage 2 regresses the normalised stage-1 codes and the exported
    model reports normalised codes."""
    data = write_dataset(tmp_path / "data", per_class=4, val_per_class=1)
    cfg = tiny_cfg(steps=6, w_adv=0.0, val_every=0)
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, content_norm="standard"),
                              latent=dataclasses.replace(cfg.latent, steps=8))
    train_latent(cfg, data, tmp_path / "run")
    train_amortized(cfg, data, tmp_path / "run")
    model, _, meta = load_model(tmp_path / "run")
    assert model.cfg.content_norm == "standard" and np.isfinite(meta["val_rec"])
    with torch.no_grad():
        codes = model.encode_content(torch.from_numpy(np.load(data / "mels.npy")[:6].astype(np.float32)))
    torch.testing.assert_close(codes.mean(-1), torch.zeros(codes.shape[:2]), atol=1e-4, rtol=0)



def test_erased_targets_have_one_mean_code_per_class_and_train(stage1, tmp_path):
    """`amortized.erase_targets`: stage 2 regresses the stage-1 codes with the class erased (every
    class has the same mean target, the codes otherwise move little); a run with it trains and
    records the setting."""
    from musiclord.train.amortized import content_targets

    data, src = stage1
    lat = read_latent(src)
    plain = content_targets(lat.content.float(), lat.labels, len(CLASSES), tiny_cfg())
    erased = content_targets(lat.content.float(), lat.labels, len(CLASSES), tiny_cfg(erase_targets=True))
    torch.testing.assert_close(plain, lat.content.float())
    means = torch.stack([erased[lat.labels == k].mean(0) for k in range(len(CLASSES))])
    torch.testing.assert_close(means, means.mean(0).expand_as(means), atol=1e-5, rtol=0)
    plain_means = torch.stack([plain[lat.labels == k].mean(0) for k in range(len(CLASSES))])
    assert float((plain_means - plain_means.mean(0)).abs().max()) > 1e-3  # there was something to erase
    assert float((erased - plain).norm() / plain.norm()) < 0.5
    run = _copy_run(src, tmp_path / "run")
    train_amortized(tiny_cfg(steps=6, w_adv=0.0, val_every=0, erase_targets=True), data, run)
    from musiclord.config import load_config

    assert load_model(run)[2]["stage"] == "amortized"
    assert load_config(TrainConfig, run / "config.yaml").amortized.erase_targets is True
