"""Inversion's elementwise work, one pass over memory per step: numba kernels on a CPU, torch elsewhere.

Per iteration Griffin-Lim does two FFTs and a chain of elementwise steps. In torch each step is
a kernel of its own that reads and writes whole spectrograms (a 10 s block's is 2.6 MB), and in
the loop the CPU waits on memory: every step took 1.5-3x longer there than alone. Here each step
is one loop over the frames that reads its inputs once:

- `next_spectrum`: S = mag * A / |A|, A = rebuilt - beta * prev (fast Griffin-Lim's momentum and
  the projection onto the magnitude; seven torch passes);
- `analysis_frames`: inverse-FFT frames -> windowed analysis frames of the signal they
  overlap-add to (windows, overlap-add, envelope; five torch passes);
- `MelRefiner`: the multiplicative update of the magnitude towards the target mel, per frame
  (power, band sums, ratio, transpose, magnitude; each bin lies under at most two filters);
- `nnls_frames`: the mel -> linear FISTA of `griffinlim.mel_to_linear`, per frame.

The kernels split the frames over as many threads as torch uses (numba's threading layer:
OpenMP where the machine has it, else its own work queue), one kernel at a time. Loading them costs 0.5-1 s once per
process (`warm_up`; the translator pays it when it loads, not in the first file). Each has a
torch path with the same result, used on a GPU, for other dtypes, where numba is missing or
MUSICLORD_NUMBA=0, and in the tests as the reference. Figures: docs/benchmarks.md (session 6).
"""

from __future__ import annotations

import functools
import os
import threading

import numpy as np
import torch

from musiclord.audio.banded import banded_mel, filter_mass, inversion_basis, scaled_inversion_basis
from musiclord.audio.mel import MelConfig

try:  # numba is a dependency; its absence only costs speed
    import numba
except ImportError:  # pragma: no cover
    numba = None

EPS2 = 1e-32  # (1e-16)^2 added to |A|^2: a zero bin stays zero instead of dividing by zero


def use_numba(device: torch.device | str, dtype: torch.dtype = torch.float32) -> bool:
    """Whether the numba kernels serve tensors of this device and dtype: CPU float32 (or
    complex64), numba importable, and not switched off with MUSICLORD_NUMBA=0."""
    return (numba is not None and torch.device(device).type == "cpu" and dtype in (torch.float32, torch.complex64)
            and os.environ.get("MUSICLORD_NUMBA", "1") != "0")


if numba is not None:
    # parallel=True: numba vectorised these loops (AVX) only in its parallel-loop lowering; as
    # plain loops they ran 4x slower, even on one thread.
    def _jit(fn=None, fastmath=False):
        options = dict(parallel=True, nogil=True, cache=True, fastmath=fastmath)
        return numba.njit(**options)(fn) if fn is not None else numba.njit(**options)

    @_jit
    def _next_spectrum_rows(r, p, mag, beta, out):  # pragma: no cover - compiled
        eps = np.float32(EPS2)
        for i in numba.prange(r.shape[0]):
            for k in range(r.shape[1]):
                z = r[i, k] - beta * p[i, k]
                out[i, k] = z * (mag[i, k] / np.sqrt(z.real * z.real + z.imag * z.imag + eps))

    # The band sums may be reassociated (so they vectorise); NaN and inf keep their IEEE meaning.
    _REASSOC = {"reassoc", "contract"}

    @_jit(fastmath=_REASSOC)
    def _refine_rows(x, mel, lo, hi, off, wts, inv_mass, out):  # pragma: no cover - compiled
        # x (R, F) complex, mel (R, M) target, out (R, F): per frame, power -> its mel (band
        # sums) -> ratio to the target -> back through the filterbank's transpose -> magnitude.
        n_freqs = x.shape[1]
        for i in numba.prange(x.shape[0]):
            power = np.empty(n_freqs, np.float32)
            back = np.zeros(n_freqs, np.float32)
            xi, oi = x[i], out[i]
            for k in range(n_freqs):
                power[k] = xi[k].real * xi[k].real + xi[k].imag * xi[k].imag
            for m in range(mel.shape[1]):
                w, p, acc = wts[off[m]: off[m + 1]], power[lo[m]: hi[m]], back[lo[m]: hi[m]]
                s = np.float32(0.0)
                for k in range(w.shape[0]):
                    s += w[k] * p[k]
                r = mel[i, m] / max(s, np.float32(1e-12))
                for k in range(w.shape[0]):
                    acc[k] += w[k] * r
            for k in range(n_freqs):
                oi[k] = np.sqrt(back[k] * power[k] * inv_mass[k])

    @_jit(fastmath=_REASSOC)
    def _nnls_rows(mel, lo, hi, off, wts, wts_scaled, norms, inv_mass, step, weights, out):  # pragma: no cover
        # FISTA for min ||A u - mel||, u >= 0, one frame per row: A = filterbank / norms (unit
        # columns), started from the transpose spread over each bin's mass; out = u / norms.
        n_freqs = out.shape[1]
        for i in numba.prange(mel.shape[0]):
            x = np.zeros(n_freqs, np.float32)
            y = np.empty(n_freqs, np.float32)
            g = np.empty(n_freqs, np.float32)
            for m in range(mel.shape[1]):
                w, acc = wts[off[m]: off[m + 1]], x[lo[m]: hi[m]]
                for k in range(w.shape[0]):
                    acc[k] += w[k] * mel[i, m]
            for k in range(n_freqs):
                x[k] *= inv_mass[k] * norms[k]
                y[k] = x[k]
            for it in range(weights.shape[0]):
                g[:] = 0.0
                for m in range(mel.shape[1]):
                    w, yy, gg = wts_scaled[off[m]: off[m + 1]], y[lo[m]: hi[m]], g[lo[m]: hi[m]]
                    r = np.float32(0.0)
                    for k in range(w.shape[0]):
                        r += w[k] * yy[k]
                    r -= mel[i, m]
                    for k in range(w.shape[0]):
                        gg[k] += w[k] * r
                c = weights[it]
                for k in range(n_freqs):
                    xn = max(y[k] - step * g[k], np.float32(0.0))
                    y[k] = x[k] + c * (xn - x[k])
                    x[k] = xn
            for k in range(n_freqs):
                out[i, k] = x[k] / norms[k]

    @_jit
    def _analysis_rows(frames, window, inv_env, n_frames, n_fft, hop, lead, start, length, out):  # pragma: no cover
        # frames, out: flat (B * T * n_fft,). Output frame t's window region [lead, lead + win) is
        # window * inv_env * sum over the frames u = t - d that overlap it of frames_u * window;
        # the inner loops run over 1-D slices from index 0, which numba vectorises.
        win = window.shape[0]
        k = (win + hop - 1) // hop
        for j in numba.prange(frames.shape[0] // n_fft):
            t = j % n_frames
            o = out[j * n_fft + lead: j * n_fft + lead + win]
            for n in range(win):
                o[n] = 0.0
            for d in range(1 - k, k):
                if t - d < 0 or t - d >= n_frames:
                    continue
                lo, hi = max(0, -d * hop), min(win, win - d * hop)
                base = (j - d) * n_fft + lead + d * hop
                f, w, oo = frames[base + lo: base + hi], window[d * hop + lo: d * hop + hi], o[lo:hi]
                for n in range(hi - lo):
                    oo[n] += f[n] * w[n]
            lo, hi = min(win, max(0, start - t * hop)), max(0, min(win, length + start - t * hop))
            hi = max(lo, hi)
            for n in range(lo):
                o[n] = 0.0
            for n in range(win - hi):
                o[hi + n] = 0.0
            e, w, oo = inv_env[t * hop - start + lo: t * hop - start + hi], window[lo:hi], o[lo:hi]
            for n in range(hi - lo):
                oo[n] *= w[n] * e[n]


_lock = threading.Lock()


def _launch(kernel, *args) -> None:
    """Run a kernel on as many threads as torch uses (at most the ones numba started with), one
    kernel at a time: numba's work-queue threading layer (its fallback where no OpenMP runtime is
    found) aborts the process when two Python threads enter it at once."""
    with _lock:
        numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))
        kernel(*args)


def _rows(x: torch.Tensor) -> np.ndarray:
    """A contiguous (..., F) tensor as a (rows, F) numpy view (no copy)."""
    return x.detach().numpy().reshape(-1, x.shape[-1])


def next_spectrum(rebuilt: torch.Tensor, prev: torch.Tensor, magnitude: torch.Tensor, beta: float,
                  out: torch.Tensor) -> torch.Tensor:
    """out = magnitude * A / |A|, A = rebuilt - beta * prev.

    Args:
        rebuilt, prev: (B, T, F) complex, contiguous.
        magnitude: (B, T, F) real.
        beta: momentum (0 keeps the phase of `rebuilt`).
        out: (B, T, F) complex buffer, distinct from the inputs.

    Returns:
        out.
    """
    if use_numba(rebuilt.device, rebuilt.dtype):
        _launch(_next_spectrum_rows, _rows(rebuilt), _rows(prev), _rows(magnitude), np.float32(beta), _rows(out))
        return out
    a = torch.sub(rebuilt, prev, alpha=beta, out=out)
    re, im = torch.view_as_real(a).unbind(-1)
    scale = torch.addcmul(re.square(), im, im).add_(EPS2).rsqrt_().mul_(magnitude)
    return a.mul_(scale)


def analysis_frames(frames: torch.Tensor, window: torch.Tensor, inv_env: torch.Tensor, hop: int, length: int,
                    out: torch.Tensor) -> None:
    """The windowed analysis frames of the signal that frames overlap-add to, in one pass (numba).

    Equal to `FramedProjection`'s torch path: window the inverse FFTs' frames, overlap-add them,
    divide by the window-square envelope, cut out every frame again and window it.

    Args:
        frames: (B, T, n_fft) real inverse FFTs, contiguous.
        window: (win,) the window, centred in n_fft.
        inv_env: (length,) 1 / the overlap-added squared window.
        length: samples of the signal.
        out: (B, T, n_fft) real, zero outside each frame's window (only the window is written).
    """
    _, t, n_fft = frames.shape
    lead = (n_fft - window.shape[0]) // 2
    _launch(_analysis_rows, frames.numpy().reshape(-1), window.numpy(), inv_env.numpy(), t, n_fft, hop, lead,
            n_fft // 2 - lead, length, out.numpy().reshape(-1))


def warm_up() -> None:
    """Load the kernels now (0.5-1 s from numba's cache; about 12 s the first time on a machine,
    compiling them into it) instead of inside the first inversion. A no-op where numba is not used."""
    if not use_numba("cpu"):
        return
    x = torch.ones(1, 2, 3, dtype=torch.complex64)
    mag = torch.ones(1, 2, 3)
    next_spectrum(x, x, mag, 0.5, out=torch.empty_like(x))
    analysis_frames(torch.ones(1, 2, 4), torch.ones(2), torch.ones(1), 1, 1, out=torch.zeros(1, 2, 4))
    spec, cfg = torch.ones(1, 2, 513, dtype=torch.complex64), MelConfig()
    MelRefiner(cfg, 1024, torch.ones(1, cfg.n_mels, 2))(spec, out=torch.empty(1, 2, 513))
    nnls_frames(torch.ones(1, cfg.n_mels, 2), cfg, 1024, [1.0], 0.5)


@functools.lru_cache(maxsize=8)
def _band_rows(cfg: MelConfig, n_fft: int) -> tuple[np.ndarray, ...]:
    """The filterbank seen from an n_fft STFT as rows of contiguous bands: lo, hi (M,), offsets
    (M + 1,) into the concatenated weights."""
    basis = inversion_basis(cfg, n_fft).numpy()  # (M, F)
    lo, hi, wts = [], [], []
    for row in basis:
        nz = np.flatnonzero(row)
        a, b = (int(nz[0]), int(nz[-1]) + 1) if nz.size else (0, 0)
        lo.append(a), hi.append(b), wts.append(row[a:b])
    off = np.concatenate([[0], np.cumsum([len(w) for w in wts])]).astype(np.int64)
    return np.array(lo, np.int64), np.array(hi, np.int64), off, np.concatenate(wts).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _nnls_tables(cfg: MelConfig, n_fft: int) -> tuple[np.ndarray, ...]:
    """The band weights of `scaled_inversion_basis` (unit-norm columns), the norms, 1 / the
    columns' mass."""
    lo, hi, _, _ = _band_rows(cfg, n_fft)
    scaled, norms, _ = scaled_inversion_basis(cfg, n_fft)
    bands = np.concatenate([scaled[m, lo[m]: hi[m]].numpy() for m in range(len(lo))])
    inv_mass = filter_mass(cfg, n_fft).reciprocal()
    return bands.astype(np.float32), norms.numpy(), inv_mass.numpy()


class MelRefiner:
    """One multiplicative (KL) update of a magnitude towards a target mel, as Griffin-Lim's mel
    refinement does it: |X| <- sqrt(M^T (mel / M |X|^2) * |X|^2 / mass), M the filterbank seen from
    the STFT (`inversion_basis`), mass its column sums.

    On a CPU one numba pass per frame does it all (each bin lies under at most two filters, so the
    band sums are short); elsewhere the banded filterbank products in torch.

    Args:
        cfg: the mel representation.
        n_fft: the STFT the magnitudes belong to.
        mel: (B, n_mels, T) target mel power.
    """

    def __init__(self, cfg: MelConfig, n_fft: int, mel: torch.Tensor) -> None:
        self.inv_mass = filter_mass(cfg, n_fft, mel.device, mel.dtype).reciprocal()  # (F,)
        self.numba = use_numba(mel.device, mel.dtype)
        if self.numba:
            self.rows = _band_rows(cfg, n_fft)
            self.mel = mel.transpose(1, 2).contiguous()  # (B, T, M), frame-major as the spectra
        else:
            self.banded, self.mel = banded_mel(cfg, mel.device, mel.dtype, n_fft=n_fft), mel

    def __call__(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """x: (B, T, F) complex spectrum; out: (B, T, F) real, the refined magnitude."""
        if self.numba:
            _launch(_refine_rows, _rows(x), _rows(self.mel), *self.rows, self.inv_mass.numpy(), _rows(out))
            return out
        re, im = torch.view_as_real(x).unbind(-1)
        power = torch.addcmul(re.square(), im, im)  # (B, T, F)
        ratio = self.mel / self.banded.forward(power.transpose(1, 2).contiguous()).clamp_(min=1e-12)  # (B, M, T)
        return torch.mul(self.banded.adjoint(ratio).transpose(1, 2), power, out=out).mul_(self.inv_mass).sqrt_()


def nnls_frames(mel: torch.Tensor, cfg: MelConfig, n_fft: int, weights: list[float], step: float) -> torch.Tensor:
    """`griffinlim.mel_to_linear`'s FISTA, one numba pass per frame (CPU float32 only).

    Args:
        mel: (B, n_mels, T) mel power, scaled to a peak of about 1.
        weights: FISTA's extrapolation weight of each iteration (the same for every frame).
        step: 1 / the Lipschitz constant of the column-normalised filterbank.

    Returns:
        (B, n_fft // 2 + 1, T) linear power.
    """
    b, _, n = mel.shape
    frames = mel.transpose(1, 2).contiguous()  # (B, T, M)
    out = torch.empty(b, n, n_fft // 2 + 1)
    _launch(_nnls_rows, _rows(frames), *_band_rows(cfg, n_fft), *_nnls_tables(cfg, n_fft), np.float32(step),
            np.array(weights, np.float32), _rows(out))
    return out.transpose(1, 2)
