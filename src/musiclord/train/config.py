"""Training configs: one frozen `TrainConfig` (model, loss, stage 1, stage 2, run settings)
and named presets; `resolve_config` turns a preset name or YAML file plus `key=value`
overrides into the config a run uses (and saves as RUN_DIR/config.yaml)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from musiclord.config import apply_overrides, from_dict, load_config
from musiclord.errors import ConfigError
from musiclord.losses import LossConfig
from musiclord.models.config import ModelConfig

try:  # stage 2 owns its settings; a placeholder stands in until it lands
    from musiclord.train.amortized_config import AMORTIZED_PRESETS, AmortizedConfig
except ImportError:  # pragma: no cover - the placeholder file ships with the package
    @dataclass(frozen=True)
    class AmortizedConfig:  # type: ignore[no-redef]
        """Placeholder stage-2 settings."""

        steps: int = 0

    AMORTIZED_PRESETS = {}


@dataclass(frozen=True)
class LatentConfig:
    """Stage 1: latent optimization of per-clip content codes, class embeddings and generator.

    Attributes:
        steps: optimisation steps; 0 derives them from `epochs`.
        epochs: passes over the training clips (used when steps == 0).
        batch_size: global batch (split across torchrun processes; must divide evenly).
        lr_generator: Adam learning rate of the generator.
        lr_embeddings: Adam learning rate of content codes and class embeddings.
        cosine: cosine-decay both learning rates to `min_lr_ratio` of their start.
        min_lr_ratio: final learning rate as a fraction of the initial one.
        warmup_steps: linear warm-up steps.
        noise_std: σ of the fixed Gaussian noise added to content codes while training (Eq. 2).
        content_decay: λ of the activation decay λ·‖c‖² (sum over a clip's code, mean over the
            batch).
        content_init_std: std of the initial content codes.
        w_confusion: weight of the instrument-confusion loss on the content codes
            (`train/confusion.py`; 0: off, as in the paper).
        lr_adversary: Adam learning rate of the content codes' instrument classifier.
        rerender_prob: probability that a clip's reconstruction target is its rerender (the same
            notes played by another sample bank, `prepare synth`'s "rerender" split) instead of
            the clip, from the same content code and class embedding: the generator learns the
            banks' mean in the log domain and the codes cannot hold the bank (0: off).
        max_clips_per_class: use at most this many training clips per class (0: all); fewer
            clips means more visits per code in a fixed time budget.
        grad_clip: clip the global gradient norm (0: off).
        max_nonfinite: stop after this many non-finite losses in a row (each is skipped).
        log_every: steps between scalar logs.
        image_every: steps between spectrogram grids and audio (0: only at the end).
        checkpoint_every: steps between RUN_DIR/latent.pt checkpoints (0: only at the end).
        n_audio: clips rendered to audio in TensorBoard.
    """

    steps: int = 0
    epochs: int = 20
    batch_size: int = 32
    lr_generator: float = 1e-3
    lr_embeddings: float = 1e-2
    cosine: bool = True
    min_lr_ratio: float = 0.05
    warmup_steps: int = 0
    noise_std: float = 1.0
    content_decay: float = 1e-2
    content_init_std: float = 0.1
    w_confusion: float = 0.0
    lr_adversary: float = 1e-3
    rerender_prob: float = 0.0
    max_clips_per_class: int = 0
    grad_clip: float = 0.0
    max_nonfinite: int = 20
    log_every: int = 20
    image_every: int = 0
    checkpoint_every: int = 500
    n_audio: int = 2

    def __post_init__(self) -> None:
        if not 0 <= self.rerender_prob <= 1:
            raise ConfigError("latent.rerender_prob must be in [0, 1]")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a `musiclord train` run needs; saved as RUN_DIR/config.yaml.

    Attributes:
        model: network sizes.
        loss: reconstruction loss weights and perceptual network files.
        latent: stage 1.
        amortized: stage 2.
        seed: seeds every RNG (same seed + CPU = same weights).
        device: "auto" (CUDA when available), "cpu" or "cuda".
        num_threads: torch CPU threads (0: torch's default).
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    latent: LatentConfig = field(default_factory=LatentConfig)
    amortized: AmortizedConfig = field(default_factory=AmortizedConfig)
    seed: int = 0
    device: str = "auto"
    num_threads: int = 0

    def __post_init__(self) -> None:
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.latent.batch_size < 1:
            raise ConfigError("latent.batch_size must be >= 1")


def _amortized(name: str) -> AmortizedConfig:
    return AMORTIZED_PRESETS.get(name, AmortizedConfig())


def _presets() -> dict[str, TrainConfig]:
    tiny = TrainConfig(
        model=ModelConfig(content_dim=4, content_frames=32, class_dim=16, gen_channels=32, gen_blocks=2,
                          adain_hidden=32, enc_channels=32, enc_blocks=2),
        loss=LossConfig(w_l2=1.0, w_l1=0.0, w_multires=0.0),
        latent=LatentConfig(steps=200, batch_size=8, max_clips_per_class=8, lr_generator=3e-3, lr_embeddings=3e-2,
                            noise_std=0.1, log_every=10, checkpoint_every=50, image_every=0, n_audio=0),
        amortized=_amortized("tiny"),
        num_threads=1,
    )
    # demo: every training clip (4000 from `prepare synth`), 3600 steps of 32 (29 epochs) of a
    # 0.6 M-parameter generator with a 16x32 content code, then 600 stage-2 steps (whose encoders
    # see the clips' rerenders half of the time): 12.3 min of training in `make demo` on 2 idle
    # cores with 3000 stage-1 steps (docs/benchmarks.md; 3.5 min on session 22's machine), test LSD
    # ratio 0.745-0.749, 0.758 on 2026's machines. On the dev set (docs/results.md) this beat
    # the earlier 400 clips/class, 8x32, 1000 + 300 steps (LSD ratio 0.99 vs 1.21) and an 8x64
    # code (1.02: more frames, fewer channels lost pitch).
    # σ 0.25 / lr 0.03 / λ 1e-3: with Adam a code moves about lr per visit, so in ~20 visits
    # codes reach std ~0.4; σ = 1 drowned them (content ignored), σ = 0.25 beat σ = 0.5 on
    # train and val error with the same probe accuracy (measured, 1600 synth clips).
    # Session 22: the flux term (as the quality preset's; Merlin dev ratio 0.866 -> 0.854, probe
    # 0.635 -> 0.619, ablation 73) and 3600 stage-1 steps instead of 3000 (0.854 -> 0.850, ablation 75).
    demo = TrainConfig(
        model=ModelConfig(content_dim=16, content_frames=32, class_dim=64, gen_channels=96, gen_blocks=4,
                          adain_hidden=128, enc_channels=96),
        loss=LossConfig(w_l2=1.0, w_l1=0.5, w_multires=0.5, w_flux=0.5),
        latent=LatentConfig(steps=3600, batch_size=32, max_clips_per_class=0, noise_std=0.25, lr_embeddings=0.03,
                            content_decay=1e-3, log_every=20, checkpoint_every=200, image_every=1000),
        amortized=_amortized("demo"),
        num_threads=2,
    )
    # quality: the shipped pretrained model (musiclord/pretrained). Stage 1 is 10000 steps of 32
    # (80 epochs of 4000 clips), stage 2 3000 steps of 16 whose encoders see each clip's rerender
    # (a second sample bank) half of the time (amortized.rerender_prob), coloured by a random EQ
    # (amortized.timbre_eq_db); a 16x32 content code (the 8x32 of the demo loses short notes), a
    # 128-wide, 4-block generator and the flux term (L1 of the log-mel's frame-to-frame
    # differences, for onsets); stage 2's critic also judges translations into piano
    # (amortized.translation_to), its content encoder hears the clip's notes on another
    # instrument half of the time (amortized.cross_prob: data from `prepare synth --cross-fraction 1`),
    # and it validates and exports a moving average of its weights (amortized.ema_decay).
    # Stage 1 38-40 min on 2 threads; stage 2 53-63 min on 2 threads (1.05-1.27 s/step measured),
    # 3.2 min on one H100 (device=cuda; docs/benchmarks.md). LSD ratio on the test split 0.751
    # (20 epochs, 500 stage-2 steps) -> 0.665 (50 epochs, 1500 steps, one bank) -> 0.635 (with
    # rerenders) -> 0.630 (flux, 80 epochs) -> 0.608 (piano critic, v5) -> 0.604 (3000 steps, EQ,
    # v6) -> 0.606 with pitch 0.846 -> 0.859 and content probe 0.517 -> 0.424 (cross renders, v7)
    # -> 0.599, probe 0.383 (weight average; this, v8; whole split; docs/results.md).
    quality = TrainConfig(
        model=ModelConfig(content_dim=16, content_frames=32, class_dim=128, gen_channels=128, gen_blocks=4,
                          adain_hidden=256, enc_channels=128),
        loss=LossConfig(w_l2=1.0, w_l1=0.5, w_multires=0.5, w_rho=0.0, w_flux=0.5),
        latent=LatentConfig(epochs=80, batch_size=32, max_clips_per_class=1000, noise_std=0.25, lr_embeddings=0.03,
                            content_decay=1e-3, checkpoint_every=1000, image_every=2000),
        amortized=_amortized("quality"),
        num_threads=2,
    )
    paper = TrainConfig(
        model=ModelConfig(content_dim=16, content_frames=32, class_dim=256, gen_channels=512, gen_blocks=6,
                          adain_hidden=512),
        loss=LossConfig(w_l2=1.0, w_l1=0.0, w_multires=0.0, w_rho=1.0, w_vgg=1.0),
        latent=LatentConfig(epochs=200, batch_size=64, lr_generator=3e-4, lr_embeddings=3e-3, content_decay=1e-3,
                            checkpoint_every=2000, image_every=2000, log_every=50),
        amortized=_amortized("paper"),
        device="auto",
    )
    return {"tiny": tiny, "demo": demo, "paper": paper, "quality": quality}


PRESETS: dict[str, TrainConfig] = _presets()


def resolve_config(name_or_file: str | Path = "demo", overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """A preset name or a YAML file, plus `key=value` overrides -> the run's config.

    Args:
        name_or_file: "tiny", "demo", "paper", "quality", or a path to a YAML TrainConfig (a
            partial file keeps the defaults of `TrainConfig()` for missing keys).
        overrides: dotted `key=value` strings, e.g. ["latent.steps=100", "loss.w_rho=0.5"].

    Raises:
        ConfigError: unknown preset, missing file, unknown key or wrong type.
    """
    name = str(name_or_file)
    if name in PRESETS:
        cfg = PRESETS[name]
    elif name.endswith((".yaml", ".yml", ".json")) or Path(name).exists():
        cfg = load_config(TrainConfig, name)
    else:
        raise ConfigError(f"unknown config {name!r}: a preset ({', '.join(PRESETS)}) or a YAML file")
    return apply_overrides(cfg, list(overrides))


def config_from_dict(data: dict) -> TrainConfig:
    """Rebuild a TrainConfig saved with `musiclord.config.to_dict` (e.g. from a checkpoint)."""
    return from_dict(TrainConfig, data)


__all__ = ["AmortizedConfig", "LatentConfig", "PRESETS", "TrainConfig", "config_from_dict",
           "resolve_config"]
