"""The weight average of stage 2 (`amortized.ema_decay`): the update rule, and what a run exports."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from musiclord.checkpoint import load_checkpoint
from musiclord.errors import CheckpointError, ConfigError
from musiclord.models import load_model
from musiclord.train.amortized import train_amortized
from musiclord.train.amortized_config import AmortizedConfig
from musiclord.train.ema import WeightEMA
from musiclord.train.latent import train_latent

from test_amortized import _copy_run, tiny_cfg, write_dataset

pytestmark = pytest.mark.usefixtures("one_thread")


def test_average_weights_the_iterates_by_the_configured_decay_and_is_swapped_in_and_out():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    ema = WeightEMA(net, decay=0.9)
    start = net[0].weight.detach().clone()
    with ema.applied(net):  # nothing averaged yet: the module keeps its own weights (not the zero sum)
        assert torch.equal(net[0].weight, start)
    history = []
    for _ in range(4):
        with torch.no_grad():
            net[0].weight.add_(torch.randn_like(net[0].weight))
        history.append(net[0].weight.detach().clone())
        ema.update(net)
    # by hand: iterate k of n weighted by 0.9^(n-k), normalised; the starting weights take no part
    w = torch.tensor([0.9 ** (len(history) - 1 - k) for k in range(len(history))])
    expect = sum(wk * h for wk, h in zip(w, history)) / w.sum()
    torch.testing.assert_close(ema.average()["0.weight"], expect)
    assert "1.num_batches_tracked" not in ema.shadow  # integer buffers are not averaged
    own = net[0].weight.detach().clone()
    with ema.applied(net):
        torch.testing.assert_close(net[0].weight, expect)
    assert torch.equal(net[0].weight, own)


def test_state_round_trips_and_a_foreign_state_is_refused():
    a, b = nn.Linear(3, 2), nn.Linear(3, 2)
    ema = WeightEMA(a, 0.9)
    ema.update(a)
    other = WeightEMA(b, 0.9)
    other.load_state_dict(ema.state_dict())
    assert other.updates == 1 and torch.equal(other.shadow["weight"], ema.shadow["weight"])
    with pytest.raises(KeyError):
        WeightEMA(nn.Linear(3, 2, bias=False), 0.9).load_state_dict(ema.state_dict())
    with pytest.raises(ValueError):
        WeightEMA(nn.Linear(4, 2), 0.9).load_state_dict(ema.state_dict())
    with pytest.raises(ValueError, match="decay"):
        WeightEMA(nn.Linear(3, 2), 0.99).load_state_dict(ema.state_dict())
    with pytest.raises(ValueError, match="earlier musiclord"):  # the capped average of sessions 16-17
        WeightEMA(nn.Linear(3, 2), 0.9).load_state_dict({k: v for k, v in ema.state_dict().items() if k != "scheme"})
    with pytest.raises(ConfigError):
        AmortizedConfig(ema_decay=1.0)


@pytest.fixture(scope="module")
def stage1(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("ema")
    data = write_dataset(root / "data", per_class=4, val_per_class=1)
    train_latent(tiny_cfg(), data, root / "run")
    return data, root / "run"


def test_run_exports_the_averaged_weights_and_resumes_them(stage1, tmp_path):
    data, src = stage1
    cfg = tiny_cfg(steps=6, w_adv=0.1, gp_every=2, val_every=0, checkpoint_every=0, ema_decay=0.8)
    a = _copy_run(src, tmp_path / "a")
    train_amortized(cfg, data, a)
    ck = load_checkpoint(a / "amortized.pt", kind="amortized")["state"]
    shadow, raw = ck["ema"]["shadow"], ck["model"]
    assert ck["ema"]["updates"] == 6
    exported = load_model(a)[0].state_dict()
    gen = [k for k in shadow if k.startswith("generator.")]
    average = {k: v / (1 - 0.8 ** 6) for k, v in shadow.items()}  # bias-corrected, 6 updates
    assert gen and all(torch.allclose(exported[k], average[k]) for k in gen)
    assert any(not torch.allclose(average[k], raw[k]) for k in gen)  # the average is not the last iterate
    b = _copy_run(src, tmp_path / "b")  # killed after 4 steps, resumed: the same average
    train_amortized(cfg, data, b, stop_after=4)
    train_amortized(cfg, data, b, resume=True)
    resumed = load_checkpoint(b / "amortized.pt", kind="amortized")["state"]["ema"]["shadow"]
    for k in gen:
        torch.testing.assert_close(resumed[k], shadow[k], rtol=1e-5, atol=1e-6, msg=k)


def test_resume_refuses_a_checkpoint_written_with_another_average_setting(stage1, tmp_path):
    """A run stopped with the average and resumed without it (or the other way round) is refused,
    so that no average silently starts again mid-run or is silently dropped."""
    data, src = stage1
    base = dict(steps=6, w_adv=0.0, val_every=0, checkpoint_every=0)
    with_avg, without = tiny_cfg(**base, ema_decay=0.8), tiny_cfg(**base)
    for first, then, said in ((with_avg, without, "ema_decay=0.8"), (without, with_avg, "ema_decay=0.0")):
        run = _copy_run(src, tmp_path / said)
        train_amortized(first, data, run, stop_after=3)
        before = (run / "amortized.pt").read_bytes()
        with pytest.raises(CheckpointError, match=said):
            train_amortized(then, data, run, resume=True)
        assert (run / "amortized.pt").read_bytes() == before  # the checkpoint is kept as it was
