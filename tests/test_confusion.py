"""The content codes' instrument adversary: its loss, its effect on codes, its checkpointing."""

from __future__ import annotations

import math

import pytest
import torch

from musiclord.train.confusion import ContentAdversary, confusion_loss
from musiclord.train.latent import train_latent

from test_train_latent import _weights, tiny_cfg, write_tiny_dataset


def test_confusion_loss_zero_at_uniform_positive_otherwise():
    assert confusion_loss(torch.zeros(5, 4)).abs().item() < 1e-6
    assert confusion_loss(torch.full((3, 4), 7.0)).abs().item() < 1e-6  # any constant row is uniform
    confident = torch.tensor([[10.0, 0.0, 0.0, 0.0]])
    assert confusion_loss(confident).item() > 2.0
    # bounded below by 0 for random logits
    assert confusion_loss(torch.randn(64, 4) * 3).item() > 0


def _separable(n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes whose class is written in one channel's level: trivially classifiable."""
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % 4
    codes = 0.1 * torch.randn(n, 4, 8, generator=g)
    codes[:, 0] += labels[:, None].float()
    return codes, labels


def _held_out_accuracy(codes: torch.Tensor, labels: torch.Tensor, steps: int = 150) -> float:
    """A fresh classifier trained on the first half of the codes, scored on the second."""
    torch.manual_seed(1)
    half = len(codes) // 2
    adv = ContentAdversary(content_dim=codes.shape[1], n_classes=4, lr=1e-2)
    for _ in range(steps):
        adv.update(codes[:half], labels[:half])
    with torch.no_grad():
        return float((adv.classifier(codes[half:]).argmax(1) == labels[half:]).float().mean())


def test_classifier_learns_and_confusion_hides_the_class():
    torch.manual_seed(0)
    codes, labels = _separable(128)
    assert _held_out_accuracy(codes, labels) > 0.9  # the class is readable from these codes
    adv = ContentAdversary(content_dim=4, n_classes=4, lr=1e-2)
    for _ in range(100):
        adv.update(codes, labels)
    # a frozen classifier: descending the confusion loss makes it uncertain
    free = codes.clone().requires_grad_(True)
    before = adv.confusion(free).item()
    opt = torch.optim.Adam([free], lr=0.1)
    for _ in range(50):
        opt.zero_grad()
        adv.confusion(free).backward()
        opt.step()
    assert before > 1.0 and adv.confusion(free.detach()).item() < 0.2 * before
    # the game (classifier steps, codes descend the confusion loss): the class generalises far
    # less from one half of the codes to the other (1.0 before; about 0.6 after, chance 0.25:
    # the game hides much of it, not all)
    free = codes.clone().requires_grad_(True)
    opt = torch.optim.Adam([free], lr=0.05)
    for _ in range(300):
        adv.update(free, labels)
        opt.zero_grad()
        adv.confusion(free).backward()
        opt.step()
    assert _held_out_accuracy(free.detach(), labels) < 0.8


def test_confusion_does_not_touch_classifier_grads():
    codes, labels = _separable(16)
    adv = ContentAdversary(content_dim=4, n_classes=4)
    adv.update(codes, labels)
    adv.optimizer.zero_grad(set_to_none=True)
    adv.confusion(codes.clone().requires_grad_(True)).backward()
    assert all(p.grad is None for p in adv.classifier.parameters())
    assert all(p.requires_grad for p in adv.classifier.parameters())


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("data"))


def test_stage1_with_confusion_logs_and_resumes_identically(data, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = tiny_cfg(steps=24, checkpoint_every=8, log_every=4, w_confusion=0.1)
    train_latent(cfg, data, tmp_path / "a")
    acc = EventAccumulator(str(tmp_path / "a" / "tb"))
    acc.Reload()
    assert {"adversary/accuracy", "adversary/loss", "loss/confusion"} <= set(acc.Tags()["scalars"])
    assert all(math.isfinite(e.value) for e in acc.Scalars("loss/confusion"))
    # killed after step 8's checkpoint, resumed: the adversary's state comes back too
    train_latent(cfg, data, tmp_path / "b", stop_after=8)
    train_latent(cfg, data, tmp_path / "b", resume=True)
    wa, wb = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    # the adversary changes the codes' trajectory (it is not a no-op)
    train_latent(tiny_cfg(steps=24, checkpoint_every=8, log_every=4), data, tmp_path / "c")
    wc = _weights(tmp_path / "c")
    assert any(not torch.equal(wa[k], wc[k]) for k in wa)


def test_non_finite_codes_leave_the_classifier_unchanged():
    codes, labels = _separable(16)
    adv = ContentAdversary(content_dim=4, n_classes=4)
    adv.update(codes, labels)
    before = {k: v.clone() for k, v in adv.classifier.state_dict().items()}
    bad = codes.clone()
    bad[0, 0, 0] = float("nan")
    adv.update(bad, labels)
    for k, v in adv.classifier.state_dict().items():
        assert torch.equal(v, before[k]), k
