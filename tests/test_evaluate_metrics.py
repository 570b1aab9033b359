"""Metric invariants: LSD, raw pitch accuracy, linear probes (small seeded inputs)."""

from __future__ import annotations

import numpy as np
import pytest

from musiclord.evaluate.lsd import lsd
from musiclord.evaluate.pitch import raw_pitch_accuracy, track_f0
from musiclord.evaluate.probe import paired_labels, probe_accuracy

SR = 16000


def _tone(f0: float, n: int = SR, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    x = sum(np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6)) / h for h in range(1, 6))
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


def test_lsd_zero_on_identical_audio_and_gain_invariant() -> None:
    x = np.stack([_tone(220), _tone(330, seed=1)])
    assert np.allclose(lsd(x, x), 0.0)
    # SS-VQ-VAE normalises power first: a louder copy is the same sound.
    assert np.all(lsd(3.0 * x, x) < 1e-3)


def test_lsd_grows_with_distortion() -> None:
    rng = np.random.default_rng(0)
    x = _tone(220)
    noise = rng.standard_normal(len(x)).astype(np.float32)
    d = [float(lsd(x + a * noise, x)) for a in (0.0, 0.003, 0.03, 0.3)]
    assert d[0] == pytest.approx(0.0, abs=1e-9)
    assert all(b > a for a, b in zip(d, d[1:])), d
    # Another note is farther than the same note: LSD sees content, not only level.
    assert float(lsd(_tone(311), x)) > float(lsd(_tone(220, seed=5), x)) + 3.0


def test_lsd_pads_or_truncates_output_to_reference() -> None:
    x = _tone(220)
    assert float(lsd(np.concatenate([x, x[:500]]), x)) == pytest.approx(0.0, abs=1e-9)
    assert float(lsd(x[:-1000], x)) > 0.0


def test_raw_pitch_accuracy_counts_reference_voiced_frames() -> None:
    ref = np.array([220.0, 220.0, 220.0, np.nan, 440.0])
    ref_v = np.array([True, True, True, False, True])
    cents40 = 220.0 * 2 ** (40 / 1200)
    cents60 = 220.0 * 2 ** (60 / 1200)
    est = np.array([cents40, cents60, np.nan, 100.0, 440.0])
    est_v = np.array([True, True, False, True, True])
    correct, total = raw_pitch_accuracy(est, est_v, ref, ref_v)
    assert total == 4  # the unvoiced reference frame does not count
    assert correct == 2  # within 50 cents: frame 0 and frame 4; 60 cents and unvoiced are wrong


def test_pyin_tracks_a_tone_and_tells_a_semitone_apart() -> None:
    waves = np.stack([_tone(220), _tone(220 * 2 ** (1 / 12), seed=2)])
    f0, voiced = track_f0(waves, SR)
    assert f0.shape == voiced.shape and f0.shape[0] == 2
    assert voiced[0].mean() > 0.8
    assert np.nanmedian(f0[0][voiced[0]]) == pytest.approx(220.0, rel=0.02)
    same = raw_pitch_accuracy(f0[0], voiced[0], f0[0], voiced[0])
    other = raw_pitch_accuracy(f0[1], voiced[1], f0[0], voiced[0])
    assert same[0] == same[1] > 0
    assert other[0] / other[1] < 0.1  # 100 cents apart: wrong everywhere


def test_probe_near_chance_on_random_codes_and_high_on_separable_codes() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 40)
    noise = rng.standard_normal((160, 32))
    r = probe_accuracy(noise, labels, seed=0)
    assert r["chance"] == pytest.approx(0.25)
    assert abs(r["accuracy"] - 0.25) < 0.15
    centers = rng.standard_normal((4, 32)) * 3
    sep = probe_accuracy(centers[labels] + noise, labels, seed=0)
    assert sep["accuracy"] > 0.95
    assert sep["folds"] == 5 and sep["n"] == 160


def test_probe_reports_chance_of_unbalanced_labels() -> None:
    labels = np.array([0] * 30 + [1] * 10)
    r = probe_accuracy(np.zeros((40, 3)), labels)
    assert r["chance"] == pytest.approx(0.75)


def test_probe_interval_brackets_the_accuracy_and_narrows_with_n() -> None:
    from musiclord.evaluate.probe import wilson_interval

    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(4), 30)
    centers = rng.standard_normal((4, 16))
    r = probe_accuracy(centers[labels] + 1.5 * rng.standard_normal((120, 16)), labels, seed=0, repeats=3)
    lo, hi = r["ci95"]
    assert lo < r["accuracy"] < hi and r["repeats"] == 3
    assert 0.25 < r["accuracy"] < 1.0  # partly separable: neither chance nor perfect
    width = lambda n: wilson_interval(0.5, n)[1] - wilson_interval(0.5, n)[0]  # noqa: E731
    assert width(800) < 0.55 * width(200)  # about 1 / sqrt(n)
    assert wilson_interval(0.57, 200) == pytest.approx((0.50, 0.64), abs=0.01)


def test_passage_bootstrap_brackets_the_summary_and_collapses_without_spread() -> None:
    from musiclord.evaluate.intervals import passage_bootstrap

    rng = np.random.default_rng(0)
    lsd_m = 9.0 + rng.standard_normal((12, 40))
    lsd_c = 14.0 + rng.standard_normal((12, 40))
    correct = rng.integers(50, 100, (12, 8))
    total = np.full((12, 8), 100)
    ci = passage_bootstrap(lsd_m, lsd_c, correct, total, reps=400)
    ratio, pitch = lsd_m.mean() / lsd_c.mean(), (correct.sum(1) / total.sum(1)).mean()
    assert ci["lsd_ratio_ci"][0] < ratio < ci["lsd_ratio_ci"][1] and ci["lsd_ratio_ci"][1] - ci["lsd_ratio_ci"][0] < 0.05
    assert ci["pitch_ci"][0] < pitch < ci["pitch_ci"][1]
    flat = passage_bootstrap(np.full((2, 5), 8.0), np.full((2, 5), 16.0), np.full((2, 3), 9), np.full((2, 3), 10), reps=50)
    assert flat["lsd_ratio_ci"] == pytest.approx([0.5, 0.5]) and flat["pitch_ci"] == pytest.approx([0.9, 0.9])
    none = passage_bootstrap(lsd_m, lsd_c, np.zeros((12, 0)), np.zeros((12, 0)), reps=10)
    assert none["pitch_ci"] == [None, None]


def test_mlp_probe_reads_what_the_linear_probe_cannot() -> None:
    """Classes set by the sign of x0 * x1 (XOR): equal class means, so a linear probe stays at
    chance, while the MLP reader finds them."""
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, (200, 2))
    labels = (x[:, 0] * x[:, 1] > 0).astype(int)
    lin = probe_accuracy(x, labels, seed=0, repeats=2)
    mlp = probe_accuracy(x, labels, seed=0, repeats=2, kind="mlp")
    assert lin["accuracy"] < 0.7 and mlp["accuracy"] > 0.85 and mlp["kind"] == "mlp"
    with pytest.raises(ValueError, match="linear' or 'mlp"):
        probe_accuracy(x, labels, kind="svm")


def test_grouped_probe_does_not_reward_codes_that_only_know_the_passage() -> None:
    """Paired clips whose codes hold the passage and nothing of the instrument: folds by clip put
    each passage's other renders in training and the probe answers "another instrument" (below
    chance); folds by passage give chance."""
    rng = np.random.default_rng(3)
    n_pass, k = 40, 4
    passage = rng.standard_normal((n_pass, 24)) * 3
    x = np.repeat(passage, k, axis=0) + 0.1 * rng.standard_normal((n_pass * k, 24))
    labels, groups = paired_labels(n_pass, k)  # passage by passage, the instruments in order
    assert len(labels) == len(groups) == n_pass * k and (labels[k + 2], groups[k + 2]) == (2, 1)
    by_clip = probe_accuracy(x, labels, seed=0, repeats=2)
    by_passage = probe_accuracy(x, labels, seed=0, repeats=2, groups=groups)
    assert by_clip["accuracy"] < 0.15 and not by_clip["grouped"]
    assert abs(by_passage["accuracy"] - 0.25) < 0.12 and by_passage["grouped"]
