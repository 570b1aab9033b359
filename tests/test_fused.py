"""The fused Griffin-Lim steps: numba kernels against their torch twins, and the whole inversion
through either path."""

import pytest
import torch

from musiclord.audio import MelConfig, griffin_lim, invert, logmel
from musiclord.audio import fused

needs_numba = pytest.mark.skipif(fused.numba is None, reason="numba not installed")


def _spectra(seed: int = 0, shape: tuple[int, int, int] = (2, 7, 9)) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    rebuilt = torch.randn(*shape, dtype=torch.complex64, generator=g)
    prev = torch.randn(*shape, dtype=torch.complex64, generator=g)
    rebuilt[0, 0, :3] = 0  # zero bins must stay zero, not NaN
    prev[0, 0, :3] = 0
    magnitude = torch.rand(*shape, generator=g)
    return rebuilt, prev, magnitude


def _both(monkeypatch, fn):
    """fn() through the numba kernels and through torch."""
    monkeypatch.setenv("MUSICLORD_NUMBA", "1")
    a = fn()
    monkeypatch.setenv("MUSICLORD_NUMBA", "0")
    b = fn()
    return a, b


def test_torch_twin_is_the_definition(monkeypatch):
    rebuilt, prev, magnitude = _spectra()
    a = rebuilt - 0.4 * prev
    expected = torch.where(a.abs() > 0, magnitude * a / a.abs().clamp(min=1e-30), torch.zeros_like(a))
    monkeypatch.setenv("MUSICLORD_NUMBA", "0")
    got = fused.next_spectrum(rebuilt, prev, magnitude, 0.4, out=torch.empty_like(rebuilt))
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)


@needs_numba
def test_next_spectrum_numba_matches_torch(monkeypatch):
    rebuilt, prev, magnitude = _spectra()
    a, b = _both(monkeypatch, lambda: fused.next_spectrum(rebuilt, prev, magnitude, 0.497, out=torch.empty_like(rebuilt)))
    assert torch.isfinite(torch.view_as_real(a)).all()
    assert (a[0, 0, :3] == 0).all()
    torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


@needs_numba
@pytest.mark.parametrize("n_fft", [1024, 2048])
def test_mel_refiner_numba_matches_torch_and_definition(monkeypatch, n_fft):
    """One KL update of the magnitude towards a mel, per frame in numba, against the banded
    torch path and the dense formula."""
    from musiclord.audio.banded import inversion_basis

    cfg = MelConfig()
    f = n_fft // 2 + 1
    x, _, _ = _spectra(1, (2, 6, f))
    mel = torch.rand(2, cfg.n_mels, 6, generator=torch.Generator().manual_seed(2)) + 0.1
    a, b = _both(monkeypatch, lambda: fused.MelRefiner(cfg, n_fft, mel)(x, out=torch.empty(2, 6, f)))
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    basis = inversion_basis(cfg, n_fft)  # (M, F)
    power = x.abs().square()  # (B, T, F)
    ratio = mel.transpose(1, 2) / (power @ basis.t()).clamp(min=1e-12)  # (B, T, M)
    dense = ((ratio @ basis) * power / basis.sum(0).clamp(min=1e-8)).sqrt()
    torch.testing.assert_close(a, dense, atol=1e-5, rtol=1e-3)


def test_use_numba_only_for_cpu_float32(monkeypatch):
    monkeypatch.setenv("MUSICLORD_NUMBA", "1")
    assert not fused.use_numba("cpu", torch.complex128) and not fused.use_numba("cpu", torch.float64)
    assert fused.use_numba("cpu", torch.float32) == (fused.numba is not None)
    monkeypatch.setenv("MUSICLORD_NUMBA", "0")
    assert not fused.use_numba("cpu", torch.complex64)
    fused.warm_up()  # a no-op when switched off, and must not fail either way


@needs_numba
def test_invert_same_through_both_paths(monkeypatch):
    """The whole inversion (1024-point phase retrieval, mel refinement, 2048-point polish) gives
    the same waveform with and without the kernels."""
    cfg = MelConfig()
    t = torch.arange(2 * cfg.sample_rate) / cfg.sample_rate
    x = (torch.sin(2 * torch.pi * 220 * t) + 0.5 * torch.sin(2 * torch.pi * 440 * t))[None] * torch.exp(-t)
    lm = logmel(x, cfg)
    a, b = _both(monkeypatch, lambda: invert(lm, cfg, n_iter=12, polish=4))
    assert a.shape == b.shape == (1, lm.shape[-1] * cfg.hop_length)
    torch.testing.assert_close(a, b, atol=2e-4, rtol=1e-3)  # float rounding, carried through 16 iterations


def test_griffin_lim_complex_init_is_its_phase():
    """A complex start spectrum and its angle as the initial phase give the same result."""
    cfg = MelConfig(n_fft=512, win_length=400, hop_length=100)
    g = torch.Generator().manual_seed(3)
    spec = torch.randn(1, 257, 21, dtype=torch.complex64, generator=g)
    mag = spec.abs()
    a = griffin_lim(mag, cfg, 2000, n_iter=5, init=spec * 3.0)
    b = griffin_lim(mag, cfg, 2000, n_iter=5, init=spec.angle())
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


@needs_numba
def test_projection_analysis_frames_match_torch(monkeypatch):
    """stft(istft(.)) through `analysis_frames` equals the torch overlap-add path, edges included,
    for two clips at once."""
    from musiclord.audio.framed import FramedProjection

    cfg = MelConfig().replace(n_fft=1024)
    g = torch.Generator().manual_seed(5)
    spec = torch.randn(2, 13, 513, dtype=torch.complex64, generator=g)
    a, b = _both(monkeypatch, lambda: FramedProjection(cfg, 2, 13, 12 * cfg.hop_length, "cpu").project(spec))
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    assert a.abs().amax() > 1.0  # not trivially zero


@needs_numba
@pytest.mark.parametrize("n_fft", [1024, 2048])
def test_nnls_numba_matches_torch(monkeypatch, n_fft):
    from musiclord.audio import mel_to_linear

    cfg = MelConfig()
    g = torch.Generator().manual_seed(4)
    mel = torch.rand(2, cfg.n_mels, 9, generator=g) ** 4 * 30.0  # peaky, two clips of different scale
    mel[1] *= 1e-3
    a, b = _both(monkeypatch, lambda: mel_to_linear(mel, cfg, n_iter=25, n_fft=n_fft))
    assert a.shape == b.shape == (2, n_fft // 2 + 1, 9) and (a >= 0).all()
    torch.testing.assert_close(a, b, atol=1e-6 * float(b.abs().max()), rtol=1e-4)


def test_invert_from_two_threads_at_once():
    """Kernels entered from two Python threads at once (one at a time inside) give what one
    thread gives."""
    from concurrent.futures import ThreadPoolExecutor

    cfg = MelConfig()
    t = torch.arange(cfg.sample_rate) / cfg.sample_rate
    clips = [logmel(torch.sin(2 * torch.pi * f * t)[None], cfg) for f in (196.0, 330.0)]
    alone = [invert(c, cfg, n_iter=6, polish=2) for c in clips]
    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(lambda c: invert(c, cfg, n_iter=6, polish=2), clips))
    for a, b in zip(alone, together):
        torch.testing.assert_close(a, b)
