"""An instrument adversary on the content codes: makes the codes carry no instrument.

LORD relies on noise and activation decay alone to keep the instrument out of the per-clip
content codes. On music that leaves the piano readable from its codes (its notes decay, the
others' are held), so the generator learns "piano" from the content and the piano class
embedding never learns to decay: a cello phrase translated to piano comes out as held piano
notes. Here a small classifier learns to tell the instrument from the (clean) codes, and the
codes are pushed towards its *uniform* prediction (a confusion loss, stabler than reversing
the classifier's gradient): whatever tells the instruments apart has to move into the class
embedding.

The classifier is trained on detached codes with its own Adam optimizer; under torchrun its
gradients are averaged over processes like the rest of the step.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from musiclord.train.common import frozen
from musiclord.train.distributed import DistEnv, all_reduce_mean


class CodeClassifier(nn.Module):
    """Instrument classifier on content codes: two 1-D convolutions, mean and max over time.

    Args:
        content_dim: code channels.
        n_classes: instruments.
        hidden: convolution width.
    """

    def __init__(self, content_dim: int, n_classes: int, hidden: int = 64) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv1d(content_dim, hidden, 3, padding=1), nn.LeakyReLU(0.2),
            nn.Conv1d(hidden, hidden, 3, padding=1), nn.LeakyReLU(0.2),
        )
        self.head = nn.Linear(2 * hidden, n_classes)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, content_dim, content_frames) codes -> (B, n_classes) logits."""
        h = self.body(codes)
        return self.head(torch.cat([h.mean(-1), h.amax(-1)], dim=1))


def confusion_loss(logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of (B, K) logits against the uniform distribution, minus log K.

    0 when every prediction is uniform; grows as the classifier becomes confident.
    """
    return -F.log_softmax(logits, dim=1).mean(dim=1).mean() - math.log(logits.shape[1])


class ContentAdversary:
    """The classifier with its optimizer; `update` trains it, `confusion` is the codes' loss.

    Checkpointed through `state_dict` / `load_state_dict` like a module.

    Args:
        content_dim: code channels.
        n_classes: instruments.
        lr: Adam learning rate of the classifier.
        device: where the classifier lives.
    """

    def __init__(self, content_dim: int, n_classes: int, lr: float = 1e-3,
                 device: torch.device | str = "cpu") -> None:
        self.classifier = CodeClassifier(content_dim, n_classes).to(device)
        self.optimizer = torch.optim.Adam(self.classifier.parameters(), lr=lr, betas=(0.5, 0.999))

    def update(self, codes: torch.Tensor, labels: torch.Tensor, env: DistEnv | None = None) -> tuple[float, float]:
        """One classifier step on detached (B, D, F) codes; returns (loss, accuracy) of the batch.

        A non-finite gradient (on any process: the averaged gradients carry it everywhere) skips
        the step, so the classifier survives the batches the training loop's guard skips.
        """
        logits = self.classifier(codes.detach())
        loss = F.cross_entropy(logits, labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grads = [p.grad for p in self.classifier.parameters() if p.grad is not None]
        if env is not None and env.distributed:
            for g in grads:
                all_reduce_mean(g, env)
        if all(bool(torch.isfinite(g).all()) for g in grads):
            self.optimizer.step()
        acc = (logits.argmax(1) == labels).float().mean()
        return float(loss.detach()), float(acc)

    def confusion(self, codes: torch.Tensor) -> torch.Tensor:
        """The confusion loss of (B, D, F) codes; gradients reach the codes, not the classifier."""
        with frozen(self.classifier):
            return confusion_loss(self.classifier(codes))

    def state_dict(self) -> dict:
        return {"classifier": self.classifier.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.classifier.load_state_dict(state["classifier"])
        self.optimizer.load_state_dict(state["optimizer"])
