"""Scores of the demand backtest: probabilistic accuracy, stock-out events and fidelity.

- sample CRPS (Gneiting & Raftery 2007) per point, scaled by the store's mean weekly sales;
- weighted quantile loss over q = 0.1..0.9 (as GluonTS's mean wQuantileLoss);
- central 80% and 95% interval coverage and width; WAPE of the median;
- Brier score of stock-out events and its skill against climatology;
- TimeGAN's discriminative and predictive scores (Yoon et al. 2019), with small MLPs;
- a nearest-neighbour copy check of generated futures against the training targets.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

WQL_LEVELS = tuple(round(0.1 * i, 1) for i in range(1, 10))


def crps(paths: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Sample CRPS of ``paths (P, n)`` (P points, n samples) against ``y (P,)``.

    ``mean|X - y| - 0.5 mean|X - X'|``, the second term from the sorted samples:
    ``mean_{i,j}|x_i - x_j| = 2 / n^2 * sum_i (2i - n - 1) x_(i)`` (i from 1).
    """
    n = paths.shape[1]
    fit = np.abs(paths - y[:, None]).mean(1)
    x = np.sort(paths, axis=1)
    spread = 2.0 / n**2 * (x * (2 * np.arange(1, n + 1) - n - 1)).sum(1)
    return fit - 0.5 * spread


def point_scores(paths: np.ndarray, y: np.ndarray, scale: np.ndarray) -> dict[str, float]:
    """Aggregate scores of points: ``paths (P, n)``, truths ``y (P,)``, store scale ``(P,)``."""
    q = np.quantile(paths, [0.025, 0.1, 0.5, 0.9, 0.975], axis=1)  # (5, P)
    wq = np.quantile(paths, WQL_LEVELS, axis=1)  # (9, P)
    levels = np.asarray(WQL_LEVELS)[:, None]
    pinball = np.maximum(levels * (y - wq), (levels - 1) * (y - wq))  # (9, P)
    return {
        "scaled_crps": float(np.mean(crps(paths, y) / scale)),
        "wql": float(np.mean(2 * pinball.sum(1) / np.abs(y).sum())),
        "coverage_80": float(np.mean((y >= q[1]) & (y <= q[3]))),
        "coverage_95": float(np.mean((y >= q[0]) & (y <= q[4]))),
        "width_80": float(np.mean((q[3] - q[1]) / scale)),
        "width_95": float(np.mean((q[4] - q[0]) / scale)),
        "wape": float(np.abs(q[2] - y).sum() / np.abs(y).sum()),
        "points": int(len(y)),
    }


def brier(p: np.ndarray, event: np.ndarray, climatology: np.ndarray) -> dict[str, float]:
    """Brier score of forecast probabilities ``p`` and its skill over the ``climatology``
    forecast (the same events' base rates from the training period)."""
    bs = float(np.mean((p - event) ** 2))
    bs_clim = float(np.mean((climatology - event) ** 2))
    return {
        "brier": bs,
        "brier_climatology": bs_clim,
        "brier_skill": 1 - bs / bs_clim,
        "events": int(len(event)),
        "event_rate": float(event.mean()),
    }


def reliability(p: np.ndarray, event: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Mean forecast vs observed frequency in equal-width probability bins."""
    edges = np.minimum((p * bins).astype(int), bins - 1)
    return [
        {
            "p": float(p[edges == b].mean()),
            "observed": float(event[edges == b].mean()),
            "n": int((edges == b).sum()),
        }
        for b in range(bins)
        if (edges == b).any()
    ]


def _mlp(in_dim: int, out_dim: int) -> nn.Module:
    return nn.Sequential(
        nn.Linear(in_dim, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, out_dim)
    )


def _fit(net: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn, steps: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    for _ in range(steps):
        idx = torch.randint(len(x), (min(128, len(x)),), generator=g)
        opt.zero_grad()
        loss_fn(net(x[idx]), y[idx]).backward()
        opt.step()


def discriminative_score(real: np.ndarray, fake: np.ndarray, seed: int, steps: int = 1500) -> float:
    """|accuracy - 0.5| of a post-hoc classifier of real vs generated windows on a held-out
    20%, as TimeGAN's discriminative score (0 = indistinguishable)."""
    torch.manual_seed(seed)
    x = torch.from_numpy(np.concatenate([real, fake]).astype(np.float32))
    y = torch.cat([torch.ones(len(real), 1), torch.zeros(len(fake), 1)])
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    cut = int(0.8 * len(x))
    tr, te = order[:cut], order[cut:]
    net = _mlp(x.shape[1], 1)
    _fit(net, x[tr], y[tr], nn.functional.binary_cross_entropy_with_logits, steps, seed)
    with torch.no_grad():
        acc = ((net(x[te]) > 0).float() == y[te]).float().mean().item()
    return abs(acc - 0.5)


def predictive_score(
    train_windows: np.ndarray, test_windows: np.ndarray, weeks: int, seed: int, steps: int = 1500
) -> float:
    """TimeGAN's predictive score: an MLP trained on ``train_windows`` predicts each window's
    last week (its log-ratio, feature 0) from the earlier weeks; MAE on ``test_windows``."""
    torch.manual_seed(seed)
    f = train_windows.shape[1] // weeks

    def split(w: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        x = w.reshape(len(w), weeks, f)
        inputs = np.concatenate([x[:, :-1].reshape(len(w), -1), x[:, -1, 1:]], axis=1)
        return torch.from_numpy(inputs.astype(np.float32)), torch.from_numpy(
            x[:, -1, :1].astype(np.float32)
        )

    xtr, ytr = split(train_windows)
    xte, yte = split(test_windows)
    net = _mlp(xtr.shape[1], 1)
    _fit(net, xtr, ytr, nn.functional.l1_loss, steps, seed)
    with torch.no_grad():
        return float((net(xte) - yte).abs().mean())


def copy_check(generated: np.ndarray, real: np.ndarray, train: np.ndarray) -> dict[str, Any]:
    """Nearest-neighbour distances (log-ratio futures) to the training targets.

    A memorising generator puts its futures much closer to training futures than unseen real
    futures are: ``share_closer_than_real_p1`` is the share of generated futures nearer to a
    training one than the 1st percentile of the real (held-out) futures' distances.
    """

    def nn_dist(a: np.ndarray) -> np.ndarray:
        d = ((a[:, None] - train[None]) ** 2).sum(-1)
        return np.sqrt(d.min(1))

    d_gen, d_real = nn_dist(generated), nn_dist(real)
    p1 = float(np.quantile(d_real, 0.01))
    return {
        "median_nn_generated": float(np.median(d_gen)),
        "median_nn_real": float(np.median(d_real)),
        "real_p1": p1,
        "share_closer_than_real_p1": float(np.mean(d_gen < p1)),
    }
