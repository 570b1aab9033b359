"""Spot checks on real recordings: does a translation keep the melody of the input?

    python scripts/real_pitch.py --model pretrained --model runs/x1 \
        ../shared/data/real-clips/cello_phrase_smstools.wav ../shared/data/real-clips/flute_msdb_test3.flac

Each clip is translated by each model into every trained instrument but its own (the instrument is
read from the file name's first word, e.g. `cello_...`; any other name is translated into all),
and pYIN (`musiclord.evaluate.pitch`, 50-2000 Hz) tracks input and output. Printed per
translation: median f0 in and out over the frames voiced in each, and "agree": among the frames
voiced in both, the share whose f0 is within 50 cents of the input's. There is no ground truth
here, only the input's own pitch: a translation that follows the melody scores near 1, one that
jumps to partials or collapses onto a band scores low. One clip per case: spot checks, not a test.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from musiclord.audio.io import load_audio
from musiclord.evaluate.pitch import raw_pitch_accuracy, track_f0
from musiclord.translate import Translator

SR = 16000


def agreement(f0_in: np.ndarray, v_in: np.ndarray, f0_out: np.ndarray, v_out: np.ndarray) -> tuple[float, int]:
    """Share of frames voiced in both whose f0 is within 50 cents of the input's, and their count:
    `raw_pitch_accuracy` with the input as reference, counted only where the output is voiced too.

    Args:
        f0_in, v_in, f0_out, v_out: (F,) f0 in Hz (NaN when unvoiced) and voicing of input and output.
    """
    n = min(f0_in.size, f0_out.size)
    correct, total = raw_pitch_accuracy(f0_out[:n], v_out[:n], f0_in[:n], v_in[:n] & v_out[:n])
    return (correct / total if total else float("nan")), total


def median_f0(f0: np.ndarray, voiced: np.ndarray) -> float:
    sel = voiced & np.isfinite(f0)
    return float(np.median(f0[sel])) if sel.any() else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("clips", nargs="+", help="audio files")
    ap.add_argument("--model", action="append", required=True, help="run dir, model file or 'pretrained'")
    args = ap.parse_args()
    translators = {model: Translator.from_checkpoint(model) for model in args.model}
    for clip in args.clips:
        wave = load_audio(clip, sr=SR)
        f0_in, v_in = (a[0] for a in track_f0(wave))
        source = Path(clip).name.split("_")[0]
        print(f"{clip}: {wave.size / SR:.2f} s, median f0 {median_f0(f0_in, v_in):.0f} Hz")
        for model, tr in translators.items():
            for to in (i for i in tr.instruments if i != source):
                out = tr.translate(wave, SR, to=to)
                f0_out, v_out = (a[0] for a in track_f0(out))
                agree, frames = agreement(f0_in, v_in, f0_out, v_out)
                print(f"  {model} -> {to}: median f0 {median_f0(f0_out, v_out):.0f} Hz, "
                      f"agree {agree:.2f} over {frames} frames, voiced {v_out.mean():.2f} (input {v_in.mean():.2f})")


if __name__ == "__main__":
    main()
