"""The evaluator's own instrument classifier: judges timbre, not blur or average spectral shape.

A small 2-D CNN on normalised log-mel, trained on ground-truth audio only (never on a model's
output, never on the model's perceptual network), from several sample banks (the train/val
splits and the aux split) and from clips passed through the mel + Griffin-Lim round trip, so the
artefacts of inversion are no cue. Augmentation: gain, small pitch shifts (mel-bin rolls) and
mild blur of every class (so blur alone is no class cue).

It has K + 1 outputs: the K instruments and "other", trained on things that are not an
instrument playing notes but share an instrument's average spectral shape: a clip's time-average
(a stationary envelope), heavily blurred clips, and the mean of a few clips of one class. So a
model that only reproduces the target's average spectrum, or blurs everything, is not counted
as correct; the evaluator checks this with controls (`run.py`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from musiclord.audio import MelConfig, silence_level
from musiclord.checkpoint import load_checkpoint, save_checkpoint
from musiclord.errors import CheckpointError

log = logging.getLogger(__name__)

CACHE_VERSION = 1


@dataclass(frozen=True)
class TimbreConfig:
    """Classifier training.

    Attributes:
        max_per_split_class: clips taken from each (split, class) of train/val/aux.
        roundtrip_per_class: clips per class and split passed through mel + Griffin-Lim first.
        gl_iters: Griffin-Lim iterations of that round trip.
        steps: optimisation steps (about 12 passes over the demo dataset's 1,300 clips).
        batch_size: clips per step.
        lr: Adam learning rate.
        channels: width of the first convolution (doubles twice).
        max_shift_bins: largest pitch shift, in mel bins.
        seed: everything random (selection, augmentation, initialisation).
    """

    max_per_split_class: int = 96
    roundtrip_per_class: int = 8
    gl_iters: int = 32
    steps: int = 240
    batch_size: int = 64
    lr: float = 2e-3
    channels: int = 16
    max_shift_bins: int = 3
    seed: int = 0


class TimbreNet(nn.Module):
    """(B, M, T) normalised log-mel -> (B, K + 1) logits (last: "other")."""

    def __init__(self, n_classes: int, channels: int = 16) -> None:
        super().__init__()
        c = channels
        layers: list[nn.Module] = []
        chans = [1, c, 2 * c, 4 * c, 4 * c]
        for i in range(4):
            layers += [nn.Conv2d(chans[i], chans[i + 1], 3, stride=2, padding=1), nn.BatchNorm2d(chans[i + 1]), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(2 * chans[-1], n_classes + 1)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """mel (B, M, T) -> logits (B, K + 1)."""
        x = F.avg_pool2d(mel[:, None], (2, 4))  # (B, 1, M/2, T/4): 62 ms frames still show notes
        h = self.features(x)
        pooled = torch.cat([h.mean(dim=(-2, -1)), h.amax(dim=(-2, -1))], dim=-1)
        return self.head(pooled)


def _blur_time(mel: torch.Tensor, k: int) -> torch.Tensor:
    """Moving average over frames with an odd kernel k: (M, T) -> (M, T)."""
    if k <= 1:
        return mel
    x = F.pad(mel[None], (k // 2, k // 2), mode="replicate")
    return F.avg_pool1d(x, k, stride=1)[0]


def _blur_freq(mel: torch.Tensor, k: int) -> torch.Tensor:
    return _blur_time(mel.t(), k).t() if k > 1 else mel


def _shift_bins(mel: torch.Tensor, s: int, floor: float) -> torch.Tensor:
    """Roll along mel bands by s, filling the vacated bands with silence."""
    if s == 0:
        return mel
    out = torch.roll(mel, s, dims=0)
    if s > 0:
        out[:s] = floor
    else:
        out[s:] = floor
    return out


def augment(mel: torch.Tensor, gen: torch.Generator, cfg: TimbreConfig, floor: float) -> torch.Tensor:
    """A label-preserving variant of one clip (M, T): gain, pitch shift, mild blur."""
    r = torch.rand(4, generator=gen)
    x = mel + (r[0] - 0.5) * 1.0  # gain: +-0.5 normalised log units (about +-9 dB)
    s = int(torch.randint(-cfg.max_shift_bins, cfg.max_shift_bins + 1, (1,), generator=gen))
    x = _shift_bins(x, s, floor)
    if r[1] < 0.4:
        x = _blur_time(x, int(torch.randint(1, 4, (1,), generator=gen)) * 2 + 1)  # 3..7 frames
    if r[2] < 0.2:
        x = _blur_freq(x, 3)
    return x.clamp(min=floor)


def make_other(mels: torch.Tensor, labels: torch.Tensor, gen: torch.Generator, floor: float) -> torch.Tensor:
    """One "not an instrument playing notes" example built from ground-truth clips (N, M, T)."""
    i = int(torch.randint(len(mels), (1,), generator=gen))
    kind = int(torch.randint(3, (1,), generator=gen))
    x = mels[i]
    if kind == 0:  # stationary envelope: the clip's time-average, with a little flicker
        x = x.mean(-1, keepdim=True).expand_as(x) + 0.05 * torch.randn(x.shape, generator=gen)
    elif kind == 1:  # heavy blur: notes smeared beyond recognition
        x = _blur_freq(_blur_time(x, int(torch.randint(8, 20, (1,), generator=gen)) * 2 + 1), 5)
    else:  # the mean of a few clips of one class
        same = torch.nonzero(labels == labels[i]).flatten()
        pick = same[torch.randint(len(same), (int(torch.randint(4, 17, (1,), generator=gen)),), generator=gen)]
        x = mels[pick].mean(0)
    x = x + (torch.rand(1, generator=gen) - 0.5)
    return x.clamp(min=floor)


def train_classifier(
    mels: torch.Tensor, labels: torch.Tensor, n_classes: int, mel_cfg: MelConfig, cfg: TimbreConfig = TimbreConfig()
) -> TimbreNet:
    """Train the classifier.

    Args:
        mels: (N, M, T) normalised log-mel of ground-truth clips (already including any
            Griffin-Lim round-tripped copies).
        labels: (N,) class indices in [0, n_classes).
        n_classes: K (the "other" class is added as index K).
        mel_cfg: the representation (for the silence floor).
        cfg: training settings.

    Returns:
        The trained network, in eval mode.
    """
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    floor = silence_level(mel_cfg)
    net = TimbreNet(n_classes, cfg.channels)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    n = len(mels)
    n_other = max(1, cfg.batch_size // (n_classes + 1))
    steps = max(1, cfg.steps)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps)
    net.train()
    for step in range(steps):
        idx = torch.randint(n, (cfg.batch_size - n_other,), generator=gen)
        xs = [augment(mels[i], gen, cfg, floor) for i in idx]
        xs += [make_other(mels, labels, gen, floor) for _ in range(n_other)]
        x = torch.stack(xs)
        y = torch.cat([labels[idx], torch.full((n_other,), n_classes, dtype=torch.long)])
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == steps - 1:
            log.debug("timbre classifier step %d/%d loss %.3f", step + 1, steps, float(loss.detach()))
    net.eval()
    return net


@torch.no_grad()
def classify(net: TimbreNet, mels: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """(B, M, T) -> (B,) predicted class index (K means "other")."""
    outs = [net(mels[i : i + batch].float()).argmax(-1) for i in range(0, len(mels), batch)]
    return torch.cat(outs) if outs else torch.zeros(0, dtype=torch.long)


def cache_key(dataset_dir: Path, classes: list[str], cfg: TimbreConfig) -> str:
    """A digest of the dataset's description, its manifest and the training settings."""
    h = hashlib.sha256()
    for name in ("dataset.json", "manifest.jsonl"):
        p = dataset_dir / name
        if p.is_file():
            h.update(p.read_bytes())
    h.update(json.dumps({"classes": classes, "cfg": asdict(cfg), "v": CACHE_VERSION}, sort_keys=True).encode())
    return h.hexdigest()[:16]


def save_classifier(net: TimbreNet, path: Path, key: str, classes: list[str], cfg: TimbreConfig, stats: dict) -> None:
    """Cache the trained classifier (kind "timbre")."""
    payload = {"key": key, "classes": classes, "config": asdict(cfg), "stats": stats, "state_dict": net.state_dict()}
    save_checkpoint(payload, path, kind="timbre")


def load_classifier(path: Path, key: str, classes: list[str], cfg: TimbreConfig) -> tuple[TimbreNet, dict] | None:
    """The cached classifier when it matches `key`, else None."""
    if not path.is_file():
        return None
    try:
        obj = load_checkpoint(path, kind="timbre")
    except CheckpointError as e:
        log.warning("ignoring the cached timbre classifier: %s", e)
        return None
    if obj.get("key") != key or list(obj.get("classes", [])) != classes:
        return None
    net = TimbreNet(len(classes), cfg.channels)
    net.load_state_dict(obj["state_dict"])
    net.eval()
    return net, dict(obj.get("stats", {}))
