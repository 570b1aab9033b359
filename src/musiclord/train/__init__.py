"""Training loops: stage 1 (latent optimization), stage 2 (amortized encoders), the Rho network.

`config` holds the presets; the shared machinery is `distributed` (devices, torch.distributed),
`state` (seeding, checkpoints with RNG state, the non-finite guard), `tblog` (progress,
TensorBoard) and `common` (schedule, batch iterator; re-exports the others).
Loops are imported lazily by the CLI so that `import musiclord.train` stays light.
"""

from musiclord.train.config import PRESETS, LatentConfig, TrainConfig, resolve_config

__all__ = ["PRESETS", "LatentConfig", "TrainConfig", "resolve_config"]
