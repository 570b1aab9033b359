"""Exponential moving average of a model's weights (Polyak averaging, as StyleGAN's G_ema).

Stage 2 fine-tunes the generator against a critic and trains the encoders from scratch; the
last iterate of such a run wanders with the batches and the critic, and two draws of one
recipe differ more on the development sets than the change a rule is meant to detect
(docs/results.md, ablation 48). The average of the recent iterates is what validation, the
best-on-val choice and the exported model then use (`amortized.ema_decay`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from musiclord.errors import CheckpointError


SCHEME = "bias_corrected"  # sessions 16-17 used min(decay, (1 + n) / (10 + n)), which capped the decay (ablation 53)


class WeightEMA:
    """An exponential moving average of a module's floating-point parameters and buffers.

    After n updates with weights w_1..w_n the average is sum_k d^(n-k) (1 - d) w_k / (1 - d^n):
    every iterate weighted by d^(n-k) (a window of about 1 / (1 - d) steps), bias-corrected as
    Adam's moments are, so that it holds no part of the starting weights and the configured decay
    applies from the first step. `shadow` keeps the uncorrected sum.
    """

    def __init__(self, module: nn.Module, decay: float) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self.shadow = {k: torch.zeros_like(v) for k, v in module.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        """Add the module's current weights to the average."""
        for k, v in module.state_dict().items():
            if k in self.shadow:
                self.shadow[k].lerp_(v.detach(), 1.0 - self.decay)
        self.updates += 1

    def average(self) -> dict[str, torch.Tensor]:
        """The averaged weights (only the averaged entries of the module's state dict)."""
        if self.updates == 0:
            raise ValueError("no update has been averaged yet")
        scale = 1.0 - self.decay ** self.updates
        return {k: v / scale for k, v in self.shadow.items()}

    @contextmanager
    def applied(self, module: nn.Module) -> Iterator[nn.Module]:
        """Run the body with the module holding the averaged weights (its own when nothing was
        averaged yet); its own come back after."""
        if self.updates == 0:
            yield module
            return
        own = {k: v.detach().clone() for k, v in module.state_dict().items() if k in self.shadow}
        module.load_state_dict(self.average(), strict=False)
        try:
            yield module
        finally:
            module.load_state_dict(own, strict=False)

    def state_dict(self) -> dict[str, object]:
        return {"scheme": SCHEME, "decay": self.decay, "updates": self.updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict[str, object]) -> None:
        if state.get("scheme") != SCHEME:
            raise ValueError("the saved average was kept by an earlier musiclord whose decay was capped by a warm-up; "
                             "it cannot be continued")
        if float(state["decay"]) != self.decay:  # type: ignore[arg-type]
            raise ValueError(f"the saved average has decay {state['decay']}, this run {self.decay}")
        shadow = state["shadow"]
        if not isinstance(shadow, dict) or set(shadow) != set(self.shadow):
            raise KeyError("the saved EMA weights do not fit this model")
        for k, v in shadow.items():
            if v.shape != self.shadow[k].shape:
                raise ValueError(f"saved EMA weight {k} has shape {tuple(v.shape)}, expected {tuple(self.shadow[k].shape)}")
            self.shadow[k].copy_(v)
        self.updates = int(state["updates"])  # type: ignore[arg-type]


def load_average(path: Path, saved: dict[str, Any], ema: WeightEMA | None) -> None:
    """Restore a resumed run's average from its checkpoint dict `saved` (in place).

    Raises:
        CheckpointError: the checkpoint was written with the average and the run now has none,
            or the other way round (an average that starts again mid-run would not be the one the
            rules of docs/results.md judged), or its average does not fit the model.
    """
    state = saved.get("state", {}).get("ema")
    if (state is None) != (ema is None):
        was = saved.get("config", {}).get("amortized", {}).get("ema_decay", 0.0)
        raise CheckpointError(f"{path} was trained with amortized.ema_decay={was}: resume with that value, "
                              "or delete it to train stage 2 afresh")
    if ema is not None:
        try:
            ema.load_state_dict(state)
        except (KeyError, ValueError, TypeError) as e:
            raise CheckpointError(f"{path}: its weight average cannot be continued ({str(e)[:160]})") from None
