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

On a GPU (`--device cuda`) the `paper` preset is timed too (a 512-channel, 6-block generator, batch
64, the Rho and VGG16 perceptual terms with random weights: their speed does not depend on the
weights), as seconds per epoch of the 4000 training clips of a default `prepare synth` dataset.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from benchmarks.common import markdown_table, measure_peak, timed_call
from musiclord.losses import ReconstructionLoss
from musiclord.models import LordModel
from musiclord.perceptual.cpresnet import CPResNet, RhoConfig
from musiclord.perceptual.vgg import VGG16Features
from musiclord.models.discriminator import DiscriminatorConfig, build_discriminator
from musiclord.train.amortized_losses import amortized_loss, critic_update
from musiclord.train.config import PRESETS, TrainConfig
from musiclord.train.confusion import ContentAdversary
from musiclord.train.latent import LatentModel, latent_loss

log = logging.getLogger(__name__)

N_CLASSES = 4  # the synth dataset's instruments (cello, piano, violin, flute)
EPOCH_CLIPS = 4000  # training clips of a default `prepare synth` dataset
WARMUP, STEPS = 2, 32  # 8 timed steps (1 s of stage 1) swung by 1.5x between runs on a shared VM


def _batch(cfg: TrainConfig, b: int, seed: int, device: str = "cpu") -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, cfg.model.n_mels, cfg.model.n_frames, generator=g).to(device)  # (B, M, T)


def make_loss(cfg: TrainConfig, device: str = "cpu") -> ReconstructionLoss:
    """The preset's reconstruction loss; perceptual networks (if weighted) with random weights."""
    rho = CPResNet(RhoConfig(n_classes=N_CLASSES)) if cfg.loss.w_rho > 0 else None
    vgg = VGG16Features(cfg.loss.vgg_taps) if cfg.loss.w_vgg > 0 else None
    return ReconstructionLoss(cfg.loss, rho=rho, vgg=vgg).to(device)


def latent_step_fn(cfg: TrainConfig, device: str = "cpu",
                   loss_fn: ReconstructionLoss | None = None) -> Callable[[int], None]:
    """One stage-1 step (as `musiclord.train.latent._train`) on a fixed synthetic batch (loss_fn:
    the preset's `make_loss`, built here if not given)."""
    lc, mc = cfg.latent, cfg.model
    n_clips = N_CLASSES * max(lc.max_clips_per_class, lc.batch_size)
    model = LatentModel(mc, n_clips, N_CLASSES, lc.content_init_std).to(device)
    loss_fn = make_loss(cfg, device) if loss_fn is None else loss_fn
    opt = torch.optim.Adam([
        {"params": list(model.generator.parameters()), "lr": lc.lr_generator},
        {"params": [model.content.weight, model.classes.weight], "lr": lc.lr_embeddings},
    ])
    x = _batch(cfg, lc.batch_size, 0, device)
    pos = torch.randperm(n_clips, generator=torch.Generator().manual_seed(1))[: lc.batch_size].to(device)
    labels = pos % N_CLASSES
    noise_gen = torch.Generator().manual_seed(2)
    model.train()

    adversary = (ContentAdversary(mc.content_dim, N_CLASSES, lc.lr_adversary).to(device)
                 if lc.w_confusion > 0 else None)

    def step(_: int) -> None:
        # drawn on the CPU and moved, as training does
        noise = torch.randn((lc.batch_size, mc.content_dim, mc.content_frames), generator=noise_gen) * lc.noise_std
        noise = noise.to(device)
        loss, _, _ = latent_loss(model, loss_fn, pos, labels, x, noise, lc, adversary)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def amortized_step_fn(cfg: TrainConfig, device: str = "cpu",
                      loss_fn: ReconstructionLoss | None = None) -> Callable[[int], None]:
    """One stage-2 step (as `musiclord.train.amortized._train`): critic update(s) with the lazy
    gradient penalty, then encoders + generator with the adversarial term on (loss_fn as
    `latent_step_fn`'s)."""
    ac, mc = cfg.amortized, cfg.model
    classes = [f"c{k}" for k in range(N_CLASSES)]
    model = LordModel(mc, classes).to(device)
    disc = build_discriminator(DiscriminatorConfig(channels=ac.disc_channels,
                                                   n_classes=N_CLASSES if ac.disc_conditional else 0), device)
    loss_fn = make_loss(cfg, device) if loss_fn is None else loss_fn
    enc_params = list(model.content_encoder.parameters()) + list(model.class_encoder.parameters())
    opt = torch.optim.Adam([
        {"params": enc_params, "lr": ac.lr_encoders},
        {"params": list(model.generator.parameters()), "lr": ac.lr_generator, "betas": (0.5, 0.9)},
    ])
    opt_d = torch.optim.Adam(disc.parameters(), lr=ac.lr_discriminator, betas=(0.5, 0.9))
    b = ac.batch_size
    x = _batch(cfg, b, 3, device)
    y = (torch.arange(b) % N_CLASSES).to(device)
    content_t = 0.3 * torch.randn(b, mc.content_dim, mc.content_frames).to(device)
    class_t = 0.3 * torch.randn(N_CLASSES, mc.class_dim).to(device)
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


def time_steps(step: Callable[[int], None], n: int, warmup: int = WARMUP, device: str = "cpu") -> float:
    """Seconds per step over n steps after `warmup` steps (the mean: a fixed number of steps)."""
    for i in range(warmup):
        step(i)
    return timed_call(lambda: [step(i) for i in range(warmup, warmup + n)], device=device)[0] / n


def preset_steps(cfg: TrainConfig) -> tuple[int, int]:
    """Steps of the preset's stage 1 and stage 2 (an epoch: 4 instruments x max_clips_per_class, or EPOCH_CLIPS)."""
    lc, ac = cfg.latent, cfg.amortized
    clips = N_CLASSES * lc.max_clips_per_class if lc.max_clips_per_class else EPOCH_CLIPS
    s1 = lc.steps or lc.epochs * (clips // lc.batch_size)
    s2 = ac.steps or ac.epochs * (clips // ac.batch_size)
    return s1, s2


def time_stages(cfg: TrainConfig, device: str, steps: int, loss_fn: ReconstructionLoss) -> list[dict[str, float]]:
    """Both stages' s/step and FLOPs/step (FLOPs averaged over a gradient-penalty cycle, which
    stage 2 pays every gp_every steps; timed over whole cycles), both with `loss_fn` (frozen
    perceptual networks only: no state of its own)."""
    gp_every = cfg.amortized.gp_every
    n2 = max(steps, gp_every * ((steps + gp_every - 1) // gp_every))
    out = []
    for make, batch, n, cycle in ((latent_step_fn, cfg.latent.batch_size, steps, 1),
                                  (amortized_step_fn, cfg.amortized.batch_size, n2, gp_every)):
        step = make(cfg, device, loss_fn)
        flops = sum(count_flops(step, i) for i in range(cycle)) / cycle
        out.append({"batch": batch, "n": n, "sec": time_steps(step, n, device=device), "flops": flops})
        del step
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    return out


def run(steps: int = STEPS, device: str = "cpu", presets: tuple[str, ...] = ()) -> str:
    """The table for `presets` (default: demo, and paper on a GPU)."""
    torch.manual_seed(0)
    peak = measure_peak(device)
    if not presets:
        presets = ("demo", "paper") if device.startswith("cuda") else ("demo",)
    rows, notes = [], []
    for preset in presets:
        cfg = PRESETS[preset]
        s1, s2 = preset_steps(cfg)
        per_epoch = (EPOCH_CLIPS / cfg.latent.batch_size, EPOCH_CLIPS / cfg.amortized.batch_size)
        loss_fn = make_loss(cfg, device)
        stages = time_stages(cfg, device, steps, loss_fn)
        terms = "+".join(loss_fn.active_terms)
        total_s = 0.0
        for name, st, n_run, n_epoch in zip(("stage 1 (latent)", "stage 2 (amortized)"), stages, (s1, s2), per_epoch):
            sec, batch = st["sec"], st["batch"]
            gflops = st["flops"] / sec / 1e9
            wall = n_run * sec
            total_s += wall
            log.info("%s %s: %.4f s/step, %.1f GFLOP/s", preset, name, sec, gflops)
            rows.append([preset, name, batch, st["n"], f"{sec:.4f}", f"{batch / sec:.1f}",
                         f"{st['flops'] / batch / 1e9:.2f}", f"{gflops:.1f}",
                         f"{100 * gflops / peak['conv1d_gflops']:.0f}%", f"{n_epoch * sec:.1f}",
                         n_run, f"{wall / 60:.1f}"])
        mc = cfg.model
        notes.append(f"- `{preset}`: generator {mc.gen_channels} ch x {mc.gen_blocks} blocks, encoders "
                     f"{mc.enc_channels} ch, loss {terms}; "
                     f"both stages of the preset's run extrapolate to {total_s / 60:.1f} min of training steps.")
    table = markdown_table(
        ["preset", "stage", "batch", "timed steps", "s/step", "clips/s", "GFLOP/clip (fwd+bwd)", "GFLOP/s",
         "of conv peak", f"s/epoch ({EPOCH_CLIPS} clips)", "preset's steps", "preset's min"], rows)
    lines = [
        f"Synthetic batches on {device}, {WARMUP} warm-up steps, torch threads {torch.get_num_threads()}. "
        f"Measured peak in this run: conv1d {peak['conv1d_gflops']:.1f} GFLOP/s, matmul "
        f"{peak['matmul_gflops']:.1f} GFLOP/s (float32"
        + (f"; TF32 in cuDNN convolutions {'on' if torch.backends.cudnn.allow_tf32 else 'off'}, in matmuls "
           f"{'on' if torch.backends.cuda.matmul.allow_tf32 else 'off'})." if device.startswith("cuda") else ")."),
        "",
        table,
        "",
        *notes,
        "- Target: the demo (both stages) within 15 min on 2 CPU cores, data preparation excluded.",
    ]
    return "\n".join(lines)
