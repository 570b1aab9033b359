"""Training loops: stage 1 (latent optimization), stage 2 (amortized encoders), the Rho network.

`config` holds the presets, `common` the shared machinery (devices, torch.distributed,
checkpoints with RNG state, TensorBoard, the non-finite guard, the batch iterator).
Loops are imported lazily by the CLI so that `import musiclord.train` stays light.
"""

from musiclord.train.config import PRESETS, LatentConfig, TrainConfig, resolve_config

__all__ = ["PRESETS", "LatentConfig", "TrainConfig", "resolve_config"]
