"""The textbook baseline: a conditional DCGAN (pytorch/examples ``dcgan`` recipe, 28x28).

Radford et al. 2016 as implemented in pytorch/examples, adapted to 28x28 greyscale and to
class labels the usual way (Mirza & Osindero 2014): a one-hot label is concatenated to z
in the generator and given to the discriminator as 10 constant feature maps. Everything
else is the recipe: ConvTranspose upsampling, BatchNorm in both networks, LeakyReLU(0.2),
N(0, 0.02) initialisation, non-saturating BCE loss, Adam(2e-4, betas=(0.5, 0.999)),
batch 128, no spectral norm and no EMA of the generator.

It exists only to be compared with the project's generator (``benchmarks/quality.py``)
and, never shown to the detector, to test how the detector generalises to an unseen
architecture. It is trained for a CPU wall-time budget: the one our run took.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gan.common import load_checkpoint, save_checkpoint, save_grid, seed_everything
from gan.products.data import CATEGORIES, load_fashion_mnist

FAMILY = "products-dcgan-baseline"
N_CLASSES = len(CATEGORIES)


@dataclass(frozen=True)
class BaselineConfig:
    """The recipe's settings (pytorch/examples dcgan defaults, batch 128 as in the paper)."""

    seed: int = 0
    max_steps: int = 100_000
    batch_size: int = 128
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    nz: int = 100
    ngf: int = 64
    ndf: int = 64


class BaselineGenerator(nn.Module):
    """(z, label) -> image in [-1, 1]; ConvTranspose 1 -> 7 -> 14 -> 28."""

    def __init__(self, cfg: BaselineConfig) -> None:
        super().__init__()
        self.nz = cfg.nz
        g = cfg.ngf
        self.main = nn.Sequential(
            nn.ConvTranspose2d(cfg.nz + N_CLASSES, 4 * g, 7, 1, 0, bias=False),
            nn.BatchNorm2d(4 * g), nn.ReLU(True),  # (B, 4g, 7, 7)
            nn.ConvTranspose2d(4 * g, 2 * g, 4, 2, 1, bias=False),
            nn.BatchNorm2d(2 * g), nn.ReLU(True),  # (B, 2g, 14, 14)
            nn.ConvTranspose2d(2 * g, 1, 4, 2, 1, bias=False),
            nn.Tanh(),  # (B, 1, 28, 28)
        )  # fmt: skip

    def forward(self, z: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """z float32 (B, nz), label int64 (B,) -> images float32 (B, 1, 28, 28)."""
        h = torch.cat([z, F.one_hot(label, N_CLASSES).to(z.dtype)], dim=1)
        return self.main(h[:, :, None, None])


class BaselineDiscriminator(nn.Module):
    """(image, label) -> realness logit; the label enters as 10 one-hot feature maps."""

    def __init__(self, cfg: BaselineConfig) -> None:
        super().__init__()
        d = cfg.ndf
        self.main = nn.Sequential(
            nn.Conv2d(1 + N_CLASSES, d, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, True),  # (B, d, 14, 14)
            nn.Conv2d(d, 2 * d, 4, 2, 1, bias=False),
            nn.BatchNorm2d(2 * d), nn.LeakyReLU(0.2, True),  # (B, 2d, 7, 7)
            nn.Conv2d(2 * d, 1, 7, 1, 0, bias=False),  # (B, 1, 1, 1)
        )  # fmt: skip

    def forward(self, image: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """image (B, 1, 28, 28), label (B,) -> logits (B,)."""
        maps = F.one_hot(label, N_CLASSES).to(image.dtype)[:, :, None, None]
        return self.main(torch.cat([image, maps.expand(-1, -1, 28, 28)], dim=1)).flatten()


def _weights_init(m: nn.Module) -> None:
    # pytorch/examples dcgan: conv weights ~ N(0, 0.02), BatchNorm gamma ~ N(1, 0.02).
    if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def train_baseline(
    cfg: BaselineConfig,
    out_dir: Path,
    *,
    time_budget_s: float | None = None,
    data_dir: Path | None = None,
    dry_run: bool = False,
    log_every: int = 100,
    log: Any = print,
) -> Path:
    """Train the baseline until ``cfg.max_steps`` or the wall-time budget, whichever first.

    Args:
        cfg: The recipe's settings.
        out_dir: Receives ``checkpoint.pt`` (``gan.common`` checkpoint format, family
            ``products-dcgan-baseline``) and ``samples.png``.
        time_budget_s: Stop after the step during which this much wall time has passed.
        data_dir: Folder with the Fashion-MNIST files.
        dry_run: One step on random data, for tests.
        log_every: Steps between progress lines.
        log: Called with each progress line (``None`` for silence).

    Returns:
        The checkpoint's path.
    """
    out_dir = Path(out_dir)
    gen = seed_everything(cfg.seed)
    if dry_run:
        images = torch.randint(0, 256, (2 * cfg.batch_size, 28, 28), dtype=torch.uint8)
        labels = torch.randint(N_CLASSES, (2 * cfg.batch_size,))
    else:
        np_images, np_labels, _ = load_fashion_mnist("train", data_dir)
        images, labels = torch.tensor(np_images), torch.tensor(np_labels)
    net_g, net_d = BaselineGenerator(cfg), BaselineDiscriminator(cfg)
    net_g.apply(_weights_init)
    net_d.apply(_weights_init)
    betas = (cfg.beta1, cfg.beta2)
    opt_g = torch.optim.Adam(net_g.parameters(), lr=cfg.lr, betas=betas)
    opt_d = torch.optim.Adam(net_d.parameters(), lr=cfg.lr, betas=betas)
    b, step, t0, cpu0 = cfg.batch_size, 0, time.perf_counter(), time.process_time()
    max_steps = 1 if dry_run else cfg.max_steps
    while step < max_steps:
        idx = torch.randint(len(images), (b,), generator=gen)
        x = images[idx].unsqueeze(1).float().div_(127.5).sub_(1.0)
        y = labels[idx]
        z = torch.randn(b, cfg.nz, generator=gen)
        y_fake = torch.randint(N_CLASSES, (b,), generator=gen)
        fake = net_g(z, y_fake)
        # (1) D: maximise log D(x) + log(1 - D(G(z))), as two BCE terms
        out_real, out_fake = net_d(x, y), net_d(fake.detach(), y_fake)
        loss_d = F.binary_cross_entropy_with_logits(out_real, torch.ones_like(out_real))
        loss_d = loss_d + F.binary_cross_entropy_with_logits(out_fake, torch.zeros_like(out_fake))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        # (2) G: maximise log D(G(z)) (non-saturating)
        out = net_d(fake, y_fake)
        loss_g = F.binary_cross_entropy_with_logits(out, torch.ones_like(out))
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        step += 1
        elapsed = time.perf_counter() - t0
        if log is not None and step % log_every == 0:
            log(f"baseline step {step}: loss_d {loss_d.item():.3f} loss_g {loss_g.item():.3f} "
                f"({elapsed:.0f} s)")  # fmt: skip
        if time_budget_s is not None and elapsed >= time_budget_s:
            break
    elapsed = time.perf_counter() - t0
    save_checkpoint(out_dir / "checkpoint.pt", {
        "format": "ecomgan-checkpoint", "version": 1, "family": FAMILY,
        "config": asdict(cfg), "step": step, "elapsed_s": elapsed,
        "cpu_s": time.process_time() - cpu0,  # all threads: cores actually used x time
        "time_budget_s": time_budget_s,
        "generator": net_g.state_dict(), "discriminator": net_d.state_dict(),
    })  # fmt: skip
    net_g.eval()
    with torch.no_grad():
        z = torch.from_numpy(np.random.default_rng(cfg.seed).standard_normal((100, cfg.nz)))
        grid = net_g(z.float(), torch.arange(N_CLASSES).repeat_interleave(10))
    save_grid(grid, N_CLASSES, out_dir / "samples.png")
    return out_dir / "checkpoint.pt"


def load_baseline(checkpoint: Path) -> tuple[BaselineConfig, dict[str, Any], BaselineGenerator]:
    """Rebuild a baseline checkpoint's generator in eval mode.

    Returns:
        ``(config, {"step", "elapsed_s", "cpu_s"}, generator)``.

    Raises:
        ValueError: If the file is not a baseline checkpoint.
    """
    ckpt = load_checkpoint(checkpoint)
    if ckpt.get("family") != FAMILY:
        raise ValueError(f"{checkpoint} is a {ckpt.get('family')!r} checkpoint, not {FAMILY!r}")
    cfg = BaselineConfig(**ckpt["config"])
    net_g = BaselineGenerator(cfg)
    net_g.load_state_dict(ckpt["generator"])
    facts = {k: ckpt[k] for k in ("step", "elapsed_s", "cpu_s") if k in ckpt}
    return cfg, facts, net_g.eval()
