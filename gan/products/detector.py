"""Turn the adversarial discriminator into a calibrated detector of synthetic product images.

A GAN discriminator at the end of training is a weak, oddly calibrated detector: it was
only ever asked to separate real images from the *current* generator's output, and the
generator spent the run fooling it. Following the "train on many generators, augment
heavily" recipe for detectors that generalise to unseen generators (Wang et al. 2020,
"CNN-generated images are surprisingly easy to spot... for now"), we fine-tune it, same
architecture and signature ``(image, label) -> logit`` (high = real), on:

- real training images, against
- fakes from several generators: the EMA and the raw generator of each checkpoint of
  one or more training runs (early checkpoints make cruder, different fakes),

with augmentations applied alike to both classes (Gaussian noise, blur, JPEG re-encoding,
shifts of up to 2 px) so that it cannot key on one artefact that post-processing erases.
Every fake is first rounded to 8-bit pixels, as the service's PNG output is, so that
"not on the 1/127.5 grid" is never a cue. Platt scaling (``ecomgan.calibration``) then
maps logits to probabilities; the threshold holds the real-image false-positive rate at
1%. ``save_detector_checkpoint`` writes a normal products checkpoint whose
``discriminator`` is the detector, so ``ecomgan export`` ships it unchanged.
"""

from __future__ import annotations

import io
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ecomgan.images import to_uint8
from gan.common import latent, load_checkpoint, save_checkpoint, sha256_file
from gan.products.data import CATEGORIES, load_fashion_mnist, to_model_range
from gan.products.model import Discriminator, Generator
from gan.products.train import TrainConfig


@dataclass(frozen=True)
class DetectorConfig:
    """Fine-tuning settings.

    Attributes:
        steps: Optimiser steps.
        batch_size: Images per step, half real and half fake.
        lr: Adam learning rate (betas 0.5, 0.999).
        fakes_per_generator: Fakes drawn once from each generator into the training pool.
        p_noise: Probability of additive Gaussian noise (std uniform in [0, noise_std]).
        noise_std: Largest noise std, in model units ([-1, 1] range).
        p_blur: Probability of a Gaussian blur (sigma uniform in [0.4, 1.0] px).
        p_jpeg: Probability of a JPEG round trip (quality uniform in [60, 95]).
        max_shift: Largest random shift in pixels (background fills the border).
        seed: Seed of the pool, the minibatches and the augmentations.
    """

    steps: int = 1500
    batch_size: int = 128
    lr: float = 1e-4
    fakes_per_generator: int = 3000
    p_noise: float = 0.3
    noise_std: float = 0.06
    p_blur: float = 0.25
    p_jpeg: float = 0.3
    max_shift: int = 2
    seed: int = 0


def _generators(checkpoint: Path) -> list[tuple[str, Generator]]:
    ckpt = load_checkpoint(checkpoint)
    cfg = TrainConfig.from_dict(ckpt["config"])
    out = []
    for key in ("generator_ema", "generator"):
        net = Generator(cfg.model_config())
        net.load_state_dict(ckpt[key])
        out.append((f"{Path(checkpoint).name}@{ckpt['step']}:{key}", net.eval()))
    return out


def quantise(images: np.ndarray) -> np.ndarray:
    """Round model-range images to the 8-bit grid, as a PNG round trip does."""
    return to_model_range(to_uint8(images))[:, None]


@torch.no_grad()
def generator_pool(
    checkpoints: list[Path], n_per: int, seed: int
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Fakes from the EMA and the raw generator of each products checkpoint.

    Returns:
        ``(images uint8 (N, 28, 28), labels int64 (N,), generator names)``.
    """
    images, labels, names = [], [], []
    rng = np.random.default_rng(seed)
    for path in checkpoints:
        for name, net in _generators(path):
            y = rng.integers(0, len(CATEGORIES), n_per)
            z = latent(n_per, net.cfg.nz, int(rng.integers(2**31)))
            x = torch.cat([net(torch.from_numpy(zb), torch.from_numpy(yb))
                           for zb, yb in zip(np.array_split(z, max(1, n_per // 500)),
                                             np.array_split(y, max(1, n_per // 500)),
                                             strict=True)])  # fmt: skip
            images.append(to_uint8(x.numpy()))
            labels.append(y)
            names.append(name)
    return np.concatenate(images), np.concatenate(labels).astype(np.int64), names


def augment(pixels: np.ndarray, cfg: DetectorConfig, rng: np.random.Generator) -> torch.Tensor:
    """Random post-processing of uint8 images (B, 28, 28) -> float32 (B, 1, 28, 28) in [-1, 1]."""
    pixels = pixels.copy()
    for i in np.flatnonzero(rng.random(len(pixels)) < cfg.p_jpeg):
        buf = io.BytesIO()
        Image.fromarray(pixels[i]).save(buf, format="JPEG", quality=int(rng.integers(60, 96)))
        pixels[i] = np.asarray(Image.open(buf))
    x = torch.from_numpy(to_model_range(pixels)[:, None])
    blur = torch.from_numpy(rng.random(len(x)) < cfg.p_blur)
    if blur.any():
        sigma = float(rng.uniform(0.4, 1.0))
        k = torch.exp(-(torch.arange(-1.0, 2.0) ** 2) / (2 * sigma**2))
        k = (k[:, None] * k[None, :] / k.sum() ** 2)[None, None]
        x[blur] = F.conv2d(F.pad(x[blur], (1, 1, 1, 1), mode="replicate"), k)
    noise = torch.from_numpy(
        (rng.random(len(x)) < cfg.p_noise) * rng.uniform(0, cfg.noise_std, len(x))
    ).float()
    x = x + noise[:, None, None, None] * torch.from_numpy(
        rng.standard_normal(x.shape, dtype=np.float32)
    )
    if cfg.max_shift:
        s = cfg.max_shift
        dx, dy = rng.integers(-s, s + 1, 2)
        x = F.pad(x, (s, s, s, s), value=-1.0)[:, :, s + dy : s + dy + 28, s + dx : s + dx + 28]
    return x.clamp(-1.0, 1.0)


def finetune_detector(
    checkpoint: Path,
    generator_checkpoints: list[Path],
    cfg: DetectorConfig = DetectorConfig(),
    *,
    data_dir: Path | None = None,
    device: str = "cpu",
    init: dict[str, torch.Tensor] | None = None,
    log: Any = print,
) -> tuple[Discriminator, dict[str, Any]]:
    """Fine-tune ``checkpoint``'s discriminator to separate real images from many generators'.

    Args:
        checkpoint: The products checkpoint whose discriminator is the starting point.
        generator_checkpoints: Products checkpoints whose EMA and raw generators supply
            the fakes (include ``checkpoint`` itself to cover the shipped generator).
        cfg: Settings.
        data_dir: Folder with the Fashion-MNIST files.
        device: Torch device for the updates (fakes and augmentations are made on the
            CPU); the returned network is on the CPU.
        init: A discriminator state_dict to start from instead of the checkpoint's, to
            continue an earlier fine-tuning (use a new ``cfg.seed`` for fresh fakes).
        log: Called with progress lines (``None`` for silence).

    Returns:
        ``(discriminator in eval mode, training facts for the report)``.
    """
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    ckpt = load_checkpoint(checkpoint)
    disc = Discriminator(TrainConfig.from_dict(ckpt["config"]).model_config())
    disc.load_state_dict(ckpt["discriminator"] if init is None else init)
    real_x, real_y, _ = load_fashion_mnist("train", data_dir)
    fake_x, fake_y, names = generator_pool(
        list(generator_checkpoints), cfg.fakes_per_generator, cfg.seed
    )
    if log is not None:
        log(f"detector: {len(fake_x)} fakes from {len(names)} generators "
            f"({time.perf_counter() - t0:.0f} s)")  # fmt: skip
    disc.to(device)
    # Spectral norm caps every layer's gain, so D's logits live on a small scale and plain
    # BCE would spend its effort stretching them. A learned affine map of the logit (Platt
    # scaling inside the loss, discarded afterwards) lets the updates go to the ranking.
    platt = torch.zeros(2, device=device, requires_grad=True)  # log-scale, shift
    params = [*disc.parameters(), platt]
    opt = torch.optim.Adam(params, lr=cfg.lr, betas=(0.5, 0.999))
    half = cfg.batch_size // 2
    target = torch.cat([torch.ones(half), torch.zeros(half)]).to(device)  # high logit = real
    disc.train()
    running = 0.0
    for step in range(1, cfg.steps + 1):
        ri, fi = rng.integers(0, len(real_x), half), rng.integers(0, len(fake_x), half)
        x = augment(np.concatenate([real_x[ri], fake_x[fi]]), cfg, rng).to(device)
        y = torch.from_numpy(np.concatenate([real_y[ri], fake_y[fi]])).to(device)
        logit = disc(x, y) * platt[0].exp() + platt[1]
        loss = F.binary_cross_entropy_with_logits(logit, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        running += loss.item()
        if log is not None and step % 100 == 0:
            log(f"detector step {step}/{cfg.steps}: loss {running / 100:.4f} "
                f"({time.perf_counter() - t0:.0f} s)")  # fmt: skip
            running = 0.0
    info = {
        "config": asdict(cfg),
        "base_checkpoint_sha256": sha256_file(checkpoint),
        "generators": names,
        "n_fakes": int(len(fake_x)),
        "seconds": round(time.perf_counter() - t0, 1),
        "device": str(device),
        "final_loss_scale": float(platt[0].detach().exp()),
    }
    return disc.cpu().eval(), info


@torch.no_grad()
def detector_logits(
    disc: torch.nn.Module, images: np.ndarray, labels: np.ndarray, batch: int = 1000
) -> np.ndarray:
    """Logits (high = real) of float32 images (N, 1, 28, 28) with int64 labels (N,)."""
    disc.eval()
    out = [disc(torch.from_numpy(np.ascontiguousarray(images[i : i + batch])),
                torch.from_numpy(np.array(labels[i : i + batch], dtype=np.int64)))
           for i in range(0, len(images), batch)]  # fmt: skip
    return torch.cat(out).numpy().astype(np.float64)


def save_detector_checkpoint(
    base_checkpoint: Path, disc: Discriminator, out: Path, info: dict[str, Any]
) -> Path:
    """Write ``base_checkpoint`` with its ``discriminator`` replaced by the detector.

    The result is an ordinary products checkpoint (``gan.products.load``/``exportables``
    read it; ``ecomgan export`` ships its discriminator as the detector). ``info`` is kept
    under ``"detector"``. Resuming GAN training from it is not meaningful: D was retrained.

    Returns:
        ``out``.
    """
    payload = load_checkpoint(base_checkpoint)
    payload["discriminator"] = {k: v.detach().clone() for k, v in disc.state_dict().items()}
    payload["detector"] = info
    save_checkpoint(out, payload)
    return Path(out)


def detector_report(
    detector: Path,
    real: tuple[np.ndarray, np.ndarray],
    fakes: dict[str, np.ndarray],
    fake_labels: np.ndarray,
    subject: str,
    seed: int,
    arrays: dict[str, np.ndarray],
) -> dict[str, Any]:
    """Score a checkpoint's discriminator as a detector on held-out halves.

    Real images and each generator's fakes are split in two halves with ``seed``. Platt
    scaling and the 1%-FPR threshold (``ecomgan.calibration.fit_detector``) are fit on the
    first halves (reals vs ``subject``'s fakes); every number is measured on the second.

    Args:
        detector: A products checkpoint.
        real: ``(images float32 (N, 1, 28, 28), labels int64 (N,))``, e.g. the test split.
        fakes: Generator name -> images, all drawn for ``fake_labels``.
        fake_labels: The requested labels, shared by every generator's fakes.
        subject: The generator whose fakes calibrate the detector.
        seed: Seed of the split.
        arrays: Receives held-out scores (higher = more likely fake) for ROC plots.

    Returns:
        ``calibration`` and, per generator, ``auroc``, ``average_precision``,
        ``tpr_at_1pct_fpr`` and TPR/FPR at the calibrated threshold.
    """
    from ecomgan.calibration import apply, auroc, fit_detector
    from gan import metrics
    from gan.products import load

    disc = load(detector)[1]["discriminator"]
    rng = np.random.default_rng(seed)
    cal_r, ev_r = np.array_split(rng.permutation(len(real[1])), 2)
    cal_f, ev_f = np.array_split(rng.permutation(len(fake_labels)), 2)
    real_logits = detector_logits(disc, *real)
    logits = {name: detector_logits(disc, x, fake_labels) for name, x in fakes.items()}
    cal = fit_detector(real_logits[cal_r], logits[subject][cal_f])
    neg = -real_logits[ev_r]  # scores: higher = more likely fake
    arrays["scores/real"] = neg
    _, flag_real = apply(cal, real_logits[ev_r])
    out: dict[str, Any] = {"checkpoint": str(detector), "sha256": sha256_file(detector),
                           "calibration": cal, "against": {}}  # fmt: skip
    for name, lg in logits.items():
        held = lg[ev_f]  # fakes never used for calibration, for every generator alike
        arrays[f"scores/{name}"] = -held
        out["against"][name] = {
            "auroc": auroc(neg, -held),
            "average_precision": metrics.average_precision(neg, -held),
            "tpr_at_1pct_fpr": metrics.tpr_at_fpr(neg, -held, 0.01),
            "tpr_at_threshold": float(apply(cal, held)[1].mean()),
            "fpr_at_threshold": float(flag_real.mean()),
            "n_real": int(len(ev_r)),
            "n_fake": int(len(held)),
        }
    return out
