"""Fit the linear erasure of the instrument (models/erasure.py) on a trained model's training codes
and write the model with it installed (`musiclord erase`).

The codes it is fitted on are the content encoder's on the `train` clips and their `rerender`s
(the two training sample banks): no validation, development or test clip. The concept erased is
the pair (class, bank), 2 K labels: every class has the same mean code within each bank, and the
banks have the same mean. Against the class alone (K labels) it lowered the five-set dev probe
from 0.265 to 0.233 (folds by clip, as then) for +0.001 of Merlin dev ratio (ablation 58): an unseen bank's instruments
differ in more directions than one training bank's do. A third bank (`banks`: the same training
clips rendered by Debian's OPL3 FM bank) lowered it again, from 0.446 to 0.389 by passage, the ratio
unchanged (ablation 60), and a fourth (Debian's freepats, by TiMidity++) to 0.352 (ablation 66). The encoders and the generator are left as they are
(train/erasure_adapt.py can then fine-tune the generator to the erased codes). With `centre`, each
code channel's time mean is first replaced by the fitting codes' global mean (`fit_centred_leace`):
on the four banks it lowered the five-set dev probe from 0.352 to 0.309 for +0.003 of Merlin dev
ratio once the generator was adapted for 8000 steps (ablation 76).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from musiclord.data import Dataset
from musiclord.errors import ConfigError, DataError
from musiclord.models.erasure import erase, fit_centred_leace, fit_leace
from musiclord.models.lord import LordModel, load_model, save_model

if TYPE_CHECKING:
    from musiclord.losses import LossConfig

log = logging.getLogger(__name__)

FIT_SPLITS = ("train", "rerender")  # the split stands for the bank: FluidR3, csound's (prepare synth)


@torch.no_grad()
def encoder_codes(model: LordModel, ds: Dataset, rows: list, batch: int = 128) -> torch.Tensor:
    """Content codes (N, D, F) of `rows` (ClipRecords) as the generator sees them, in float32."""
    device = next(model.parameters()).device
    out = [model.encode_content(ds.mel_tensor(rows[i : i + batch]).to(device)).float().cpu()
           for i in range(0, len(rows), batch)]
    return torch.cat(out)


def check_banks(ds: Dataset, banks: tuple[Dataset, ...]) -> None:
    """Raise DataError unless every dataset in `banks` holds `ds`'s training clips as its rerenders."""
    train_ids = {r.clip_id for r in ds.select("train")}
    for extra in banks:
        more = extra.select("rerender")
        if list(extra.classes) != list(ds.classes) or not more or any(r.content_id not in train_ids for r in more):
            raise DataError(f"{extra.root}: its rerender split is not {ds.root}'s training clips in another bank "
                            "(prepare it with the same options and another --rerender-soundfont)")


def with_erasure(model: LordModel, ds: Dataset, max_clips: int = 8000, seed: int = 0,
                 banks: tuple[Dataset, ...] = (), centre: bool = False) -> tuple[LordModel, dict]:
    """A copy of `model` whose content codes pass through an erasure fitted on `ds`'s training codes.

    Args:
        model: a trained model (stage 2: its content encoder gives the codes); any erasure it
            holds is replaced (the codes are read before it).
        ds: the dataset it was trained on (classes in the same order).
        max_clips: at most this many clips, drawn at random from FIT_SPLITS (the matrix has
            (D*F)^2 entries and needs several times D*F clips).
        seed: the draw.
        banks: more training banks: datasets prepared as `ds` but with another
            `--rerender-soundfont`, whose `rerender` clips (the same training clips in that bank,
            at most max_clips // 2 of them) join the fit, each dataset as one more bank.
        centre: replace each code channel's time mean by the fitting codes' global mean before
            the fit (`models.erasure.fit_centred_leace`).

    Returns:
        (the new model in eval mode, a summary: clips per split and per extra bank, the erased
        rank (at most K * banks - 1, plus the C channels with `centre`), the mean relative change of
        the fitting codes).
    """
    if list(ds.classes) != list(model.classes):
        raise DataError(f"{ds.root}: classes {list(ds.classes)} differ from the model's {model.classes}")
    rows = [r for s in FIT_SPLITS for r in ds.select(s)]
    n_feat = model.cfg.content_dim * model.cfg.content_frames
    if len(rows) < 2 * n_feat:
        raise DataError(f"{ds.root}: {len(rows)} training clips, the erasure needs at least {2 * n_feat}")
    pick = np.sort(np.random.default_rng(seed).permutation(len(rows))[:max_clips])
    rows = [rows[i] for i in pick]
    cfg = dataclasses.replace(model.cfg, content_erasure=True)
    out = LordModel(cfg, model.classes).to(next(model.parameters()).device)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("erase_")}
    missing, unexpected = out.load_state_dict(state, strict=False)
    if unexpected or set(missing) - {"erase_mean", "erase_matrix"}:  # the erasure's buffers stay zeros until fitted
        raise ValueError(f"with_erasure: state does not match ({(unexpected + missing)[:3]})")
    out.eval()
    check_banks(ds, banks)  # before any encoding
    k = len(model.classes)
    codes = [encoder_codes(out, ds, rows)]
    labels = [torch.tensor([r.label + k * FIT_SPLITS.index(r.split) for r in rows])]  # (class, bank)
    for i, extra in enumerate(banks):
        more = extra.select("rerender")
        more = [more[j] for j in np.sort(np.random.default_rng(seed + 1 + i).permutation(len(more))[:max_clips // 2])]
        codes.append(encoder_codes(out, extra, more))
        labels.append(torch.tensor([r.label + k * (len(FIT_SPLITS) + i) for r in more]))
    n_banks = len(FIT_SPLITS) + len(banks)
    x, y = torch.cat(codes).flatten(1), torch.cat(labels)
    if centre:
        mean, matrix = fit_centred_leace(x, y, k * n_banks, model.cfg.content_frames)
    else:
        mean, matrix = fit_leace(x, y, k * n_banks)
    out.set_erasure(mean.to(out.erase_mean.device), matrix.to(out.erase_mean.device))
    before = codes[0][:512]  # the codes already read, erased as encode_content would: no second encoder pass
    change = float((erase(before, mean, matrix) - before).norm() / before.norm())
    summary = {
        "clips": {s: sum(r.split == s for r in rows) for s in FIT_SPLITS},
        "banks": [str(b.root) for b in banks],
        "bank_clips": [len(c) for c in codes[1:]],
        "rank": int(torch.linalg.matrix_rank(matrix).item()),
        "relative_change": round(change, 4),
        "centred": centre,
        "seed": seed,
    }
    return out, summary


def training_loss_config(model_path: str | Path, meta: dict) -> "LossConfig":
    """The reconstruction loss a model was trained with: its run's config.yaml, else the config the
    shipped model carries in its meta (`scripts/ship_pretrained.py`)."""
    import yaml

    from musiclord.config import load_config
    from musiclord.models.lord import resolve_model_path
    from musiclord.train.config import TrainConfig, config_from_dict

    run_yaml = resolve_model_path(model_path).parent / "config.yaml"
    if run_yaml.is_file():
        return load_config(TrainConfig, run_yaml).loss
    if meta.get("train_config_yaml"):
        return config_from_dict(yaml.safe_load(meta["train_config_yaml"])).loss
    raise ConfigError(f"{model_path}: no training config beside the model (config.yaml) or in it; "
                      "--adapt-steps needs the loss it was trained with")


def erase_model(model_path: str | Path, data_dir: str | Path, out_path: str | Path, max_clips: int = 8000,
                seed: int = 0, device: str = "cpu", adapt_steps: int = 0, bank_dirs: tuple = (),
                keep: tuple[str, ...] = (), centre: bool = False) -> dict:
    """Load a model, fit its erasure on `data_dir`'s training codes (and the rerenders of `bank_dirs`,
    see `with_erasure`; `centre`: centred codes), optionally adapt its generator to the erased codes
    for `adapt_steps` steps (train/erasure_adapt.py; `keep`: instrument names whose translations stay
    as they were), save it to `out_path`."""
    model, mel_cfg, meta = load_model(model_path, map_location=device)
    if meta.get("stage") == "latent":
        raise ConfigError(f"{model_path}: a stage-1 model (its codes come from latent fitting, not an encoder); "
                          "erase a stage-2 model")
    unknown = [k for k in keep if k not in model.classes]
    if unknown:
        raise ConfigError(f"unknown instrument {unknown[0]!r} to keep; this model knows: {', '.join(model.classes)}")
    loss_cfg = training_loss_config(model_path, meta) if adapt_steps > 0 else None
    ds = Dataset.open(data_dir)
    banks = tuple(Dataset.open(d) for d in bank_dirs)
    out, summary = with_erasure(model, ds, max_clips=max_clips, seed=seed, banks=banks, centre=centre)
    if loss_cfg is not None:
        from musiclord.losses import ReconstructionLoss
        from musiclord.train.erasure_adapt import adapt_generator

        loss_fn = ReconstructionLoss.from_config(loss_cfg, device)
        summary["adapt"] = adapt_generator(out, ds, loss_fn, adapt_steps, seed=seed,
                                           keep=tuple(model.classes.index(k) for k in keep))
    meta = {**meta, "erasure": {**summary, "data": str(data_dir)}}
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    save_model(out.cpu(), out_path, mel_cfg, meta=meta)
    log.info("erasure fitted on %s clips (rank %d, codes changed by %.1f%%) -> %s",
             summary["clips"], summary["rank"], 100 * summary["relative_change"], out_path)
    return summary
