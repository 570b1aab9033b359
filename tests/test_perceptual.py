"""Rho (CP-ResNet): shapes, a checkpoint round trip, and training that learns the classes."""

from __future__ import annotations

import torch

from musiclord.perceptual import CPResNet, RhoConfig, load_rho, save_rho
from musiclord.train.perceptual import PerceptualConfig, train_perceptual
from test_train_latent import CLASSES, write_tiny_dataset


def test_cpresnet_shapes_and_receptive_field():
    net = CPResNet(RhoConfig(n_classes=3, channels=(4, 8, 8))).eval()
    x = torch.randn(2, 128, 128)
    taps = net.taps(x)
    assert [t.shape[1] for t in taps] == [4, 4, 8, 8]
    assert taps[-1].shape[-2:] == (16, 16)
    assert net(x).shape == (2, 3)
    # receptive-field regularisation: the last stage's 1x1 kernels mix no neighbours, so a change
    # in one input pixel moves a bounded patch of the final map, not all of it
    y = x.clone()
    y[:, 0, 0] += 10.0
    d = (net.taps(y)[-1] - taps[-1]).abs().sum(dim=(0, 1))
    assert (d > 1e-6).sum() < d.numel()


def test_round_trip(tmp_path):
    net = CPResNet(RhoConfig(n_classes=2, channels=(4, 8, 8))).eval()
    save_rho(net, tmp_path / "r.pt", ["a", "b"], meta={"accuracy": 0.5})
    back, classes, meta = load_rho(tmp_path / "r.pt", with_info=True)
    x = torch.randn(1, 128, 128)
    assert classes == ["a", "b"] and meta["accuracy"] == 0.5
    assert torch.allclose(back(x), net(x))


def test_training_learns_the_instruments(tmp_path):
    data = write_tiny_dataset(tmp_path / "data", per_class=12, val_per_class=4)
    cfg = PerceptualConfig(epochs=6, batch_size=8, channels=(8, 8, 16), num_threads=1)
    acc = train_perceptual(data, tmp_path / "rho.pt", cfg)
    net, classes, meta = load_rho(tmp_path / "rho.pt", with_info=True)
    assert classes == CLASSES and meta["accuracy_split"] == "val"
    assert acc >= 0.75, acc  # chance is 0.25
