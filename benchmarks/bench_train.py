"""Training throughput of both stages on the demo preset's sizes (issue 8, part 3).

Each stage runs its real training step (the same modules and optimisers, and the loss functions
`latent_loss`, `critic_update` and `amortized_loss` that `musiclord.train.latent` /
`musiclord.train.amortized` call) on a synthetic in-memory
batch at the preset's batch size, for a fixed number of steps after a warm-up. FLOPs are counted
with `torch.utils.flop_counter`'s formulas over one whole step (forward and backward, matmuls
and convolutions only: the elementwise work is not counted, so FLOP/s understates the work done)
and compared with `benchmarks.common.measure_peak`, measured in the same run.

The demo wall time is extrapolated from steps/s: stage 1 runs `latent.steps` (or `epochs * clips /
batch`, 4 instruments x `max_clips_per_class`), stage 2 `amortized.steps`; validation, image logging,
checkpoints and data loading are not included.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from benchmarks.common import markdown_table, measure_peak
from musiclord.losses import ReconstructionLoss
from musiclord.models import LordModel
from musiclord.models.discriminator import Discriminator, DiscriminatorConfig
from musiclord.train.amortized import amortized_loss, critic_update
from musiclord.train.config import PRESETS, TrainConfig
from musiclord.train.confusion import ContentAdversary
from musiclord.train.latent import LatentModel, latent_loss

log = logging.getLogger(__name__)

N_CLASSES = 4  # the synth dataset's instruments (cello, piano, violin, flute)
WARMUP, STEPS = 2, 8


def _batch(cfg: TrainConfig, b: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, cfg.model.n_mels, cfg.model.n_frames, generator=g)  # (B, M, T)


def latent_step_fn(cfg: TrainConfig) -> Callable[[int], None]:
    """One stage-1 step (as `musiclord.train.latent._train`) on a fixed synthetic batch."""
    lc, mc = cfg.latent, cfg.model
    n_clips = N_CLASSES * max(lc.max_clips_per_class, lc.batch_size)
    model = LatentModel(mc, n_clips, N_CLASSES, lc.content_init_std)
    loss_fn = ReconstructionLoss.from_config(cfg.loss)
    opt = torch.optim.Adam([
        {"params": list(model.generator.parameters()), "lr": lc.lr_generator},
        {"params": [model.content.weight, model.classes.weight], "lr": lc.lr_embeddings},
    ])
    x = _batch(cfg, lc.batch_size, 0)
    pos = torch.randperm(n_clips, generator=torch.Generator().manual_seed(1))[: lc.batch_size]
    labels = pos % N_CLASSES
    noise_gen = torch.Generator().manual_seed(2)
    model.train()

    adversary = ContentAdversary(mc.content_dim, N_CLASSES, lc.lr_adversary) if lc.w_confusion > 0 else None

    def step(_: int) -> None:
        noise = torch.randn((lc.batch_size, mc.content_dim, mc.content_frames), generator=noise_gen) * lc.noise_std
        loss, _, _ = latent_loss(model, loss_fn, pos, labels, x, noise, lc, adversary)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def amortized_step_fn(cfg: TrainConfig) -> Callable[[int], None]:
    """One stage-2 step (as `musiclord.train.amortized._train`): critic update(s) with the lazy
    gradient penalty, then encoders + generator with the adversarial term on."""
    ac, mc = cfg.amortized, cfg.model
    classes = [f"c{k}" for k in range(N_CLASSES)]
    model = LordModel(mc, classes)
    disc = Discriminator(DiscriminatorConfig(channels=ac.disc_channels,
                                             n_classes=N_CLASSES if ac.disc_conditional else 0))
    loss_fn = ReconstructionLoss.from_config(cfg.loss)
    enc_params = list(model.content_encoder.parameters()) + list(model.class_encoder.parameters())
    opt = torch.optim.Adam([
        {"params": enc_params, "lr": ac.lr_encoders},
        {"params": list(model.generator.parameters()), "lr": ac.lr_generator, "betas": (0.5, 0.9)},
    ])
    opt_d = torch.optim.Adam(disc.parameters(), lr=ac.lr_discriminator, betas=(0.5, 0.9))
    b = ac.batch_size
    x = _batch(cfg, b, 3)
    y = torch.arange(b) % N_CLASSES
    content_t = 0.3 * torch.randn(b, mc.content_dim, mc.content_frames)
    class_t = 0.3 * torch.randn(N_CLASSES, mc.class_dim)
    gp_gen = torch.Generator().manual_seed(4)
    model.train()
    disc.train()

    def step(i: int) -> None:
        if ac.w_adv > 0:
            critic_update(model, disc, opt_d, x, y, ac, i, gp_gen)
        loss, _, _ = amortized_loss(model, disc if ac.w_adv > 0 else None, loss_fn, x, y, content_t, class_t[y], ac)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


class _FlopCount(TorchDispatchMode):
    """`FlopCounterMode`'s per-op formulas without its module tracker, whose hooks break the
    gradient penalty's `autograd.grad` (torch 2.13)."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.total += int(formula(*args, **kwargs, out_val=out))
        return out


def count_flops(step: Callable[[int], None], i: int) -> int:
    """FLOPs (matmul/conv, forward + backward) of step i."""
    with _FlopCount() as fc:
        step(i)
    return fc.total


def time_steps(step: Callable[[int], None], n: int, warmup: int = WARMUP) -> float:
    """Seconds per step over n steps after `warmup` steps (the mean: a fixed number of steps)."""
    for i in range(warmup):
        step(i)
    t0 = time.perf_counter()
    for i in range(warmup, warmup + n):
        step(i)
    return (time.perf_counter() - t0) / n


def demo_steps(cfg: TrainConfig) -> tuple[int, int]:
    """Steps of the demo's stage 1 and stage 2."""
    lc, ac = cfg.latent, cfg.amortized
    clips = N_CLASSES * lc.max_clips_per_class
    s1 = lc.steps or lc.epochs * (clips // lc.batch_size)
    s2 = ac.steps or ac.epochs * (clips // ac.batch_size)
    return s1, s2


def run(steps: int = STEPS) -> str:
    cfg = PRESETS["demo"]
    torch.manual_seed(0)
    peak = measure_peak("cpu")
    rows, lines = [], []
    s1, s2 = demo_steps(cfg)
    total_s = 0.0
    gp_every = cfg.amortized.gp_every
    n2 = max(steps, gp_every * ((steps + gp_every - 1) // gp_every))  # whole gradient-penalty cycles
    for name, make, batch, n_demo, n in (
        ("stage 1 (latent)", latent_step_fn, cfg.latent.batch_size, s1, steps),
        ("stage 2 (amortized)", amortized_step_fn, cfg.amortized.batch_size, s2, n2),
    ):
        step = make(cfg)
        # FLOPs per step averaged over a gradient-penalty cycle (stage 2 pays it every gp_every steps)
        cycle = gp_every if "2" in name else 1
        flops = sum(count_flops(step, i) for i in range(cycle)) / cycle
        sec = time_steps(step, n)
        gflops = flops / sec / 1e9
        wall = n_demo * sec
        total_s += wall
        log.info("%s: %.3f s/step, %.1f GFLOP/s", name, sec, gflops)
        rows.append([name, batch, n, f"{sec:.3f}", f"{batch / sec:.1f}", f"{flops / batch / 1e9:.2f}",
                     f"{gflops:.1f}", f"{100 * gflops / peak['conv1d_gflops']:.0f}%", n_demo, f"{wall / 60:.1f}"])
    table = markdown_table(
        ["stage", "batch", "timed steps", "s/step", "clips/s", "GFLOP/clip (fwd+bwd)", "GFLOP/s",
         "of conv peak", "demo steps", "demo min"], rows)
    lines = [
        f"Demo preset (generator {cfg.model.gen_channels} ch x {cfg.model.gen_blocks} blocks, encoders "
        f"{cfg.model.enc_channels} ch, loss {'+'.join(ReconstructionLoss(cfg.loss).active_terms)}), "
        f"synthetic batches, {WARMUP} warm-up steps, torch threads {torch.get_num_threads()}. "
        f"Measured peak in this run: conv1d {peak['conv1d_gflops']:.1f} GFLOP/s, matmul "
        f"{peak['matmul_gflops']:.1f} GFLOP/s.",
        "",
        table,
        "",
        f"- Both stages of the demo extrapolate to {total_s / 60:.1f} min of training steps "
        f"(target: 15 min on 2 cores, data preparation excluded).",
    ]
    return "\n".join(lines)
