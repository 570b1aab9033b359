"""Stage 1 of LORD: latent optimization (paper section 4, Eq. 2-3).

Every training clip owns a content code (content_dim x content_frames, an nn.Embedding row),
every instrument a class embedding; both are optimised jointly with the AdaIN generator to
reconstruct the clip. Fixed Gaussian noise of std σ on the content codes and an activation
decay λ·‖c‖² keep the content channel narrow, so the instrument has to come from the class
embedding.

Data-parallel with torchrun: the generator and both tables sit in one module wrapped in DDP,
every process takes its slice of the same global batch, and DDP averages all gradients
(embedding rows included), so N processes follow the single-process trajectory.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from musiclord.config import save_config, to_dict
from musiclord.errors import DataError
from musiclord.losses import ReconstructionLoss
from musiclord.models import Generator, LordModel, ModelConfig, save_model
from musiclord.models.generator import normalise_content
from musiclord.train.common import (
    BatchIterator, DistEnv, NonFiniteGuard, TBWriter, all_reduce_mean, cleanup_distributed, cosine_lr_factor,
    init_distributed, load_mels, load_state, open_dataset, progress, save_state, seed_everything, set_lr,
    set_threads,
)
from musiclord.train.confusion import ContentAdversary
from musiclord.train.config import LatentConfig, TrainConfig
from musiclord.train.rerender import TARGET_SWAP_SEED, rerender_rows, swap_rerenders

log = logging.getLogger(__name__)

LATENT_FILE = "latent.pt"
LATENT_KIND = "latent"


class LatentModel(nn.Module):
    """Generator + per-clip content codes + per-class embeddings.

    Args:
        cfg: model sizes.
        n_clips: training clips (rows of the content table).
        n_classes: instruments.
        init_std: std of the initial codes and embeddings.
    """

    def __init__(self, cfg: ModelConfig, n_clips: int, n_classes: int, init_std: float = 0.1) -> None:
        super().__init__()
        self.cfg = cfg
        self.generator = Generator(cfg)
        self.content = nn.Embedding(n_clips, cfg.content_dim * cfg.content_frames)
        self.classes = nn.Embedding(n_classes, cfg.class_dim)
        nn.init.normal_(self.content.weight, std=init_std)
        nn.init.normal_(self.classes.weight, std=init_std)

    def codes(self, clip_idx: torch.Tensor) -> torch.Tensor:
        """clip_idx (B,) -> content codes (B, content_dim, content_frames)."""
        return self.content(clip_idx).view(-1, self.cfg.content_dim, self.cfg.content_frames)

    def forward(self, clip_idx: torch.Tensor, class_idx: torch.Tensor,
                noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstruct clips.

        Args:
            clip_idx: (B,) rows of the content table.
            class_idx: (B,) class labels.
            noise: (B, content_dim, content_frames) added to the codes (training), or None.

        Returns:
            (pred (B, n_mels, n_frames), codes (B, content_dim, content_frames) before noise).
        """
        c = self.codes(clip_idx)
        z = normalise_content(c, self.cfg.content_norm)  # the noise comes after: the same SNR for every code
        z = z + noise if noise is not None else z
        return self.generator(z, self.classes(class_idx)), c


@dataclass
class LatentResult:
    """What stage 1 learned, as stage 2 and the evaluation read it from RUN_DIR/latent.pt.

    Attributes:
        model_config: sizes.
        classes: instrument names.
        generator_state: Generator state dict.
        content: (N, content_dim, content_frames) content code of every training clip.
        class_embeddings: (K, class_dim).
        rows: (N,) dataset row (`ClipRecord.index`) of each content code.
        labels: (N,) class label of each content code.
        step: steps trained.
    """

    model_config: ModelConfig
    classes: list[str]
    generator_state: dict
    content: torch.Tensor
    class_embeddings: torch.Tensor
    rows: torch.Tensor
    labels: torch.Tensor
    step: int


def read_latent(path: str | Path) -> LatentResult:
    """Read a stage-1 checkpoint (RUN_DIR/latent.pt or the run directory).

    Raises:
        CheckpointError: missing, foreign, truncated or not a stage-1 checkpoint.
    """
    from musiclord.checkpoint import load_checkpoint
    from musiclord.config import from_dict

    p = Path(path)
    if p.is_dir():
        p = p / LATENT_FILE
    obj = load_checkpoint(p, kind=LATENT_KIND)
    cfg = from_dict(TrainConfig, obj["config"])
    st = obj["state"]["model"]
    prefix = "generator."
    return LatentResult(
        model_config=cfg.model,
        classes=list(obj["classes"]),
        generator_state={k[len(prefix):]: v for k, v in st.items() if k.startswith(prefix)},
        content=st["content.weight"].view(-1, cfg.model.content_dim, cfg.model.content_frames),
        class_embeddings=st["classes.weight"],
        rows=obj["rows"],
        labels=obj["labels"],
        step=int(obj["step"]),
    )


def select_train_records(ds, max_per_class: int, seed: int) -> list:
    """The train split, at most `max_per_class` clips per class (a seeded random subset), in
    dataset order."""
    recs = ds.select(split="train")
    if max_per_class <= 0:
        return recs
    g = torch.Generator().manual_seed(seed)
    out = []
    for k in range(len(ds.classes)):
        mine = [r for r in recs if r.label == k]
        keep = torch.randperm(len(mine), generator=g)[:max_per_class].sort().values.tolist()
        out += [mine[i] for i in keep]
    return sorted(out, key=lambda r: r.index)


def total_steps(cfg: TrainConfig, steps_per_epoch: int) -> int:
    """Steps of stage 1: `latent.steps`, or `latent.epochs` passes."""
    return cfg.latent.steps if cfg.latent.steps > 0 else max(1, cfg.latent.epochs * steps_per_epoch)


def latent_loss(net: nn.Module, loss_fn: ReconstructionLoss, pos: torch.Tensor, labels: torch.Tensor,
                x: torch.Tensor, noise: torch.Tensor, lc: LatentConfig, adversary: ContentAdversary | None = None,
                env: DistEnv | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict]:
    """Stage 1's loss on a batch (Eq. 2-3): reconstruction of x (B, M, T) from the clips' noisy
    codes (rows `pos`, noise (B, D, F)) and class embeddings, the activation decay and, with an
    adversary, the confusion loss (the adversary takes its own step on the batch's codes first).

    Returns:
        (total loss, reconstruction terms, {"content_norm2"[, "confusion", "adversary"]}).
    """
    pred, codes = net(pos, labels, noise)
    terms = loss_fn(pred, x)
    extra: dict = {"content_norm2": codes.pow(2).sum(dim=(1, 2)).mean()}
    loss = terms["total"] + lc.content_decay * extra["content_norm2"]
    if adversary is not None:
        extra["adversary"] = adversary.update(codes, labels, env)
        extra["confusion"] = adversary.confusion(codes)
        loss = loss + lc.w_confusion * extra["confusion"]
    return loss, terms, extra


def train_latent(cfg: TrainConfig, data_dir: str | Path, run_dir: str | Path, resume: bool = False,
                 stop_after: int | None = None, env: DistEnv | None = None) -> LatentResult | None:
    """Run stage 1 and write RUN_DIR/latent.pt and RUN_DIR/model.pt (meta {"stage": "latent"}).

    Args:
        cfg: the run's config.
        data_dir: a musiclord dataset directory.
        run_dir: the run directory (created; config.yaml written by rank 0).
        resume: continue from RUN_DIR/latent.pt if it exists.
        stop_after: end this call after this many steps in all (a checkpoint is written), as an
            interrupted run would; used by tests of `resume`.
        env: the process (default: from torchrun's environment).

    Returns:
        The learned state on rank 0 (None on the other ranks).

    Raises:
        DataError: no training clips. TrainingError: too many non-finite losses in a row.
        CheckpointError: `resume` with a checkpoint that does not fit this config.
    """
    own_env = env is None
    env = env or init_distributed(cfg.device)
    try:
        return _train(cfg, Path(data_dir), Path(run_dir), resume, stop_after, env)
    finally:
        if own_env:
            cleanup_distributed(env)


def _train(cfg: TrainConfig, data_dir: Path, run_dir: Path, resume: bool, stop_after: int | None,
           env: DistEnv) -> LatentResult | None:
    seed_everything(cfg.seed)
    set_threads(cfg.num_threads)
    lc = cfg.latent
    dev = env.device
    ds = open_dataset(data_dir)
    classes = list(ds.classes)
    records = select_train_records(ds, lc.max_clips_per_class, cfg.seed)
    if not records:
        raise DataError(f"{data_dir}: no training clips")
    mels = load_mels(ds)
    if tuple(mels.shape[1:]) != (cfg.model.n_mels, cfg.model.n_frames):
        raise DataError(f"{data_dir}: clips are {tuple(mels.shape[1:])}, the model expects "
                        f"({cfg.model.n_mels}, {cfg.model.n_frames})")
    rows = torch.tensor([r.index for r in records])
    labels = torch.tensor([r.label for r in records])
    it = BatchIterator(mels, rows.tolist(), lc.batch_size, seed=cfg.seed, env=env)
    alt = rerender_rows(ds, rows) if lc.rerender_prob > 0 else torch.full((len(rows), 1), -1)
    total = total_steps(cfg, it.steps_per_epoch)

    model = LatentModel(cfg.model, len(records), len(classes), lc.content_init_std).to(dev)
    loss_fn = ReconstructionLoss.from_config(cfg.loss, dev)
    emb_params = [model.content.weight, model.classes.weight]
    opt = torch.optim.Adam([
        {"params": list(model.generator.parameters()), "lr": lc.lr_generator},
        {"params": emb_params, "lr": lc.lr_embeddings},
    ])
    noise_gen = torch.Generator().manual_seed(cfg.seed + 1)
    guard = NonFiniteGuard(lc.max_nonfinite)
    ckpt = run_dir / LATENT_FILE
    objects = {"model": model, "optimizer": opt, "noise_rng": noise_gen, "guard": guard}
    adversary = None
    if lc.w_confusion > 0:
        adversary = ContentAdversary(cfg.model.content_dim, len(classes), lc.lr_adversary, dev)
        objects["adversary"] = adversary
    step = 0
    if resume and ckpt.exists():
        obj = load_state(ckpt, LATENT_KIND, objects, map_location=dev)
        step = int(obj["step"])
        if env.is_main:
            log.info("resumed %s at step %d of %d", ckpt, step, total)
    if env.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / "config.yaml")
        log.info("stage 1: %d clips (%d with a rerender, the target with p=%.2f), %d classes, %d steps of %d "
                 "(%d per epoch), %d generator parameters, loss %s", len(records), int((alt >= 0).any(1).sum()),
                 lc.rerender_prob, len(classes), total, lc.batch_size, it.steps_per_epoch,
                 sum(p.numel() for p in model.generator.parameters()), "+".join(loss_fn.active_terms))
    net: nn.Module = model
    if env.distributed:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    tb = TBWriter(run_dir / "tb", env)
    labels_dev = labels.to(dev)
    shape = (it.batch_size, cfg.model.content_dim, cfg.model.content_frames)
    end = total if stop_after is None else min(total, stop_after)
    bar = progress(total, env, "stage 1", initial=step)
    t0, done0 = time.time(), step
    model.train()
    loss_fn.train()

    def checkpoint(at: int) -> None:
        if env.is_main:
            save_state(ckpt, LATENT_KIND, objects, at, config=to_dict(cfg), classes=classes, rows=rows,
                       labels=labels, data_dir=str(data_dir))

    while step < end:
        set_lr(opt, cosine_lr_factor(step, total, lc.warmup_steps, lc.min_lr_ratio, lc.cosine))
        pos, x = it.batch(step)
        if lc.rerender_prob > 0:
            x, _ = swap_rerenders(x, pos, alt, mels, lc.rerender_prob, cfg.seed + TARGET_SWAP_SEED, step,
                                  it.batch_size, it.local_slice(it.batch_size))
        noise = torch.randn(shape, generator=noise_gen)[it.local_slice(it.batch_size)] * lc.noise_std
        pos_d = pos.to(dev)
        x = x.to(dev, non_blocking=True)
        loss, terms, extra = latent_loss(net, loss_fn, pos_d, labels_dev[pos_d], x, noise.to(dev), lc, adversary, env)
        decay = extra["content_norm2"]
        opt.zero_grad(set_to_none=True)
        if guard.check(loss, env, step):
            loss.backward()
            if lc.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), lc.grad_clip)
            opt.step()
        step += 1
        bar.update()
        if step % lc.log_every == 0 or step == end:
            vals = torch.stack([v.detach() for v in terms.values()] + [decay.detach()])
            all_reduce_mean(vals, env)
            scal = {f"loss/{k}": float(v) for k, v in zip(list(terms) + ["content_norm2"], vals)}
            scal["lr/generator"] = opt.param_groups[0]["lr"]
            scal["lr/embeddings"] = opt.param_groups[1]["lr"]
            scal["train/nonfinite"] = guard.total
            scal["train/clips_per_s"] = (step - done0) * lc.batch_size / max(1e-9, time.time() - t0)
            if adversary is not None:
                scal["adversary/loss"], scal["adversary/accuracy"] = extra["adversary"]
                scal["loss/confusion"] = float(extra["confusion"].detach())
            tb.scalars(scal, step)
            bar.set_postfix(loss=f"{scal['loss/total']:.4f}")
        if lc.checkpoint_every and step % lc.checkpoint_every == 0 and step < end:
            checkpoint(step)
        if lc.image_every and step % lc.image_every == 0 and step < total and env.is_main:
            _log_images(model, mels, rows, labels, classes, tb, step, ds.mel_config, lc.n_audio, audio=False)
    bar.close()
    checkpoint(step)
    elapsed = time.time() - t0
    if env.is_main and step > done0:
        log.info("stage 1: %d steps in %.0f s (%.1f clips/s)", step - done0, elapsed,
                 (step - done0) * lc.batch_size / max(elapsed, 1e-9))
    if step >= total and env.is_main:
        _log_images(model, mels, rows, labels, classes, tb, step, ds.mel_config, lc.n_audio, audio=True)
        export_model(model, classes, run_dir, ds.mel_config)
    tb.close()
    if not env.is_main:
        return None
    return read_latent(ckpt)


def export_model(model: LatentModel, classes: list[str], run_dir: Path, mel_cfg) -> None:
    """Write RUN_DIR/model.pt: the stage-1 generator and class embeddings (encoders untrained)."""
    lord = LordModel(model.cfg, classes)
    lord.generator.load_state_dict(model.generator.state_dict())
    lord.class_embeddings.copy_(model.classes.weight.detach())
    save_model(lord.cpu(), run_dir / "model.pt", mel_cfg, meta={"stage": "latent"})
    log.info("wrote %s (stage-1 model)", run_dir / "model.pt")


@torch.no_grad()
def swap_grid(model: LatentModel, clip_idx: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Class swaps (paper Fig. 1): (R,) clips -> (R * K, M, T), row r = clip r rendered with
    every class embedding in turn."""
    was = model.training
    model.eval()
    dev = model.content.weight.device
    idx = clip_idx.to(dev)
    codes = model.codes(idx).repeat_interleave(n_classes, 0)
    cls = torch.arange(n_classes, device=dev).repeat(len(idx))
    out = model.generator(codes, model.classes(cls))
    model.train(was)
    return out.cpu()


@torch.no_grad()
def _log_images(model: LatentModel, mels: torch.Tensor, rows: torch.Tensor, labels: torch.Tensor,
                classes: list[str], tb: TBWriter, step: int, mel_cfg, n_audio: int, audio: bool) -> None:
    if tb.writer is None:
        return
    k = len(classes)
    # one clip per class (the first of each), so every row of the swap grid has another source
    pick = torch.tensor([int((labels == c).nonzero()[0]) for c in range(k) if (labels == c).any()])
    was = model.training
    model.eval()
    dev = model.content.weight.device
    rec, _ = model(pick.to(dev), labels[pick].to(dev))
    model.train(was)
    tb.spectrograms("mel/input", mels[rows[pick]].float(), step, nrow=len(pick))
    tb.spectrograms("mel/reconstruction", rec.cpu(), step, nrow=len(pick))
    grid = swap_grid(model, pick, k)
    tb.spectrograms("mel/class_swap", grid, step, nrow=k)
    if audio and n_audio > 0:
        tb.audio("audio/reconstruction", rec[:n_audio], step, mel_cfg)
        tb.audio("audio/class_swap", grid[1: 1 + n_audio], step, mel_cfg)


@torch.no_grad()
def reconstruct(model: LatentModel, clip_idx: torch.Tensor, labels: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Noise-free reconstructions (B, M, T) of training clips `clip_idx` (rows of the table)."""
    model.eval()
    dev = model.content.weight.device
    out = [model(clip_idx[i:i + batch_size].to(dev), labels[i:i + batch_size].to(dev))[0].cpu()
           for i in range(0, len(clip_idx), batch_size)]
    return torch.cat(out)


def fit_content_codes(generator: Generator, class_emb: torch.Tensor, target: torch.Tensor, steps: int = 200,
                      lr: float = 0.05, decay: float = 0.0, seed: int = 0) -> torch.Tensor:
    """Latent optimization of content codes for unseen clips with a frozen generator.

    Args:
        generator: trained generator (left unchanged).
        class_emb: (B, class_dim) class embedding of each clip.
        target: (B, M, T) log-mels.
        steps, lr: Adam steps and learning rate.
        decay: λ of the activation decay.

    Returns:
        (B, content_dim, content_frames) codes.
    """
    cfg = generator.cfg
    g = torch.Generator().manual_seed(seed)
    codes = (0.1 * torch.randn(len(target), cfg.content_dim, cfg.content_frames, generator=g)).to(target.device)
    codes.requires_grad_(True)
    opt = torch.optim.Adam([codes], lr=lr)
    req = [p.requires_grad for p in generator.parameters()]
    generator.eval().requires_grad_(False)
    for _ in range(steps):
        loss = nn.functional.mse_loss(generator(codes, class_emb), target) + decay * codes.pow(2).sum((1, 2)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    for p, r in zip(generator.parameters(), req):
        p.requires_grad_(r)
    return codes.detach()
