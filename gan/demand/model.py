"""The demand networks: a conditional scenario generator, its critic and the served detector.

- ``Generator`` (ForGAN, Koochali et al. 2019; RCGAN, Esteban et al. 2017): noise ``z`` and
  the condition (``ecomgan.demand.condition``: context window, the same weeks a year earlier
  and the calendar of the forecast weeks) -> H future log-ratios of sales over the history's
  level. The condition is a fixed-length vector, so the networks are residual MLPs; the
  condition's standardisation and the targets' scale live in buffers, so the ONNX model takes
  the raw condition and returns raw log-ratios.
- ``Critic``: the conditional discriminator ``(cond, y) -> logit`` of the adversarial loss.
- ``Detector``: the served discriminator, one sales window ``(B, window_dim) -> logit``,
  positive = looks real (real windows vs generated and corrupted ones).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

CLIP = 3.0


@dataclass(frozen=True)
class ModelConfig:
    """Shapes of the three networks."""

    nz: int
    cond_dim: int
    horizon: int
    window_dim: int
    lag_start: int
    level_weeks: int = 8
    width: int = 128
    depth: int = 3


class Block(nn.Module):
    """``x + fc(leaky_relu(norm(x)))``: a pre-norm residual block of constant width."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm, self.fc = nn.LayerNorm(width), nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc(nn.functional.leaky_relu(self.norm(x), 0.2))


def _mlp(in_dim: int, width: int, depth: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_dim, width),
        *(Block(width) for _ in range(depth)),
        nn.LeakyReLU(0.2),
        nn.Linear(width, out_dim),
    )


class Scaled(nn.Module):
    """Holds the condition's and the targets' mean and std as buffers (saved, exported).

    The target is modelled as the level-adjusted seasonal naive forecast (`base`, computed from
    the condition) plus a learnt change: ``y = base + y_mean + y_std * net(...)``, so the
    baseline is the networks' starting point and they learn its error distribution. Condition
    features that are constant in training (e.g. the Christmas flags when training stops in
    October) get a huge std: the networks ignore them rather than extrapolate.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.lag = slice(cfg.lag_start, cfg.lag_start + cfg.horizon)
        self.year_ago = slice(cfg.lag_start - cfg.level_weeks, cfg.lag_start)
        self.register_buffer("cond_mean", torch.zeros(cfg.cond_dim))
        self.register_buffer("cond_std", torch.ones(cfg.cond_dim))
        self.register_buffer("y_mean", torch.zeros(cfg.horizon))
        self.register_buffer("y_std", torch.ones(cfg.horizon))

    def standardise(self, cond: torch.Tensor) -> torch.Tensor:
        """The condition in training standard deviations, clipped to +-``CLIP``: inputs far
        outside the training range (a Christmas peak in the context of a model trained until
        October) move the networks no further than the training data's tails."""
        return ((cond - self.cond_mean) / self.cond_std).clamp(-CLIP, CLIP)

    def base(self, cond: torch.Tensor) -> torch.Tensor:
        """The level-adjusted seasonal naive forecast in log-ratios, ``(B, H)``: the same weeks
        a year earlier, scaled by the last ``level_weeks`` weeks over the same weeks a year
        earlier. The context is scaled by its last weeks' mean (the level), so the recent
        mean is 1 and the adjustment is ``-log(mean(exp(year-ago log-ratios)))``."""
        year_ago = torch.exp(cond[:, self.year_ago]).mean(1, keepdim=True)  # (B, 1)
        return cond[:, self.lag] - torch.log(year_ago)

    def set_scalers(
        self, cond: torch.Tensor, y: torch.Tensor, ignore: list[int] | tuple[int, ...] = ()
    ) -> None:
        """Fit the buffers on training conditions (N, cond_dim) and targets (N, H); the
        ``ignore`` columns (and constant ones) get a huge std, so the networks ignore them."""
        std = cond.std(0)
        std[list(ignore)] = 0.0
        self.cond_mean.copy_(cond.mean(0))
        self.cond_std.copy_(torch.where(std < 1e-6, torch.full_like(std, 1e6), std))
        change = y - self.base(cond)
        self.y_mean.copy_(change.mean(0))
        self.y_std.copy_(change.std(0).clamp_min(1e-3))


class Generator(Scaled):
    """``(z (B, nz), cond (B, cond_dim)) -> y (B, H)`` log-ratios of sales over the level."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        self.z_dim = cfg.nz
        self.net = _mlp(cfg.nz + cfg.cond_dim, cfg.width, cfg.depth, cfg.horizon)

    def forward(
        self, z: torch.Tensor, cond: torch.Tensor, eps: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``eps``: training-time noise added to the network's standardised condition."""
        c = self.standardise(cond)  # (B, cond_dim)
        if eps is not None:
            c = c + eps
        change = self.y_mean + self.y_std * self.net(torch.cat([z, c], dim=1))  # (B, H)
        return self.base(cond) + change


class Critic(Scaled):
    """``(cond (B, cond_dim), y (B, H)) -> logit (B, 1)``, positive = a real future."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        self.net = _mlp(cfg.cond_dim + cfg.horizon, cfg.width, 2, 1)

    def forward(self, cond: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        c = self.standardise(cond)
        change = (y - self.base(cond) - self.y_mean) / self.y_std  # (B, H)
        return self.net(torch.cat([c, change], dim=1))  # (B, 1)


class Detector(nn.Module):
    """``x (B, window_dim) -> logit (B, 1)``: one sales window, positive = looks real."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.net = _mlp(cfg.window_dim, cfg.width // 2, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def energy_score(samples: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean energy score of ``samples (B, K, H)`` against ``y (B, H)`` (Gneiting & Raftery
    2007), the unbiased form with K >= 2 samples per condition used to train generative
    networks by scoring rules (Pacchiardi et al. 2022); lower is better."""
    k = samples.shape[1]
    fit = (samples - y[:, None]).norm(dim=2).mean(1)  # (B,)
    diff = samples[:, :, None] - samples[:, None]  # (B, K, K, H)
    # the epsilon keeps the gradient of the zero diagonal finite
    spread = ((diff**2).sum(-1) + 1e-12).sqrt().sum((1, 2)) / (k * (k - 1))  # (B,)
    return (fit - 0.5 * spread).mean()


def marginal_crps(samples: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean sample CRPS of each week's marginal, ``samples (B, K, H)`` vs ``y (B, H)``
    (the energy score in one dimension, unbiased form); sensitive to each week's spread,
    which the multivariate energy score weighs weakly (Pinson & Tastu 2013)."""
    k = samples.shape[1]
    fit = (samples - y[:, None]).abs().mean(1)  # (B, H)
    spread = (samples[:, :, None] - samples[:, None]).abs().sum((1, 2)) / (k * (k - 1))
    return (fit - 0.5 * spread).mean()
