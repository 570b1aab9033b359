"""Log-spectral distance on audio, as defined by SS-VQ-VAE.

Cífka, Ozerov, Şimşekli and Richard, "Self-supervised VQ-VAE for one-shot music style
transfer", ICASSP 2021; reference code cifkao/ss-vq-vae, `experiments/paper_eval.ipynb`
(`eval_example_target`): each waveform is power-normalised (divided by its RMS), a mel
spectrogram is taken with librosa's defaults (n_fft 2048, hop 512, 128 bands, power 2), converted
to dB with `librosa.power_to_db` (ref 1, amin 1e-10, top_db 80), and

    LSD = mean over bands of sqrt(mean over frames of (S_out_dB - S_ref_dB)^2).

Lower is better; 0 for identical audio. The output is padded or truncated to the reference's
length first, as there.
"""

from __future__ import annotations

import numpy as np


def _spec_db(wave: np.ndarray, sr: int) -> np.ndarray:
    """(B, N) waveforms -> (B, 128, frames) power-normalised mel dB (SS-VQ-VAE's `spec`)."""
    import librosa

    wave = np.asarray(wave, dtype=np.float32)
    rms = np.sqrt(np.mean(wave.astype(np.float64) ** 2, axis=-1, keepdims=True))
    wave = (wave / (rms + np.finfo(np.float32).eps)).astype(np.float32)
    mel = librosa.feature.melspectrogram(y=wave, sr=sr)
    # power_to_db's top_db clips against the max of the whole array: apply it per clip.
    return np.stack([librosa.power_to_db(m) for m in mel])


def _fit_length(output: np.ndarray, n: int) -> np.ndarray:
    if output.shape[-1] >= n:
        return output[..., :n]
    pad = [(0, 0)] * (output.ndim - 1) + [(0, n - output.shape[-1])]
    return np.pad(output, pad)


def lsd(output: np.ndarray, reference: np.ndarray, sr: int = 16000) -> np.ndarray:
    """SS-VQ-VAE's log-spectral distance between waveforms, in dB.

    Args:
        output: (B, N') or (N',) waveform(s) to judge.
        reference: (B, N) or (N,) ground-truth waveform(s).
        sr: sample rate of both.

    Returns:
        (B,) float64 distances (a 0-d array for 1-D input).
    """
    output = np.asarray(output, dtype=np.float32)
    reference = np.asarray(reference, dtype=np.float32)
    squeeze = reference.ndim == 1
    if squeeze:
        output, reference = output[None], reference[None]
    if output.shape[0] != reference.shape[0]:
        raise ValueError(f"lsd: {output.shape[0]} outputs for {reference.shape[0]} references")
    output = _fit_length(output, reference.shape[-1])
    s_out, s_ref = _spec_db(output, sr), _spec_db(reference, sr)
    d = np.mean(np.sqrt(np.mean((s_out.astype(np.float64) - s_ref) ** 2, axis=-1)), axis=-1)
    return d[0] if squeeze else d
