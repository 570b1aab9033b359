"""Training of Rho, the CP-ResNet instrument classifier whose activations are a perceptual loss.

Trained on the train split of a musiclord dataset, selected on the val split; the file is a
musiclord checkpoint of kind "perceptual" (`musiclord.perceptual.load_rho`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn import functional as F

from musiclord.errors import DataError
from musiclord.perceptual import CPResNet, RhoConfig, save_rho
from musiclord.train.common import BatchIterator, DistEnv, load_mels, open_dataset, progress, seed_everything, set_threads

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PerceptualConfig:
    """Settings of `musiclord train-perceptual`.

    Attributes:
        epochs: passes over the training clips.
        batch_size: clips per step.
        lr: Adam learning rate (cosine-decayed to 0).
        weight_decay: AdamW weight decay.
        channels: CP-ResNet stage widths.
        max_clips_per_class: at most this many training clips per class (0: all).
        time_shift: random circular shift of up to this many frames (augmentation).
        seed: RNG seed.
        num_threads: torch CPU threads (0: default).
    """

    epochs: int = 4
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    channels: tuple[int, ...] = (16, 32, 64)
    max_clips_per_class: int = 0
    time_shift: int = 32
    seed: int = 0
    num_threads: int = 0


def _limit_per_class(records: list, n: int) -> list:
    if n <= 0:
        return records
    seen: dict[int, int] = {}
    out = []
    for r in records:
        if seen.get(r.label, 0) < n:
            out.append(r)
            seen[r.label] = seen.get(r.label, 0) + 1
    return out


@torch.no_grad()
def accuracy(net: CPResNet, mels: torch.Tensor, labels: torch.Tensor, batch_size: int = 64) -> float:
    """Share of (N, M, T) clips whose argmax logit is their label."""
    net.eval()
    correct = 0
    for i in range(0, len(mels), batch_size):
        logits = net(mels[i: i + batch_size].float())
        correct += int((logits.argmax(-1) == labels[i: i + batch_size]).sum())
    return correct / max(1, len(mels))


def train_perceptual(data_dir: str | Path, out: str | Path, cfg: PerceptualConfig = PerceptualConfig()) -> float:
    """Train Rho on the train split, save it to `out`, return its val accuracy (train accuracy
    when the dataset has no val split).

    Raises:
        DataError: no training clips, or fewer than two classes.
    """
    seed_everything(cfg.seed)
    set_threads(cfg.num_threads)
    ds = open_dataset(data_dir)
    classes = list(ds.classes)
    if len(classes) < 2:
        raise DataError(f"{data_dir}: a classifier needs at least two classes")
    train = _limit_per_class(ds.select(split="train"), cfg.max_clips_per_class)
    if not train:
        raise DataError(f"{data_dir}: no training clips")
    val = ds.select(split="val")
    mels = load_mels(ds)
    labels_all = torch.zeros(len(mels), dtype=torch.long)
    for r in ds.records:
        labels_all[r.index] = r.label
    rows = [r.index for r in train]
    it = BatchIterator(mels, rows, cfg.batch_size, seed=cfg.seed, drop_last=len(rows) >= cfg.batch_size)
    net = CPResNet(RhoConfig(n_classes=len(classes), channels=cfg.channels))
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    total = max(1, cfg.epochs * it.steps_per_epoch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, total)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    rows_t = torch.as_tensor(rows)
    bar = progress(total, DistEnv(), "train-perceptual")
    t0 = time.time()
    net.train()
    for step in range(total):
        pos, x = it.batch(step)
        y = labels_all[rows_t[pos]]
        if cfg.time_shift > 0:
            shift = int(torch.randint(-cfg.time_shift, cfg.time_shift + 1, (1,), generator=gen))
            x = torch.roll(x, shift, dims=-1)
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        bar.update()
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    if val:
        vrows = [r.index for r in val]
        acc = accuracy(net, mels[vrows], labels_all[vrows])
        split = "val"
    else:
        acc = accuracy(net, mels[rows], labels_all[rows])
        split = "train"
    log.info("Rho: %s accuracy %.3f (chance %.3f) after %d steps, %.0f s", split, acc, 1 / len(classes), total,
             time.time() - t0)
    save_rho(net, out, classes, meta={"accuracy": acc, "accuracy_split": split, "steps": total,
                                        "data": str(data_dir)})
    return acc
