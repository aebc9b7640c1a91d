"""Train the products GAN: a class-conditional SN-DCGAN on Fashion-MNIST.

Objective: hinge loss (Lim & Ye 2017; Miyato et al. 2018) by default, or the
non-saturating BCE loss of Goodfellow et al. 2014 as in pytorch/examples' dcgan.
Samples and exports use an exponential moving average of the generator's weights
(Yazici et al. 2019). Everything needed to resume (weights, optimiser states, EMA,
RNG state) is in one ``checkpoint.pt`` that loads with ``weights_only=True``.

Under ``torchrun`` it trains data-parallel (see ``gan.distributed``): ``batch_size`` stays the
global minibatch, each process takes its share, and only rank 0 writes files; the result
matches the one-process run with the same seed up to the order of floating-point sums.
"""

import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from gan import distributed as gan_dist
from gan.common import (
    EMA,
    FlatConfig,
    MetricsLog,
    latent,
    load_checkpoint,
    option,
    save_checkpoint,
    save_grid,
    seed_everything,
)
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
        for name in ("steps", "batch_size", "n_critic", "sample_every", "checkpoint_every",
                     "log_every", "nz", "ngf", "ndf", "embed_dim"):  # fmt: skip
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

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


def _train_step(cfg, net_g, net_d, opt_g, opt_d, images, labels, gen, info) -> dict[str, float]:
    """One generator update preceded by ``cfg.n_critic`` discriminator updates.

    Every rank draws the global minibatch from ``gen`` (on the CPU, so any device draws
    the same numbers) and trains on its shard; the returned metrics are global means.
    """
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
    # (2) update G: make the just-updated D score the last fake batch as real. D's gradients
    # from this pass are zeroed before they are used, so DDP need not all-reduce them.
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
    return gan_dist.mean_over_ranks(metrics, info)  # means of equal shards: the global means


def fixed_noise(cfg: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The sample grid's inputs: 10 latents (columns) x every category (rows)."""
    n = len(CATEGORIES)
    z = torch.from_numpy(latent(10, cfg.nz, cfg.seed)).repeat(n, 1)  # (10 * n, nz)
    y = torch.arange(n).repeat_interleave(10)  # (10 * n,)
    return z, y


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

    Under ``torchrun`` every process calls this with the same arguments; the processes
    split each minibatch and only rank 0 writes to ``out_dir``.

    Args:
        cfg: The run's settings.
        out_dir: Receives ``checkpoint.pt``, ``metrics.jsonl`` and ``samples/``.
        data_dir: Folder with the Fashion-MNIST ``.gz`` files (see ``gan.products.data``).
        resume: A checkpoint to continue from, up to ``cfg.steps``; its model fields must
            match ``cfg``'s. One-process and multi-process checkpoints are interchangeable.
        dry_run: Run one step on random data (no dataset needed), for smoke tests.
        progress: Show a tqdm progress bar (rank 0 only).

    Returns:
        ``out_dir / "checkpoint.pt"``.

    Raises:
        ValueError: If ``cfg.batch_size`` is not a multiple of the number of processes.
        KeyboardInterrupt: Re-raised after writing a checkpoint of the steps completed so
            far (in one process, a step cut short may leave its D update in that
            checkpoint; several processes stop together between steps).
    """
    with gan_dist.distributed() as info:
        return _train(cfg, Path(out_dir), info, data_dir, resume, dry_run, progress)


def _train(
    cfg: TrainConfig,
    out_dir: Path,
    info: gan_dist.DistInfo,
    data_dir: Path | None,
    resume: Path | None,
    dry_run: bool,
    progress: bool,
) -> Path:
    gan_dist.local_batch_size(cfg.batch_size, info)  # fail early if it does not split
    ckpt_path = out_dir / "checkpoint.pt"
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    gen = seed_everything(cfg.seed)
    total = 1 if dry_run else cfg.steps
    if dry_run:
        images = torch.randint(0, 256, (4 * cfg.batch_size, 28, 28), dtype=torch.uint8)
        labels = torch.randint(len(CATEGORIES), (4 * cfg.batch_size,))
        data_sha256 = "synthetic"
    else:
        np_images, np_labels, data_sha256 = load_fashion_mnist("train", data_dir)
        images, labels = torch.tensor(np_images), torch.tensor(np_labels)
    images, labels = images.to(info.device), labels.to(info.device)  # 47 MB of uint8

    net_g, net_d = Generator(cfg.model_config()), Discriminator(cfg.model_config())
    ema = EMA(net_g, cfg.ema_decay)  # a plain copy: BatchNorm, no DDP, whatever the run
    step, elapsed_before, last = 0, 0.0, {}
    if resume is not None:
        ckpt = load_checkpoint(resume)
        if ckpt.get("family") != FAMILY or (
            TrainConfig.from_dict(ckpt["config"]).model_config() != cfg.model_config()
        ):
            raise ValueError(f"{resume} is not a {FAMILY} checkpoint of this model shape")
        net_g.load_state_dict(ckpt["generator"])
        net_d.load_state_dict(ckpt["discriminator"])
        ema.module.load_state_dict(ckpt["generator_ema"])
    ema.module.to(info.device)
    # net_g and net_d stay the bare modules (checkpoints, EMA); the wrappers train them.
    train_g, train_d = gan_dist.wrap(net_g, info), gan_dist.wrap(net_d, info)
    opt_g = torch.optim.Adam(net_g.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, cfg.beta2))
    opt_d = torch.optim.Adam(net_d.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, cfg.beta2))
    if resume is not None:
        opt_g.load_state_dict(ckpt["optim_g"])
        opt_d.load_state_dict(ckpt["optim_d"])
        gen.set_state(ckpt["rng_state"]["train"])
        torch.set_rng_state(ckpt["rng_state"]["torch"])
        step, elapsed_before = ckpt["step"], ckpt["elapsed_s"]
        ema.num_updates, last = step, ckpt.get("last_metrics", {})

    main = info.is_main
    log = None
    if main:
        log = MetricsLog(out_dir / "metrics.jsonl", keep_until=step if resume else None)
    z_fixed, y_fixed = (t.to(info.device) for t in fixed_noise(cfg))
    t0 = time.perf_counter()

    def elapsed() -> float:
        return elapsed_before + time.perf_counter() - t0

    def save() -> None:
        if not main:
            return
        save_checkpoint(ckpt_path, {
            "format": "ecomgan-checkpoint", "version": 1, "family": FAMILY,
            "config": cfg.to_dict(), "step": step,
            "generator": net_g.state_dict(), "generator_ema": ema.module.state_dict(),
            "discriminator": net_d.state_dict(),
            "optim_g": opt_g.state_dict(), "optim_d": opt_d.state_dict(),
            "data_sha256": data_sha256, "elapsed_s": elapsed(), "last_metrics": last,
            "rng_state": {"train": gen.get_state(), "torch": torch.get_rng_state()},
        })  # fmt: skip

    def save_samples() -> None:
        if not main:
            return
        with torch.no_grad():
            grid = ema.module(z_fixed, y_fixed)  # (100, 1, 28, 28), one row per category
        save_grid(grid, len(CATEGORIES), out_dir / "samples" / f"step_{step:06d}.png")
        save_grid(grid, len(CATEGORIES), out_dir / "samples" / "latest.png")

    train_g.train()
    train_d.train()
    window_t, window_step, img_per_s = time.perf_counter(), step, 0.0
    try:
        with (
            tqdm(total=total, initial=step, disable=not (progress and main), unit="step") as bar,
            gan_dist.StopSignal(info) as stop,
        ):
            while step < total:
                m = _train_step(cfg, train_g, train_d, opt_g, opt_d, images, labels, gen, info)
                ema.update(net_g)
                step += 1
                if step % cfg.log_every == 0 or step == total:
                    now = time.perf_counter()
                    seen = (step - window_step) * cfg.batch_size * cfg.n_critic
                    img_per_s = seen / max(now - window_t, 1e-9)
                    window_t, window_step = now, step
                    last = {"step": step, **m, "img_per_s": img_per_s, "elapsed_s": elapsed()}
                    if log is not None:
                        log.append(last)
                bar.set_postfix(
                    loss_d=f"{m['loss_d']:.3f}", loss_g=f"{m['loss_g']:.3f}",
                    d_x=f"{m['d_x']:.2f}", d_g_z=f"{m['d_g_z']:.2f}", img_s=f"{img_per_s:.0f}",
                    refresh=False,
                )  # fmt: skip
                bar.update(1)
                if step % cfg.sample_every == 0:
                    save_samples()
                if step % cfg.checkpoint_every == 0:
                    save()
                if stop.requested():
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        save()
        raise
    if step % cfg.sample_every != 0:
        save_samples()
    save()
    return ckpt_path
