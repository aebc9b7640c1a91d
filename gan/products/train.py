"""Train the products GAN: a class-conditional SN-DCGAN on Fashion-MNIST.

Objective: hinge loss (Lim & Ye 2017; Miyato et al. 2018) by default, or the
non-saturating BCE loss of Goodfellow et al. 2014 as in pytorch/examples' dcgan.
Samples and exports use an exponential moving average of the generator's weights
(Yazici et al. 2019). Everything needed to resume (weights, optimiser states, EMA,
RNG state) is in one ``checkpoint.pt`` that loads with ``weights_only=True``. The loop
(resume, EMA, checkpoints, metrics, Ctrl-C) is ``gan.loop``'s; this module supplies
``TrainConfig`` and ``ProductsGAN``: data, networks, optimisers, the step and the sample grid.

Under ``torchrun`` it trains data-parallel (see ``gan.distributed``): ``batch_size`` stays the
global minibatch, each process takes its share, and only rank 0 writes files; the result
matches the one-process run with the same seed up to the order of floating-point sums.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gan import distributed as gan_dist
from gan.common import FlatConfig, latent, option, save_grid
from gan.loop import Family, trainer
from gan.products.data import CATEGORIES, load_fashion_mnist
from gan.products.model import Discriminator, Generator, ModelConfig

FAMILY = "products"
LOSSES = ("hinge", "bce")


@dataclass(frozen=True)
class TrainConfig(FlatConfig):
    """Every setting of a training run; flat so that the CLI can turn fields into flags.

    Field types are plain ``int``/``float``/``str`` (no ``from __future__ import
    annotations`` here, so ``dataclasses.fields(TrainConfig)[i].type`` is the class).

    The optimiser defaults are the hinge-loss setting of Miyato et al. 2018 (Adam, lr 2e-4,
    betas (0, 0.9), one D step per G step); DCGAN's beta1 = 0.5 gave visibly less
    diversity across z in pilot runs.
    """

    seed: int = option(0, "seed for weights, minibatches, noise and the fixed sample noise")
    steps: int = option(3000, "total generator updates (~11-13 min on 2 CPU cores)")
    batch_size: int = option(64, "images per minibatch")
    lr_g: float = option(2e-4, "generator Adam learning rate")
    lr_d: float = option(2e-4, "discriminator Adam learning rate")
    beta1: float = option(0.0, "Adam beta1, both networks")
    beta2: float = option(0.9, "Adam beta2, both networks")
    n_critic: int = option(1, "discriminator updates per generator update")
    loss: str = option("hinge", "adversarial loss: 'hinge' or 'bce' (non-saturating)")
    ema_decay: float = option(0.999, "decay of the generator weight average used for samples")
    sample_every: int = option(500, "steps between sample grids in OUT/samples/")
    checkpoint_every: int = option(500, "steps between checkpoints (and one at the end)")
    log_every: int = option(50, "steps between lines in OUT/metrics.jsonl")
    num_threads: int = option(0, "torch CPU threads; 0 keeps torch's default (one per core)")
    nz: int = option(64, "latent size")
    ngf: int = option(48, "generator width")
    ndf: int = option(48, "discriminator width")
    embed_dim: int = option(32, "generator label-embedding size")

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        self.require_positive("steps", "batch_size", "n_critic", "sample_every",
                              "checkpoint_every", "log_every", "nz", "ngf", "ndf",
                              "embed_dim")  # fmt: skip

    def model_config(self) -> ModelConfig:
        return ModelConfig(self.nz, len(CATEGORIES), self.ngf, self.ndf, self.embed_dim)


def _d_losses(kind: str, out_real: torch.Tensor, out_fake: torch.Tensor):
    if kind == "hinge":
        return F.relu(1.0 - out_real).mean(), F.relu(1.0 + out_fake).mean()
    real = F.binary_cross_entropy_with_logits(out_real, torch.ones_like(out_real))
    return real, F.binary_cross_entropy_with_logits(out_fake, torch.zeros_like(out_fake))


def _g_loss(kind: str, out_fake: torch.Tensor) -> torch.Tensor:
    if kind == "hinge":
        return -out_fake.mean()
    return F.binary_cross_entropy_with_logits(out_fake, torch.ones_like(out_fake))


def fixed_noise(cfg: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The sample grid's inputs: 10 latents (columns) x every category (rows)."""
    n = len(CATEGORIES)
    z = torch.from_numpy(latent(10, cfg.nz, cfg.seed)).repeat(n, 1)  # (10 * n, nz)
    y = torch.arange(n).repeat_interleave(10)  # (10 * n,)
    return z, y


class ProductsGAN(Family):
    """The products family's hooks for ``gan.loop.fit``."""

    name = FAMILY
    rate_name = "img_per_s"
    progress_fields = {"loss_d": ".3f", "loss_g": ".3f", "d_x": ".2f", "d_g_z": ".2f"}
    cfg: TrainConfig

    def load_data(
        self,
        data_dir: Path | None,
        dry_run: bool,
        ckpt: dict[str, Any] | None,
        info: gan_dist.DistInfo,
    ) -> str:
        cfg = self.cfg
        if dry_run:
            images = torch.randint(0, 256, (4 * cfg.batch_size, 28, 28), dtype=torch.uint8)
            labels = torch.randint(len(CATEGORIES), (4 * cfg.batch_size,))
            data_sha256 = "synthetic"
        else:
            np_images, np_labels, data_sha256 = load_fashion_mnist("train", data_dir)
            images, labels = torch.tensor(np_images), torch.tensor(np_labels)
        self.images, self.labels = images.to(info.device), labels.to(info.device)  # 47 MB uint8
        self.fixed = tuple(t.to(info.device) for t in fixed_noise(cfg))
        return data_sha256

    def model_config(self, cfg: TrainConfig) -> ModelConfig:
        return cfg.model_config()

    def networks(self) -> dict[str, nn.Module]:
        mcfg = self.cfg.model_config()
        return {"generator": Generator(mcfg), "discriminator": Discriminator(mcfg)}

    def optimizers(self, nets: Mapping[str, nn.Module]) -> dict[str, torch.optim.Optimizer]:
        cfg, adam = self.cfg, torch.optim.Adam
        betas = (cfg.beta1, cfg.beta2)
        return {
            "optim_g": adam(nets["generator"].parameters(), lr=cfg.lr_g, betas=betas),
            "optim_d": adam(nets["discriminator"].parameters(), lr=cfg.lr_d, betas=betas),
        }

    def items_per_step(self) -> int:
        return self.cfg.batch_size * self.cfg.n_critic

    def train_step(
        self, nets: Mapping[str, nn.Module], optims: Mapping[str, torch.optim.Optimizer],
        gen: torch.Generator, info: gan_dist.DistInfo,
    ) -> dict[str, float]:  # fmt: skip
        """One generator update preceded by ``cfg.n_critic`` discriminator updates.

        Every rank draws the global minibatch from ``gen`` (on the CPU, so any device draws
        the same numbers) and trains on its shard; the returned metrics are global means.
        """
        cfg, images, labels = self.cfg, self.images, self.labels
        net_g, net_d = nets["generator"], nets["discriminator"]
        opt_g, opt_d = optims["optim_g"], optims["optim_d"]
        b, device = cfg.batch_size, info.device
        # (1) update D: push D(x, y) up on real pairs and D(G(z, y'), y') down on fakes
        for _ in range(cfg.n_critic):
            idx = torch.randint(len(images), (b,), generator=gen)
            z = torch.randn(b, cfg.nz, generator=gen)
            y_fake = torch.randint(len(CATEGORIES), (b,), generator=gen)
            idx, z, y_fake = (gan_dist.shard(t, info).to(device) for t in (idx, z, y_fake))
            x = images[idx].unsqueeze(1).float().div_(127.5).sub_(1.0)  # (B/ranks, 1, 28, 28)
            y = labels[idx]
            fake = net_g(z, y_fake)
            out_real = net_d(x, y)
            out_fake = net_d(fake.detach(), y_fake)
            loss_d_real, loss_d_fake = _d_losses(cfg.loss, out_real, out_fake)
            loss_d = loss_d_real + loss_d_fake
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
        # (2) update G: make the just-updated D score the last fake batch as real. D's
        # gradients from this pass are zeroed before they are used, so DDP need not
        # all-reduce them.
        with gan_dist.no_sync(net_d):
            loss_g = _g_loss(cfg.loss, net_d(fake, y_fake))
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
        opt_g.step()
        if cfg.loss == "bce":  # report D(x), D(G(z)) as probabilities, like pytorch/examples
            out_real, out_fake = out_real.sigmoid(), out_fake.sigmoid()
        metrics = {
            "loss_d": loss_d.item(),
            "loss_d_real": loss_d_real.item(),
            "loss_d_fake": loss_d_fake.item(),
            "loss_g": loss_g.item(),
            "d_x": out_real.mean().item(),
            "d_g_z": out_fake.mean().item(),
        }
        return gan_dist.mean_over_ranks(metrics, info)  # means of equal shards: global means

    def save_samples(self, generator: nn.Module, out_dir: Path, step: int) -> None:
        grid = generator(*self.fixed)  # (100, 1, 28, 28), one row per category
        save_grid(grid, len(CATEGORIES), out_dir / "samples" / f"step_{step:06d}.png")
        save_grid(grid, len(CATEGORIES), out_dir / "samples" / "latest.png")


train = trainer(ProductsGAN)
