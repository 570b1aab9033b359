"""Ablation 71 (rejected): `musiclord erase --centre` with the part of each channel mean that a ridge
regression predicts from the centred code put back before the (class, bank) LEACE fit.

    python scripts/centred_erasure.py --model runs/v8ship --data runs/data2 --out runs/v9m/model.pt \
        --bank-data runs/data2o --bank-data runs/data2f --bank-data runs/data2g --adapt-steps 4000

Ablation 70 (each channel mean replaced by the fitting codes' global mean, then LEACE) is now the
library's `musiclord erase --centre` (`models.erasure.fit_centred_leace`; ablation 76 shipped it
with 8000 adaptation steps and four banks). Here each channel mean is instead replaced by what a
ridge regression fitted on the fitting codes predicts from the centred code (ridge strength by
2-fold CV). The composite affine map is written into the model's erasure buffers (x -> x - A'(x -
m'), m' by least squares: exact to float rounding, not to the bit), so the model loads and
translates as any erased model. The fit and the generator's adaptation are `musiclord erase`'s
own (train/erasure.py), with only `fit_leace` swapped for `predicted_means_fit`. On dev it cost
as much ratio as the centring alone (+0.0065) for less probe (docs/rules_q7.txt, session 22).
"""

from __future__ import annotations

import argparse
import logging

import torch

import musiclord.train.erasure as erasure
from musiclord.models.erasure import fit_leace, time_mean_operators


def _ridge(x: torch.Tensor, y: torch.Tensor, lam: float) -> torch.Tensor:
    return torch.linalg.solve(x.T @ x + lam * len(x) * torch.eye(x.shape[1], dtype=x.dtype), x.T @ y)


def predicted_means_fit(x: torch.Tensor, labels: torch.Tensor, num_classes: int,
                        frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """As `fit_leace` on codes x (N, D * F) whose channel means are first replaced by their ridge
    prediction from the centred code; returns the composite map's (mean (D*F,), A (D*F, D*F))."""
    x = x.double()
    n, dims = x.shape
    eye = torch.eye(dims, dtype=x.dtype)
    spread, centre = time_mean_operators(dims, frames)
    cen, means = x @ centre, x.reshape(n, dims // frames, frames).mean(-1)
    g, cm = means.mean(0), cen.mean(0)
    half = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    a, b = half[: n // 2], half[n // 2 :]

    def cv_r2(lam: float) -> float:
        return sum(1 - float(((cen[q] - cm) @ _ridge(cen[p] - cm, means[p] - g, lam) + g - means[q]).pow(2).sum()
                             / (means[q] - g).pow(2).sum()) for p, q in ((a, b), (b, a))) / 2

    scores = {lam: cv_r2(lam) for lam in (1e-4, 1e-3, 1e-2, 1e-1, 1.0)}
    lam = max(scores, key=lambda k: scores[k])
    logging.info("ridge strength %g (2-fold CV R2 %.3f)", lam, scores[lam])
    r = _ridge(cen - cm, means - g, lam)
    lin = centre @ (eye + r @ spread)  # codes -> replaced codes: x @ lin + bias (row vectors)
    bias = (g - cm @ r) @ spread
    mean, a_mat = (t.double() for t in fit_leace(x @ lin + bias, labels, num_classes))
    a_t = eye - lin @ (eye - a_mat.T)  # the composite is x - (x - m') @ a_t
    m_new = torch.linalg.lstsq(a_t.T, (bias @ (eye - a_mat.T) + mean @ a_mat.T)[:, None]).solution[:, 0]
    return m_new.float(), a_t.T.float()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--bank-data", action="append", default=[])
    ap.add_argument("--adapt-steps", type=int, default=4000)
    ap.add_argument("--frames", type=int, default=32, help="the model's content_frames")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO)
    erasure.fit_leace = lambda x, y, k: predicted_means_fit(x, y, k, args.frames)
    print(erasure.erase_model(args.model, args.data, args.out, adapt_steps=args.adapt_steps,
                              bank_dirs=tuple(args.bank_data), keep=("piano",)))


if __name__ == "__main__":
    main()
