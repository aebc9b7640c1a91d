"""The toy family's training module: `ecomgan.contract.TrainerModule` and one optional hook.

Real data: an equal mixture of N(-2, 0.3^2) and N(2, 0.3^2). Both networks are tiny MLPs
trained by `gan.loop` with the non-saturating BCE loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gan.common import FlatConfig, describe_checkpoint, latent, load_checkpoint, option
from gan.exportable import CalibrationInputs, Exportable
from gan.loop import Family, trainer

NAME = "toy"
MEANS, STD = (-2.0, 2.0), 0.3


@dataclass(frozen=True)
class TrainConfig(FlatConfig):
    """Options of a toy run (one `ecomgan train` flag each)."""

    seed: int = option(0, "seed")
    steps: int = option(200, "generator updates")
    batch_size: int = option(64, "values per minibatch")
    ema_decay: float = option(0.9, "EMA decay")
    sample_every: int = option(100, "steps between samples")
    checkpoint_every: int = option(100, "steps between checkpoints")
    log_every: int = option(50, "steps between metrics lines")
    num_threads: int = option(1, "torch threads")
    nz: int = option(2, "latent size")
    hidden: int = option(16, "hidden units")
    lr: float = option(5e-3, "Adam learning rate")


def real_values(n: int, seed: int) -> np.ndarray:
    """``n`` float32 draws (n, 1) of the mixture, seeded."""
    rng = np.random.Generator(np.random.PCG64(seed))
    means = np.asarray(MEANS, dtype=np.float32)[rng.integers(0, len(MEANS), n)]
    return (means + STD * rng.standard_normal(n).astype(np.float32))[:, None]


def _networks(cfg: TrainConfig) -> dict[str, nn.Module]:
    h = cfg.hidden
    return {
        "generator": nn.Sequential(nn.Linear(cfg.nz, h), nn.ReLU(), nn.Linear(h, 1)),
        "discriminator": nn.Sequential(
            nn.Linear(1, h), nn.LeakyReLU(0.2), nn.Linear(h, 1), nn.Flatten(0)
        ),  # fmt: skip
    }


class ToyGAN(Family):
    """The `gan.loop.Family` of the toy data."""

    name = NAME
    data_parallel = False
    rate_name = "values_per_s"
    progress_fields = {"loss_d": ".3f", "loss_g": ".3f"}
    cfg: TrainConfig

    def load_data(self, data_dir, dry_run, ckpt, info) -> str:
        self.real = torch.from_numpy(real_values(2048, self.cfg.seed))
        return "toy-mixture"

    def model_config(self, cfg: TrainConfig) -> tuple[int, int]:
        return cfg.nz, cfg.hidden

    def networks(self) -> dict[str, nn.Module]:
        return _networks(self.cfg)

    def optimizers(self, nets) -> dict[str, torch.optim.Optimizer]:
        return {f"optim_{k[0]}": torch.optim.Adam(v.parameters(), self.cfg.lr, betas=(0.5, 0.9))
                for k, v in nets.items()}  # fmt: skip

    def train_step(self, nets, optims, gen, info) -> dict[str, float]:
        net_g, net_d, b = nets["generator"], nets["discriminator"], self.cfg.batch_size
        # (1) update D
        x = self.real[torch.randint(len(self.real), (b,), generator=gen)]
        fake = net_g(torch.randn(b, self.cfg.nz, generator=gen))
        out_real, out_fake = net_d(x), net_d(fake.detach())
        loss_d = F.binary_cross_entropy_with_logits(
            out_real, torch.ones_like(out_real)
        ) + F.binary_cross_entropy_with_logits(out_fake, torch.zeros_like(out_fake))
        optims["optim_d"].zero_grad()
        loss_d.backward()
        optims["optim_d"].step()
        # (2) update G
        out = net_d(fake)
        loss_g = F.binary_cross_entropy_with_logits(out, torch.ones_like(out))
        optims["optim_g"].zero_grad()
        loss_g.backward()
        optims["optim_g"].step()
        return {"loss_d": loss_d.item(), "loss_g": loss_g.item()}

    def save_samples(self, generator, out_dir: Path, step: int) -> None:
        (out_dir / "samples").mkdir(parents=True, exist_ok=True)
        z = torch.from_numpy(latent(256, self.cfg.nz, 0))
        np.savetxt(out_dir / "samples" / "latest.csv", generator(z).numpy(), fmt="%.6f")


train = trainer(ToyGAN)


def _read(checkpoint: Path) -> tuple[dict[str, Any], TrainConfig, dict[str, nn.Module]]:
    ckpt = load_checkpoint(checkpoint, NAME)
    cfg = TrainConfig.from_dict(ckpt["config"])
    nets = _networks(cfg)
    nets["generator"].load_state_dict(ckpt["generator_ema"])
    nets["discriminator"].load_state_dict(ckpt["discriminator"])
    return ckpt, cfg, {k: v.eval() for k, v in nets.items()}


@torch.no_grad()
def generate(checkpoint: Path, n: int, seed: int) -> np.ndarray:
    """``n`` values (n, 1) of the EMA generator from the service's seeded latents."""
    _, cfg, nets = _read(checkpoint)
    return nets["generator"](torch.from_numpy(latent(n, cfg.nz, seed))).numpy()


def exportables(checkpoint: Path) -> dict[str, Exportable]:
    """The EMA generator ``z -> x`` and the discriminator ``x -> logit``."""
    _, cfg, nets = _read(checkpoint)
    z = torch.from_numpy(latent(4, cfg.nz, 0))
    with torch.no_grad():
        x = nets["generator"](z)
    return {
        "generator": Exportable(nets["generator"], (z,), ("z",), ("x",)),
        "discriminator": Exportable(nets["discriminator"], (x,), ("x",), ("logit",)),
    }


def calibration_inputs(
    checkpoint: Path, n: int, seed: int, data_dir: Path | None = None
) -> CalibrationInputs:
    """``((real_x,), (fake_x,))``: seeded mixture draws and generated values, (n, 1) each."""
    return (real_values(n, seed + 1),), (generate(checkpoint, n, seed),)


def describe(checkpoint: Path) -> dict[str, Any]:
    """JSON facts of a checkpoint for the manifest."""
    ckpt, cfg, nets = _read(checkpoint)
    return describe_checkpoint(ckpt, cfg, nets)


def write_samples(checkpoint: Path, out: Path | None, *, count: int, seed: int,
                  category: str | None = None, conditions: dict | None = None) -> str:  # fmt: skip
    """``ecomgan sample --checkpoint``: one value per line (the contract's optional hook)."""
    if category is not None or conditions:
        raise ValueError("the toy family takes neither --category nor --condition")
    out = Path(out or "samples.txt")
    np.savetxt(out, generate(checkpoint, count, seed), fmt="%.6f")
    return f"wrote {count} values to {out}"
