"""Griffin-Lim's elementwise steps, each one pass over memory: numba kernels on a CPU, torch elsewhere.

Per iteration Griffin-Lim does two FFTs and a chain of elementwise steps. In torch each step is
a kernel of its own that reads and writes whole spectrograms (a 10 s block's is 2.6 MB), so the
chain that turns the rebuilt spectrum into the next one (momentum, |.|, 1/|.|, times the
magnitude) is seven passes, two of them strided over the real and imaginary parts, and the mel
refinement adds a transposed copy and four more. On a 2-core CPU those passes took as long as
the FFTs. Here each step is one loop over the frames that reads its inputs once:

- `next_spectrum`: S = mag * A / |A| with A = rebuilt - beta * prev (fast Griffin-Lim's
  momentum step and the projection onto the target magnitude);
- `power_bins_major`: |X|^2 written bins-major, the layout the banded filterbank reads;
- `refined_magnitude`: sqrt(adjoint(ratio) * |X|^2 / mass), back to frame-major.

The numba kernels split the frames over as many threads as torch uses (numba's threading layer:
OpenMP where the machine has it, else its own work queue, which must not be entered from two
Python threads at once; musiclord inverts from one thread). Loading them costs about 1 s once per
process (`warm_up`; the translator pays it when it loads, not in the first file). Each kernel
has a torch twin with the same result, used on a GPU (where the chain is a few launches), for
other dtypes, where numba is missing or MUSICLORD_NUMBA=0, and in the tests as the reference.
On a 10 s block (2 CPU threads) the three steps take 0.28, 0.24 and 0.39 ms against 1.26, 0.67
and 1.03 ms in torch; `invert` as a whole got about 25% faster (docs/benchmarks.md).
"""

from __future__ import annotations

import os

import numpy as np
import torch

try:  # numba is a dependency; its absence only costs speed
    import numba
except ImportError:  # pragma: no cover
    numba = None

EPS2 = 1e-32  # (1e-16)^2 added to |A|^2: a zero bin stays zero instead of dividing by zero


def use_numba(x: torch.Tensor) -> bool:
    """Whether the numba kernels serve x: a CPU complex64 tensor, numba importable, and not
    switched off with MUSICLORD_NUMBA=0."""
    return (numba is not None and x.device.type == "cpu" and x.dtype == torch.complex64
            and os.environ.get("MUSICLORD_NUMBA", "1") != "0")


if numba is not None:
    # parallel=True even where one thread runs: the parallel-loop lowering vectorises these loops
    # (AVX), a plain loop of numba's does not (it checks each index for wraparound): 4x faster.
    _jit = numba.njit(parallel=True, nogil=True, cache=True, fastmath=False)

    @_jit
    def _next_spectrum_rows(r, p, mag, beta, out):  # pragma: no cover - compiled
        eps = np.float32(EPS2)
        for i in numba.prange(r.shape[0]):
            for k in range(r.shape[1]):
                z = r[i, k] - beta * p[i, k]
                out[i, k] = z * (mag[i, k] / np.sqrt(z.real * z.real + z.imag * z.imag + eps))

    @_jit
    def _power_rows(x, out):  # pragma: no cover - compiled
        n_frames = out.shape[2]
        for i in numba.prange(x.shape[0]):
            b, t = i // n_frames, i % n_frames
            for k in range(x.shape[1]):
                z = x[i, k]
                out[b, k, t] = z.real * z.real + z.imag * z.imag

    @_jit
    def _magnitude_rows(adj, x, inv_mass, out):  # pragma: no cover - compiled
        n_frames = adj.shape[2]
        for i in numba.prange(x.shape[0]):
            b, t = i // n_frames, i % n_frames
            for k in range(x.shape[1]):
                z = x[i, k]
                out[i, k] = np.sqrt(adj[b, k, t] * (z.real * z.real + z.imag * z.imag) * inv_mass[k])


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


def _threads() -> None:
    """Give numba as many threads as torch uses (at most the ones it started with)."""
    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))


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
    if use_numba(rebuilt):
        _threads()
        _next_spectrum_rows(_rows(rebuilt), _rows(prev), _rows(magnitude), np.float32(beta), _rows(out))
        return out
    a = torch.sub(rebuilt, prev, alpha=beta, out=out)
    re, im = torch.view_as_real(a).unbind(-1)
    scale = torch.addcmul(re.square(), im, im).add_(EPS2).rsqrt_().mul_(magnitude)
    return a.mul_(scale)


def power_bins_major(x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """out = |x|^2 transposed: (B, T, F) complex -> (B, F, T) real, written into `out`."""
    if use_numba(x):
        _threads()
        _power_rows(_rows(x), out.numpy())
        return out
    re, im = torch.view_as_real(x).unbind(-1)
    return out.copy_(torch.addcmul(re.square(), im, im).transpose(1, 2))


def refined_magnitude(adjoint: torch.Tensor, x: torch.Tensor, inv_mass: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """out = sqrt(adjoint^T * |x|^2 * inv_mass): the magnitude after one multiplicative update.

    Args:
        adjoint: (B, F, T) real, the filterbank's adjoint applied to target mel / current mel.
        x: (B, T, F) complex, the current spectrum.
        inv_mass: (F,) 1 / each bin's filter mass.
        out: (B, T, F) real.
    """
    if use_numba(x):
        _threads()
        _magnitude_rows(adjoint.contiguous().numpy(), _rows(x), inv_mass.numpy(), _rows(out))
        return out
    re, im = torch.view_as_real(x).unbind(-1)
    power = torch.addcmul(re.square(), im, im)
    return torch.mul(adjoint.transpose(1, 2), power, out=out).mul_(inv_mass).sqrt_()


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
    _threads()
    b, t, n_fft = frames.shape
    lead = (n_fft - window.shape[0]) // 2
    _analysis_rows(frames.numpy().reshape(-1), window.numpy(), inv_env.numpy(), t, n_fft, hop, lead, n_fft // 2 - lead,
                   length, out.numpy().reshape(-1))


def warm_up() -> None:
    """Load the kernels now (from numba's cache, or compile them: about 1 s, or 3 s the first time
    on a machine) instead of inside the first inversion. A no-op where numba is not used."""
    x = torch.ones(1, 2, 3, dtype=torch.complex64)
    if not use_numba(x):
        return
    mag, power_t = torch.ones(1, 2, 3), torch.empty(1, 3, 2)
    next_spectrum(x, x, mag, 0.5, out=torch.empty_like(x))
    analysis_frames(torch.ones(1, 2, 4), torch.ones(2), torch.ones(1), 1, 1, out=torch.zeros(1, 2, 4))
    refined_magnitude(power_bins_major(x, out=power_t), x, torch.ones(3), out=mag)
