"""Stage 2's encoder inputs: a training clip's rerenders (the same notes on another sample bank)
and cross renders (the same notes on another instrument), on the tiny datasets of test_amortized."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from musiclord.checkpoint import load_checkpoint
from musiclord.config import apply_overrides
from musiclord.errors import ConfigError, DataError
from musiclord.losses import ReconstructionLoss
from musiclord.models.lord import LordModel
from musiclord.train.amortized import train_amortized
from musiclord.train.amortized_config import AmortizedConfig
from musiclord.train.amortized_losses import amortized_loss
from musiclord.train.latent import read_latent, train_latent
from test_amortized import CLASSES, _copy_run, tiny_cfg, write_dataset

pytestmark = pytest.mark.usefixtures("one_thread")


def _add_rerenders(root: Path, every: int = 2, split: str = "rerender", gain: float = 1.3, tag: str = "") -> Path:
    """Append a "rerender" (or `split`) of every `every`-th training clip: the same notes, another
    "bank" (an image `gain` times louder and brighter; `tag` tells a second set's clip ids apart)."""
    mels = np.load(root / "mels.npy")
    lines = (root / "manifest.jsonl").read_text().splitlines()
    extra_m, extra_l = [], []
    train = [json.loads(line) for line in lines if json.loads(line)["split"] == "train"]
    for rec in train[::every]:
        extra_m.append((mels[rec["index"]].astype(np.float32) * gain + 0.2).astype(np.float16))
        extra_l.append(json.dumps(rec | {"clip_id": f"{split}{tag}-" + rec["clip_id"], "split": split,
                                         "index": len(mels) + len(extra_l), "content_id": rec["clip_id"]}))
    np.save(root / "mels.npy", np.concatenate([mels, np.stack(extra_m)]))
    (root / "manifest.jsonl").write_text("\n".join(lines + extra_l) + "\n")
    return root


def test_rerender_rows_and_swaps_are_deterministic(tmp_path):
    from musiclord.train.rerender import rerender_rows, swap_rerenders
    from musiclord.train.common import load_mels, open_dataset

    data = _add_rerenders(write_dataset(tmp_path / "data"))
    ds = open_dataset(data)
    train = ds.select(split="train")
    rows = torch.tensor([r.index for r in train])
    alt = rerender_rows(ds, rows)
    assert alt.shape == (len(train), 1) and (alt >= 0).sum() == (len(train) + 1) // 2
    by_id = {r.clip_id: r for r in ds.records}
    for r, a in zip(train, alt[:, 0].tolist()):
        if a >= 0:
            assert ds.records[a].content_id == r.clip_id and by_id[r.clip_id].index == r.index
    mels = load_mels(ds)
    pos = torch.arange(8)
    x = mels[rows[pos]].float()
    same, m0 = swap_rerenders(x, pos, alt, mels, 0.0, seed=0, step=3, batch_size=8, local=slice(0, 8))
    assert not m0.any() and torch.equal(same, x)
    every, m1 = swap_rerenders(x, pos, alt, mels, 1.0, seed=0, step=3, batch_size=8, local=slice(0, 8))
    has = alt[pos, 0] >= 0
    assert torch.equal(m1, has) and bool(has.any())
    assert torch.equal(every[~has], x[~has]) and torch.equal(every[has], mels[alt[pos, 0][has]].float())
    half, _ = swap_rerenders(x, pos, alt, mels, 0.5, seed=0, step=3, batch_size=8, local=slice(0, 8))
    again, _ = swap_rerenders(x, pos, alt, mels, 0.5, seed=0, step=3, batch_size=8, local=slice(0, 8))
    assert torch.equal(half, again)
    # two processes' shares of the global batch make up the single-process draw
    lo, _ = swap_rerenders(x[:4], pos[:4], alt, mels, 0.5, seed=0, step=3, batch_size=8, local=slice(0, 4))
    hi, _ = swap_rerenders(x[4:], pos[4:], alt, mels, 0.5, seed=0, step=3, batch_size=8, local=slice(4, 8))
    assert torch.equal(torch.cat([lo, hi]), half)


def test_swaps_draw_among_a_clips_several_renders(tmp_path):
    from musiclord.train.common import load_mels, open_dataset
    from musiclord.train.rerender import rerender_rows, swap_rerenders

    data = _add_rerenders(write_dataset(tmp_path / "data"), every=1, split="cross")
    data = _add_rerenders(data, every=2, split="cross", gain=0.7, tag="2")
    ds = open_dataset(data)
    train = ds.select(split="train")
    rows = torch.tensor([r.index for r in train])
    cross = rerender_rows(ds, rows, "cross")
    assert cross.shape == (len(train), 2) and bool((cross[:, 0] >= 0).all())
    assert int((cross[:, 1] >= 0).sum()) == (len(train) + 1) // 2
    assert rerender_rows(ds, rows).shape == (len(train), 1) and bool((rerender_rows(ds, rows) < 0).all())
    mels = load_mels(ds)
    pos = torch.arange(8)
    x = mels[rows[pos]].float()
    seen = torch.zeros(8, 2, dtype=torch.bool)
    for step in range(40):
        y, m = swap_rerenders(x, pos, cross, mels, 1.0, seed=0, step=step, batch_size=8, local=slice(0, 8))
        assert bool(m.all())
        for i in range(8):
            hit = [bool(torch.equal(y[i], mels[a].float())) for a in cross[i].tolist() if a >= 0]
            assert sum(hit) == 1  # one of the clip's own renders, never another clip's
            seen[i, : len(hit)] |= torch.tensor(hit)
    has_two = cross[:8, 1] >= 0
    assert bool(seen[has_two].all()) and bool(seen[~has_two, 0].all()) and not bool(seen[~has_two, 1].any())


def test_stage2_shows_the_encoders_rerenders(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    data = _add_rerenders(write_dataset(tmp_path / "data"), every=1)
    train_latent(tiny_cfg(), data, tmp_path / "s1")
    runs = {}
    for p in (0.0, 1.0):
        run = _copy_run(tmp_path / "s1", tmp_path / f"p{p}")
        train_amortized(tiny_cfg(steps=6, rerender_prob=p, log_every=2), data, run)
        acc = EventAccumulator(str(run / "tb"))
        acc.Reload()
        runs[p] = ([e.value for e in acc.Scalars("train/rerenders_in_batch")],
                   load_checkpoint(run / "amortized.pt", kind="amortized")["state"]["model"])
    assert set(runs[0.0][0]) == {0.0} and min(runs[1.0][0]) == tiny_cfg().amortized.batch_size
    assert any(not torch.equal(runs[0.0][1][k], runs[1.0][1][k]) for k in runs[0.0][1])


def test_cross_renders_reach_the_content_encoder_only(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    model = LordModel(tiny_cfg().model, CLASSES)
    loss_fn = ReconstructionLoss.from_config(tiny_cfg().loss, torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    x, other = torch.randn(4, 128, 128, generator=g), torch.randn(4, 128, 128, generator=g)
    c_t = torch.randn(4, *model.encode_content(x).shape[1:], generator=g)
    e_t = torch.randn(4, model.encode_class(x).shape[1], generator=g)
    y = torch.tensor([0, 1, 2, 0])
    ac = tiny_cfg().amortized
    _, t0, p0 = amortized_loss(model, None, loss_fn, x, y, c_t, e_t, ac)
    _, t1, p1 = amortized_loss(model, None, loss_fn, x, y, c_t, e_t, ac, x_content=other)
    assert torch.equal(p0["class"], p1["class"])  # the class encoder still sees x
    assert not torch.equal(p0["content"], p1["content"]) and not torch.equal(t0["total"], t1["total"])

    data = _add_rerenders(write_dataset(tmp_path / "data"), every=1, split="cross")
    train_latent(tiny_cfg(), data, tmp_path / "s1")
    run = _copy_run(tmp_path / "s1", tmp_path / "cx")
    train_amortized(tiny_cfg(steps=6, cross_prob=1.0, timbre_eq_db=6.0, log_every=2), data, run)  # both inputs EQ'd
    acc = EventAccumulator(str(run / "tb"))
    acc.Reload()
    assert min(e.value for e in acc.Scalars("train/cross_in_batch")) == tiny_cfg().amortized.batch_size
    assert set(e.value for e in acc.Scalars("train/rerenders_in_batch")) == {0.0}  # not mistaken for rerenders
    plain = _add_rerenders(write_dataset(tmp_path / "plain"), every=1)
    with pytest.raises(DataError, match="no cross renders"):
        train_amortized(tiny_cfg(steps=2, cross_prob=0.5), plain, _copy_run(tmp_path / "s1", tmp_path / "none"))


def _stage1_outputs(run: Path) -> torch.Tensor:
    """The stage-1 generator's reconstruction of every training clip, (N, M, T)."""
    from musiclord.models import Generator

    lat = read_latent(run)
    gen = Generator(lat.model_config)
    gen.load_state_dict(lat.generator_state)
    with torch.no_grad():
        return gen(lat.content, lat.class_embeddings[lat.labels])


def test_target_swaps_make_both_stages_reconstruct_the_rerenders(tmp_path):
    # the rerenders are brighter (x * 1.3 + 0.2): a stage 1 whose targets are always the
    # rerenders ends up closer to them, and further from the originals, than one that never swaps
    data = _add_rerenders(write_dataset(tmp_path / "data"), every=1)
    mels = torch.from_numpy(np.load(data / "mels.npy")).float()
    out = {}
    for p in (0.0, 1.0):
        cfg = tiny_cfg()
        cfg = dataclasses.replace(cfg, latent=dataclasses.replace(cfg.latent, steps=80, rerender_prob=p))
        train_latent(cfg, data, tmp_path / f"s1-{p}")
        lat = read_latent(tmp_path / f"s1-{p}")
        alt = mels[len(lat.rows) + len(CLASSES) * 2:][: len(lat.rows)]  # rerenders follow train + val
        pred = _stage1_outputs(tmp_path / f"s1-{p}")
        out[p] = (float((pred - mels[lat.rows]).pow(2).mean()), float((pred - alt).pow(2).mean()))
    assert out[1.0][1] < out[0.0][1] and out[0.0][0] < out[1.0][0]
    # stage 2: target swaps change what the generator is fine-tuned towards
    states = {}
    for p in (0.0, 1.0):
        run = _copy_run(tmp_path / "s1-0.0", tmp_path / f"s2-{p}")
        train_amortized(tiny_cfg(steps=6, rerender_prob=0.0, rerender_target_prob=p), data, run)
        states[p] = load_checkpoint(run / "amortized.pt", kind="amortized")["state"]["model"]
    assert any(not torch.equal(states[0.0][k], states[1.0][k]) for k in states[0.0] if k.startswith("generator"))
    with pytest.raises(ConfigError, match="rerender_target_prob"):
        AmortizedConfig(rerender_target_prob=1.5)
    with pytest.raises(ConfigError, match="rerender_prob"):
        apply_overrides(tiny_cfg(), ["latent.rerender_prob=-0.1"])


def test_independent_targets_keep_the_target_bank_from_the_encoders(tmp_path, monkeypatch):
    data = _add_rerenders(write_dataset(tmp_path / "data"), every=1)
    train_latent(tiny_cfg(), data, tmp_path / "s1")
    seen = {}
    for flag in (False, True):
        calls = _loss_spy(monkeypatch)
        run = _copy_run(tmp_path / "s1", tmp_path / f"s2-{flag}")
        train_amortized(tiny_cfg(steps=2, rerender_prob=0.0, rerender_target_prob=1.0,
                                 rerender_target_independent=flag), data, run)  # fmt: skip
        seen[flag] = calls[0]
    # every target is a rerender (x * 1.3 + 0.2); the encoders see it unless the flag is set,
    # then they see the clips themselves
    assert seen[False][1] is None
    target, enc_in, _, _ = seen[True]
    assert enc_in is not None and torch.allclose(enc_in * 1.3 + 0.2, target, atol=0.05)
    assert not torch.allclose(enc_in, target, atol=0.05)


def test_detached_targets_train_the_generator_alone(tmp_path, monkeypatch):
    """`rerender_target_detach`: the clips whose target is a rerender reach the generator with
    detached codes. The loss is the same; only the encoders' gradient from those clips is gone."""
    torch.manual_seed(0)
    cfg = tiny_cfg()
    ac = dataclasses.replace(cfg.amortized, w_content=0.0, w_class=0.0)  # reconstruction only
    model = LordModel(cfg.model, ("cello", "piano", "violin"))
    x, y = torch.randn(4, 128, 128), torch.tensor([0, 1, 2, 0])
    content_t = torch.randn(4, cfg.model.content_dim, cfg.model.content_frames)
    loss_fn = ReconstructionLoss.from_config(cfg.loss, "cpu")
    enc = [model.content_encoder.inp.weight] + list(model.class_encoder.parameters())[:1]
    gen = [p for p in model.generator.parameters() if p.requires_grad]

    def grads(detach):
        loss, _, _ = amortized_loss(model, None, loss_fn, x, y, content_t, torch.zeros(4, cfg.model.class_dim), ac,
                                    detach=detach)
        g = torch.autograd.grad(loss, enc + gen, allow_unused=True)
        norm = [0.0 if t is None else float(t.abs().sum()) for t in g]
        return float(loss.detach()), sum(norm[: len(enc)]), sum(norm[len(enc):])

    plain, some, every = grads(None), grads(torch.tensor([True, False, True, False])), grads(torch.ones(4, dtype=bool))
    assert plain[0] == pytest.approx(some[0]) == pytest.approx(every[0])
    assert plain[1] > some[1] > 0 and every[1] == 0  # encoders: less gradient, none at all
    assert min(plain[2], some[2], every[2]) > 0 and every[2] == pytest.approx(plain[2], rel=1e-4)

    # in training, the mask is the target swap's
    data = _add_rerenders(write_dataset(tmp_path / "data"), every=2)
    train_latent(tiny_cfg(), data, tmp_path / "s1")
    seen = _loss_spy(monkeypatch)
    run = _copy_run(tmp_path / "s1", tmp_path / "s2")
    train_amortized(tiny_cfg(steps=2, rerender_prob=0.0, rerender_target_prob=1.0, rerender_target_detach=True),
                    data, run)  # fmt: skip
    _, enc_in, mask, _ = seen[0]
    assert enc_in is None  # the encoders see the target, rerender or clip
    assert mask is not None and 0 < int(mask.sum()) < len(mask)  # every other clip has a rerender


def _loss_spy(monkeypatch) -> list:
    """Replace stage 2's loss with one that records, per call, (target, encoders' input, detach
    mask, [reconstruction, content, class terms])."""
    import musiclord.train.amortized as am

    real, seen = am.amortized_loss, []

    def spy(*a, **kw):
        out = real(*a, **kw)
        terms = [out[1]["total"].item(), out[2]["content"].item(), out[2]["class"].item()]
        seen.append((a[3].clone(), None if a[8] is None else a[8].clone(), kw.get("detach"), terms))
        return out

    monkeypatch.setattr(am, "amortized_loss", spy)
    return seen


def _first_terms(data: Path, s1: Path, run: Path, device: str, monkeypatch) -> list[float]:
    """Stage 2 on `device` with every encoder-input option on; the first step's reconstruction,
    content and class terms (none of them depends on the critic's random gradient-penalty mix)."""
    seen = _loss_spy(monkeypatch)
    cfg = tiny_cfg(steps=3, rerender_prob=0.5, rerender_target_prob=0.5, rerender_target_detach=True, cross_prob=0.5,
                   timbre_eq_db=6.0, w_adv_translation=0.01, translation_to=("piano",), adv_warmup_steps=0)
    train_amortized(dataclasses.replace(cfg, device=device), data, _copy_run(s1, run))
    assert load_checkpoint(run / "amortized.pt", kind="amortized")["step"] == 3
    return seen[0][3]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_every_encoder_input_option_trains_on_cuda_as_on_cpu(tmp_path, monkeypatch):
    """Stage 1 with rerendered targets, then stage 2 with rerenders (as inputs and detached
    targets), cross renders, EQ and translations for the critic, on cuda: every draw is made on
    the CPU, so the first step's terms match a CPU run's (TF32 convolutions aside)."""
    data = _add_rerenders(_add_rerenders(write_dataset(tmp_path / "data"), every=1), every=1, split="cross")
    cfg = tiny_cfg()
    cfg = dataclasses.replace(cfg, device="cuda", latent=dataclasses.replace(cfg.latent, rerender_prob=0.5))
    train_latent(cfg, data, tmp_path / "s1")
    cpu = _first_terms(data, tmp_path / "s1", tmp_path / "cpu", "cpu", monkeypatch)
    cuda = _first_terms(data, tmp_path / "s1", tmp_path / "cuda", "cuda", monkeypatch)
    assert cuda == pytest.approx(cpu, rel=1e-2), (cpu, cuda)
