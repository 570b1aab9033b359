"""Reconstruction losses: zero on identical inputs, named terms, weights, perceptual loading."""

from __future__ import annotations

import pytest
import torch

from musiclord.errors import CheckpointError, ConfigError
from musiclord.losses import LossConfig, ReconstructionLoss, multiscale_l1
from musiclord.perceptual import CPResNet, RhoConfig, VGG16Features, load_rho, load_vgg16, save_rho


def _mels(seed: int = 0, b: int = 2) -> torch.Tensor:
    return torch.randn(b, 128, 128, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def rho_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("rho") / "rho.pt"
    save_rho(CPResNet(RhoConfig(n_classes=3, channels=(4, 8, 8))), path, ["a", "b", "c"])
    return path


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("vgg") / "vgg16.pth"
    # a torchvision-layout state dict (all 13 convolutions + a classifier we ignore)
    full = VGG16Features(taps=5)
    state = {k: v for k, v in full.state_dict().items() if k.startswith("features.")}
    state["classifier.0.weight"] = torch.zeros(4, 4)
    torch.save(state, path)
    return path


def test_identical_inputs_give_zero():
    x = _mels()
    terms = ReconstructionLoss(LossConfig(w_l2=1.0, w_l1=0.5, w_multires=0.5))(x, x.clone())
    assert set(terms) == {"l2", "l1", "multires", "total"}
    for v in terms.values():
        assert v.item() == 0.0


def test_weights_and_names():
    x, y = _mels(0), _mels(1)
    cfg = LossConfig(w_l2=2.0, w_l1=0.5, w_multires=0.0)
    t = ReconstructionLoss(cfg)(x, y)
    assert "multires" not in t
    assert torch.isclose(t["total"], 2.0 * t["l2"] + 0.5 * t["l1"])
    assert torch.isclose(t["l2"], ((x - y) ** 2).mean())


def test_multiscale_sees_only_coarse_differences():
    x = torch.zeros(1, 128, 128)
    checker = torch.ones(128, 128)
    checker[::2] *= -1
    checker[:, ::2] *= -1
    # a zero-mean checkerboard vanishes under 2x2 pooling: multi-scale term 0, L1 1
    assert multiscale_l1(x, x + checker, (2, 4)).item() == pytest.approx(0.0, abs=1e-6)
    assert multiscale_l1(x, x + 1.0, (2, 4)).item() == pytest.approx(1.0)


def test_rho_term_from_file(rho_file):
    cfg = LossConfig(w_l2=0.0, w_rho=1.0, rho_checkpoint=str(rho_file))
    loss = ReconstructionLoss.from_config(cfg)
    x, y = _mels(0), _mels(1)
    assert loss(x, x)["rho"].item() == 0.0
    t = loss(x, y)
    assert t["rho"].item() > 0 and torch.isclose(t["total"], t["rho"])
    # gradients reach the prediction, never the frozen network
    p = x.clone().requires_grad_(True)
    loss(p, y)["total"].backward()
    assert p.grad is not None and p.grad.abs().sum() > 0
    assert all(q.grad is None and not q.requires_grad for q in loss.rho.parameters())
    loss.train()
    assert not loss.rho.training


def test_vgg_term_from_torchvision_layout(vgg_file):
    net = load_vgg16(vgg_file, taps=2)
    torch.manual_seed(0)
    ref = VGG16Features(taps=5)  # the fixture's weights
    assert torch.equal(net.features[0].weight, ref.features[0].weight)
    cfg = LossConfig(w_l2=1.0, w_vgg=0.1, vgg_weights=str(vgg_file), vgg_taps=2)
    loss = ReconstructionLoss.from_config(cfg)
    x, y = _mels(0, 1), _mels(1, 1)
    assert loss(x, x)["vgg"].item() == 0.0
    t = loss(x, y)
    assert t["vgg"].item() > 0
    assert torch.isclose(t["total"], t["l2"] + 0.1 * t["vgg"])


def test_vgg_without_file_is_off_and_said_once(caplog):
    with caplog.at_level("WARNING"):
        loss = ReconstructionLoss.from_config(LossConfig(w_vgg=1.0))
    assert "vgg" not in loss.active_terms
    assert sum("VGG" in r.message for r in caplog.records) == 1
    assert "vgg" not in loss(_mels(0, 1), _mels(1, 1))


def test_missing_or_foreign_files_are_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_vgg16(tmp_path / "nope.pth")
    bad = tmp_path / "bad.pth"
    bad.write_text("not a state dict")
    with pytest.raises(CheckpointError):
        load_vgg16(bad)
    torch.save({"something.else": torch.zeros(1)}, bad)
    with pytest.raises(CheckpointError, match="VGG16"):
        load_vgg16(bad)
    with pytest.raises(CheckpointError):
        load_rho(tmp_path / "nope.pt")
    with pytest.raises(ConfigError, match="rho_checkpoint"):
        ReconstructionLoss.from_config(LossConfig(w_rho=1.0))
    with pytest.raises(CheckpointError):
        ReconstructionLoss.from_config(LossConfig(w_rho=1.0, rho_checkpoint=str(bad)))


def test_flux_term_sees_changes_over_time_not_levels():
    loss = ReconstructionLoss(LossConfig(w_l2=0.0, w_flux=1.0))
    target = torch.full((1, 8, 32), -1.0)
    target[..., 16:] = 2.0  # an onset at frame 16
    assert loss(target + 0.7, target)["flux"].item() == pytest.approx(0.0, abs=1e-6)  # a level offset
    blurred = target.clone()
    blurred[..., 12:20] = torch.linspace(-1.0, 2.0, 8)  # the same step, smeared over 8 frames
    sharp_late = torch.roll(target, 1, dims=-1)
    terms = loss(blurred, target)
    assert set(terms) == {"flux", "total"} and terms["total"].item() == pytest.approx(terms["flux"].item())
    assert terms["flux"].item() > 0 and loss(sharp_late, target)["flux"].item() > 0
