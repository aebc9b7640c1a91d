"""The products family: a class-conditional image GAN on Fashion-MNIST.

This is the torch-side family module that ``ecomgan.families`` names; the CLI and the
exporter call its names the same way for every family. ``train.py`` holds ``TrainConfig``
and ``train``; this file reads a checkpoint back: ``load``, ``sample``, ``exportables``,
``calibration_inputs`` and ``describe``, and holds the optional hooks of
``ecomgan.contract``: ``write_samples`` (a PNG grid), ``evaluate_checkpoint``,
``quality_gates`` and the INT8 hooks of ``quantization.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ecomgan.contract import EvaluateRequest
from ecomgan.images import grid, to_uint8
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
    "evaluate_checkpoint",
    "exportables",
    "load",
    "quantization_inputs",
    "quality_gates",
    "quantization_quality",
    "sample",
    "train",
    "write_samples",
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


def _label(category: str | None) -> int:
    label = category or "0"
    if label.isdigit():
        return int(label)
    names = {c.lower(): i for i, c in enumerate(CATEGORIES)}
    if label.lower() not in names:
        raise ValueError(f"unknown category {label!r}; choose from {CATEGORIES}")
    return names[label.lower()]


def write_samples(
    checkpoint: Path, out: Path, *, count: int, seed: int, category: str | None = None,
    conditions: dict[str, str] | None = None,
) -> str:  # fmt: skip
    """``ecomgan sample --checkpoint``: a PNG grid of ``count`` images of one category.

    Args:
        checkpoint: A products checkpoint.
        out: The PNG to write (``samples.png`` when None).
        count: Number of images.
        seed: Seed of the latents.
        category: Class name or index (default 0).
        conditions: Tabular families only; refused here.
    """
    if conditions:
        raise ValueError("--condition applies to tabular families; use --category")
    images = sample(Path(checkpoint), count, _label(category), seed)
    out = Path(out or "samples.png")
    grid(to_uint8(images), nrow=min(count, 10)).save(out)
    return f"wrote {count} samples to {out}"


def evaluate_checkpoint(request: EvaluateRequest) -> str:
    """``ecomgan evaluate --family products``: FID/KID, precision/recall, the detector's
    scores and the quality gates (reported, enforced by ``quality_gates`` at export)."""
    from gan.products.report import run_evaluation

    generators = {request.name: Path(request.checkpoint), **request.compare}
    kwargs: dict[str, Any] = {
        "data_dir": request.data_dir,
        "n_samples": request.samples or 10_000,
        "seed": request.seed,
    }
    if request.classifier:
        kwargs["classifier"] = Path(request.classifier)
    if request.detector:
        kwargs["detector"] = Path(request.detector)
    _, gates = run_evaluation(generators, request.out, **kwargs)
    verdict = "pass" if gates["passed"] else "FAIL: " + "; ".join(gates["failures"])
    return (
        f"{(request.out / 'report.md').read_text()}\n"
        f"report in {request.out}/ (report.json, report.md, PNGs); quality gates: {verdict}"
    )


def quality_gates(checkpoint: Path, report: Path | None, *, allow_below: bool) -> dict[str, Any]:
    """The quality-gate verdict of ``ecomgan export`` (``ecomgan.gates``), for the manifest.

    Args:
        checkpoint: The checkpoint being exported.
        report: ``report.json`` of ``ecomgan evaluate`` for that checkpoint, or None.
        allow_below: Export anyway below the gates (or without a report); recorded.

    Raises:
        RuntimeError: No report (without ``allow_below``), or a report of another checkpoint.
        ecomgan.gates.QualityGateError: Below the gates without ``allow_below``.
    """
    import json

    from ecomgan.files import sha256_file
    from ecomgan.gates import enforce

    if report is None:
        if not allow_below:
            raise RuntimeError(
                f"no --quality-report: run `ecomgan evaluate --family products --checkpoint "
                f"{checkpoint} --out DIR` and pass DIR/report.json, or pass --allow-below-gates "
                "(recorded in the manifest)"
            )
        return {"passed": False, "override_used": True, "failures": ["no quality report"]}
    doc = json.loads(Path(report).read_text())
    evaluated = doc["generators"][doc["subject"]]["sha256"]
    if evaluated != sha256_file(checkpoint):
        raise RuntimeError(
            f"{report} evaluated another checkpoint (sha256 {evaluated[:12]}); "
            f"run `ecomgan evaluate --family products --checkpoint {checkpoint}` again"
        )
    verdict = enforce(doc, override=allow_below)
    return {**verdict, "report_sha256": sha256_file(report)}
