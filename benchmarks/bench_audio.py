"""Audio front end: log-mel extraction and Griffin-Lim inversion against librosa (issue 8, 1-2).

Iterations 8, 16, 32 and 64 (8 added to find where `invert` meets librosa-at-64 quality).

Clips: the loudest 2 s of real recordings in /work/shared/data/real-clips (or MUSICLORD_REAL_CLIPS),
peak-normalised; synthetic harmonic tones when that folder is missing. Spectral convergence (SC)
is always against the true linear magnitude of the original clip.

With `device="cuda"` musiclord's rows run on the GPU (librosa's stay on the CPU, at the top
iteration count only) and a batched row shows throughput when a GPU is given many clips at once.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import markdown_table, timed_call, timeit
from musiclord.audio import MelConfig, griffin_lim, invert, list_audio, load_audio, logmel, mel_power, spectral_convergence
from musiclord.audio.mel import stft

log = logging.getLogger(__name__)

CFG = MelConfig()
CLIPS_DIR = Path(os.environ.get("MUSICLORD_REAL_CLIPS", "/work/shared/data/real-clips"))
# One or two per instrument family, including the ones Griffin-Lim finds hardest (oboe, low bass).
INVERT_CLIPS = (
    "cello_phrase_smstools.wav",
    "clarinet_phrase_fs328734.wav",
    "contrabass_A2_tinysol.wav",
    "flute_A4_smstools.wav",
    "oboe_A4_smstools.wav",
    "piano_C4_salamander.ogg",
    "trumpet_A4_smstools.wav",
    "violin_B3_smstools.wav",
)
ITERS = (8, 16, 32, 64)
GPU_BATCH = 256  # clips per call in the GPU throughput rows


def loudest_clip(x: np.ndarray, n: int, step: int = 4000) -> np.ndarray:
    """The n-sample window of x with the most energy (on a `step` grid), peak-normalised to 0.9."""
    if len(x) < n:
        x = np.pad(x, (0, n - len(x)))
    energy = np.cumsum(np.concatenate([[0.0], x.astype(np.float64) ** 2]))
    starts = np.arange(0, len(x) - n + 1, step)
    s = int(starts[np.argmax(energy[starts + n] - energy[starts])])
    c = x[s : s + n]
    return (0.9 * c / max(float(np.abs(c).max()), 1e-9)).astype(np.float32)


def synthetic_clips(k: int) -> tuple[list[str], np.ndarray]:
    sr, n = CFG.sample_rate, CFG.clip_samples
    t = np.arange(n) / sr
    clips = []
    for i in range(k):
        f0 = 110.0 * 2 ** (i * 5 / 12)
        f = f0 * (1 + 0.005 * np.sin(2 * np.pi * 5 * t))
        ph = 2 * np.pi * np.cumsum(f) / sr
        x = sum(np.sin(h * ph) / h for h in range(1, 9) if h * f0 < sr / 2.2) * np.exp(-t)
        clips.append((0.9 * x / np.abs(x).max()).astype(np.float32))
    return [f"synthetic_{i}" for i in range(k)], np.stack(clips)


def load_clips() -> tuple[list[str], np.ndarray]:
    """All real clips (names, (K, 32000) float32), or 8 synthetic ones."""
    files = list_audio(CLIPS_DIR) if CLIPS_DIR.is_dir() else []
    if not files:
        log.warning("%s not found: benchmarking synthetic clips", CLIPS_DIR)
        return synthetic_clips(8)
    clips = [loudest_clip(load_audio(f, CFG.sample_rate), CFG.clip_samples) for f in files]
    return [f.name for f in files], np.stack(clips)


def tiled(x: torch.Tensor, n: int) -> torch.Tensor:
    """(K, ...) -> (n, ...) by repeating the K rows."""
    return x.repeat(-(-n // x.shape[0]), *([1] * (x.dim() - 1)))[:n]


def bench_logmel(clips: np.ndarray, device: str = "cpu") -> str:
    import librosa

    x = torch.from_numpy(clips).to(device)
    t_ours = timeit(lambda: logmel(x, CFG), repeat=5, device=device)

    def lib() -> None:
        for c in clips:
            m = librosa.feature.melspectrogram(y=c, sr=16000, n_fft=2048, hop_length=250, win_length=1000, n_mels=128)
            np.log(np.maximum(m[:, :-1], CFG.log_floor))

    t_lib = timeit(lib, repeat=3)
    k = len(clips)
    rows = [
        [f"musiclord `logmel` (one batch of {k}, {device})", f"{k / t_ours:.0f}", f"{1000 * t_ours / k:.2f}",
         f"{t_lib / t_ours:.1f}x"],
        ["librosa `melspectrogram` + log (per clip, cpu)", f"{k / t_lib:.0f}", f"{1000 * t_lib / k:.2f}", "1.0x"],
    ]
    if device != "cpu":
        xb = tiled(x, GPU_BATCH)
        t_b = timeit(lambda: logmel(xb, CFG), repeat=5, device=device) / GPU_BATCH
        rows.insert(1, [f"musiclord `logmel` (one batch of {GPU_BATCH}, {device})", f"{1 / t_b:.0f}",
                        f"{1000 * t_b:.3f}", f"{t_lib / k / t_b:.1f}x"])
    return f"Log-mel extraction, {k} clips of 2 s:\n\n" + markdown_table(["", "clips/s", "ms/clip", "speed-up"], rows)


def sc_stats(est: torch.Tensor, ref: torch.Tensor) -> np.ndarray:
    return spectral_convergence(est.cpu(), ref.cpu(), CFG).numpy()


def bench_invert(names: list[str], clips: np.ndarray, device: str = "cpu") -> str:
    import librosa

    x = torch.from_numpy(clips)
    k, n = clips.shape
    lm = logmel(x, CFG).to(device)
    mel = mel_power(x, CFG).numpy()
    mel = np.concatenate([mel, mel[..., -1:]], axis=-1)  # librosa's STFT has T+1 frames, as ours
    true_mag = stft(x, CFG).abs()
    stft_kw = dict(n_fft=CFG.n_fft, hop_length=CFG.hop_length, win_length=CFG.win_length)
    results: dict[str, dict[int, tuple[float, np.ndarray]]] = {}
    on = "" if device == "cpu" else f", {device}"

    # ours: the whole batch at once; best of 2 runs (plus a warm-up on a GPU: plans, kernels)
    warm = 0 if device == "cpu" else 1
    ours_label = f"musiclord `invert` (from log-mel{on})"
    results[ours_label] = {}
    for it in ITERS:
        t = timeit(lambda: invert(lm, CFG, n_iter=it), repeat=2, warmup=warm, device=device)
        results[ours_label][it] = (t / k, sc_stats(invert(lm, CFG, n_iter=it), x))
    # the same, all iterations on the analysis STFT (n_fft 2048) rather than the 1024-point one
    label = f"musiclord `invert`, all on n_fft {CFG.n_fft}{on}"
    results[label] = {}
    for it in ITERS:
        t = timeit(lambda: invert(lm, CFG, n_iter=it, n_fft=CFG.n_fft), repeat=2, warmup=warm, device=device)
        results[label][it] = (t / k, sc_stats(invert(lm, CFG, n_iter=it, n_fft=CFG.n_fft), x))
    label = f"musiclord `griffin_lim` (true magnitude{on})"
    results[label] = {}
    mag_d = true_mag.to(device)
    for it in ITERS:
        t, y = timed_call(lambda: griffin_lim(mag_d, CFG, n, n_iter=it), warmup=warm, device=device)
        results[label][it] = (t / k, sc_stats(y, x))
    if device != "cpu":  # throughput: many clips per call
        label = f"musiclord `invert`, batches of {GPU_BATCH}{on}"
        results[label] = {}
        lm_b = tiled(lm, GPU_BATCH)
        for it in ITERS:
            t = timeit(lambda: invert(lm_b, CFG, n_iter=it), repeat=2, warmup=1, device=device)
            results[label][it] = (t / GPU_BATCH, sc_stats(invert(lm_b, CFG, n_iter=it)[:k], x))

    # librosa: mel_to_audio = mel_to_stft (NNLS, once) + griffinlim (per iteration count)
    t0 = time.perf_counter()
    lin = [librosa.feature.inverse.mel_to_stft(m, sr=CFG.sample_rate, n_fft=CFG.n_fft, power=2.0) for m in mel]
    t_nnls = (time.perf_counter() - t0) / k
    lib_iters = ITERS if device == "cpu" else ITERS[-1:]
    for label, mags, extra in (
        ("librosa `mel_to_audio` (from mel)", lin, t_nnls),
        ("librosa `griffinlim` (true magnitude)", list(true_mag.numpy()), 0.0),
    ):
        results[label] = {}
        for it in lib_iters:
            np.random.seed(0)
            t0 = time.perf_counter()
            ys = [librosa.griffinlim(m, n_iter=it, length=n, **stft_kw) for m in mags]
            t = (time.perf_counter() - t0) / k + extra
            results[label][it] = (t, sc_stats(torch.from_numpy(np.stack(ys)).float(), x))

    rows = []
    for label, by_it in results.items():
        for it, (t, sc) in by_it.items():
            rows.append([label, it, f"{t:.3f}", f"{sc.mean():.4f}", f"{sc.max():.4f}"])
    table = markdown_table(["method", "iterations", "s/clip", "mean SC", "worst SC"], rows)

    ours = results[ours_label]
    lib = results["librosa `mel_to_audio` (from mel)"]
    top = max(ITERS)
    t_lib64, sc_lib64 = lib[top]
    t_ours64, sc_ours64 = ours[top]
    better = int((sc_ours64 <= sc_lib64).sum())
    equal_q = [it for it in ITERS if ours[it][1].mean() <= sc_lib64.mean()]
    lines = [
        f"Inversion, {k} clips of 2 s ({', '.join(names)}). librosa's NNLS (`mel_to_stft`) takes "
        f"{t_nnls:.3f} s/clip and is included in every `mel_to_audio` row.",
        "",
        table,
        "",
        f"- At {top} iterations `invert` takes {t_ours64:.3f} s/clip against {t_lib64:.3f} s/clip for "
        f"`mel_to_audio`: {t_lib64 / t_ours64:.1f}x faster, with SC {sc_ours64.mean():.4f} vs "
        f"{sc_lib64.mean():.4f} (mean), equal or better on {better}/{k} clips.",
    ]
    if equal_q:
        it = equal_q[0]
        lines.append(
            f"- At equal quality: `invert` at {it} iterations (mean SC {ours[it][1].mean():.4f}) already "
            f"matches `mel_to_audio` at {top} ({sc_lib64.mean():.4f}): {ours[it][0]:.3f} vs {t_lib64:.3f} s/clip, "
            f"{t_lib64 / ours[it][0]:.1f}x faster."
        )
    per_clip = markdown_table(
        ["clip", f"SC musiclord {top}", f"SC librosa {top}"],
        [[nm, f"{a:.4f}", f"{b:.4f}"] for nm, a, b in zip(names, sc_ours64, sc_lib64)],
    )
    return "\n".join(lines) + f"\n\nPer clip at {top} iterations:\n\n" + per_clip


def run(device: str = "cpu") -> str:
    names, clips = load_clips()
    parts = [bench_logmel(clips, device)]
    pick = [i for i, nm in enumerate(names) if nm in INVERT_CLIPS] or list(range(min(8, len(names))))
    parts.append(bench_invert([names[i] for i in pick], clips[pick], device))
    return "\n\n".join(parts)
