"""`prepare_synth`: a dataset rendered from real scores, unpaired for training and paired for test.

Pieces of music21's corpus (Bach chorale voices, fiddle tunes) are cut into 2 s windows, each at
its own tempo, moved by octaves into the range every class plays, and rendered with FluidSynth:

- train / val / aux: every window is rendered by one class only (windows disjoint across
  classes and splits), train and val with the training bank, aux with a third bank;
- test: windows from pieces never used above, each rendered by every class with the test bank,
  sharing a content_id; their waves are saved;
- rerender: the training clips' notes once more, with a second bank (content_id = the training
  clip's clip_id), so that stage 2's encoders learn the notes rather than one bank's sound;
- cross: the training clips' notes on *another instrument* (a GM program drawn from
  CROSS_PROGRAMS, the other classes' included, on the training or the rerender bank; content_id =
  the training clip's clip_id, cls = that clip's class, the program in notes.jsonl), so that
  stage 2's content encoder learns that the notes, not the instrument, make the code.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from musiclord.audio import MelConfig, logmel
from musiclord.data.corpus import Line, Window, corpus_root, cut_windows, default_cache_dir, list_pieces, load_piece
from musiclord.data.instruments import Instrument, common_range, resolve_instruments
from musiclord.data.parallel import Workers
from musiclord.data.render import MAX_PROGRAMS, RenderJob, check_soundfont, find_soundfont, render_chunk, timgm6mb
from musiclord.data.sf2info import shared_with_test
from musiclord.data.writer import DatasetWriter, check_output
from musiclord.errors import DataError

log = logging.getLogger(__name__)

NOTES_FILE = "notes.jsonl"
# GM programs a "cross" render draws from (plus the classes' own): keys, plucked, organ, strings,
# brass, reeds, pipes and synth leads, so that no single family's sound becomes the content
CROSS_PROGRAMS = (1, 4, 6, 11, 12, 19, 21, 24, 26, 41, 43, 46, 48, 52, 56, 57, 60, 64, 65, 68, 70, 71, 72, 74, 75,
                  80, 81)


@dataclass(frozen=True)
class SynthOptions:
    """What `prepare_synth` renders.

    Attributes:
        classes: instrument class names (short names, GM names or program numbers).
        train_per_class: unpaired training clips per class (the paper's scale is 4200).
        val_fraction: validation clips per class = round(train_per_class * val_fraction).
        test_windows: paired test windows (each rendered by every class).
        aux_per_class: unpaired clips per class rendered with the aux bank.
        rerender_fraction: this share of the training clips is rendered a second time, same
            notes, with the rerender bank (split "rerender"): stage 2 shows its encoders either
            version, so that they learn the notes rather than one bank's sound (0: none).
        cross_fraction: this share of the training clips is rendered once more on another
            instrument (split "cross": a program drawn from CROSS_PROGRAMS and the other classes',
            on the training or the rerender bank), for stage 2's content encoder (0: none).
        cross_per_clip: cross renders of each such clip, each on another program.
        cross_vibrato_cents: each cross render gets a vibrato of a depth drawn uniformly up to
            this (cents; rate 4.5-7 Hz), so that a vibrato does not tell the instrument either
            (0: none, the renders of `--cross-fraction` alone are unchanged).
        test_vibrato_cents: the same for the paired test renders of classes that can bend a note
            (GM programs 16 and up: not keyboards or tuned percussion), each render its own
            vibrato, so that a development set hears what players do (0: none).
        soundfont, test_soundfont, aux_soundfont, rerender_soundfont: sample banks ("" =
            FluidR3_GM, MuseScore_General, TimGM6mb, csound's sf_GMbank; each falling back to
            TimGM6mb when not installed). The rerender bank should not be the test bank.
        seed: everything random derives from it.
        bpm_range: tempo of a window, quarter notes per minute (uniform).
        velocity_range: MIDI velocity of a note (uniform, inclusive).
        jitter_s: standard deviation of the onset timing jitter, seconds.
        min_notes, min_fill: a window needs this many notes, sounding this fraction of the time.
        test_windows_per_piece: most windows a test piece gives (variety).
        workers: processes for parsing and rendering.
        chunk: clips rendered by one synthesiser, 4x for test clips (keep fixed for
            reproducibility: clips of a chunk share one synthesiser's state).
        cache_dir: parsed-score cache ("" = ~/.cache/musiclord/corpus, "none" = no cache).
    """

    classes: tuple[str, ...] = ("cello", "piano", "violin", "flute")
    train_per_class: int = 1000
    val_fraction: float = 0.1
    test_windows: int = 50
    aux_per_class: int = 100
    rerender_fraction: float = 1.0
    cross_fraction: float = 0.0
    cross_per_clip: int = 1
    cross_vibrato_cents: float = 0.0
    test_vibrato_cents: float = 0.0
    soundfont: str = ""
    test_soundfont: str = ""
    aux_soundfont: str = ""
    rerender_soundfont: str = ""
    seed: int = 0
    bpm_range: tuple[float, float] = (80.0, 140.0)
    velocity_range: tuple[int, int] = (60, 110)
    jitter_s: float = 0.008
    min_notes: int = 3
    min_fill: float = 0.5
    test_windows_per_piece: int = 3
    workers: int = 2
    chunk: int = 32
    cache_dir: str = ""


@dataclass(frozen=True)
class _Clip:
    clip_id: str
    split: str
    inst: Instrument
    window: Window
    soundfont: str
    content_id: str | None = None
    program: int | None = None  # played on this GM program instead of inst's ("cross" renders)
    vibrato: tuple[float, float, float] = (0.0, 0.0, 0.0)  # cents, Hz, phase (see RenderJob)


def _piece_order(pieces: list[str], seed: int) -> list[str]:
    """Chorales and tunes each shuffled, then interleaved, so any prefix mixes both."""
    rng = np.random.default_rng([seed, 1])
    groups: dict[str, list[str]] = {}
    for p in pieces:
        groups.setdefault(p.split("/")[0], []).append(p)
    lists = [list(rng.permutation(g)) for _, g in sorted(groups.items())]
    out = []
    for i in range(max(len(g) for g in lists)):
        out += [g[i] for g in lists if i < len(g)]
    return out


def _parse(job: tuple[str, str | None]) -> list[Line]:
    rel, cache = job
    return load_piece(rel, Path(cache) if cache else None)


def _render(job: tuple[str, list[RenderJob], MelConfig, bool]) -> list[tuple[np.ndarray | None, np.ndarray | None]]:
    soundfont, jobs, mel, keep_wave = job
    waves = render_chunk(soundfont, jobs, mel.clip_seconds, mel.sample_rate)
    ok = [w for w in waves if w is not None]
    mels = iter(logmel(np.stack(ok), mel).numpy().astype(np.float16)) if ok else iter(())
    return [(None, None) if w is None else (next(mels), w if keep_wave else None) for w in waves]


def _program(c: _Clip) -> int:
    return c.inst.program if c.program is None else c.program


def _split_programs(clips: list[_Clip], most: int = MAX_PROGRAMS) -> list[list[_Clip]]:
    """Consecutive runs of `clips` holding at most `most` programs each (one synthesiser plays
    them, a channel per program)."""
    out: list[list[_Clip]] = [[]]
    for c in clips:
        if len({_program(d) for d in out[-1]} | {_program(c)}) > most:
            out.append([])
        out[-1].append(c)
    return [cs for cs in out if cs]


def _cross_clips(train: list[_Clip], insts: list[Instrument], banks: list[str], opts: SynthOptions,
                 banned: dict[str, set[int]]) -> list[_Clip]:
    """Each training clip `opts.cross_per_clip` times more, each time on another instrument (split
    "cross", after everything else so that every other clip keeps its render): a program drawn
    from CROSS_PROGRAMS and the other classes' programs (none twice for a clip, none of the drawn
    bank's `banned`), on a bank drawn from `banks`, with a vibrato when `opts.cross_vibrato_cents`
    > 0. The first render of each clip draws as it did before there could be several. Ordered by
    bank and program, so that a render chunk holds few programs (FluidSynth gives each its own
    channel)."""
    out = []
    taken: dict[str, set[int]] = {c.clip_id: {c.inst.program} for c in train}
    for k in range(opts.cross_per_clip):
        rng = np.random.default_rng([opts.seed, 3] if k == 0 else [opts.seed, 3, k])
        wobble = np.random.default_rng([opts.seed, 4, k])
        for c in train:
            bank = banks[int(rng.integers(len(banks)))]
            pool = [p for p in (*CROSS_PROGRAMS, *(i.program for i in insts))
                    if p not in taken[c.clip_id] and p not in banned.get(bank, ())]
            program = int(pool[int(rng.integers(len(pool)))])
            taken[c.clip_id].add(program)
            vibrato = _draw_vibrato(wobble, opts.cross_vibrato_cents)
            out.append(_Clip(f"cross-{c.clip_id}" if k == 0 else f"cross{k + 1}-{c.clip_id}", "cross", c.inst,
                             c.window, bank, c.clip_id, program, vibrato))
    return sorted(out, key=lambda c: (c.soundfont, c.program))


def _test_leaks(banks: dict[str, Path], insts: list[Instrument], opts: SynthOptions) -> dict[str, set[int]]:
    """{training bank: its programs that play samples the test bank plays for a class}
    (data/sf2info.py): nothing is rerendered or cross-rendered on them (warned); a class's own
    training or aux bank sharing them is only warned of, as a training bank that is the test bank."""
    classes = {i.program for i in insts}
    asked = classes | (set(CROSS_PROGRAMS) if opts.cross_fraction > 0 else set())
    out: dict[str, set[int]] = {}
    what = {"train": "no rerender or cross render uses them, and the test measures no new bank for a class among them",
            "rerender": "no rerender or cross render uses them",
            "aux": "the aux clips (the evaluator's timbre classifier hears them) play the test bank's own samples"}
    for role in ("train", "aux", "rerender"):
        mine = classes if role == "aux" else asked  # the aux clips play the classes' programs only
        shared = shared_with_test(banks[role], mine, banks["test"], classes) if role in banks else {}
        if shared:
            log.warning("the %s bank %s plays the test bank's samples on programs %s (%s shared): %s",
                        role, banks[role], sorted(shared), list(shared.values()), what[role])
            out.setdefault(str(banks[role]), set()).update(shared)
    return out


def _draw_vibrato(rng: np.random.Generator, cents: float) -> tuple[float, float, float]:
    """(depth in cents uniform up to `cents`, rate 4.5-7 Hz, phase); all zero for `cents` 0 (the
    draw is made either way, so that the stream does not depend on it)."""
    depth, hz, phase = rng.uniform((0, 4.5, 0), (1, 7, 2 * np.pi))
    return (float(depth * cents), float(hz), float(phase)) if cents > 0 else (0.0, 0.0, 0.0)


def _collect_windows(
    opts: SynthOptions,
    pool_: Workers,
    pitch_range: tuple[int, int],
    n_test: int,
    n_pool: int,
    clip_s: float,
    progress: bool,
) -> tuple[list[Window], list[Window], list[str], int]:
    """Parse pieces in order until the test windows and the unpaired pool are filled.

    The first pieces (in the seed's order) give the test windows, at most
    `test_windows_per_piece` each; every later piece goes whole into the unpaired pool, so no
    test piece is ever heard in training. Returns (test, pool, test pieces, pool piece count).
    """
    cache = None if opts.cache_dir == "none" else str(Path(opts.cache_dir) if opts.cache_dir else default_cache_dir())
    order = _piece_order(list_pieces(), opts.seed)
    test: list[Window] = []
    pool: list[Window] = []
    test_pieces: list[str] = []
    n_train_pieces = 0
    batch = max(8, 4 * opts.workers)
    pos = 0
    kw = dict(clip_s=clip_s, bpm_range=opts.bpm_range, pitch_range=pitch_range, velocity_range=opts.velocity_range,
              jitter_s=opts.jitter_s, min_notes=opts.min_notes, min_fill=opts.min_fill)  # fmt: skip
    while (len(test) < n_test or len(pool) < n_pool) and pos < len(order):
        names = order[pos : pos + batch]
        pos += len(names)
        parsed = pool_.map(_parse, [(n, cache) for n in names], desc="parse scores", progress=progress)
        for name, lines in zip(names, parsed):
            rng = np.random.default_rng([opts.seed, zlib.crc32(name.encode())])
            wins = [w for ln in lines for w in cut_windows(ln, rng, **kw)]
            if not wins:
                continue
            if len(test) < n_test:
                k = min(opts.test_windows_per_piece, n_test - len(test), len(wins))
                test += [wins[i] for i in sorted(rng.choice(len(wins), size=k, replace=False))]
                test_pieces.append(name)
            elif len(pool) < n_pool:
                pool += wins
                n_train_pieces += 1
    if len(test) < n_test or len(pool) < n_pool:
        raise DataError(
            f"music21's corpus gives only {len(test)} test and {len(pool)} unpaired windows for classes in "
            f"MIDI {pitch_range[0]}..{pitch_range[1]}; ask for fewer clips"
        )
    return test, pool, test_pieces, n_train_pieces


def prepare_synth(
    out: str | Path,
    options: SynthOptions = SynthOptions(),
    mel: MelConfig = MelConfig(),
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Render a synthetic dataset from real scores into `out` (see the module docstring).

    Returns:
        the dataset directory.

    Raises:
        DataError: an unknown instrument, instruments with no common range, a soundfont that
            cannot be loaded, too many clips asked of the corpus, or an existing `out` without `force`.
    """
    opts = options
    insts = resolve_instruments(opts.classes)
    pitch_range = common_range(insts)
    check_output(out, force)
    if opts.train_per_class < 1 or opts.test_windows < 0 or opts.aux_per_class < 0 or not 0 <= opts.val_fraction < 1 \
            or not 0 <= opts.rerender_fraction <= 1 or not 0 <= opts.cross_fraction <= 1 or not 1 <= opts.cross_per_clip <= 8 \
            or opts.cross_vibrato_cents < 0 or opts.test_vibrato_cents < 0:
        raise DataError("need train_per_class >= 1, test_windows >= 0, aux_per_class >= 0, 0 <= val_fraction < 1, "
                        "0 <= rerender_fraction <= 1, 0 <= cross_fraction <= 1, 1 <= cross_per_clip <= 8, "
                        "cross_vibrato_cents >= 0, test_vibrato_cents >= 0")
    banks = {
        "train": check_soundfont(opts.soundfont or find_soundfont("train")),
        "test": check_soundfont(opts.test_soundfont or find_soundfont("test")),
        "aux": check_soundfont(opts.aux_soundfont or timgm6mb()),
    }
    if opts.rerender_fraction > 0:
        # a TiMidity++ bank must play every program rendered on it: the classes', and the cross renders'
        cross = CROSS_PROGRAMS if opts.cross_fraction > 0 else ()
        banks["rerender"] = check_soundfont(opts.rerender_soundfont or find_soundfont("rerender"),
                                            tuple(i.program for i in insts) + cross)
    if banks["test"].resolve() == banks["train"].resolve():
        log.warning("the test clips use the training soundfont %s: the test will not measure a new bank", banks["train"])
    if "rerender" in banks and banks["rerender"].resolve() == banks["test"].resolve():
        log.warning("the rerenders use the test soundfont %s: the test will not measure a new bank", banks["rerender"])
    workers = Workers(opts.workers)
    with workers:
        return _prepare(out, opts, insts, pitch_range, banks, mel, force, progress, workers)


def _prepare(
    out: str | Path,
    opts: SynthOptions,
    insts: list[Instrument],
    pitch_range: tuple[int, int],
    banks: dict[str, Path],
    mel: MelConfig,
    force: bool,
    progress: bool,
    workers: Workers,
) -> Path:
    k = len(insts)
    n_val = int(round(opts.train_per_class * opts.val_fraction))
    per_class = {"train": opts.train_per_class, "val": n_val, "aux": opts.aux_per_class}
    n_pool = k * sum(per_class.values())
    t0 = time.perf_counter()
    test, pool, test_pieces, n_train_pieces = _collect_windows(
        opts, workers, pitch_range, opts.test_windows, n_pool, mel.clip_seconds, progress
    )
    log.info("windows: %d test from %d pieces, %d unpaired from %d pieces (%.0f s)",
             len(test), len(test_pieces), len(pool), n_train_pieces, time.perf_counter() - t0)  # fmt: skip
    t0 = time.perf_counter()
    rng = np.random.default_rng([opts.seed, 2])
    pool = [pool[i] for i in rng.permutation(len(pool))[:n_pool]]

    clips: list[_Clip] = []
    pos = 0
    for split in ("train", "val", "aux"):
        bank = str(banks["aux" if split == "aux" else "train"])
        for j in range(k * per_class[split]):
            inst = insts[j % k]
            clips.append(_Clip(f"{split}-{inst.name}-{j // k:05d}", split, inst, pool[pos + j], bank))
        pos += k * per_class[split]
    wobble = np.random.default_rng([opts.seed, 5])
    for t, w in enumerate(test):
        cid = f"t{t:04d}"
        clips += [_Clip(f"test-{cid}-{i.name}", "test", i, w, str(banks["test"]), cid,
                        vibrato=_draw_vibrato(wobble, opts.test_vibrato_cents if i.program >= 16 else 0.0))
                  for i in insts]
    # last, so that adding them leaves every other clip's render (and row) as it was
    banned = _test_leaks(banks, insts, opts)
    n_rerender = int(round(opts.rerender_fraction * k * per_class["train"])) if "rerender" in banks else 0
    rerender = [_Clip(f"rerender-{c.clip_id}", "rerender", c.inst, c.window, str(banks["rerender"]), c.clip_id)
                for c in clips[:n_rerender] if c.inst.program not in banned.get(str(banks["rerender"]), ())]
    n_rerender = len(rerender)
    clips += rerender
    cross = _cross_clips(clips[:int(round(opts.cross_fraction * k * per_class["train"]))], insts,
                         [str(banks[b]) for b in ("train", "rerender") if b in banks], opts, banned)
    clips += cross

    chunks = []
    n_unpaired = len(clips) - k * len(test) - n_rerender - len(cross)
    n_tested = n_unpaired + k * len(test)
    # test chunks are larger: the test bank (.sf3) decodes its samples once per synthesiser
    bounds = list(range(0, n_unpaired, opts.chunk)) + list(range(n_unpaired, n_tested, 4 * opts.chunk)) \
        + list(range(n_tested, len(clips), opts.chunk)) + [len(clips)]
    for s, e in zip(bounds, bounds[1:]):
        part = clips[s:e]
        groups: dict[tuple[str, bool], list[_Clip]] = {}
        for c in part:
            groups.setdefault((c.soundfont, c.split == "test"), []).append(c)
        for (bank, is_test), group in groups.items():
            for cs in _split_programs(group):
                jobs = [RenderJob(c.window.notes, c.window.velocities, _program(c), c.vibrato) for c in cs]
                chunks.append((cs, (bank, jobs, mel, is_test)))
    options_out = dataclasses.asdict(opts) | {
        "programs": {i.name: i.program for i in insts},
        "pitch_range": list(pitch_range),
        "soundfonts": {r: str(p) for r, p in banks.items()},
        "corpus": str(corpus_root()),
        "test_pieces": test_pieces,
        "train_pieces": n_train_pieces,
        "notes_file": NOTES_FILE,
    }
    silent = 0
    with DatasetWriter(out, source="synth", classes=[i.name for i in insts], mel=mel, options=options_out,
                       capacity=len(clips), force=force) as writer:  # fmt: skip
        notes_rows = []
        results = workers.map(_render, [c[1] for c in chunks], desc="render", total=len(clips), progress=progress)
        for (cs, _), rendered in zip(chunks, results):
            for c, (m, wave) in zip(cs, rendered):
                if m is None:
                    silent += 1
                    log.debug("silent render skipped: %s", c.clip_id)
                    continue
                w = c.window
                writer.add(clip_id=c.clip_id, cls=c.inst.name, source=f"{w.piece}#{w.voice}", start_s=w.start_s,
                           split=c.split, mel=m, content_id=c.content_id, wave=wave,
                           soundfont=Path(c.soundfont).name)  # fmt: skip
                notes_rows.append({"clip_id": c.clip_id, "bpm": w.bpm, "start_q": w.start_q, "transpose": w.transpose,
                                   "program": _program(c), **({"vibrato": list(c.vibrato)} if c.vibrato[0] else {}),
                                   "notes": [[on, d, p, v] for (on, d, p), v in zip(w.notes, w.velocities)]})  # fmt: skip
        writer.options["silent_renders"] = silent
        log.info("rendered %d clips (%d silent, dropped) in %.0f s", len(clips), silent, time.perf_counter() - t0)
        (writer.tmp / NOTES_FILE).write_text("".join(json.dumps(r) + "\n" for r in notes_rows))
        return writer.finish()
