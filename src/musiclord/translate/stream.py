"""Streaming building blocks of translation, each holding a bounded amount of data:

    samples --LogMelStream--> log-mel frames --overlap_windows/MelOverlapAdd--> translated
    frames --BlockInverter--> samples

`LogMelStream` gives exactly the frames `musiclord.audio.logmel` gives for the whole signal
(zero-padded to whole hops), computed chunk by chunk. `MelOverlapAdd` cross-fades translated
windows with sin² weights (constant sum at 50% overlap), normalised by the weight sum so the
edges stay exact. `BlockInverter` inverts long overlapping blocks of frames with Griffin-Lim and
joins them with a sin² cross-fade in the middle of each overlap, away from the block edges where
Griffin-Lim is least reliable. None of them ever holds more than a few blocks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch

from musiclord.audio import MelConfig, invert, logmel, silence_level


class LogMelStream:
    """Incremental log-mel: push samples, get the frames that are complete.

    Frame i is centred at sample i * hop and needs n_fft // 2 samples either side; the signal is
    taken as zero before its start and after its end (as `logmel`'s centred STFT does).

    Args:
        cfg: the representation.
    """

    def __init__(self, cfg: MelConfig) -> None:
        self.cfg = cfg
        hop = cfg.hop_length
        self.pad = math.ceil(cfg.n_fft / 2 / hop) * hop  # context, a whole number of hops
        self._buf = np.zeros(self.pad, dtype=np.float32)  # starts at global sample -pad
        self._buf_start = -self.pad
        self.n_samples = 0  # samples pushed so far
        self.n_frames = 0  # frames emitted so far

    def _frames(self, stop: int) -> torch.Tensor:
        """Frames n_frames .. stop-1 from the buffer, then drop samples no longer needed."""
        hop = self.cfg.hop_length
        i0 = self.n_frames
        if stop <= i0:
            return torch.zeros(self.cfg.n_mels, 0)
        a = i0 * hop - self.pad - self._buf_start
        b = stop * hop + self.pad - self._buf_start
        seg = self._buf[a:b]
        if seg.shape[0] < b - a:  # only at the end of the stream
            seg = np.concatenate([seg, np.zeros(b - a - seg.shape[0], dtype=np.float32)])
        k = self.pad // hop
        frames = logmel(torch.from_numpy(np.ascontiguousarray(seg)), self.cfg)[:, k : k + stop - i0]
        self.n_frames = stop
        keep = stop * hop - self.pad - self._buf_start
        self._buf = self._buf[keep:]
        self._buf_start += keep
        return frames

    def push(self, x: np.ndarray) -> torch.Tensor:
        """Add samples (N,) float32; returns the newly complete frames (n_mels, k), k >= 0."""
        x = np.asarray(x, dtype=np.float32).reshape(-1)
        self._buf = np.concatenate([self._buf, x])
        self.n_samples += x.shape[0]
        ready = (self.n_samples - self.pad) // self.cfg.hop_length + 1
        return self._frames(max(ready, self.n_frames))

    def finish(self) -> torch.Tensor:
        """The remaining frames: ceil(n_samples / hop) frames in all."""
        total = math.ceil(self.n_samples / self.cfg.hop_length)
        return self._frames(total)


def window_weights(n_frames: int) -> torch.Tensor:
    """(n_frames,) sin² weights, never zero; two copies offset by n_frames/2 sum to 1."""
    t = torch.arange(n_frames, dtype=torch.float32)
    return torch.sin(math.pi * (t + 0.5) / n_frames) ** 2


class MelOverlapAdd:
    """Cut a frame stream into overlapping windows, translate them in batches, cross-fade.

    Windows start every `hop` frames (half a window by default) at 0, hop, 2 hop, ... until one
    reaches the last frame; past the end they are padded with `pad_value` (silence).

    Args:
        fn: (B, M, win) windows -> (B, M, win) translated windows.
        win: window length in frames.
        hop: window step in frames.
        batch_size: windows per call of fn.
        pad_value: log-mel value past the end of the signal.
    """

    def __init__(
        self,
        fn: Callable[[torch.Tensor], torch.Tensor],
        win: int,
        hop: int,
        batch_size: int,
        pad_value: float,
    ) -> None:
        if not 0 < hop <= win:
            raise ValueError("need 0 < hop <= win")
        self.fn, self.win, self.hop, self.batch_size, self.pad_value = fn, win, hop, max(1, batch_size), pad_value
        self.weights = window_weights(win)
        self._inp: torch.Tensor | None = None  # input frames from global frame _inp_start
        self._inp_start = 0
        self._acc: torch.Tensor | None = None  # weighted sums from global frame _out_start
        self._wsum = torch.zeros(0)
        self._out_start = 0
        self._next_window = 0
        self._pending: list[torch.Tensor] = []
        self._pending_starts: list[int] = []
        self.n_in = 0

    def _take_windows(self, final: bool) -> None:
        """Queue every window whose frames are all in (or, at the end, padded)."""
        assert self._inp is not None
        while True:
            s = self._next_window
            if not final and s + self.win > self.n_in:
                return
            if final and not (s == 0 or s < self.n_in - (self.win - self.hop)):
                return
            a = s - self._inp_start
            w = self._inp[:, a : a + self.win]
            if w.shape[1] < self.win:
                pad = torch.full((w.shape[0], self.win - w.shape[1]), self.pad_value)
                w = torch.cat([w, pad], dim=1)
            self._pending.append(w)
            self._pending_starts.append(s)
            self._next_window += self.hop
            if len(self._pending) >= self.batch_size:
                self._run()

    def _run(self) -> None:
        if not self._pending:
            return
        # No autograd graph: a translate fn built by a no_grad method still returns tensors that
        # require grad when it runs later, and the graph (kept alive by the running sums) made
        # translation both slow and memory-hungry (GBs per minute of audio).
        with torch.no_grad():
            out = self.fn(torch.stack(self._pending)).float().cpu()  # (B, M, win)
        m = out.shape[1]
        end = self._pending_starts[-1] + self.win
        if self._acc is None:
            self._acc = torch.zeros(m, 0)
        grow = end - self._out_start - self._acc.shape[1]
        if grow > 0:
            self._acc = torch.cat([self._acc, torch.zeros(m, grow)], dim=1)
            self._wsum = torch.cat([self._wsum, torch.zeros(grow)])
        for s, o in zip(self._pending_starts, out):
            a = s - self._out_start
            self._acc[:, a : a + self.win] += o * self.weights
            self._wsum[a : a + self.win] += self.weights
        self._pending, self._pending_starts = [], []
        # Input frames before the next window are no longer needed.
        drop = self._next_window - self._inp_start
        if drop > 0 and self._inp is not None:
            self._inp = self._inp[:, drop:]
            self._inp_start += drop

    def _emit(self, upto: int) -> torch.Tensor:
        """Finished frames [_out_start, upto) as (M, k)."""
        k = min(upto, self.n_in) - self._out_start
        if self._acc is None or k <= 0:
            return torch.zeros(self._inp.shape[0] if self._inp is not None else 0, 0)
        out = self._acc[:, :k] / self._wsum[:k]
        self._acc, self._wsum = self._acc[:, k:], self._wsum[k:]
        self._out_start += k
        return out

    def push(self, frames: torch.Tensor) -> torch.Tensor:
        """Add input frames (M, k); returns finished output frames (M, k') in order."""
        self._inp = frames if self._inp is None else torch.cat([self._inp, frames], dim=1)
        self.n_in += frames.shape[1]
        self._take_windows(final=False)
        # Frames before the first window not yet translated are final.
        first_open = self._pending_starts[0] if self._pending_starts else self._next_window
        return self._emit(first_open)

    def finish(self) -> torch.Tensor:
        """Translate the last windows; returns the remaining output frames."""
        if self.n_in == 0:
            return torch.zeros(0, 0)
        self._take_windows(final=True)
        self._run()
        return self._emit(self.n_in)


class BlockInverter:
    """Log-mel frames -> waveform, inverted in long overlapping blocks joined by a cross-fade.

    Args:
        cfg: the representation.
        block_frames: frames per inverted block (640 = 10 s).
        overlap_frames: frames shared by consecutive blocks (64 = 1 s); the cross-fade spans its
            central half.
        invert_fn: (B, M, T) log-mel -> (B, T * hop) waveform (default: `musiclord.audio.invert`).
        max_batch: blocks inverted together when one push completes several (the result is the
            same as one by one, since `invert` treats clips independently). On a GPU, where
            Griffin-Lim on one 10 s block is bound by kernel launches, 8 blocks cost little more
            than one; on a CPU 1 is faster (batches fall out of cache: 4.1 vs 4.6 s for 60 s).
    """

    def __init__(
        self,
        cfg: MelConfig,
        block_frames: int = 640,
        overlap_frames: int = 64,
        invert_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
        max_batch: int = 1,
    ) -> None:
        if not 0 <= 2 * overlap_frames < block_frames:
            raise ValueError("need 0 <= 2 * overlap_frames < block_frames")
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.cfg = cfg
        self.max_batch = max_batch
        self.block, self.overlap = block_frames, overlap_frames
        self.margin = overlap_frames // 4
        self.invert_fn = invert_fn or (lambda m: invert(m, cfg))
        self._frames: torch.Tensor | None = None
        self._tail: np.ndarray | None = None  # previous block's samples over the fade region
        self._first = True

    def _fade(self) -> np.ndarray:
        n = (self.overlap - 2 * self.margin) * self.cfg.hop_length
        t = (np.arange(n, dtype=np.float32) + 0.5) / max(n, 1)
        return (np.sin(0.5 * np.pi * t) ** 2).astype(np.float32)

    def _invert(self, blocks: torch.Tensor) -> np.ndarray:
        """(K, M, T) blocks -> (K, T * hop) float32 samples, in one call of invert_fn."""
        with torch.no_grad():  # Griffin-Lim under autograd kept every iteration's buffers
            return self.invert_fn(blocks).cpu().numpy().astype(np.float32)

    def _join(self, wave: np.ndarray, n_frames: int, last: bool) -> np.ndarray:
        """Cross-fade one inverted block of n_frames into the stream; returns its final samples."""
        hop = self.cfg.hop_length
        start = 0
        if not self._first:  # fade in over [margin, overlap - margin) frames of this block
            fade = self._fade()
            a, b = self.margin * hop, (self.overlap - self.margin) * hop
            assert self._tail is not None
            wave = wave.copy()
            wave[a:b] = self._tail * (1 - fade) + wave[a:b] * fade
            start = a
        self._first = False
        if last:
            self._tail = None
            return wave[start:]
        # keep this block's samples over the next fade region; emit up to its start
        cut = (n_frames - self.overlap + self.margin) * hop
        self._tail = wave[cut : cut + (self.overlap - 2 * self.margin) * hop].copy()
        return wave[start:cut]

    def push(self, frames: torch.Tensor) -> np.ndarray:
        """Add frames (M, k); returns the samples that are final (possibly none). The blocks this
        push completes are inverted `max_batch` at a time."""
        self._frames = frames if self._frames is None else torch.cat([self._frames, frames], dim=1)
        blocks = []
        while self._frames.shape[1] > self.block:  # strictly more: the last block is never empty
            blocks.append(self._frames[:, : self.block])
            self._frames = self._frames[:, self.block - self.overlap :]
        outs = [np.zeros(0, dtype=np.float32)]
        for i in range(0, len(blocks), self.max_batch):
            waves = self._invert(torch.stack(blocks[i : i + self.max_batch]))
            outs += [self._join(w, self.block, last=False) for w in waves]
        return np.concatenate(outs)

    def finish(self) -> np.ndarray:
        """The remaining samples."""
        if self._frames is None or self._frames.shape[1] == 0:
            return np.zeros(0, dtype=np.float32)
        out = self._join(self._invert(self._frames[None])[0], self._frames.shape[1], last=True)
        self._frames = None
        return out


def run_pipeline(
    chunks: Iterable[np.ndarray],
    cfg: MelConfig,
    translate_fn: Callable[[torch.Tensor], torch.Tensor],
    batch_size: int = 8,
    window_hop: int | None = None,
    block_frames: int = 640,
    overlap_frames: int = 64,
    frame_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    invert_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
    block_batch: int = 1,
) -> Iterator[np.ndarray]:
    """Translate a stream of 16 kHz sample chunks into a stream of output sample chunks.

    Args:
        chunks: consecutive (N_i,) float32 blocks at cfg.sample_rate.
        translate_fn: (B, M, n_frames) -> (B, M, n_frames) normalised log-mel windows.
        window_hop: window step in frames (default: half a window).
        frame_fn: optional (input frames (M, k), output frames (M, k)) -> output frames, applied
            to finished frames before inversion (the silence gate).
        invert_fn: (B, M, T) log-mel -> (B, T * hop) waveform (default `musiclord.audio.invert`).
        block_batch: inversion blocks inverted together (`BlockInverter`'s max_batch).

    Yields:
        (K_j,) float32 chunks whose concatenation has exactly sum(N_i) samples.
    """
    win = cfg.n_frames
    mel_stream = LogMelStream(cfg)
    ola = MelOverlapAdd(translate_fn, win, window_hop or win // 2, batch_size, silence_level(cfg))
    inv = BlockInverter(cfg, block_frames, overlap_frames, invert_fn, block_batch)
    inp_frames: list[torch.Tensor] = []  # input frames not yet matched with output (for frame_fn)
    n_out = 0

    def through(frames_in: torch.Tensor, final: bool) -> np.ndarray:
        nonlocal inp_frames
        if frames_in.shape[1]:
            inp_frames.append(frames_in)
        out = ola.push(frames_in)
        if final:
            out = torch.cat([out, ola.finish()], dim=1) if out.shape[1] else ola.finish()
        if out.shape[1] and frame_fn is not None:
            src = torch.cat(inp_frames, dim=1)
            out = frame_fn(src[:, : out.shape[1]], out)
            inp_frames = [src[:, out.shape[1] :]]
        elif out.shape[1]:
            src = torch.cat(inp_frames, dim=1)
            inp_frames = [src[:, out.shape[1] :]]
        samples = inv.push(out) if out.shape[1] else np.zeros(0, dtype=np.float32)
        if final:
            samples = np.concatenate([samples, inv.finish()])
        return samples

    for x in chunks:
        y = through(mel_stream.push(x), final=False)
        if y.size:
            n_out += y.size
            yield y
    total = mel_stream.n_samples
    y = through(mel_stream.finish(), final=True)
    y = y[: max(0, total - n_out)]
    if y.size:
        yield y
