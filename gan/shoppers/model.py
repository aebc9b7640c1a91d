"""The shoppers networks: a CTGAN generator, a packed WGAN-GP critic and a per-row detector.

- ``Generator`` (Xu et al. 2019): residual fully connected blocks with BatchNorm whose outputs
  are concatenated to their inputs, fed ``z ++ cond``; the output layer's logits are activated
  per span of the encoded row: tanh on each mode-specific alpha and a Gumbel-softmax (tau 0.2;
  Jang et al. 2017) on each one-hot block. CTGAN draws the Gumbel noise from a global RNG,
  also when sampling; here it is computed from the last ``gumbel_dim`` entries of ``z``
  (``-log(-log(Phi(z)))``), so the network is one deterministic function of its inputs in train
  and eval mode alike, and the decoder's argmax of a block is a draw from the block's softmax,
  as in training, instead of always its most likely category. ``ModelConfig.gumbel = 0``
  drops the noise (a plain softmax of ``logits / tau``).
- ``Critic``: a PacGAN critic (Lin et al. 2018): ``pac`` rows (with their conditions) are
  scored together, LeakyReLU 0.2, Dropout 0.5, trained with WGAN-GP (Gulrajani et al. 2017);
  unlike CTGAN's, a row encoder shared by the rows of a pack comes first (see ``Critic``).
- ``Detector``: the served discriminator. The critic scores packs of rows and is not a
  classifier, so a small MLP trained with BCE on the same real/fake batches scores ONE encoded
  row: (B, output_dim) -> logit (B, 1), positive = looks real.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

Span = tuple[int, int, str]  # (start, end, "tanh" | "softmax") of an encoded row


@dataclass(frozen=True)
class ModelConfig:
    """Shapes of the three networks.

    Attributes:
        nz: Size of the latent fed to the generator's body.
        cond_dim: Width of the conditional vector.
        output_dim: Width of an encoded row.
        spans: Activation spans of an encoded row (``TabularTransformer.output_info``).
        gen_dims: Widths of the generator's residual blocks.
        critic_dims: Widths of the critic's hidden layers.
        det_dims: Widths of the detector's hidden layers.
        pac: Rows per critic input.
        tau: Softmax temperature of the one-hot blocks.
        gumbel: Scale of the Gumbel noise (1 = Gumbel-softmax; 0 = a plain softmax of
            ``logits / tau``, whose argmax is a deterministic function of the latent).
    """

    nz: int
    cond_dim: int
    output_dim: int
    spans: tuple[Span, ...]
    gen_dims: tuple[int, ...] = (256, 256)
    critic_dims: tuple[int, ...] = (256, 256)
    det_dims: tuple[int, ...] = (256, 128)
    pac: int = 10
    tau: float = 0.2
    gumbel: float = 1.0

    def __post_init__(self) -> None:
        covered = sum(e - s for s, e, _ in self.spans)
        if covered != self.output_dim or any(a not in ("tanh", "softmax") for *_, a in self.spans):
            raise ValueError(f"spans must tile output_dim={self.output_dim} with tanh/softmax")

    @property
    def gumbel_dim(self) -> int:
        """Latent entries turned into Gumbel noise: one per one-hot output."""
        if self.gumbel == 0:
            return 0
        return sum(e - s for s, e, a in self.spans if a == "softmax")

    @property
    def z_dim(self) -> int:
        """Width of the generator's ``z`` input: ``nz + gumbel_dim``."""
        return self.nz + self.gumbel_dim


class Residual(nn.Module):
    """``x -> [relu(bn(fc(x))), x]``: the block widens its input by ``out_dim``."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.fc, self.bn = nn.Linear(in_dim, out_dim), nn.BatchNorm1d(out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([F.relu(self.bn(self.fc(x))), x], dim=1)


class Generator(nn.Module):
    """``(z (B, z_dim), cond (B, cond_dim)) -> x (B, output_dim)``, an activated encoded row."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.nz, self.z_dim, self.spans, self.tau = cfg.nz, cfg.z_dim, cfg.spans, cfg.tau
        self.gumbel = cfg.gumbel
        blocks, width = [], cfg.nz + cfg.cond_dim
        for d in cfg.gen_dims:
            blocks.append(Residual(width, d))
            width += d
        self.body = nn.Sequential(*blocks)
        self.out = nn.Linear(width, cfg.output_dim)

    def logits(self, z: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.body(torch.cat([z[:, : self.nz], cond], dim=1))  # (B, width)
        return self.out(h)  # (B, output_dim)

    def activate(self, logits: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        # Phi(z) via erf; clamped so that -log(-log(u)) stays finite in float32.
        u = (0.5 * (1 + torch.erf(z[:, self.nz :] * 0.7071067811865476))).clamp(1e-7, 1 - 1e-7)
        gumbel = -torch.log(-torch.log(u))  # (B, gumbel_dim)
        parts, g = [], 0
        for s, e, act in self.spans:
            block = logits[:, s:e]
            if act == "tanh":
                parts.append(torch.tanh(block))
            else:
                if self.gumbel:
                    block = block + self.gumbel * gumbel[:, g : g + e - s]
                parts.append(torch.softmax(block / self.tau, dim=1))
                g += e - s
        return torch.cat(parts, dim=1)

    def forward(self, z: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.activate(self.logits(z, cond), z)


def _mlp(in_dim: int, dims: tuple[int, ...], dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for d in dims:
        layers += [nn.Linear(in_dim, d), nn.LeakyReLU(0.2), nn.Dropout(dropout)]
        in_dim = d
    layers.append(nn.Linear(in_dim, 1))
    return nn.Sequential(*layers)


class Critic(nn.Module):
    """``(x (B, output_dim), cond (B, cond_dim)) -> score (B / pac, 1)``; B divisible by pac.

    CTGAN flattens a pack into one long input, so each pattern within a row (say, page count
    vs duration) must be learnt once per position in the pack. Here a row encoder shared by
    the pack's rows comes first, and the pack-level head scores the ``pac`` concatenated row
    features: still a PacGAN critic, which in a pilot told real rows from column-shuffled ones
    (same marginals, no correlations) within 300 steps where CTGAN's layout had not started to.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.pac = cfg.pac
        width, feat = cfg.critic_dims[0], cfg.critic_dims[-1] // 2
        self.row = nn.Sequential(
            nn.Linear(cfg.output_dim + cfg.cond_dim, width), nn.LeakyReLU(0.2), nn.Dropout(0.5),
            nn.Linear(width, feat), nn.LeakyReLU(0.2),
        )  # fmt: skip
        self.head = _mlp(feat * cfg.pac, cfg.critic_dims[1:], 0.5)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.row(torch.cat([x, cond], dim=1))  # (B, feat)
        return self.head(h.reshape(h.shape[0] // self.pac, -1))  # (B / pac, 1)

    def gradient_penalty(
        self, real: torch.Tensor, fake: torch.Tensor, cond: torch.Tensor, gen: torch.Generator
    ) -> torch.Tensor:
        """WGAN-GP: ``(||grad_x D(x_hat)|| - 1)^2`` on interpolates, one mix per pack."""
        packs = real.shape[0] // self.pac
        eps = torch.rand(packs, 1, 1, generator=gen).expand(packs, self.pac, 1)
        eps = eps.reshape(-1, 1).to(real.device)
        x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(self(x_hat, cond).sum(), x_hat, create_graph=True)
        # Norm over each pack's concatenated rows, as the critic sees them.
        norms = grad.reshape(packs, -1).norm(2, dim=1)
        return ((norms - 1) ** 2).mean()


class Detector(nn.Module):
    """``x (B, output_dim) -> logit (B, 1)``: one session at a time, positive = real."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.net = _mlp(cfg.output_dim, cfg.det_dims, 0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
