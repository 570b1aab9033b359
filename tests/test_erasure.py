"""The linear erasure of the instrument from content codes: the LEACE fit, the model that carries it,
`musiclord erase`."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from musiclord.cli import main
from musiclord.data import Dataset
from musiclord.errors import DataError
from musiclord.models import LordModel, load_model
from musiclord.models.config import ModelConfig
from musiclord.models.erasure import erase, fit_centred_leace, fit_leace, time_mean_operators
from musiclord.models.lord import save_model
from musiclord.audio.mel import MelConfig
from musiclord.train.erasure import encoder_codes, with_erasure
from test_amortized import CLASSES, write_dataset

pytestmark = pytest.mark.usefixtures("one_thread")

CFG = ModelConfig(content_dim=2, content_frames=8, class_dim=8, gen_channels=8, gen_blocks=4,
                  adain_hidden=8, enc_channels=8, enc_blocks=4, n_frames=128)


def _class_means(x: torch.Tensor, y: torch.Tensor, k: int) -> torch.Tensor:
    return torch.stack([x[y == c].mean(0) for c in range(k)])


def test_leace_equalises_class_means_and_leaves_other_directions():
    g = torch.Generator().manual_seed(0)
    n, k = 3000, 3
    y = torch.randint(0, k, (n,), generator=g)
    x = torch.randn(n, 5, generator=g)
    x[:, 0] += 2.0 * (y == 1)  # the class lives in dimensions 0 and 1 only (K - 1 = 2 directions)
    x[:, 1] += 2.0 * (y == 2)
    mean, a = fit_leace(x, y, k)
    out = erase(x[:, :, None], mean, a)[:, :, 0]
    before = _class_means(x, y, k)
    after = _class_means(out, y, k)
    assert (before[:, :2].max(0).values - before[:, :2].min(0).values).min() > 1.5
    assert (after.max(0).values - after.min(0).values).abs().max() < 1e-3
    # Dimensions 2-4 are independent of the class: the edit leaves them (almost) unchanged.
    assert (out[:, 2:] - x[:, 2:]).abs().mean() < 0.05 * x[:, 2:].abs().mean()
    assert torch.linalg.matrix_rank(a).item() == 2


def test_erase_acts_on_the_flattened_window_and_zero_is_the_identity():
    g = torch.Generator().manual_seed(1)
    c = torch.randn(4, 3, 6, generator=g)
    assert torch.equal(erase(c, torch.zeros(18), torch.zeros(18, 18)), c)
    a = torch.zeros(18, 18)
    a[0, 0] = 1.0  # removes channel 0 at frame 0, around the mean
    out = erase(c, torch.full((18,), 0.5), a)
    assert torch.allclose(out[:, 0, 0], torch.full((4,), 0.5))
    assert torch.equal(out[:, :, 1:], c[:, :, 1:]) and torch.equal(out[:, 1:], c[:, 1:])


def test_centred_fit_is_one_map_and_removes_an_unseen_banks_constant_offsets():
    """fit_centred_leace: the composite equals centring then LEACE step by step; an unseen bank whose
    classes differ by per-channel constants (the training banks' classes differed elsewhere) keeps
    them through plain LEACE and loses them through the centred one."""
    g = torch.Generator().manual_seed(2)
    n, c, f, k = 3000, 3, 6, 3
    y = torch.randint(0, k, (n,), generator=g)
    t = torch.linspace(-1, 1, f)
    x = torch.randn(n, c, f, generator=g) + 0.5 * torch.randn(n, c, 1, generator=g)
    x[:, 0] += 2.0 * (y == 1)[:, None] * t  # training banks: the class is a slope inside the window
    x[:, 1] += 2.0 * (y == 2)[:, None] * t
    mean, a = fit_centred_leace(x.flatten(1), y, k, f)
    spread, centre = time_mean_operators(c * f, f)
    xd = x.flatten(1).double()
    cen = xd @ centre + xd.reshape(n, c, f).mean(-1).mean(0) @ spread
    m1, a1 = fit_leace(cen, y, k)
    step = erase(cen.float()[:, :, None], m1, a1)[:, :, 0]
    one = erase(x, mean, a).flatten(1)
    assert torch.allclose(one, step, atol=1e-4), float((one - step).abs().max())
    assert (_class_means(one, y, k).max(0).values - _class_means(one, y, k).min(0).values).abs().max() < 1e-3
    new = torch.randn(n, c, f, generator=g) + 0.5 * torch.randn(n, c, 1, generator=g)
    new[:, 2] += 2.0 * (y == 1)[:, None]  # the unseen bank: the class is a channel's level
    gap = lambda z: float((_class_means(z.flatten(1), y, k).max(0).values  # noqa: E731
                           - _class_means(z.flatten(1), y, k).min(0).values).abs().max())
    assert gap(erase(new, *fit_leace(x.flatten(1), y, k))) > 1.5
    assert gap(erase(new, mean, a)) < 0.3
    # the fit is repeatable to the bit (the shipped model is rebuilt from it)
    again = fit_centred_leace(x.flatten(1), y, k, f)
    assert torch.equal(again[0], mean) and torch.equal(again[1], a)
    with pytest.raises(ValueError, match="channels of 5 frames"):
        fit_centred_leace(x.flatten(1), y, k, 5)


def test_fit_rejects_bad_shapes_and_one_class():
    with pytest.raises(ValueError, match="need x"):
        fit_leace(torch.zeros(4, 2, 2), torch.zeros(4, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="two classes"):
        fit_leace(torch.randn(10, 3), torch.zeros(10, dtype=torch.long), 2)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("erase") / "data", per_class=12)


def _model() -> LordModel:
    torch.manual_seed(0)
    return LordModel(CFG, CLASSES).eval()


def test_with_erasure_equalises_the_training_codes_and_round_trips(data, tmp_path):
    ds = Dataset.open(data)
    model = _model()
    out, summary = with_erasure(model, ds, max_clips=1000)
    assert summary["clips"]["train"] == 36 and summary["rank"] <= len(CLASSES) - 1
    rows = ds.select("train")
    y = torch.tensor([r.label for r in rows])
    before = encoder_codes(model, ds, rows).flatten(1)
    after = encoder_codes(out, ds, rows).flatten(1)
    spread = lambda m: float((m.max(0).values - m.min(0).values).abs().max())  # noqa: E731
    assert spread(_class_means(before, y, 3)) > 0.01
    assert spread(_class_means(after, y, 3)) < 1e-3 * spread(_class_means(before, y, 3)) + 1e-5
    # The generator, encoders and class embeddings are the original's: only the codes changed.
    assert torch.equal(out.generator.inp.weight, model.generator.inp.weight)
    save_model(out, tmp_path / "m.pt", MelConfig())
    back, _, _ = load_model(tmp_path / "m.pt")
    assert back.cfg.content_erasure
    mel = ds.mel_tensor(rows[:4])
    assert torch.allclose(back.encode_content(mel), out.encode_content(mel), atol=1e-6)
    # Erasing an erased model starts from the raw codes again: the same fit.
    again, _ = with_erasure(back, ds, max_clips=1000)
    assert torch.allclose(again.erase_matrix, out.erase_matrix, atol=1e-5)


def test_with_erasure_needs_enough_clips_of_the_same_classes(data):
    ds = Dataset.open(data)
    with pytest.raises(DataError, match="needs at least"):
        with_erasure(LordModel(dataclasses.replace(CFG, content_dim=8), CLASSES), ds)
    with pytest.raises(DataError, match="differ from the model"):
        with_erasure(LordModel(CFG, ["violin", "piano", "cello"]), ds)


def test_set_erasure_refuses_a_model_without_one():
    with pytest.raises(ValueError, match="content_erasure=False"):
        _model().set_erasure(torch.zeros(16), torch.zeros(16, 16))


def test_cli_erase_writes_a_model_and_fails_in_one_line(data, tmp_path, capsys):
    src = tmp_path / "run" / "model.pt"
    src.parent.mkdir()
    save_model(_model(), src, MelConfig(), meta={"stage": "amortized"})
    assert main(["erase", "--model", str(src.parent), "--data", str(data), "--out", str(tmp_path / "out")]) == 0
    assert "rank" in capsys.readouterr().out
    model, _, meta = load_model(tmp_path / "out")
    assert model.cfg.content_erasure and meta["erasure"]["clips"]["train"] == 36 and not meta["erasure"]["centred"]
    args = ["erase", "--model", str(src.parent), "--data", str(data), "--out", str(tmp_path / "c"), "--centre"]
    assert main(args) == 0
    assert "centred" in capsys.readouterr().out
    centred, _, meta = load_model(tmp_path / "c")
    assert meta["erasure"]["centred"] and not torch.equal(centred.erase_matrix, model.erase_matrix)
    save_model(_model(), tmp_path / "s1.pt", MelConfig(), meta={"stage": "latent"})
    assert main(["erase", "--model", str(tmp_path / "s1.pt"), "--data", str(data), "--out", str(tmp_path / "x")]) == 2
    assert main(["erase", "--model", str(tmp_path / "none"), "--data", str(data), "--out", str(tmp_path / "y")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "stage-1 model" in err[0] and "no trained model" in err[1]
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_quality_style_training_exports_the_erasure_or_skips_it(tmp_path):
    """amortized.content_erasure fits the erasure at export and erasure_adapt_steps adapts the
    generator; too few training clips skip both, not the run."""
    from test_amortized import tiny_cfg

    from musiclord.train.amortized import train_amortized
    from musiclord.train.latent import train_latent

    cfg = tiny_cfg(steps=4, w_adv=0.0, val_every=0, checkpoint_every=0, content_erasure=True, erasure_adapt_steps=3,
                   erasure_centre=True)
    n_feat = cfg.model.content_dim * cfg.model.content_frames
    for per_class, fitted in ((8, False), (2 * n_feat // len(CLASSES) + 2, True)):
        data = write_dataset(tmp_path / f"d{per_class}", per_class=per_class)
        run = tmp_path / f"r{per_class}"
        train_latent(cfg, data, run)  # stage 1 reads at most 8 clips per class
        train_amortized(cfg, data, run)
        model, _, meta = load_model(run)
        assert model.cfg.content_erasure is fitted
        if fitted:
            assert meta["erasure"]["clips"]["train"] == per_class * len(CLASSES)
            assert float(model.erase_matrix.abs().max()) > 0
            assert meta["erasure"]["adapt"]["steps"] == 3 and "0" in meta["erasure"]["adapt"]["val"]
            assert meta["erasure"]["centred"]
        else:
            assert "needs at least" in meta["erasure"]["skipped"] and "adapt" not in meta["erasure"]


@pytest.mark.gpu
def test_erasure_fits_and_applies_on_cuda_as_on_the_cpu(data):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    ds = Dataset.open(data)
    cpu, _ = with_erasure(_model(), ds, max_clips=1000)
    gpu, _ = with_erasure(_model().cuda(), ds, max_clips=1000)
    assert gpu.erase_matrix.is_cuda
    mel = ds.mel_tensor(ds.select("val"))
    # cuDNN's TF32 convolutions move the codes by ~1e-3 of their size; the erasure must not add to it.
    with torch.no_grad():
        a, b = cpu.encode_content(mel), gpu.encode_content(mel.cuda()).cpu()
    assert torch.allclose(a, b, atol=3e-2 * float(a.abs().max())), float((a - b).abs().max())
    from musiclord.losses import LossConfig, ReconstructionLoss
    from musiclord.train.erasure_adapt import adapt_generator

    r = adapt_generator(gpu, ds, ReconstructionLoss(LossConfig()).cuda(), steps=4, lr=3e-3, val_every=2)
    assert set(r["val"]) == {"0", "2", "4"} and next(gpu.generator.parameters()).is_cuda


def test_adapting_the_generator_keeps_the_best_on_val_and_touches_nothing_else(data, tmp_path):
    from musiclord.losses import LossConfig, ReconstructionLoss
    from musiclord.train.erasure_adapt import adapt_generator

    ds = Dataset.open(data)
    model, _ = with_erasure(_model(), ds, max_clips=1000)
    enc = {k: v.clone() for k, v in model.content_encoder.state_dict().items()}
    erase_m, emb = model.erase_matrix.clone(), model.class_embeddings.clone()
    gen0 = {k: v.clone() for k, v in model.generator.state_dict().items()}
    r = adapt_generator(model, ds, ReconstructionLoss(LossConfig()), steps=30, lr=3e-3, val_every=10)
    assert set(r["val"]) == {"0", "10", "20", "30"} and r["best_step"] in (0, 10, 20, 30)
    assert r["val"][str(r["best_step"])] == min(r["val"].values())
    assert r["best_step"] > 0, r  # an untrained generator gains from 30 steps at this rate
    assert any(not torch.equal(v, gen0[k]) for k, v in model.generator.state_dict().items())
    assert all(torch.equal(v, enc[k]) for k, v in model.content_encoder.state_dict().items())
    assert torch.equal(model.erase_matrix, erase_m) and torch.equal(model.class_embeddings, emb)
    assert not any(p.requires_grad for p in model.parameters())
    with pytest.raises(ValueError, match="no erasure"):
        adapt_generator(_model(), ds, ReconstructionLoss(LossConfig()), steps=1)


def test_cli_adapt_needs_the_training_config(data, tmp_path, capsys):
    from musiclord.config import save_config
    from musiclord.train.config import PRESETS

    run = tmp_path / "run"
    run.mkdir()
    save_model(_model(), run / "model.pt", MelConfig(), meta={"stage": "amortized"})
    args = ["erase", "--model", str(run), "--data", str(data), "--adapt-steps", "2"]
    assert main(args + ["--out", str(tmp_path / "a.pt")]) == 2
    assert "training config" in capsys.readouterr().err
    save_config(PRESETS["tiny"], run / "config.yaml")
    assert main(args + ["--out", str(tmp_path / "b.pt")]) == 0
    assert load_model(tmp_path / "b.pt")[2]["erasure"]["adapt"]["steps"] == 2


def test_config_refuses_an_adaptation_without_an_erasure():
    from musiclord.errors import ConfigError
    from musiclord.train.amortized_config import AMORTIZED_PRESETS, AmortizedConfig

    with pytest.raises(ConfigError, match="erasure_adapt_steps"):
        AmortizedConfig(erasure_adapt_steps=10)
    with pytest.raises(ConfigError, match="erasure_adapt_steps"):
        AmortizedConfig(content_erasure=True, erasure_adapt_steps=-1)
    with pytest.raises(ConfigError, match="erasure_banks"):
        AmortizedConfig(erasure_banks=("elsewhere",))
    with pytest.raises(ConfigError, match="erasure_centre"):
        AmortizedConfig(erasure_centre=True)
    q = AMORTIZED_PRESETS["quality"]
    assert q.content_erasure and q.erasure_centre and q.erasure_adapt_steps == 8000


def _bank_copy(data, root, foreign: bool = False):
    """`data`'s training clips once more as a `rerender` split, coloured as another bank would colour them."""
    import json
    import shutil

    import numpy as np

    shutil.copytree(data, root)
    lines = [json.loads(x) for x in (root / "manifest.jsonl").read_text().splitlines()]
    mels = np.load(root / "mels.npy")
    extra = []
    for r in [r for r in lines if r["split"] == "train"]:
        tilt = np.linspace(-1.0, 1.0, mels.shape[1])[:, None] * (0.5 + 0.3 * r["label"])
        extra.append(mels[r["index"]] + tilt.astype(mels.dtype))
        lines.append({**r, "clip_id": f"rerender-{r['clip_id']}", "split": "rerender", "index": len(lines),
                      "content_id": "elsewhere" if foreign else r["clip_id"]})
    np.save(root / "mels.npy", np.concatenate([mels, np.stack(extra)]))
    (root / "manifest.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return root


def test_more_banks_join_the_fit_and_foreign_ones_are_refused(data, tmp_path):
    ds = Dataset.open(data)
    bank = Dataset.open(_bank_copy(data, tmp_path / "bank"))
    out, summary = with_erasure(_model(), ds, max_clips=1000, banks=(bank,))
    assert summary["bank_clips"] == [36] and summary["rank"] <= 3 * len(CLASSES) - 1
    rows = bank.select("rerender")
    y = torch.tensor([r.label for r in rows])
    before = encoder_codes(_model(), bank, rows).flatten(1)
    after = encoder_codes(out, bank, rows).flatten(1)
    spread = lambda m: float((m.max(0).values - m.min(0).values).abs().max())  # noqa: E731
    # Within the extra bank too, every class now has the same mean code.
    assert spread(_class_means(after, y, 3)) < 1e-3 * spread(_class_means(before, y, 3)) + 1e-5
    foreign = Dataset.open(_bank_copy(data, tmp_path / "foreign", foreign=True))
    with pytest.raises(DataError, match="not .* training clips in another bank"):
        with_erasure(_model(), ds, max_clips=1000, banks=(foreign,))


def test_cli_bank_data(data, tmp_path, capsys):
    src = tmp_path / "m.pt"
    save_model(_model(), src, MelConfig(), meta={"stage": "amortized"})
    bank = _bank_copy(data, tmp_path / "bank")
    args = ["erase", "--model", str(src), "--data", str(data)]
    assert main(args + ["--bank-data", str(bank), "--out", str(tmp_path / "a.pt")]) == 0
    assert "in 3 banks" in capsys.readouterr().out
    assert load_model(tmp_path / "a.pt")[2]["erasure"]["bank_clips"] == [36]
    assert main(args + ["--bank-data", str(data), "--out", str(tmp_path / "b.pt")]) == 2
    assert "not" in capsys.readouterr().err and not (tmp_path / "b.pt").exists()
    assert main(args + ["--keep-translations", "piano", "--out", str(tmp_path / "c.pt")]) == 2
    assert "--adapt-steps" in capsys.readouterr().err
    assert main(args + ["--adapt-steps", "1", "--keep-translations", "banjo", "--out", str(tmp_path / "d.pt")]) == 2
    assert "unknown instrument 'banjo'" in capsys.readouterr().err and not (tmp_path / "d.pt").exists()


def test_kept_translations_stay_closer_to_the_unadapted_generator(data):
    """With `keep`, translations into that class move less during the adaptation than without."""
    from musiclord.losses import LossConfig, ReconstructionLoss
    from musiclord.train.erasure_adapt import adapt_generator

    ds = Dataset.open(data)
    rows = [r for r in ds.select("train") if r.label != 0][:16]
    x = ds.mel_tensor(rows)

    def drift(keep: tuple[int, ...]) -> float:
        model, _ = with_erasure(_model(), ds, max_clips=1000)
        e = model.class_embeddings[0].expand(len(rows), -1)
        with torch.no_grad():
            before = model.generator(model.encode_content(x, erased=False), e)
        r = adapt_generator(model, ds, ReconstructionLoss(LossConfig()), steps=20, lr=3e-3, val_every=20,
                            keep=keep, keep_weight=10.0)
        assert r["keep"] == [CLASSES[k] for k in keep]
        with torch.no_grad():
            return float((model.generator(model.encode_content(x), e) - before).pow(2).mean())

    assert drift((0,)) < 0.5 * drift(())


def test_training_fits_extra_banks_and_refuses_a_foreign_one_before_training(tmp_path):
    from test_amortized import tiny_cfg

    from musiclord.train.amortized import train_amortized
    from musiclord.train.latent import train_latent

    n_feat = 4 * 32  # the tiny preset's content code
    data = write_dataset(tmp_path / "d", per_class=2 * n_feat // len(CLASSES) + 2)
    bank = _bank_copy(data, tmp_path / "bank")
    cfg = tiny_cfg(steps=2, w_adv=0.0, val_every=0, checkpoint_every=0, content_erasure=True,
                   erasure_banks=(str(bank),))
    train_latent(cfg, data, tmp_path / "run")
    train_amortized(cfg, data, tmp_path / "run")
    meta = load_model(tmp_path / "run")[2]
    assert meta["erasure"]["banks"] == [str(bank)] and meta["erasure"]["bank_clips"] == [len(Dataset.open(data).select("train"))]
    foreign = _bank_copy(data, tmp_path / "foreign", foreign=True)
    bad = dataclasses.replace(cfg, amortized=dataclasses.replace(cfg.amortized, erasure_banks=(str(foreign),)))
    (tmp_path / "run2").mkdir()
    (tmp_path / "run2" / "latent.pt").write_bytes((tmp_path / "run" / "latent.pt").read_bytes())
    with pytest.raises(DataError, match="not .* training clips"):
        train_amortized(bad, data, tmp_path / "run2")
    assert not (tmp_path / "run2" / "amortized.pt").exists()
