"""The log-mel front end and its inversion: shapes, librosa parity, round trips, quality."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from musiclord.audio import (
    MelConfig,
    invert,
    log_denormalize,
    logmel,
    mel_basis,
    mel_power,
    mel_to_linear,
    silence_level,
    spectral_convergence,
)
from musiclord.audio.phase import vocoder_phase
from musiclord.audio.mel import stft
from musiclord.errors import ConfigError

CFG = MelConfig()
SR = CFG.sample_rate
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def harmonic_clip(f0: float, seconds: float = 2.0, seed: int = 0, vibrato: float = 5.0, n_notes: int = 2) -> np.ndarray:
    """A few notes of a harmonic tone with vibrato, decaying partials and sharp onsets."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    out = np.zeros(n)
    bounds = np.linspace(0, n, n_notes + 1).astype(int)
    for i in range(n_notes):
        a, b = bounds[i], bounds[i + 1]
        tt = t[: b - a]
        f = f0 * 2 ** (i * 3 / 12) * (1 + 0.006 * np.sin(2 * np.pi * vibrato * tt))
        phase = 2 * np.pi * np.cumsum(f) / SR
        env = np.minimum(1.0, tt / 0.01) * np.exp(-1.5 * tt)
        note = sum(rng.uniform(0.3, 1.0) / k * np.sin(k * phase + rng.uniform(0, 2 * np.pi)) for k in range(1, 9) if k * f0 < SR / 2.2)
        out[a:b] += env * note
    out += 1e-3 * rng.standard_normal(n)
    return (0.8 * out / np.abs(out).max()).astype(np.float32)


def test_logmel_shapes_batched_and_1d() -> None:
    rng = np.random.default_rng(0)
    for n in (250, 1000, 4321, 32000):
        x = torch.from_numpy(rng.standard_normal((3, n)).astype(np.float32)) * 0.1
        y = logmel(x, CFG)
        assert y.shape == (3, 128, n // 250) and y.dtype == torch.float32
        y1 = logmel(x[1], CFG)
        assert y1.shape == (128, n // 250)
        torch.testing.assert_close(y1, y[1], atol=1e-5, rtol=1e-5)


def test_two_second_clip_is_exactly_128_frames_and_numpy_input() -> None:
    clip = harmonic_clip(220.0)
    assert clip.shape == (CFG.clip_samples,)
    y = logmel(clip, CFG)  # numpy in
    assert y.shape == (128, 128) == (CFG.n_mels, CFG.n_frames)


def test_silence_maps_to_the_floor() -> None:
    y = logmel(torch.zeros(2, 8000), CFG)
    assert torch.allclose(y, torch.full_like(y, silence_level(CFG)))


@pytest.mark.parametrize("f0,seed", [(110.0, 0), (440.0, 1), (1300.0, 2)])
def test_librosa_parity_in_log_domain(f0: float, seed: int) -> None:
    librosa = pytest.importorskip("librosa")
    y = harmonic_clip(f0, seconds=1.0, seed=seed)
    ref = librosa.feature.melspectrogram(y=y, sr=16000, n_fft=2048, hop_length=250, win_length=1000, n_mels=128)
    ref = ref[:, : len(y) // 250]  # the centred STFT's last frame is dropped
    ref_log = (np.log(np.maximum(ref, CFG.log_floor)) - CFG.log_mean) / CFG.log_std
    ours = logmel(y, CFG).numpy()
    assert ours.shape == ref_log.shape
    assert np.abs(ours - ref_log).max() < 1e-3
    np.testing.assert_allclose(mel_basis(CFG).numpy(), librosa.filters.mel(sr=16000, n_fft=2048, n_mels=128), atol=1e-6)


@pytest.mark.parametrize("n_frames", [1, 3, 64, 128, 131])
def test_invert_length_is_exact(n_frames: int) -> None:
    lm = torch.randn(2, 128, n_frames) * 0.5
    out = invert(lm, CFG, n_iter=2, nnls_iter=5)
    assert out.shape == (2, n_frames * CFG.hop_length)
    assert torch.isfinite(out).all()
    assert invert(lm[0], CFG, n_iter=2, nnls_iter=5).shape == (n_frames * CFG.hop_length,)


def test_round_trip_log_mel_is_close() -> None:
    x = torch.from_numpy(np.stack([harmonic_clip(196.0, 1.0, seed=3), harmonic_clip(523.0, 1.0, seed=4)]))
    lm = logmel(x, CFG)
    again = logmel(invert(lm, CFG), CFG)
    err = (again - lm).abs()
    # Normalised units: 0.05 is 0.2 nats (under 1 dB) on average.
    assert err.mean() < 0.05, err.mean()
    assert (err > 0.5).float().mean() < 0.02


def test_spectral_convergence_no_worse_than_librosa() -> None:
    librosa = pytest.importorskip("librosa")
    clips = np.stack([harmonic_clip(f0, seconds=0.75, seed=s) for s, f0 in enumerate((98.0, 330.0, 880.0))])
    x = torch.from_numpy(clips)
    ours = spectral_convergence(invert(logmel(x, CFG), CFG, n_iter=64), x, CFG)
    mel = mel_power(x, CFG).numpy()
    np.random.seed(0)
    theirs = []
    for m in mel:
        # librosa needs the same number of frames as its STFT: repeat the last one, as invert does.
        m = np.concatenate([m, m[:, -1:]], axis=1)
        y = librosa.feature.inverse.mel_to_audio(m, sr=SR, n_fft=2048, hop_length=250, win_length=1000, n_iter=64, length=x.shape[1])
        theirs.append(float(spectral_convergence(torch.from_numpy(y)[None], x[len(theirs) : len(theirs) + 1], CFG)))
    theirs_t = torch.tensor(theirs)
    assert (ours <= theirs_t).all(), (ours, theirs_t)


def test_batched_invert_equals_per_clip() -> None:
    x = torch.from_numpy(np.stack([harmonic_clip(f, seconds=0.25, seed=i) for i, f in enumerate((150.0, 300.0, 600.0))]))
    lm = logmel(x, CFG)
    together = invert(lm, CFG, n_iter=8, nnls_iter=30, chunk=2)
    apart = torch.stack([invert(lm[i], CFG, n_iter=8, nnls_iter=30) for i in range(3)])
    torch.testing.assert_close(together, apart, atol=1e-4, rtol=1e-3)


def test_mel_to_linear_fits_the_mel_and_stays_non_negative() -> None:
    x = torch.from_numpy(harmonic_clip(262.0, seconds=0.5))[None]
    mel = mel_power(x, CFG)
    s = mel_to_linear(mel, CFG, n_iter=100)
    assert (s >= 0).all()
    fit = torch.matmul(mel_basis(CFG), s)
    rel = torch.linalg.vector_norm(fit - mel) / torch.linalg.vector_norm(mel)
    rel_few = torch.linalg.vector_norm(torch.matmul(mel_basis(CFG), mel_to_linear(mel, CFG, n_iter=5)) - mel) / torch.linalg.vector_norm(mel)
    assert rel < 1e-3 and rel < rel_few


def test_vocoder_phase_follows_a_sinusoid() -> None:
    f = 1000.3
    t = torch.arange(16000) / SR
    spec = stft(torch.sin(2 * np.pi * f * t)[None], CFG)  # (1, F, T)
    phase = vocoder_phase(spec.abs(), CFG)
    k = int(round(f * CFG.n_fft / SR))
    true_adv = torch.angle(spec[0, k, 11:-10] * spec[0, k, 10:-11].conj())
    est_adv = phase[0, k, 11:-10] - phase[0, k, 10:-11]
    diff = torch.angle(torch.polar(torch.ones_like(est_adv), est_adv - true_adv))
    assert diff.abs().max() < 0.05


def test_log_normalisation_round_trip() -> None:
    mel = torch.rand(2, 128, 10) + 1e-3
    from musiclord.audio import log_normalize

    torch.testing.assert_close(log_denormalize(log_normalize(mel, CFG), CFG), mel, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "changes",
    [
        {"win_length": 250},  # win_length <= hop
        {"win_length": 100},
        {"win_length": 4096},  # > n_fft
        {"hop_length": 0},
        {"hop_length": 333},  # 32000 is not a multiple
        {"fmin": 9000.0},
        {"fmax": 9000.0},
        {"log_floor": 0.0},
        {"log_std": -1.0},
    ],
)
def test_mel_config_validation(changes: dict) -> None:
    with pytest.raises(ConfigError):
        MelConfig(**changes)


@settings(max_examples=12, deadline=None)
@given(
    n=st.integers(min_value=250, max_value=6000),
    amp=st.sampled_from([0.0, 1e-6, 1e-2, 1.0, 30.0]),
    seed=st.integers(0, 2**16),
)
def test_property_random_waveforms(n: int, amp: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = torch.from_numpy((amp * rng.uniform(-1, 1, n)).astype(np.float32))
    lm = logmel(x, CFG)
    assert lm.shape == (128, n // 250) and torch.isfinite(lm).all()
    out = invert(lm, CFG, n_iter=3, nnls_iter=5)
    assert out.shape == ((n // 250) * 250,) and torch.isfinite(out).all()


@pytest.mark.gpu
@cuda
def test_cuda_logmel_matches_cpu() -> None:
    x = torch.from_numpy(np.stack([harmonic_clip(220.0), harmonic_clip(440.0, seed=1)]))
    torch.testing.assert_close(logmel(x.cuda(), CFG).cpu(), logmel(x, CFG), atol=1e-3, rtol=1e-3)


@pytest.mark.gpu
@cuda
def test_cuda_invert_matches_cpu_quality() -> None:
    x = torch.from_numpy(np.stack([harmonic_clip(220.0), harmonic_clip(440.0, seed=1)]))
    lm = logmel(x, CFG)
    out = invert(lm.cuda(), CFG)
    assert out.is_cuda and out.shape == x.shape
    sc_gpu = spectral_convergence(out.cpu(), x, CFG)
    sc_cpu = spectral_convergence(invert(lm, CFG), x, CFG)
    assert (sc_gpu - sc_cpu).abs().max() < 0.02


def test_banded_filterbank_products_equal_dense() -> None:
    from musiclord.audio.banded import banded_mel

    g = torch.Generator().manual_seed(0)
    y = torch.rand(3, CFG.n_freqs, 7, generator=g)
    r = torch.rand(3, CFG.n_mels, 7, generator=g)
    dense = mel_basis(CFG)
    banded = banded_mel(CFG, "cpu", torch.float32)
    torch.testing.assert_close(banded.forward(y), torch.matmul(dense, y), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(banded.adjoint(r), torch.matmul(dense.t(), r), atol=1e-6, rtol=1e-5)


def test_frame_major_stft_pair_matches_torch() -> None:
    from musiclord.audio.framed import istft_frames, overlap_add_frames, stft_frames

    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 8000, generator=g)
    for n_fft in (2048, 1024):
        cfg = CFG.replace(n_fft=n_fft)
        spec = stft_frames(x, cfg)  # (B, T+1, F)
        torch.testing.assert_close(spec, stft(x, cfg).transpose(1, 2), atol=1e-4, rtol=1e-4)
        ref = torch.istft(spec.transpose(1, 2), n_fft, CFG.hop_length, CFG.win_length, torch.hann_window(CFG.win_length),
                          center=True, length=8000)
        torch.testing.assert_close(istft_frames(spec, cfg, 8000), ref, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(istft_frames(spec, cfg, 8000), x, atol=1e-5, rtol=1e-4)
    frames = torch.randn(2, 9, 1000, generator=g)
    folded = torch.nn.functional.fold(frames.transpose(1, 2), output_size=(1, 8 * 250 + 1000), kernel_size=(1, 1000),
                                      stride=(1, 250))[:, 0, 0]
    torch.testing.assert_close(overlap_add_frames(frames, 250), folded, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(overlap_add_frames(frames[..., :900], 250),  # window not a multiple of the hop
                               torch.nn.functional.fold(frames[..., :900].transpose(1, 2), output_size=(1, 8 * 250 + 900),
                                                        kernel_size=(1, 900), stride=(1, 250))[:, 0, 0], atol=1e-5, rtol=1e-5)


def test_phase_retrieval_on_the_smaller_fft() -> None:
    from musiclord.audio.banded import interpolation, inversion_basis
    from musiclord.audio.griffinlim import phase_fft_size

    assert phase_fft_size(CFG) == 1024  # the 1000-sample window fits in 1024 points, not in 512
    assert phase_fft_size(CFG.replace(win_length=2048)) == 2048
    x = torch.from_numpy(np.stack([harmonic_clip(196.0, 1.0, seed=3), harmonic_clip(659.0, 1.0, seed=5)]))
    # its magnitudes are exactly every other bin of the analysis STFT
    small = stft(x, CFG.replace(n_fft=1024)).abs()
    torch.testing.assert_close(small, stft(x, CFG).abs()[:, ::2], atol=1e-3, rtol=1e-4)
    u = interpolation(1025, 513)
    torch.testing.assert_close(u.sum(1), torch.ones(1025, dtype=u.dtype))
    torch.testing.assert_close(inversion_basis(CFG, 2048), mel_basis(CFG))
    # the mel seen through the interpolated basis is close to the true mel
    p = small.square()
    true_mel = torch.matmul(mel_basis(CFG), stft(x, CFG).abs().square())
    err = torch.linalg.vector_norm(torch.matmul(inversion_basis(CFG, 1024), p) - true_mel) / torch.linalg.vector_norm(true_mel)
    assert err < 0.1, err
    lm = logmel(x, CFG)
    sc_small = spectral_convergence(invert(lm, CFG, n_iter=32), x, CFG)
    sc_full = spectral_convergence(invert(lm, CFG, n_iter=32, n_fft=2048), x, CFG)
    assert (sc_small < sc_full + 0.03).all(), (sc_small, sc_full)
    with pytest.raises(ValueError):
        invert(lm, CFG, n_fft=512)  # the window does not fit


def test_buffered_projection_equals_the_stft_pair() -> None:
    from musiclord.audio.framed import FramedProjection, istft_frames, stft_frames

    cfg = CFG.replace(n_fft=1024)
    g = torch.Generator().manual_seed(1)
    spec = stft_frames(torch.randn(2, 40 * 250, generator=g), cfg) * 0.5  # (2, 41, 513), then perturbed
    spec = spec + 0.1 * torch.randn(spec.shape, dtype=spec.dtype, generator=g)
    proj = FramedProjection(cfg, 2, 41, 40 * 250, "cpu")
    for _ in range(2):  # buffers are reused: a second call gives the same answer
        torch.testing.assert_close(proj.project(spec), stft_frames(istft_frames(spec, cfg, 40 * 250), cfg), atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError):
        FramedProjection(cfg, 2, 41, 39 * 250, "cpu")


def test_refining_every_other_iteration_keeps_the_quality() -> None:
    # refine_every=2 (the default) skips half the mel refinements; it must stay within a few %
    # of refining on every iteration, and skipping every refinement but the last must be worse
    x = torch.from_numpy(np.stack([harmonic_clip(f0, seconds=0.75, seed=s) for s, f0 in enumerate((110.0, 440.0))]))
    lm = logmel(x, CFG)
    sc = {k: float(spectral_convergence(invert(lm, CFG, n_iter=32, refine_every=k), x, CFG).mean()) for k in (1, 2, 32)}
    assert sc[2] < 1.1 * sc[1], sc
    assert sc[1] < sc[32] and sc[2] < sc[32], sc
    with pytest.raises(ValueError, match="refine_every"):
        invert(lm, CFG, n_iter=4, refine_every=0)
