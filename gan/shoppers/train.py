"""Train the shoppers GAN: CTGAN (Xu et al. 2019) with a per-row detector beside it.

Per step: one training-by-sampling batch of real rows and their conditions
(``gan.shoppers.transformer.CondSampler``); the packed critic (Lin et al. 2018) takes a WGAN-GP
step (Gulrajani et al. 2017, lambda 10); the detector takes a BCE step on the real rows vs the
fakes rebuilt through ``decode``/``encode`` (exactly what the service will score); the
generator minimises ``-critic + cross-entropy of the conditioned blocks``. Adam, lr 2e-4,
betas (0.5, 0.9), as in CTGAN. Samples use an EMA of the generator (Yazici et al. 2019). The
checkpoint holds the transformer's JSON document, so it is self-contained. The loop (resume,
EMA, checkpoints, metrics, Ctrl-C) is ``gan.loop``'s; ``ShoppersGAN`` supplies the rest.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ecomgan.tabular import TabularTransformer
from gan.common import FlatConfig, atomic_write, latent, option
from gan.distributed import DistInfo
from gan.loop import Family, trainer
from gan.shoppers.data import COLUMNS, load_split, synthetic_table
from gan.shoppers.model import Critic, Detector, Generator, ModelConfig
from gan.shoppers.transformer import CondSampler, fit_transformer

FAMILY = "shoppers"


@dataclass(frozen=True)
class TrainConfig(FlatConfig):
    """Every setting of a training run; flat so that the CLI can turn fields into flags.

    Field types are plain ``int``/``float``/``str`` (no ``from __future__ import
    annotations`` here, so ``dataclasses.fields(TrainConfig)[i].type`` is the class).
    """

    seed: int = option(0, "seed for weights, mixtures, minibatches and noise")
    split_seed: int = option(0, "seed of the stratified train/test split (trains on train rows)")
    steps: int = option(3000, "total generator updates (~4 min on 2 idle CPU cores)")
    batch_size: int = option(500, "rows per minibatch (a multiple of pac)")
    lr_g: float = option(2e-4, "generator Adam learning rate")
    lr_d: float = option(2e-4, "critic and detector Adam learning rate")
    beta1: float = option(0.5, "Adam beta1, all networks")
    beta2: float = option(0.9, "Adam beta2, all networks")
    weight_decay: float = option(1e-6, "Adam weight decay of generator and critic (as CTGAN)")
    n_critic: int = option(1, "critic updates per generator update")
    gp_weight: float = option(10.0, "WGAN-GP gradient-penalty weight")
    pac: int = option(10, "rows packed into one critic input (PacGAN)")
    free_fraction: float = option(0.3, "share of rows drawn uniformly instead of by sampling")
    extra_prob: float = option(0.1, "chance each other discrete column of a row also conditions")
    ema_decay: float = option(0.99, "decay of the generator weight average used for samples")
    checkpoint_every: int = option(500, "steps between checkpoints (and one at the end)")
    sample_every: int = option(500, "steps between OUT/samples/latest.csv (200 free rows)")
    log_every: int = option(50, "steps between lines in OUT/metrics.jsonl")
    num_threads: int = option(0, "torch CPU threads; 0 keeps torch's default (one per core)")
    nz: int = option(128, "latent size fed to the generator body (Gumbel noise comes on top)")
    gen_width: int = option(256, "width of each generator residual block")
    gen_depth: int = option(2, "number of generator residual blocks")
    critic_width: int = option(256, "width of the critic's two hidden layers")
    tau: float = option(0.2, "softmax temperature of the generator's one-hot outputs")
    gumbel: float = option(1.0, "Gumbel noise scale on one-hot outputs (0: plain softmax)")

    def __post_init__(self) -> None:
        self.require_positive("steps", "batch_size", "n_critic", "pac", "checkpoint_every",
                              "sample_every", "log_every", "nz", "gen_width", "gen_depth",
                              "critic_width")  # fmt: skip
        if self.batch_size % self.pac:
            raise ValueError(f"batch_size {self.batch_size} must be a multiple of pac {self.pac}")
        for name in ("free_fraction", "extra_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")

    def model_config(self, transformer: TabularTransformer) -> ModelConfig:
        return ModelConfig(
            self.nz, transformer.cond_dim, transformer.output_dim,
            tuple(transformer.output_info()), (self.gen_width,) * self.gen_depth,
            (self.critic_width,) * 2, pac=self.pac, tau=self.tau, gumbel=self.gumbel,
        )  # fmt: skip


def round_trip(transformer: TabularTransformer, x: torch.Tensor) -> torch.Tensor:
    """``encode(decode(x))``: generated rows as the service sees them (constraints applied)."""
    return torch.from_numpy(transformer.encode(transformer.decode(x.detach().numpy())))


def _table(dry_run: bool, data_dir: Path | None, split_seed: int) -> tuple[pd.DataFrame, str]:
    if dry_run:
        return synthetic_table(200, seed=split_seed), "synthetic"
    train_df, _ = load_split(data_dir, seed=split_seed)
    return train_df, train_df.attrs["sha256"]


def free_rows(net_g: Generator, transformer: TabularTransformer, n: int, seed: int) -> pd.DataFrame:
    """``n`` unconditioned rows from ``net_g`` (in its current mode) as a table."""
    z = torch.from_numpy(latent(n, net_g.z_dim, seed))
    with torch.no_grad():
        x = net_g(z, torch.zeros(n, transformer.cond_dim))
    return pd.DataFrame(transformer.decode(x.numpy()))[list(COLUMNS)]


class ShoppersGAN(Family):
    """The shoppers family's hooks for ``gan.loop.fit``: one process, on the CPU."""

    name = FAMILY
    data_parallel = False
    dry_run_steps = 2
    rate_name = "rows_per_s"
    progress_fields = {"w_dist": ".3f", "cond_ce": ".3f", "det_acc": ".2f"}
    cfg: TrainConfig

    def load_data(
        self, data_dir: Path | None, dry_run: bool, ckpt: dict[str, Any] | None, info: DistInfo
    ) -> str:
        cfg = self.cfg
        table, data_sha256 = _table(dry_run, data_dir, cfg.split_seed)
        if ckpt is not None:  # resume with the fitted transformer, not a refit
            self.transformer = TabularTransformer.from_dict(ckpt["transformer"])
        else:
            self.transformer = fit_transformer(table, cfg.seed)
        self.sampler = CondSampler(self.transformer, table, cfg.free_fraction, cfg.extra_prob)
        self.x_real = torch.from_numpy(
            self.transformer.encode({c: table[c].to_numpy() for c in COLUMNS})
        )  # (rows, output_dim)
        return data_sha256

    def model_config(self, cfg: TrainConfig) -> ModelConfig:
        return cfg.model_config(self.transformer)

    def networks(self) -> dict[str, nn.Module]:
        mcfg = self.model_config(self.cfg)
        return {"generator": Generator(mcfg), "critic": Critic(mcfg), "detector": Detector(mcfg)}

    def optimizers(self, nets: Mapping[str, nn.Module]) -> dict[str, torch.optim.Optimizer]:
        cfg, adam = self.cfg, torch.optim.Adam
        betas, wd = (cfg.beta1, cfg.beta2), cfg.weight_decay
        return {
            "optim_g": adam(nets["generator"].parameters(), cfg.lr_g, betas, weight_decay=wd),
            "optim_c": adam(nets["critic"].parameters(), cfg.lr_d, betas, weight_decay=wd),
            "optim_det": adam(nets["detector"].parameters(), cfg.lr_d, betas),
        }

    def train_step(
        self, nets: Mapping[str, nn.Module], optims: Mapping[str, torch.optim.Optimizer],
        gen: torch.Generator, info: DistInfo,
    ) -> dict[str, float]:  # fmt: skip
        """``cfg.n_critic`` critic updates, one detector update, then one generator update."""
        cfg, sampler, transformer, b = self.cfg, self.sampler, self.transformer, self.cfg.batch_size
        net_g, critic, det = nets["generator"], nets["critic"], nets["detector"]
        opt_g, opt_c, opt_det = optims["optim_g"], optims["optim_c"], optims["optim_det"]
        # (1) update D: the packed critic's WGAN-GP step on real rows vs fake.detach() ...
        for _ in range(cfg.n_critic):
            rows, mask = sampler.sample(b, gen)
            real, cond = self.x_real[rows], sampler.cond(rows, mask)  # (B, out_dim), (B, cond_dim)
            z = torch.randn(b, net_g.z_dim, generator=gen)
            logits = net_g.logits(z, cond)
            fake = net_g.activate(logits, z)
            w_dist = critic(real, cond).mean() - critic(fake.detach(), cond).mean()
            gp = critic.gradient_penalty(real, fake.detach(), cond, gen)
            opt_c.zero_grad(set_to_none=True)
            (cfg.gp_weight * gp - w_dist).backward()
            opt_c.step()
        # ... and the per-row detector's BCE step, on the fakes as the service will see them
        out_real, out_fake = det(real), det(round_trip(transformer, fake))  # (B, 1) each
        loss_det = F.binary_cross_entropy_with_logits(
            out_real, torch.ones_like(out_real)
        ) + F.binary_cross_entropy_with_logits(out_fake, torch.zeros_like(out_fake))
        opt_det.zero_grad(set_to_none=True)
        loss_det.backward()
        opt_det.step()
        # (2) update G: fool the critic and honour the conditions
        ce = sampler.cross_entropy(logits, rows, mask)
        loss_adv = -critic(fake, cond).mean()
        opt_g.zero_grad(set_to_none=True)
        (loss_adv + ce).backward()
        opt_g.step()
        det_acc = ((out_real > 0).float().mean() + (out_fake < 0).float().mean()) / 2
        return {
            "w_dist": w_dist.item(), "gp": gp.item(), "loss_g": loss_adv.item(),
            "cond_ce": ce.item(), "loss_det": loss_det.item(), "det_acc": det_acc.item(),
        }  # fmt: skip

    def save_samples(self, generator: nn.Module, out_dir: Path, step: int) -> None:
        rows = free_rows(generator, self.transformer, 200, self.cfg.seed)
        with atomic_write(out_dir / "samples" / "latest.csv") as f:
            f.write(rows.to_csv(index=False).encode())

    def checkpoint_extras(self) -> dict[str, Any]:
        return {"transformer": self.transformer.to_dict()}


train = trainer(ShoppersGAN)
