"""`evaluate(models, data_dir, out_dir, options)`: every metric, figure and sound of the report.

All translation metrics use the paired test split (pieces and a sample bank never used for
training) and audio after inversion: translate_mel -> Griffin-Lim -> waveform, compared with the
true rendering's waveform. Work is batched: each model's translations of every pair are inverted
together, the ground truth's round trip is shared by all models.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from musiclord.audio import MelConfig, invert, logmel
from musiclord.errors import DataError, MusiclordError
from musiclord.evaluate import figures
from musiclord.evaluate.adapters import TranslatorLike, open_dataset
from musiclord.evaluate.intervals import passage_bootstrap
from musiclord.evaluate.lsd import lsd
from musiclord.evaluate.oracle import oracle_waves
from musiclord.evaluate.pitch import raw_pitch_accuracy, track_f0
from musiclord.evaluate.probe import paired_labels, probe_accuracy, tsne_2d
from musiclord.evaluate.timbre import TimbreConfig, classify
from musiclord.evaluate.training import get_classifier

log = logging.getLogger(__name__)

SPLIT = "test"


@dataclass(frozen=True)
class EvalOptions:
    """What to evaluate and how much.

    Attributes:
        max_clips: paired test passages used for the translation metrics (each rendered on every
            instrument, so every pair gets this many clips); 0 means all.
        pitch_clips: passages per pair given to pYIN (slow: about a second per clip).
        probe_clips: passages whose codes the probes and t-SNE use (all instruments each).
        gl_iters: Griffin-Lim iterations of every inversion (translations and the ceiling alike).
        control_clips: passages per target used by the random-model control.
        device: where models run and audio is inverted ("cpu", "cuda").
        seed: passage selection and everything random.
        timbre: the instrument classifier's training.
    """

    max_clips: int = 16
    pitch_clips: int = 4
    probe_clips: int = 100
    gl_iters: int = 64
    control_clips: int = 4
    device: str = "cpu"
    seed: int = 0
    timbre: TimbreConfig = field(default_factory=TimbreConfig)


def slug(name: str) -> str:
    """A file-name-safe form of a model or instrument name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "x"


def model_tags(names: list[str]) -> dict[str, str]:
    """Distinct file-name tags for display names ("1_demo", "2_pretrained")."""
    return {n: f"{i + 1}_{slug(n)}" for i, n in enumerate(names)}


def _invert(mel: torch.Tensor, cfg: MelConfig, opts: EvalOptions) -> np.ndarray:
    """(B, M, T) -> (B, T*hop) numpy waveforms."""
    if len(mel) == 0:
        return np.zeros((0, mel.shape[-1] * cfg.hop_length), np.float32)
    return invert(mel.to(opts.device).float(), cfg, n_iter=opts.gl_iters).cpu().numpy()


def _reanalyse(waves: np.ndarray, cfg: MelConfig) -> torch.Tensor:
    """(B, N) waveforms -> (B, M, T) normalised log-mel, the classifier's input."""
    return logmel(torch.from_numpy(np.ascontiguousarray(waves, dtype=np.float32)), cfg)


def fit_length(wave: np.ndarray, n: int) -> np.ndarray:
    """(N,) wave cut or zero-padded to (n,)."""
    return wave[:n] if len(wave) >= n else np.pad(wave, (0, n - len(wave)))


def pick_passages(ds: Any, classes: list[str], opts: EvalOptions) -> list[str]:
    """Ids of the test passages rendered on every class, in the evaluation's order (shuffled by opts.seed)."""
    paired = ds.paired(SPLIT)
    full = sorted(cid for cid, by in paired.items() if all(c in by for c in classes))
    if not full:
        raise DataError(f"the dataset has no {SPLIT} passage rendered on every instrument ({', '.join(classes)})")
    rng = np.random.default_rng(opts.seed)
    order = [full[i] for i in rng.permutation(len(full))]
    return order


def pitch_tracks(waves: np.ndarray, sr: int, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """f0 and voicing of (prod(shape), N) waves, reshaped to shape + (F,)."""
    if len(waves) == 0:
        return np.zeros((*shape, 0)), np.zeros((*shape, 0), bool)
    f0, voiced = track_f0(waves, sr)
    return f0.reshape(*shape, -1), voiced.reshape(*shape, -1)


class GroundTruth:
    """The chosen test passages on every instrument: mels, waves, their round trip, f0 tracks."""

    def __init__(self, ds: Any, classes: list[str], cids: list[str], opts: EvalOptions, data_dir: Path | None = None) -> None:
        cfg = ds.mel_config
        paired = ds.paired(SPLIT)
        self.cids = cids
        recs = [[paired[c][k] for k in classes] for c in cids]  # (C, K)
        flat = [r for row in recs for r in row]
        k = len(classes)
        self.mel = ds.mel_tensor(flat).reshape(len(cids), k, cfg.n_mels, -1)  # (C, K, M, T)
        n = self.mel.shape[-1] * cfg.hop_length
        self.wave = np.stack([fit_length(ds.load_wave(r), n) for r in flat]).reshape(len(cids), k, n)
        # copying the source: (C,) LSD per passage for every (source, target) pair
        self.lsd_copy = {(s, t): lsd(self.wave[:, s], self.wave[:, t], cfg.sample_rate)
                         for s in range(k) for t in range(k) if s != t}
        t0 = time.time()
        self.roundtrip = _invert(self.mel.flatten(0, 1), cfg, opts).reshape(len(cids), k, n)
        log.info("ground truth: %d clips inverted in %.1f s", len(flat), time.time() - t0)
        p = min(opts.pitch_clips, len(cids))
        t0 = time.time()
        self.f0, self.voiced = pitch_tracks(self.wave[:p].reshape(p * k, n), cfg.sample_rate, (p, k))
        self.rt_f0, self.rt_voiced = pitch_tracks(self.roundtrip[:p].reshape(p * k, n), cfg.sample_rate, (p, k))
        log.info("ground truth: pitch of %d clips tracked in %.1f s", 2 * p * k, time.time() - t0)
        # the sample-bank oracle (evaluate/oracle.py), through mel + Griffin-Lim like a model's output
        oracle = oracle_waves(ds, data_dir, classes, cids) if data_dir is not None else None
        self.oracle = self.oracle_f0 = self.oracle_voiced = None
        if oracle is not None:
            mel = logmel(torch.from_numpy(oracle.reshape(len(flat), n)), cfg)
            self.oracle = _invert(mel, cfg, opts).reshape(len(cids), k, n)
            self.oracle_f0, self.oracle_voiced = pitch_tracks(self.oracle[:p].reshape(p * k, n), cfg.sample_rate,
                                                              (p, k))


def pitch_accuracy(f0e: np.ndarray, ve: np.ndarray, f0r: np.ndarray, vr: np.ndarray) -> float | None:
    """Raw pitch accuracy of an estimate's (f0, voicing) against a reference's (None: no voiced reference frame)."""
    correct, total = raw_pitch_accuracy(f0e, ve, f0r, vr)
    return correct / total if total else None


def _baselines(gt: GroundTruth, classes: list[str], net: Any, cfg: MelConfig) -> dict[str, dict[str, Any]]:
    """Model-independent numbers per pair: copy-the-source and the inversion ceiling."""
    sr = cfg.sample_rate
    rt_pred = classify(net, _reanalyse(gt.roundtrip.reshape(-1, gt.roundtrip.shape[-1]), cfg))
    rt_pred = rt_pred.reshape(len(gt.cids), len(classes)).numpy()
    out: dict[str, dict[str, Any]] = {}
    for s, src in enumerate(classes):
        for t, tgt in enumerate(classes):
            if s == t:
                continue
            out[f"{src}->{tgt}"] = {
                "lsd_copy": float(gt.lsd_copy[s, t].mean()),
                "lsd_ceiling": float(lsd(gt.roundtrip[:, t], gt.wave[:, t], sr).mean()),
                "timbre_copy": float((rt_pred[:, s] == t).mean()),
                "timbre_ceiling": float((rt_pred[:, t] == t).mean()),
                "pitch_copy": pitch_accuracy(gt.f0[:, s], gt.voiced[:, s], gt.f0[:, t], gt.voiced[:, t]),
                "pitch_ceiling": pitch_accuracy(gt.rt_f0[:, t], gt.rt_voiced[:, t], gt.f0[:, t], gt.voiced[:, t]),
                "lsd_oracle": None if gt.oracle is None else float(lsd(gt.oracle[:, t], gt.wave[:, t], sr).mean()),
                "pitch_oracle": None if gt.oracle is None else pitch_accuracy(
                    gt.oracle_f0[:, t], gt.oracle_voiced[:, t], gt.f0[:, t], gt.voiced[:, t]),
            }
    return out


def _inference_settings(tr: TranslatorLike) -> dict[str, Any] | None:
    """The translator's settings that change its codes (recorded with its metrics): the latent fit's
    for a stage-1-only model, the refinement's for one with encoders; None for a bare model."""
    cfg = getattr(tr, "cfg", None)
    if not dataclasses.is_dataclass(cfg):
        return None
    used = "latent_" if getattr(tr, "uses_latent_fit", False) else "refine_"
    return {k: v for k, v in dataclasses.asdict(cfg).items() if k.startswith(used)}


@torch.no_grad()
def translate_all(tr: TranslatorLike, gt: GroundTruth, classes: list[str], pairs: list[tuple[int, int]], opts: EvalOptions) -> tuple[torch.Tensor, np.ndarray]:
    """Every pair's translations of every passage: mels (P, C, M, T) and waves (P, C, N)."""
    mels = []
    for s, t in pairs:
        src = gt.mel[:, s].to(opts.device)
        mels.append(tr.translate_mel(src, to=classes[t]).float().cpu())
    mel = torch.stack(mels)  # (P, C, M, T)
    wave = _invert(mel.flatten(0, 1), tr.mel_config, opts).reshape(len(pairs), len(gt.cids), -1)
    return mel, wave


def _model_metrics(
    name: str, tr: TranslatorLike, gt: GroundTruth, classes: list[str], net: Any, opts: EvalOptions
) -> tuple[dict[str, Any], dict[tuple[int, int], tuple[torch.Tensor, np.ndarray]], dict[str, Any]]:
    """Per-pair LSD, timbre and pitch of one model, its translations for the grid, and the 95%
    intervals of its LSD ratio and pitch accuracy over passages (`intervals.passage_bootstrap`)."""
    cfg, sr = tr.mel_config, tr.mel_config.sample_rate
    pairs = [(s, t) for s in range(len(classes)) for t in range(len(classes)) if s != t]
    t0 = time.time()
    mel, wave = translate_all(tr, gt, classes, pairs, opts)
    log.info("%s: %d translations made and inverted in %.1f s", name, wave.shape[0] * wave.shape[1], time.time() - t0)
    pred = classify(net, _reanalyse(wave.reshape(-1, wave.shape[-1]), cfg)).reshape(len(pairs), -1).numpy()
    p = gt.f0.shape[0]
    t0 = time.time()
    f0, v = pitch_tracks(wave[:, :p].reshape(len(pairs) * p, wave.shape[-1]), sr, (len(pairs), p))
    log.info("%s: pitch of %d translations tracked in %.1f s", name, len(pairs) * p, time.time() - t0)
    lsd_model = np.stack([lsd(wave[i], gt.wave[:, t], sr) for i, (_, t) in enumerate(pairs)])  # (K, C)
    lsd_copy = np.stack([gt.lsd_copy[pair] for pair in pairs])
    hits = np.array([[raw_pitch_accuracy(f0[i, j], v[i, j], gt.f0[j, t], gt.voiced[j, t]) for j in range(p)]
                     for i, (_, t) in enumerate(pairs)]).reshape(len(pairs), p, 2)  # (K, P, correct/total)
    per_pair: dict[str, dict[str, Any]] = {}
    for i, (s, t) in enumerate(pairs):
        correct, total = (int(n) for n in hits[i].sum(0))  # the pair's frames over its pitch passages
        per_pair[f"{classes[s]}->{classes[t]}"] = {
            "lsd": float(lsd_model[i].mean()),
            "timbre": float((pred[i] == t).mean()),
            "pitch": correct / total if total else None,
        }
    cells = {pair: (mel[i], wave[i]) for i, pair in enumerate(pairs)}
    return per_pair, cells, passage_bootstrap(lsd_model, lsd_copy, hits[..., 0], hits[..., 1], seed=opts.seed)


def _probes(tr: TranslatorLike, ds: Any, classes: list[str], cids: list[str], opts: EvalOptions, fig_dir: Path, tag: str) -> dict[str, Any]:
    """Linear probes and t-SNE for instrument from content codes and from class codes."""
    paired = ds.paired(SPLIT)
    recs = [paired[c][k] for c in cids for k in classes]
    labels, passages = paired_labels(len(cids), len(classes))  # folds keep a passage's renders together
    mel = ds.mel_tensor(recs).to(opts.device)
    with torch.no_grad():
        content = torch.cat([tr.content_codes(mel[i : i + 64]).float().cpu() for i in range(0, len(mel), 64)])
        klass = torch.cat([tr.class_codes(mel[i : i + 64]).float().cpu() for i in range(0, len(mel), 64)])
    out: dict[str, Any] = {"split": SPLIT, "clips": len(recs)}
    for key, codes in (("content", content), ("class", klass)):
        x = codes.reshape(len(codes), -1).numpy()
        out[key] = probe_accuracy(x, labels, seed=opts.seed, groups=passages)
        out[key]["code_shape"] = list(codes.shape[1:])
        png = fig_dir / f"tsne_{key}_{tag}.png"
        figures.plot_tsne(tsne_2d(x, seed=opts.seed), labels, classes, png, f"{key} codes, {SPLIT} split ({len(x)} clips)")
        out[key]["tsne"] = f"figures/{png.name}"
    # A nonlinear reader of the same content codes: a linear erasure (`musiclord erase`) bounds the
    # linear probe above, not this one.
    out["content_mlp"] = probe_accuracy(content.reshape(len(content), -1).numpy(), labels, seed=opts.seed, kind="mlp",
                                        groups=passages)
    return out


def _summary(per_pair: dict[str, dict[str, Any]], base: dict[str, dict[str, Any]], probes: dict[str, Any]) -> dict[str, Any]:
    def mean(vals: list[Any]) -> float | None:
        vals = [v for v in vals if v is not None]
        return float(np.mean(vals)) if vals else None

    keys = list(per_pair)
    lsd_t = mean([per_pair[k]["lsd"] for k in keys])
    lsd_c = mean([base[k]["lsd_copy"] for k in keys])
    return {
        "split": SPLIT,
        "pairs": len(keys),
        "lsd": lsd_t,
        "lsd_copy": lsd_c,
        "lsd_ceiling": mean([base[k]["lsd_ceiling"] for k in keys]),
        "lsd_ratio": (lsd_t / lsd_c) if lsd_t is not None and lsd_c else None,
        "lsd_oracle": mean([base[k].get("lsd_oracle") for k in keys]),
        "pitch_oracle": mean([base[k].get("pitch_oracle") for k in keys]),
        "timbre": mean([per_pair[k]["timbre"] for k in keys]),
        "timbre_copy": mean([base[k]["timbre_copy"] for k in keys]),
        "pitch": mean([per_pair[k]["pitch"] for k in keys]),
        "pitch_copy": mean([base[k]["pitch_copy"] for k in keys]),
        "content_probe": probes["content"]["accuracy"],
        "content_probe_ci": probes["content"].get("ci95"),
        "content_probe_mlp": probes.get("content_mlp", {}).get("accuracy"),
        "class_probe": probes["class"]["accuracy"],
        "probe_chance": probes["content"]["chance"],
    }


def evaluate(
    models: list[tuple[str, TranslatorLike]], data_dir: str | Path, out_dir: str | Path, options: EvalOptions | None = None
) -> dict[str, Any]:
    """Evaluate one or more translators side by side and write the report.

    Args:
        models: (display name, Translator) pairs; compared on the same clips.
        data_dir: a prepared dataset directory (its paired test split is used).
        out_dir: the report directory: metrics.json, summary.txt, index.html, figures/, audio/.
        options: amounts of work (see EvalOptions).

    Returns:
        The metrics dict written to metrics.json.

    Raises:
        MusiclordError: no models, mismatched representations, a dataset without paired clips.
    """
    from musiclord.evaluate.controls import run_controls
    from musiclord.evaluate.report import summary_table, write_report
    from musiclord.evaluate.grid import write_grids

    opts = options or EvalOptions()
    if not models:
        raise MusiclordError("evaluate: give at least one model")
    names = [n for n, _ in models]
    if len(set(names)) != len(names):
        raise MusiclordError(f"evaluate: model names must differ, got {names}")
    t_start = time.time()
    torch.manual_seed(opts.seed)
    data_dir, out = Path(data_dir), Path(out_dir)
    ds = open_dataset(data_dir)
    classes = list(ds.classes)
    for name, tr in models:
        if tr.mel_config != ds.mel_config:
            raise MusiclordError(f"model {name!r} was trained on another mel representation than {data_dir}")
        missing = [c for c in classes if c not in tr.instruments]
        if missing:
            raise MusiclordError(f"model {name!r} does not know the instrument(s) {', '.join(missing)}")
    order = pick_passages(ds, classes, opts)
    cids = order[: opts.max_clips] if opts.max_clips > 0 else order
    (out / "figures").mkdir(parents=True, exist_ok=True)
    net, timbre_stats = get_classifier(ds, data_dir, out / "cache", opts)
    gt = GroundTruth(ds, classes, cids, opts, data_dir)
    base = _baselines(gt, classes, net, ds.mel_config)
    timbre_stats["test_accuracy_roundtrip"] = float(np.mean([base[k]["timbre_ceiling"] for k in base]))
    metrics: dict[str, Any] = {
        "format": "musiclord-eval",
        "version": 1,
        "dataset": str(data_dir),
        "split": SPLIT,
        "classes": classes,
        "passages": len(cids),
        "pitch_passages": int(gt.f0.shape[0]),
        "options": dataclasses.asdict(opts),
        "timbre_classifier": timbre_stats,
        "baselines": base,
        "models": {},
    }
    grid_cells = {}
    tags = model_tags(names)
    for name, tr in models:
        tag = tags[name]
        per_pair, cells, intervals = _model_metrics(name, tr, gt, classes, net, opts)
        probes = _probes(tr, ds, classes, order[: opts.probe_clips], opts, out / "figures", tag)
        metrics["models"][name] = {
            "meta": {k: v for k, v in dict(tr.meta).items() if isinstance(v, (str, int, float, bool)) or v is None},
            "translate": _inference_settings(tr),
            "summary": {**_summary(per_pair, base, probes), **intervals},
            "per_pair": per_pair,
            "probes": probes,
        }
        grid_cells[name] = cells
    metrics["controls"] = run_controls(ds, classes, models, gt, net, opts)
    metrics["grids"] = write_grids(ds, classes, models, gt, grid_cells, out, opts)
    metrics["seconds"] = round(time.time() - t_start, 1)
    metrics = _clean(metrics)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1, allow_nan=False))
    (out / "summary.txt").write_text(summary_table(metrics) + "\n")
    write_report(metrics, out)
    log.info("report written to %s in %.0f s", out / "index.html", time.time() - t_start)
    return metrics


def _clean(o: Any) -> Any:
    """Plain JSON values: numpy scalars to Python, NaN and infinities to None, tuples to lists."""
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, (np.floating, np.integer, np.bool_)):
        o = o.item()
    if isinstance(o, float) and not np.isfinite(o):
        return None
    return o
