"""Stage 2's random equalisation of the encoders' input."""

from __future__ import annotations

import math

import pytest
import torch

from musiclord.audio import MelConfig, silence_level
from musiclord.errors import ConfigError
from musiclord.train.amortized_config import AmortizedConfig
from musiclord.train.augment import eq_curves, random_eq

CFG = MelConfig()
FLOOR = silence_level(CFG)


def test_curves_are_smooth_bounded_and_seeded():
    c = eq_curves(64, 128, 6.0, torch.Generator().manual_seed(0))
    assert c.shape == (64, 128)
    peak = c.abs().amax(1)
    assert (peak <= 6.0 + 1e-4).all() and peak.max() > 4.0 and peak.min() < 2.0  # magnitudes spread over [0, 6]
    assert c.diff(dim=1).abs().max() < 0.5  # smooth: < 0.5 dB from one band to the next
    assert torch.equal(c, eq_curves(64, 128, 6.0, torch.Generator().manual_seed(0)))


def test_random_eq_keeps_silence_and_colours_the_rest():
    x = torch.full((4, 128, 16), FLOOR)
    x[:, :, 8:] = 1.0  # half silence, half sound
    y = random_eq(x, 6.0, CFG, seed=0, step=3, batch_size=8, local=slice(4, 8))
    assert torch.equal(y[:, :, :8], x[:, :, :8])  # silence stays at the floor
    db = (y[:, :, 8:] - 1.0) * CFG.log_std * 10 / math.log(10.0)
    assert db.abs().max() <= 6.0 + 1e-3 and db.abs().max() > 1.0
    assert torch.allclose(db[..., 0:1].expand_as(db), db, atol=1e-4)  # one gain per band, constant in time
    # the local share of a global batch draws the curves of its positions
    full = random_eq(torch.cat([x, x]), 6.0, CFG, seed=0, step=3, batch_size=8, local=slice(0, 8))
    assert torch.equal(full[4:], y)
    assert random_eq(x, 0.0, CFG, 0, 0, 4, slice(0, 4)) is x


def test_config_range():
    with pytest.raises(ConfigError, match="timbre_eq_db"):
        AmortizedConfig(timbre_eq_db=-1.0)
