"""Model hyper-parameters shared by both training stages and by inference."""

from __future__ import annotations

from dataclasses import dataclass


CONTENT_NORMS = ("none", "mean", "standard")


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the generator, the encoders and the codes.

    Attributes:
        n_mels: mel bands of the log-mel image (its height).
        n_frames: frames of one clip (its width).
        content_dim: channels of the content code (the bottleneck's width).
        content_frames: frames of the content code; n_frames must be content_frames * 2**k.
            The content code keeps time because music content is a sequence.
        class_dim: size of a class (instrument) embedding.
        gen_channels: hidden channels of the generator.
        gen_blocks: residual AdaIN blocks of the generator (the first log2(n_frames /
            content_frames) of them upsample time by 2).
        kernel_size: 1-D convolution kernel over time.
        adain_hidden: hidden size of the MLP that maps a class embedding to AdaIN parameters.
        enc_channels: hidden channels of the content and class encoders.
        enc_blocks: convolution blocks of each encoder.
        content_norm: how every content code is normalised per channel over its frames before
            the generator, in both stages and at inference (the content codes reported, probes
            and t-SNE, are the normalised ones): "none"; "mean" (each channel's mean removed:
            the level, which alone read the instrument at 0.80 on an unseen bank); "standard"
            (mean removed and deviation set to 1, as AdaIN-VC's content encoder ends; stage 1's
            noise then sets the bottleneck alone, the activation decay only keeps the raw codes
            small). docs/results.md, ablations 23-24.
        content_erasure: the content code of every window, flattened, passes through a fixed
            linear erasure of the instrument (models/erasure.py, LEACE) fitted on the training
            codes after stage 2 (`musiclord erase`); the model then holds its mean and matrix.
    """

    n_mels: int = 128
    n_frames: int = 128
    content_dim: int = 16
    content_frames: int = 32
    class_dim: int = 128
    gen_channels: int = 256
    gen_blocks: int = 6
    kernel_size: int = 5
    adain_hidden: int = 256
    enc_channels: int = 256
    enc_blocks: int = 4
    content_norm: str = "none"
    content_erasure: bool = False

    @property
    def n_up(self) -> int:
        """Number of x2 time upsamplings from the content code to the output."""
        ratio = self.n_frames // self.content_frames
        n = ratio.bit_length() - 1
        if self.content_frames * 2**n != self.n_frames:
            raise ValueError("n_frames must be content_frames times a power of two")
        return n

    def __post_init__(self) -> None:
        from musiclord.errors import ConfigError

        try:
            n_up = self.n_up
        except ValueError as e:
            raise ConfigError(f"ModelConfig: {e}") from None
        if n_up > self.gen_blocks:
            raise ConfigError("ModelConfig: gen_blocks must be >= log2(n_frames / content_frames)")
        if n_up > self.enc_blocks:
            raise ConfigError("ModelConfig: enc_blocks must be >= log2(n_frames / content_frames)")
        if self.content_norm not in CONTENT_NORMS:
            raise ConfigError(f"ModelConfig: content_norm must be one of {', '.join(CONTENT_NORMS)}")
        if min(self.content_dim, self.class_dim, self.gen_channels, self.enc_channels, self.kernel_size) < 1:
            raise ConfigError("ModelConfig: sizes must be positive")
