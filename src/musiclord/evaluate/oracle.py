"""The sample-bank oracle: each test passage's true notes played by the *training* sample bank.

A model trained on one bank (FluidR3_GM) can at best play the target instrument as that bank
does, while the test ground truth comes from another bank (MuseScore_General). Rendering the
exact notes of every test passage with the training bank gives that best case, so its LSD
against the ground truth is a floor no model trained on the bank can be expected to beat, and
its pitch accuracy is a ceiling of what pYIN agrees on across banks. The evaluator reports both
next to the copy baseline (`lsd_oracle`, `pitch_oracle`); they need the synthetic dataset's note
lists and FluidSynth, and are left out (None) otherwise.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


def oracle_waves(ds: Any, data_dir: str | Path, classes: list[str], cids: list[str], split: str = "test",
                 bank: str | Path | None = None) -> np.ndarray | None:
    """The passages' notes (and vibrato, where a clip has one) rendered with the dataset's training
    bank on every class.

    Args:
        ds: the dataset (its paired split gives each passage's clip on each class).
        data_dir: its directory (notes.jsonl and the soundfont paths in dataset.json).
        classes: instrument classes, in the order of the result's second axis.
        cids: content ids of the passages.
        bank: the soundfont to play them with (default: the dataset's training bank).

    Returns:
        (C, K, N) float32 waveforms at the dataset's rate, N = samples of a clip; None when the
        dataset has no note lists (not synthetic), the training bank or FluidSynth is missing.
    """
    from musiclord.data.instruments import resolve_instruments
    from musiclord.data.render import RenderJob, render_chunk
    from musiclord.errors import MusiclordError

    notes_file = Path(data_dir) / "notes.jsonl"
    bank = bank or (ds.options.get("soundfonts") or {}).get("train")
    if not notes_file.is_file() or not bank or not Path(bank).is_file():
        log.info("no note lists or training bank in %s: the sample-bank oracle is left out", data_dir)
        return None
    notes = {}
    vibrato = {}
    for line in notes_file.read_text().splitlines():
        row = json.loads(line)
        notes[row["clip_id"]] = row["notes"]
        vibrato[row["clip_id"]] = tuple(row.get("vibrato", (0.0, 0.0, 0.0)))
    cfg = ds.mel_config
    paired = ds.paired(split)
    n = cfg.clip_samples
    out = np.zeros((len(cids), len(classes), n), np.float32)
    try:
        for k, inst in enumerate(resolve_instruments(classes)):
            recs = [paired[c][inst.name] for c in cids]
            if any(r.clip_id not in notes for r in recs):
                log.info("some test clips have no note list: the sample-bank oracle is left out")
                return None
            jobs = [RenderJob(tuple((on, dur, p) for on, dur, p, _ in notes[r.clip_id]),
                              tuple(v for *_, v in notes[r.clip_id]), inst.program, vibrato[r.clip_id])
                    for r in recs]
            for c, wave in enumerate(render_chunk(bank, jobs, cfg.clip_seconds, cfg.sample_rate)):
                if wave is not None:
                    out[c, k, : min(n, len(wave))] = wave[:n]
    except MusiclordError as e:  # FluidSynth or the instrument names unavailable here
        log.warning("sample-bank oracle left out: %s", e)
        return None
    return out
