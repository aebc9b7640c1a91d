"""Train the shoppers GAN: CTGAN (Xu et al. 2019) with a per-row detector beside it.

Per step: one training-by-sampling batch of real rows and their conditions
(``gan.shoppers.transformer.CondSampler``); the packed critic (Lin et al. 2018) takes a WGAN-GP
step (Gulrajani et al. 2017, lambda 10); the detector takes a BCE step on the real rows vs the
fakes rebuilt through ``decode``/``encode`` (exactly what the service will score); the
generator minimises ``-critic + cross-entropy of the conditioned blocks``. Adam, lr 2e-4,
betas (0.5, 0.9), as in CTGAN. Samples use an EMA of the generator (Yazici et al. 2019). The
checkpoint holds the transformer's JSON document, so it is self-contained.
"""

import os
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ecomgan.tabular import TabularTransformer
from gan.common import (
    EMA,
    FlatConfig,
    MetricsLog,
    atomic_write,
    latent,
    load_checkpoint,
    option,
    save_checkpoint,
    seed_everything,
)
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
        positive = ("steps", "batch_size", "n_critic", "pac", "checkpoint_every", "sample_every",
                    "log_every", "nz", "gen_width", "gen_depth", "critic_width")  # fmt: skip
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
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


def _train_step(cfg, nets, opts, x_real, sampler, transformer, gen) -> dict[str, float]:
    """``cfg.n_critic`` critic and detector updates, then one generator update."""
    net_g, critic, det = nets
    opt_g, opt_c, opt_det = opts
    b = cfg.batch_size
    for _ in range(cfg.n_critic):
        rows, mask = sampler.sample(b, gen)
        real, cond = x_real[rows], sampler.cond(rows, mask)  # (B, output_dim), (B, cond_dim)
        z = torch.randn(b, net_g.z_dim, generator=gen)
        logits = net_g.logits(z, cond)
        fake = net_g.activate(logits, z)
        w_dist = critic(real, cond).mean() - critic(fake.detach(), cond).mean()
        gp = critic.gradient_penalty(real, fake.detach(), cond, gen)
        opt_c.zero_grad(set_to_none=True)
        (cfg.gp_weight * gp - w_dist).backward()
        opt_c.step()
    out_real, out_fake = det(real), det(round_trip(transformer, fake))  # (B, 1) each
    loss_det = F.binary_cross_entropy_with_logits(
        out_real, torch.ones_like(out_real)
    ) + F.binary_cross_entropy_with_logits(out_fake, torch.zeros_like(out_fake))
    opt_det.zero_grad(set_to_none=True)
    loss_det.backward()
    opt_det.step()
    ce = sampler.cross_entropy(logits, rows, mask)
    loss_adv = -critic(fake, cond).mean()
    opt_g.zero_grad(set_to_none=True)
    (loss_adv + ce).backward()
    opt_g.step()
    det_acc = ((out_real > 0).float().mean() + (out_fake < 0).float().mean()) / 2
    return {
        "w_dist": w_dist.item(), "gp": gp.item(), "loss_g": loss_adv.item(), "cond_ce": ce.item(),
        "loss_det": loss_det.item(), "det_acc": det_acc.item(),
    }  # fmt: skip


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


def train(
    cfg: TrainConfig,
    out_dir: Path,
    *,
    data_dir: Path | None = None,
    resume: Path | None = None,
    dry_run: bool = False,
    progress: bool = True,
) -> Path:
    """Train (or resume training) and return the path of the final checkpoint.

    Args:
        cfg: The run's settings.
        out_dir: Receives ``checkpoint.pt``, ``metrics.jsonl`` and ``samples/latest.csv``.
        data_dir: The shoppers CSV or its folder (see ``gan.shoppers.data``).
        resume: A checkpoint to continue from, up to ``cfg.steps``; its model fields must
            match ``cfg``'s. The transformer is taken from it, not refitted.
        dry_run: Two steps on a random table (no dataset needed), for smoke tests.
        progress: Show a tqdm progress bar.

    Returns:
        ``out_dir / "checkpoint.pt"``.

    Raises:
        ValueError: On a bad ``resume`` checkpoint or when started by ``torchrun`` with
            several processes (the model is small; it trains in one).
        KeyboardInterrupt: Re-raised after writing a checkpoint of the steps completed so far.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ValueError("the shoppers family trains in one process; run it without torchrun")
    out_dir = Path(out_dir)
    ckpt_path = out_dir / "checkpoint.pt"
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    gen = seed_everything(cfg.seed)
    total = 2 if dry_run else cfg.steps
    t0 = time.perf_counter()
    table, data_sha256 = _table(dry_run, data_dir, cfg.split_seed)
    ckpt = load_checkpoint(resume) if resume is not None else None
    if ckpt is not None:
        if ckpt.get("family") != FAMILY:
            raise ValueError(f"{resume} is a {ckpt.get('family')!r} checkpoint, not {FAMILY!r}")
        transformer = TabularTransformer.from_dict(ckpt["transformer"])
    else:
        transformer = fit_transformer(table, cfg.seed)
    mcfg = cfg.model_config(transformer)
    if ckpt is not None and (
        TrainConfig.from_dict(ckpt["config"]).model_config(transformer) != mcfg
    ):
        raise ValueError(f"{resume} is not a {FAMILY} checkpoint of this model shape")
    sampler = CondSampler(transformer, table, cfg.free_fraction, cfg.extra_prob)
    x_real = torch.from_numpy(transformer.encode({c: table[c].to_numpy() for c in COLUMNS}))
    net_g, critic, det = Generator(mcfg), Critic(mcfg), Detector(mcfg)
    ema = EMA(net_g, cfg.ema_decay)
    betas = (cfg.beta1, cfg.beta2)
    opt_g = torch.optim.Adam(net_g.parameters(), cfg.lr_g, betas, weight_decay=cfg.weight_decay)
    opt_c = torch.optim.Adam(critic.parameters(), cfg.lr_d, betas, weight_decay=cfg.weight_decay)
    opt_det = torch.optim.Adam(det.parameters(), cfg.lr_d, betas)
    step, elapsed_before, last = 0, 0.0, {}
    if ckpt is not None:
        for module, key in ((net_g, "generator"), (ema.module, "generator_ema"),
                            (critic, "critic"), (det, "detector"), (opt_g, "optim_g"),
                            (opt_c, "optim_c"), (opt_det, "optim_det")):  # fmt: skip
            module.load_state_dict(ckpt[key])
        gen.set_state(ckpt["rng_state"]["train"])
        torch.set_rng_state(ckpt["rng_state"]["torch"])
        step, elapsed_before = ckpt["step"], ckpt["elapsed_s"]
        ema.num_updates, last = step, ckpt.get("last_metrics", {})
        t0 = time.perf_counter()  # a resumed run's fit time is already in elapsed_before
    log = MetricsLog(out_dir / "metrics.jsonl", keep_until=step if resume else None)

    def elapsed() -> float:
        return elapsed_before + time.perf_counter() - t0

    def save() -> None:
        save_checkpoint(ckpt_path, {
            "format": "ecomgan-checkpoint", "version": 1, "family": FAMILY,
            "config": cfg.to_dict(), "step": step, "transformer": transformer.to_dict(),
            "generator": net_g.state_dict(), "generator_ema": ema.module.state_dict(),
            "critic": critic.state_dict(), "detector": det.state_dict(),
            "optim_g": opt_g.state_dict(), "optim_c": opt_c.state_dict(),
            "optim_det": opt_det.state_dict(),
            "data_sha256": data_sha256, "elapsed_s": elapsed(), "last_metrics": last,
            "rng_state": {"train": gen.get_state(), "torch": torch.get_rng_state()},
        })  # fmt: skip

    def save_samples() -> None:
        with atomic_write(out_dir / "samples" / "latest.csv") as f:
            f.write(free_rows(ema.module, transformer, 200, cfg.seed).to_csv(index=False).encode())

    nets, opts = (net_g, critic, det), (opt_g, opt_c, opt_det)
    for net in nets:
        net.train()
    window_t, window_step, rows_per_s = time.perf_counter(), step, 0.0
    try:
        with tqdm(total=total, initial=step, disable=not progress, unit="step") as bar:
            while step < total:
                m = _train_step(cfg, nets, opts, x_real, sampler, transformer, gen)
                ema.update(net_g)
                step += 1
                if step % cfg.log_every == 0 or step == total:
                    now = time.perf_counter()
                    rows_per_s = (step - window_step) * cfg.batch_size / max(now - window_t, 1e-9)
                    window_t, window_step = now, step
                    last = {"step": step, **m, "rows_per_s": rows_per_s, "elapsed_s": elapsed()}
                    log.append(last)
                bar.set_postfix(
                    w=f"{m['w_dist']:.3f}", ce=f"{m['cond_ce']:.3f}",
                    det=f"{m['det_acc']:.2f}", rows_s=f"{rows_per_s:.0f}", refresh=False,
                )  # fmt: skip
                bar.update(1)
                if step % cfg.sample_every == 0:
                    save_samples()
                if step % cfg.checkpoint_every == 0:
                    save()
    except KeyboardInterrupt:
        save()
        raise
    save_samples()
    save()
    return ckpt_path
