"""Train the demand GAN: a conditional scenario generator scored by an energy score and a critic.

Per step, for a minibatch of B rolling windows (``gan.demand.data``), the generator draws K
scenario paths per condition. ``# (1)`` the conditional critic takes a non-saturating BCE step
(real future vs generated future, same condition; Goodfellow et al. 2014, as in ForGAN,
Koochali et al. 2019), and the detector (the served discriminator) a BCE step on real windows
vs windows with a generated future and corrupted real windows. ``# (2)`` the generator
minimises the energy score of its K paths against the real future (a strictly proper scoring
rule, Gneiting & Raftery 2007; Pacchiardi et al. 2022 train generators by scoring rules) plus
``adv_weight`` times the adversarial loss: GANs alone tend to be under-dispersed, and the
scoring rule rewards calibrated spread. Adam; the loop (resume, EMA, checkpoints, Ctrl-C)
is ``gan.loop``'s.
"""

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ecomgan.demand import CALENDAR, Layout
from gan.common import FlatConfig, atomic_write, option
from gan.demand.data import (
    BACKTEST_WEEKS,
    Stores,
    corrupt,
    generated_windows,
    load,
    make_windows,
    synthetic_stores,
)
from gan.demand.model import (
    Critic,
    Detector,
    Generator,
    ModelConfig,
    energy_score,
    marginal_crps,
)
from gan.distributed import DistInfo
from gan.loop import Family, trainer

FAMILY = "demand"


@dataclass(frozen=True)
class TrainConfig(FlatConfig):
    """Every setting of a training run; flat so that the CLI can turn fields into flags."""

    seed: int = option(0, "seed for weights, minibatches and noise")
    steps: int = option(1000, "total generator updates")
    batch_size: int = option(128, "windows per minibatch")
    paths: int = option(8, "scenario paths per window in a step (energy score needs >= 2)")
    lr_g: float = option(5e-4, "generator Adam learning rate")
    lr_d: float = option(2e-4, "critic and detector Adam learning rate")
    beta1: float = option(0.5, "Adam beta1")
    beta2: float = option(0.9, "Adam beta2")
    adv_weight: float = option(0.01, "weight of the adversarial loss beside the energy score")
    crps_weight: float = option(0.0, "weight of the weeks' marginal CRPS beside the energy score")
    holdout: int = option(1, "1: train on weeks before the 26-week backtest; 0: on every week")
    val_fold: int = option(
        0,
        "k in 1..5: leave out stores with (store - 1) % 5 == k - 1 (model "
        "selection on unseen stores); 0: train on every store",
    )
    cond_noise: float = option(0.5, "std of Gaussian noise on the standardised condition")
    weight_decay: float = option(0.0, "Adam weight decay of the generator")
    ema_decay: float = option(0.995, "decay of the generator weight average used for samples")
    checkpoint_every: int = option(500, "steps between checkpoints (and one at the end)")
    sample_every: int = option(500, "steps between OUT/samples/latest.png fan charts")
    log_every: int = option(50, "steps between lines in OUT/metrics.jsonl")
    num_threads: int = option(
        1, "torch CPU threads (0: one per core); these MLPs run fastest on one"
    )
    nz: int = option(16, "latent size")
    width: int = option(64, "width of the residual MLPs")
    depth: int = option(1, "residual blocks of the generator")
    horizon: int = option(8, "H: weeks the generator forecasts")
    context: int = option(12, "past weeks in the condition")

    def __post_init__(self) -> None:
        self.require_positive(
            "steps",
            "batch_size",
            "checkpoint_every",
            "sample_every",
            "log_every",
            "nz",
            "width",
            "depth",
            "horizon",
            "context",
        )
        if self.paths < 2:
            raise ValueError(f"paths must be >= 2 (the energy score's spread), got {self.paths}")
        if not 0 <= self.val_fold <= 5:
            raise ValueError(f"val_fold must be 0..5, got {self.val_fold}")
        if self.holdout not in (0, 1):
            raise ValueError(f"holdout must be 0 or 1, got {self.holdout}")

    def layout(self) -> Layout:
        return Layout(
            horizon=self.horizon, context=self.context, window=self.context + self.horizon
        )

    def model_config(self) -> ModelConfig:
        lay = self.layout()
        return ModelConfig(
            self.nz,
            lay.cond_dim,
            lay.horizon,
            lay.window_dim,
            lay.context + lay.lag_pad,
            lay.level_weeks,
            self.width,
            self.depth,
        )


def last_train_week(stores: Stores, holdout: int) -> int:
    """Index of the last week a training target may use (before the backtest if held out)."""
    n = min(len(s["sales"]) for s in stores.values())
    return n - 1 - (BACKTEST_WEEKS if holdout else 0)


def in_fold(store: int, fold: int) -> bool:
    """Whether a store is in validation fold ``fold`` (1..5)."""
    return (store - 1) % 5 == fold - 1


class DemandGAN(Family):
    """The demand family's hooks for ``gan.loop.fit``: one process, on the CPU."""

    name = FAMILY
    data_parallel = False
    dry_run_steps = 2
    rate_name = "windows_per_s"
    progress_fields = {"energy": ".4f", "d_acc": ".2f", "det_acc": ".2f"}
    cfg: TrainConfig

    def load_data(
        self, data_dir: Path | None, dry_run: bool, ckpt: dict[str, Any] | None, info: DistInfo
    ) -> str:
        cfg, layout = self.cfg, self.cfg.layout()
        if dry_run:
            self.stores, sha = synthetic_stores(seed=cfg.seed), "synthetic"
        else:
            self.stores, sha = load(data_dir)
        if cfg.val_fold:
            self.stores = {s: v for s, v in self.stores.items() if not in_fold(s, cfg.val_fold)}
        self.last_week = last_train_week(self.stores, cfg.holdout)
        self.windows = make_windows(self.stores, layout, self.last_week)
        self.cond = torch.from_numpy(self.windows.cond)  # (N, cond_dim)
        self.y = torch.from_numpy(self.windows.y)  # (N, H)
        self.real = torch.from_numpy(self.windows.real)  # (N, window_dim)
        return sha

    def model_config(self, cfg: TrainConfig) -> ModelConfig:
        return cfg.model_config()

    def networks(self) -> dict[str, nn.Module]:
        mcfg = self.model_config(self.cfg)
        nets = {"generator": Generator(mcfg), "critic": Critic(mcfg), "detector": Detector(mcfg)}
        for key in ("generator", "critic"):
            nets[key].set_scalers(self.cond, self.y, self.unseen_season())
        return nets

    def unseen_season(self) -> list[int]:
        """The week-of-year columns of the condition when the training targets span less than
        a year: their values in the other weeks would be extrapolation, so they are ignored."""
        lay = self.cfg.layout()
        if self.last_week - (lay.min_history - 1) >= lay.lag:
            return []
        start, k = lay.context + lay.lag_pad + lay.horizon, len(CALENDAR)
        return [start + h * k + i for h in range(lay.horizon) for i in (0, 1)]

    def optimizers(self, nets: Mapping[str, nn.Module]) -> dict[str, torch.optim.Optimizer]:
        cfg, adam = self.cfg, torch.optim.Adam
        betas = (cfg.beta1, cfg.beta2)
        return {
            "optim_g": adam(
                nets["generator"].parameters(), cfg.lr_g, betas, weight_decay=cfg.weight_decay
            ),
            "optim_c": adam(nets["critic"].parameters(), cfg.lr_d, betas),
            "optim_det": adam(nets["detector"].parameters(), cfg.lr_d, betas),
        }

    def train_step(
        self,
        nets: Mapping[str, nn.Module],
        optims: Mapping[str, torch.optim.Optimizer],
        gen: torch.Generator,
        info: DistInfo,
    ) -> dict[str, float]:
        """One critic and one detector update, then one generator update."""
        cfg, b, k = self.cfg, self.cfg.batch_size, self.cfg.paths
        net_g, critic, det = nets["generator"], nets["critic"], nets["detector"]
        rows = torch.randint(len(self.y), (b,), generator=gen)
        cond, y = self.cond[rows], self.y[rows]  # (B, cond_dim), (B, H)
        z = torch.randn(b * k, net_g.z_dim, generator=gen)
        eps = None
        if cfg.cond_noise:  # noise on the network's standardised condition, same for K paths
            eps = cfg.cond_noise * torch.randn(cond.shape, generator=gen).repeat_interleave(k, 0)
        fake = net_g(z, cond.repeat_interleave(k, 0), eps).reshape(b, k, -1)  # (B, K, H)
        # (1) update D: the critic on real vs one generated future of the same condition ...
        out_real, out_fake = critic(cond, y), critic(cond, fake[:, 0].detach())
        loss_c = F.binary_cross_entropy_with_logits(
            out_real, torch.ones_like(out_real)
        ) + F.binary_cross_entropy_with_logits(out_fake, torch.zeros_like(out_fake))
        optims["optim_c"].zero_grad(set_to_none=True)
        loss_c.backward()
        optims["optim_c"].step()
        # ... and the detector on real windows vs generated and corrupted ones
        idx = rows.numpy()
        gen_win = generated_windows(
            self.windows.take(idx), fake[:, 0].detach().numpy(), self.cfg.layout()
        )
        rng = np.random.Generator(np.random.PCG64(int(torch.randint(2**62, (1,), generator=gen))))
        bad = corrupt(self.windows.real[idx[: b // 2]], self.cfg.layout(), rng)
        negatives = torch.from_numpy(np.concatenate([gen_win[b // 2 :], bad]))
        d_real, d_neg = det(self.real[rows]), det(negatives)
        loss_det = F.binary_cross_entropy_with_logits(
            d_real, torch.ones_like(d_real)
        ) + F.binary_cross_entropy_with_logits(d_neg, torch.zeros_like(d_neg))
        optims["optim_det"].zero_grad(set_to_none=True)
        loss_det.backward()
        optims["optim_det"].step()
        # (2) update G: energy score of the K paths + the non-saturating adversarial loss
        energy = energy_score(fake, y)
        crps = marginal_crps(fake, y) if cfg.crps_weight else torch.zeros(())
        adv = critic(cond.repeat_interleave(k, 0), fake.reshape(b * k, -1))
        loss_adv = F.binary_cross_entropy_with_logits(adv, torch.ones_like(adv))
        optims["optim_g"].zero_grad(set_to_none=True)
        (energy + cfg.crps_weight * crps + cfg.adv_weight * loss_adv).backward()
        optims["optim_g"].step()
        d_acc = ((out_real > 0).float().mean() + (out_fake < 0).float().mean()) / 2
        det_acc = ((d_real > 0).float().mean() + (d_neg < 0).float().mean()) / 2
        return {
            "energy": energy.item(),
            "crps": crps.item(),
            "loss_adv": loss_adv.item(),
            "loss_c": loss_c.item(),
            "d_acc": d_acc.item(),
            "loss_det": loss_det.item(),
            "det_acc": det_acc.item(),
        }

    def save_samples(self, generator: nn.Module, out_dir: Path, step: int) -> None:
        from gan.demand import fan_chart_of_store

        store = next(iter(self.stores))
        png = fan_chart_of_store(
            generator,
            self.stores[store],
            self.cfg.layout(),
            200,
            self.cfg.seed,
            self.last_week,
            f"store {store}, step {step}",
        )
        with atomic_write(out_dir / "samples" / "latest.png") as f:
            f.write(png)

    def checkpoint_extras(self) -> dict[str, Any]:
        return {"layout": asdict(self.cfg.layout()), "last_week": self.last_week}


train = trainer(DemandGAN)
