"""`Translator`: any recording, any length, to any trained instrument (or a reference's timbre).

Built from the inference bundle alone (`musiclord.models.load_model`), never the training code.
Audio streams through `musiclord.translate.stream`: 2 s windows at 50% overlap, translated in
batches and cross-faded in the mel domain, inverted in 10 s blocks joined by a cross-fade, and
written as it comes, so memory does not grow with the input's length.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr
import torch

from musiclord.audio import MelConfig, audio_info, fused, invert, silence_level, stream_audio
from musiclord.errors import AudioError, MusiclordError
from musiclord.models import LordModel, load_model
from musiclord.models.generator import normalise_content
from musiclord.translate.config import TranslateConfig, as_mono, resolve_device
from musiclord.translate.latent_fit import fit_codes
from musiclord.translate.stream import LogMelStream, MelOverlapAdd, run_pipeline

log = logging.getLogger(__name__)


class UnknownInstrumentError(MusiclordError):
    """A target instrument the model was not trained on."""


class Translator:
    """Translate recordings with a trained LORD model.

    Args:
        model: the bundle (eval mode).
        mel_cfg: its representation.
        meta: the bundle's meta ("stage": "latent" or "amortized", ...).
        device: where the networks run.
        cfg: inference settings.
    """

    def __init__(
        self,
        model: LordModel,
        mel_cfg: MelConfig,
        meta: dict[str, Any] | None = None,
        device: str | torch.device | None = None,
        cfg: TranslateConfig = TranslateConfig(),
    ) -> None:
        self.device = resolve_device(device)
        self._model = model.to(self.device).eval()
        self._mel_cfg = mel_cfg
        self._meta = dict(meta or {})
        self.cfg = cfg
        self._silence = silence_level(mel_cfg)
        gpu = self.device.type == "cuda"
        # settings whose default (0) depends on the device: audio read per step, blocks per inversion call
        self._chunk_seconds = cfg.chunk_seconds or (80.0 if gpu else 30.0)
        self._block_batch = cfg.block_batch or (8 if gpu else 1)
        if self.device.type == "cpu":
            fused.warm_up()  # a one-off cost of loading, not of the first file's inversion
        if model.cfg.n_frames != mel_cfg.n_frames or model.cfg.n_mels != mel_cfg.n_mels:
            raise MusiclordError("model and mel config disagree on the clip size")

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, device: str | torch.device | None = None, cfg: TranslateConfig = TranslateConfig()
    ) -> "Translator":
        """Load a run directory, a model.pt file, or "pretrained" (the model shipped with musiclord).

        Raises:
            CheckpointError: missing, truncated, foreign or mismatched checkpoint.
        """
        model, mel_cfg, meta = load_model(path, map_location="cpu")
        return cls(model, mel_cfg, meta, device=device, cfg=cfg)

    # ----------------------------------------------------------------- properties
    @property
    def instruments(self) -> list[str]:
        """Names accepted by `to=`, in class-index order."""
        return list(self._model.classes)

    @property
    def mel_config(self) -> MelConfig:
        return self._mel_cfg

    @property
    def model(self) -> LordModel:
        return self._model

    @property
    def meta(self) -> dict[str, Any]:
        return dict(self._meta)

    @property
    def uses_latent_fit(self) -> bool:
        """True for a stage-1-only model: codes come from latent optimisation, not the encoders."""
        return self._meta.get("stage") == "latent"

    # ----------------------------------------------------------------- codes (mel domain)
    def _fit(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self._model
        init = m.class_embeddings.mean(0)
        return fit_codes(m.generator, mel, (m.cfg.content_dim, m.cfg.content_frames), init,
                         steps=self.cfg.latent_steps, lr=self.cfg.latent_lr)

    def _content(self, mel: torch.Tensor) -> torch.Tensor:
        """mel (B, M, n_frames) -> content codes (B, Cc, Tc) as the generator sees them (normalised as
        `content_norm` says): latent fit for a stage-1-only model, else the encoder's, refined when
        `cfg.refine_steps` > 0."""
        m = self._model
        if self.uses_latent_fit:
            codes = self._fit(mel)[0]
        else:
            codes = m.encode_content(mel)
            if self.cfg.refine_steps <= 0:
                return codes
            codes = fit_codes(m.generator, mel, tuple(codes.shape[1:]), m.encode_class(mel),
                              steps=self.cfg.refine_steps, lr=self.cfg.refine_lr, content_decay=0.0, fit_class=False,
                              content_init=codes, anchor=self.cfg.refine_anchor)[0]
        return normalise_content(codes, m.cfg.content_norm)

    def _check_window(self, mel: torch.Tensor) -> torch.Tensor:
        if mel.dim() != 3 or mel.shape[1] != self._mel_cfg.n_mels or mel.shape[2] != self._mel_cfg.n_frames:
            raise ValueError(
                f"expected (B, {self._mel_cfg.n_mels}, {self._mel_cfg.n_frames}) windows, got {tuple(mel.shape)}"
            )
        return mel.to(self.device, torch.float32)

    @torch.no_grad()
    def content_codes(self, mel: torch.Tensor) -> torch.Tensor:
        """mel (B, M, n_frames) -> content codes (B, Cc, Tc) (encoder, or latent fit for stage 1)."""
        return self._content(self._check_window(mel))

    @torch.no_grad()
    def class_codes(self, mel: torch.Tensor) -> torch.Tensor:
        """mel (B, M, n_frames) -> class embeddings (B, E) (encoder, or latent fit for stage 1)."""
        mel = self._check_window(mel)
        if self.uses_latent_fit:
            return self._fit(mel)[1]
        return self._model.encode_class(mel)

    def instrument_embedding(self, name: str) -> torch.Tensor:
        """The (E,) learned embedding of a trained instrument.

        Raises:
            UnknownInstrumentError: the name is not one of `instruments` (the message lists them).
        """
        if name not in self._model.classes:
            raise UnknownInstrumentError(
                f"unknown instrument {name!r}; this model knows: {', '.join(self._model.classes)}"
            )
        return self._model.class_embeddings[self._model.classes.index(name)]

    def _gate(self, src: torch.Tensor) -> torch.Tensor:
        """src (..., M, T) input log-mel -> (..., 1, T) gate in [0, 1] from each frame's loudest band."""
        db = (src.amax(dim=-2, keepdim=True) - self._silence) * self._mel_cfg.log_std * 10 / math.log(10)
        lo, hi = self.cfg.gate_low_db, max(self.cfg.gate_high_db, self.cfg.gate_low_db + 1e-3)
        return ((db - lo) / (hi - lo)).clamp(0, 1)

    def _apply_gate(self, src: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        if not self.cfg.gate:
            return out
        return self._silence + (out - self._silence) * self._gate(src.to(out.device))

    @torch.no_grad()
    def _windows_fn(self, target: torch.Tensor):
        """(B, M, n_frames) windows -> translated windows, silent windows skipped."""

        @torch.no_grad()  # runs later, outside this method's no_grad (latent fitting enables grad itself)
        def fn(mel: torch.Tensor) -> torch.Tensor:
            mel = mel.to(self.device, torch.float32)
            out = torch.full_like(mel, self._silence)
            active = self._gate(mel).amax(dim=(-2, -1)) > 0 if self.cfg.gate else torch.ones(mel.shape[0], dtype=torch.bool)
            if active.any():
                x = mel[active]
                out[active] = self._model.decode(self._content(x), target.to(self.device).expand(x.shape[0], -1))
            return out

        return fn

    def _target(self, to: str | None, like_emb: torch.Tensor | None) -> torch.Tensor:
        if (to is None) == (like_emb is None):
            raise MusiclordError("give exactly one of a target instrument (to=) or a reference (like=)")
        return self.instrument_embedding(to) if to is not None else like_emb.reshape(-1)

    @torch.no_grad()
    def translate_mel(
        self, mel: torch.Tensor, to: str | None = None, like_mel: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Translate log-mels.

        Args:
            mel: (B, M, T) normalised log-mel, any T >= 1 (longer than a window: overlapping
                windows cross-faded).
            to: a trained instrument, or
            like_mel: (B', M, T') log-mel of reference(s) whose timbre to take: with B' == B each
                clip takes its own reference's, otherwise all take the mean over every 2 s window
                of all references.

        Returns:
            (B, M, T) translated normalised log-mel.
        """
        if mel.dim() != 3 or mel.shape[1] != self._mel_cfg.n_mels:
            raise ValueError(f"expected (B, {self._mel_cfg.n_mels}, T) log-mel, got {tuple(mel.shape)}")
        if like_mel is not None and like_mel.dim() == 2:
            like_mel = like_mel[None]
        if like_mel is not None and like_mel.shape[0] == mel.shape[0] > 1:  # one reference per clip
            targets = [self._target(to, self.like_embedding_mel(ref[None])) for ref in like_mel]
        else:
            like_emb = self.like_embedding_mel(like_mel) if like_mel is not None else None
            targets = [self._target(to, like_emb)] * mel.shape[0]
        mel = mel.float()
        outs = []
        for item, target in zip(mel, targets):
            fn = self._windows_fn(target)
            ola = MelOverlapAdd(fn, self._mel_cfg.n_frames, self.cfg.window_hop or self._mel_cfg.n_frames // 2,
                                self.cfg.batch_size, self._silence)
            out = torch.cat([ola.push(item.cpu()), ola.finish()], dim=1)
            outs.append(self._apply_gate(item.cpu(), out))
        return torch.stack(outs).to(mel.device)

    # ----------------------------------------------------------------- reference timbre
    def _window_stream(self, frames: Iterator[torch.Tensor]) -> Iterator[torch.Tensor]:
        """Frames -> non-overlapping full windows (the last one padded with silence if it is the only one)."""
        n = self._mel_cfg.n_frames
        buf = torch.zeros(self._mel_cfg.n_mels, 0)
        seen = False
        for f in frames:
            buf = torch.cat([buf, f], dim=1)
            while buf.shape[1] >= n:
                seen = True
                yield buf[:, :n]
                buf = buf[:, n:]
        if buf.shape[1] and (not seen or buf.shape[1] >= n // 4):
            pad = torch.full((buf.shape[0], n - buf.shape[1]), self._silence)
            yield torch.cat([buf, pad], dim=1)

    def _like_from_windows(self, windows: Iterator[torch.Tensor]) -> torch.Tensor:
        total, count, batch = None, 0, []

        def flush() -> None:
            nonlocal total, count, batch
            if not batch:
                return
            x = torch.stack(batch)
            active = self._gate(x).mean(dim=(-2, -1)) > 0.25 if self.cfg.gate else torch.ones(len(batch), dtype=torch.bool)
            if active.any():
                codes = self.class_codes(x[active]).cpu()
                total = codes.sum(0) if total is None else total + codes.sum(0)
                count += int(active.sum())
            batch = []

        for w in windows:
            batch.append(w)
            if len(batch) >= self.cfg.batch_size:
                flush()
        flush()
        if total is None:
            raise AudioError("the reference recording is silent: no timbre to take")
        return total / count

    def like_embedding_mel(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, M, T) reference log-mel(s) -> (E,) class embedding averaged over its 2 s windows."""
        return self._like_from_windows(w for item in mel.float().cpu() for w in self._window_stream(iter([item])))

    def like_embedding(self, like: np.ndarray | str | Path, sr: int | None = None) -> torch.Tensor:
        """A reference recording (array at `sr`, or a file streamed) -> (E,) class embedding."""
        cfg = self._mel_cfg
        if isinstance(like, (str, Path)):
            chunks = stream_audio(like, cfg.sample_rate, self._chunk_seconds)
            gain = self._peak_gain(stream_audio(like, cfg.sample_rate, self._chunk_seconds))
        else:
            x = self._resample(as_mono(like), sr or cfg.sample_rate)
            if x.size == 0:
                raise AudioError("the reference recording is empty")
            gain = self._peak_gain(iter([x]))
            chunks = iter([x])
        return self._like_from_windows(self._window_stream(self._frames(chunks, gain)))

    # ----------------------------------------------------------------- audio
    def _frames(self, chunks: Iterator[np.ndarray], gain: float) -> Iterator[torch.Tensor]:
        stream = LogMelStream(self._mel_cfg)
        for x in chunks:
            yield stream.push(x * gain)
        yield stream.finish()

    def _peak_gain(self, chunks: Iterator[np.ndarray]) -> float:
        if not self.cfg.normalize:
            return 1.0
        peak = 0.0
        for x in chunks:
            if x.size:
                peak = max(peak, float(np.abs(x).max()))
        if peak <= 0:
            return 1.0
        return float(min(self.cfg.peak / peak, 10 ** (self.cfg.max_gain_db / 20)))

    def _resample(self, x: np.ndarray, sr: int) -> np.ndarray:
        if sr <= 0:
            raise AudioError(f"invalid sample rate {sr}")
        if sr == self._mel_cfg.sample_rate or x.size == 0:
            return x
        y = soxr.resample(x, sr, self._mel_cfg.sample_rate, quality="HQ").astype(np.float32)
        # exactly the input's duration, as `translate_file` gives (soxr may round the other way)
        n = round(x.size * self._mel_cfg.sample_rate / sr)
        return y[:n] if y.size >= n else np.concatenate([y, np.zeros(n - y.size, np.float32)])

    def _stream(self, chunks: Iterator[np.ndarray], gain: float, target: torch.Tensor) -> Iterator[np.ndarray]:
        """16 kHz chunks -> translated 16 kHz chunks (same total length)."""
        cfg = self._mel_cfg
        hop = cfg.hop_length
        inv = lambda m: invert(m.to(self.device), cfg, n_iter=self.cfg.gl_iters, nnls_iter=self.cfg.nnls_iters)  # noqa: E731
        block = max(4, round(self.cfg.block_seconds * cfg.sample_rate / hop))
        overlap = min(round(self.cfg.overlap_seconds * cfg.sample_rate / hop), (block - 1) // 2)
        gained = (x * gain for x in chunks)
        out = run_pipeline(
            gained, cfg, self._windows_fn(target), batch_size=self.cfg.batch_size,
            window_hop=self.cfg.window_hop or None, block_frames=block, overlap_frames=overlap,
            frame_fn=lambda s, o: self._apply_gate(s, o.to(self.device)).cpu(), invert_fn=inv,
            block_batch=self._block_batch,
        )
        for y in out:
            yield y / gain

    def translate(
        self,
        wave: np.ndarray,
        sr: int,
        to: str | None = None,
        like: np.ndarray | str | Path | None = None,
    ) -> np.ndarray:
        """Translate a waveform held in memory.

        Args:
            wave: (N,) or (N, channels) samples at `sr` Hz; non-finite samples count as 0.
            sr: its sample rate.
            to: a trained instrument name, or
            like: a reference recording (array at `sr`, or a file path) whose timbre to take.

        Returns:
            (round(N * 16000 / sr),) float32 at the model's rate (16 kHz): the input's duration;
            an empty input gives an empty output.

        Raises:
            UnknownInstrumentError: `to` is not a trained instrument.
            AudioError: unusable reference or sample rate.
        """
        like_emb = self.like_embedding(like, sr) if like is not None else None
        target = self._target(to, like_emb)
        x = self._resample(as_mono(wave), int(sr))
        if x.size == 0:
            return np.zeros(0, dtype=np.float32)
        gain = self._peak_gain(iter([x]))
        step = max(1, int(self._chunk_seconds * self._mel_cfg.sample_rate))
        chunks = (x[i : i + step] for i in range(0, x.size, step))
        parts = list(self._stream(chunks, gain, target))
        return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, dtype=np.float32)

    def translate_file(
        self,
        in_path: str | Path,
        out_path: str | Path,
        to: str | None = None,
        like: np.ndarray | str | Path | None = None,
        like_embedding: torch.Tensor | None = None,
    ) -> dict[str, float]:
        """Translate an audio file of any length into a 16 kHz mono WAV, streaming both ends.

        The output is written to a temporary file beside `out_path` and renamed when complete.
        `like_embedding` (from `like_embedding(...)`) reuses one reference for many files.

        Returns:
            {"seconds_in": ..., "seconds_out": ...}.

        Raises:
            AudioError: unreadable or empty input.
            UnknownInstrumentError: `to` is not a trained instrument.
        """
        sr = self._mel_cfg.sample_rate
        like_emb = self.like_embedding(like, sr) if like is not None else like_embedding
        target = self._target(to, like_emb)
        gain = self._peak_gain(stream_audio(in_path, sr, self._chunk_seconds))
        out_path = Path(out_path)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{out_path.stem}.", suffix=".wav", dir=out_path.parent)
        os.close(fd)
        n_in = n_out = 0

        file_sr, _, frames = audio_info(in_path)
        expected = round(frames * sr / file_sr)  # the input's duration at the output rate

        def counted() -> Iterator[np.ndarray]:
            nonlocal n_in
            for x in stream_audio(in_path, sr, self._chunk_seconds):
                x = x[: max(0, expected - n_in)]
                n_in += x.size
                yield x
            if n_in < expected:  # a streaming resampler may come up a few samples short
                yield np.zeros(expected - n_in, dtype=np.float32)
                n_in = expected

        try:
            with sf.SoundFile(tmp, "w", samplerate=sr, channels=1, subtype="PCM_16", format="WAV") as f:
                for y in self._stream(counted(), gain, target):
                    f.write(np.clip(y, -1.0, 1.0))
                    n_out += y.size
            os.chmod(tmp, 0o644)  # mkstemp makes it private; an output file is not
            os.replace(tmp, out_path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return {"seconds_in": n_in / sr, "seconds_out": n_out / sr}
