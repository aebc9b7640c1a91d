"""The products family: a class-conditional image GAN on Fashion-MNIST.

This is the torch-side family module that ``ecomgan.families`` names; the CLI and the
exporter call its names the same way for every family. ``train.py`` holds ``TrainConfig``
and ``train``; this file reads a checkpoint back: ``load``, ``sample``, ``exportables``,
``calibration_inputs`` and ``describe``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from gan.common import describe_checkpoint, latent, load_checkpoint
from gan.exportable import CalibrationInputs, Exportable
from gan.products.data import CATEGORIES, load_fashion_mnist, to_model_range
from gan.products.model import Discriminator, Generator, bake_spectral_norm
from gan.products.quantization import (
    QUANTIZATION_RULES,
    detector_inputs,
    quantization_inputs,
    quantization_quality,
)
from gan.products.train import FAMILY, TrainConfig, train

__all__ = [
    "CATEGORIES",
    "QUANTIZATION_RULES",
    "TrainConfig",
    "calibration_inputs",
    "describe",
    "detector_inputs",
    "exportables",
    "load",
    "quantization_inputs",
    "quantization_quality",
    "sample",
    "train",
]


def _read(checkpoint: Path) -> tuple[dict[str, Any], TrainConfig, dict[str, torch.nn.Module]]:
    ckpt = load_checkpoint(checkpoint, FAMILY)
    cfg = TrainConfig.from_dict(ckpt["config"])
    net_g, net_d = Generator(cfg.model_config()), Discriminator(cfg.model_config())
    net_g.load_state_dict(ckpt["generator_ema"])
    net_d.load_state_dict(ckpt["discriminator"])
    return ckpt, cfg, {"generator": net_g.eval(), "discriminator": net_d.eval()}


def load(checkpoint: Path) -> tuple[TrainConfig, dict[str, torch.nn.Module]]:
    """Rebuild a checkpoint's networks in eval mode.

    Returns:
        ``(config, {"generator": EMA generator, "discriminator": discriminator})``.

    Raises:
        ValueError: If the file is not a readable products checkpoint.
    """
    _, cfg, nets = _read(checkpoint)
    return cfg, nets


@torch.no_grad()
def sample(checkpoint: Path, n: int, label: int, seed: int) -> np.ndarray:
    """Generate ``n`` images of one category with the EMA generator.

    Args:
        checkpoint: A products checkpoint.
        n: Number of images.
        label: Category index into ``CATEGORIES``.
        seed: Seed of the latents, drawn with ``gan.common.latent`` as the service does.

    Returns:
        float32 (n, 1, 28, 28) in [-1, 1]; the same for the same arguments.
    """
    if not 0 <= label < len(CATEGORIES):
        raise ValueError(f"label must be in [0, {len(CATEGORIES)}), got {label}")
    cfg, nets = load(checkpoint)
    z = torch.from_numpy(latent(n, cfg.nz, seed))
    return nets["generator"](z, torch.full((n,), label, dtype=torch.int64)).numpy()


def exportables(checkpoint: Path) -> dict[str, Exportable]:
    """The EMA generator and the discriminator (spectral norm baked in), ready for ONNX."""
    cfg, nets = load(checkpoint)
    # Examples span every label, so parity validation exercises each embedding row.
    label = torch.arange(len(CATEGORIES), dtype=torch.int64)
    z = torch.from_numpy(latent(len(label), cfg.nz, 0))
    with torch.no_grad():
        image = nets["generator"](z, label)
    disc = bake_spectral_norm(nets["discriminator"])
    return {
        "generator": Exportable(nets["generator"], (z, label), ("z", "label"), ("image",)),
        "discriminator": Exportable(disc, (image, label), ("image", "label"), ("logit",)),
    }


@torch.no_grad()
def calibration_inputs(
    checkpoint: Path, n: int, seed: int, data_dir: Path | None = None
) -> CalibrationInputs:
    """Discriminator inputs for fitting a real/fake detector downstream.

    Args:
        checkpoint: A products checkpoint.
        n: Number of real and of fake examples (at most 10,000, the test split's size).
        seed: Seed of the choice of test images, of the fake labels and of the latents.
        data_dir: Folder with the Fashion-MNIST files (see ``gan.products.data``).

    Returns:
        ``((real_images, real_labels), (fake_images, fake_labels))``: float32
        (n, 1, 28, 28) in [-1, 1] and int64 (n,); reals are test-split images, fakes
        come from the EMA generator with uniformly drawn labels.
    """
    cfg, nets = load(checkpoint)
    images, labels, _ = load_fashion_mnist("test", data_dir)
    if not 0 < n <= len(images):
        raise ValueError(f"n must be in [1, {len(images)}], got {n}")
    rng = np.random.Generator(np.random.PCG64(seed))
    idx = rng.choice(len(images), size=n, replace=False)
    real = (to_model_range(images[idx])[:, None], labels[idx].copy())
    fake_labels = rng.integers(0, len(CATEGORIES), size=n, dtype=np.int64)
    z, y = torch.from_numpy(latent(n, cfg.nz, seed)), torch.from_numpy(fake_labels)
    fake = [nets["generator"](zb, yb) for zb, yb in zip(z.split(500), y.split(500), strict=True)]
    return real, (torch.cat(fake).numpy(), fake_labels)


def describe(checkpoint: Path) -> dict[str, Any]:
    """JSON-serialisable facts about a checkpoint, for model-store metadata."""
    ckpt, cfg, nets = _read(checkpoint)
    return {**describe_checkpoint(ckpt, cfg, nets), "categories": list(CATEGORIES)}
