"""A small Fashion-MNIST CNN: the domain feature extractor behind ``ecomgan evaluate``.

FID-style metrics need an embedding in which distances mean something for the data at
hand. Inception-v3 features (Heusel et al. 2017) are trained on ImageNet photographs and
are a poor, heavy fit for 28x28 greyscale products, so, as is common for (Fashion-)MNIST
GAN evaluation, we train our own classifier and use its penultimate activations. The same
network also measures class consistency: how often a generated "Sneaker" is classified
as a sneaker.

The artifact is a plain ``torch.save`` of ``{config, state_dict, metrics}`` (about 1 MB),
so it loads with ``torch.load(weights_only=True)``; a JSON sidecar repeats the metrics.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gan.common import atomic_write
from gan.products.data import CATEGORIES, load_fashion_mnist, to_model_range

FORMAT = "ecomgan-products-classifier"
VERSION = 1


@dataclass(frozen=True)
class ClassifierConfig:
    """Architecture and training settings; saved with the weights.

    Attributes:
        width: Channels of the first conv block (then 2x and 4x).
        feature_dim: Size of the penultimate layer, the embedding used by the metrics.
        epochs: Passes over the 60,000 training images.
        batch_size: Images per minibatch.
        lr: Peak AdamW learning rate of the one-cycle schedule.
        weight_decay: AdamW weight decay.
        seed: Seed of the weights, the minibatch order and the augmentation.
    """

    width: int = 32
    feature_dim: int = 128
    epochs: int = 15
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 5e-4
    seed: int = 0


class Classifier(nn.Module):
    """Image in [-1, 1], (B, 1, 28, 28) -> class logits; ``features`` gives the embedding."""

    def __init__(self, cfg: ClassifierConfig) -> None:
        super().__init__()
        self.cfg = cfg
        w = cfg.width

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        self.body = nn.Sequential(
            *block(1, w), nn.MaxPool2d(2),  # (B, w, 14, 14)
            *block(w, 2 * w), nn.MaxPool2d(2),  # (B, 2w, 7, 7)
            *block(2 * w, 4 * w), nn.MaxPool2d(2),  # (B, 4w, 3, 3)
            nn.Flatten(),
            nn.Linear(4 * w * 9, cfg.feature_dim, bias=False),
            nn.BatchNorm1d(cfg.feature_dim),
            nn.ReLU(),
        )  # fmt: skip
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(cfg.feature_dim, len(CATEGORIES))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations, (B, feature_dim)."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits, (B, 10)."""
        return self.head(self.dropout(self.body(x)))


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    # Per-image random shifts of up to 2 px and left-right flips: cheap, and enough to
    # reach ~93% with this small network. Shifts bring in background (-1), not wrap-around.
    b = x.shape[0]
    shift = torch.randint(-2, 3, (b, 2), generator=gen).float() * (2.0 / 28.0)
    flip = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1], theta[:, :, 2] = flip, 1.0, shift
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    return F.grid_sample(x + 1.0, grid, mode="nearest", align_corners=False) - 1.0


def train_classifier(
    cfg: ClassifierConfig = ClassifierConfig(),
    data_dir: Path | None = None,
    *,
    device: str = "cpu",
    log: Any = print,
) -> tuple[Classifier, dict[str, Any]]:
    """Train the classifier on the train split and measure it on the test split.

    Args:
        cfg: Settings.
        data_dir: Folder with the Fashion-MNIST files (see ``gan.products.data``).
        device: Torch device to train on; the returned model is on the CPU.
        log: Called with one progress line per epoch (``None`` for silence).

    Returns:
        ``(model in eval mode, metrics)`` with ``test_accuracy``, ``train_seconds`` and
        per-class test accuracy.
    """
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    images, labels, data_sha = load_fashion_mnist("train", data_dir)
    x_all = torch.from_numpy(to_model_range(images)[:, None]).to(device)
    y_all = torch.from_numpy(labels.copy()).to(device)
    model = Classifier(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = len(x_all) // cfg.batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch
    )
    t0 = time.perf_counter()
    for epoch in range(cfg.epochs):
        model.train()
        perm = torch.randperm(len(x_all), generator=gen).to(device)
        total = 0.0
        for i in range(steps_per_epoch):
            idx = perm[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            loss = F.cross_entropy(model(_augment(x_all[idx], gen)), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        if log is not None:
            log(f"epoch {epoch + 1}/{cfg.epochs}: loss {total / steps_per_epoch:.4f} "
                f"({time.perf_counter() - t0:.0f} s)")  # fmt: skip
    model = model.cpu().eval()
    test_x, test_y, _ = load_fashion_mnist("test", data_dir)
    pred = predict(model, to_model_range(test_x)[:, None]).argmax(1)
    per_class = {c: float((pred[test_y == i] == i).mean()) for i, c in enumerate(CATEGORIES)}
    metrics = {
        "test_accuracy": float((pred == test_y).mean()),
        "per_class_test_accuracy": per_class,
        "train_seconds": round(time.perf_counter() - t0, 1),
        "data_sha256": data_sha,
        "trained_on": str(device),
    }
    return model, metrics


@torch.no_grad()
def _batched(fn: Any, images: np.ndarray, batch: int) -> np.ndarray:
    out = [fn(torch.from_numpy(np.ascontiguousarray(images[i : i + batch], dtype=np.float32)))
           for i in range(0, len(images), batch)]  # fmt: skip
    return torch.cat(out).numpy() if out else np.empty((0,))


def predict(model: Classifier, images: np.ndarray, batch: int = 1000) -> np.ndarray:
    """Class probabilities, float32 (N, 10), of images float32 (N, 1, 28, 28) in [-1, 1]."""
    return _batched(lambda x: model(x).softmax(1), images, batch)


def embed(
    model: Classifier, images: np.ndarray, batch: int = 1000
) -> tuple[np.ndarray, np.ndarray]:
    """Penultimate features and class probabilities of images in one pass.

    Args:
        model: A classifier in eval mode.
        images: float32 (N, 1, 28, 28) in [-1, 1].
        batch: Images per forward pass.

    Returns:
        ``(features float64 (N, feature_dim), probabilities float32 (N, 10))``.
    """
    model.eval()

    def both(x: torch.Tensor) -> torch.Tensor:
        h = model.features(x)
        return torch.cat([h, model.head(h).softmax(1)], dim=1)

    out = _batched(both, images, batch)
    d = model.cfg.feature_dim
    return out[:, :d].astype(np.float64), out[:, d:]


def save_classifier(model: Classifier, path: Path, metrics: dict[str, Any]) -> Path:
    """Write the weights to ``path`` (``.npz``, no pickle) and config + metrics beside it
    (``path.with_suffix('.json')``).

    Returns:
        ``path``.
    """
    path = Path(path)
    arrays = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    with atomic_write(path) as f:
        np.savez(f, **arrays)
    sidecar = {"format": FORMAT, "version": VERSION, "config": asdict(model.cfg), **metrics}
    sidecar["size_bytes"] = path.stat().st_size
    with atomic_write(path.with_suffix(".json")) as f:
        f.write((json.dumps(sidecar, indent=2) + "\n").encode())
    return path


def load_classifier(path: Path) -> tuple[Classifier, dict[str, Any]]:
    """Load a classifier written by ``save_classifier`` (numpy arrays + JSON; nothing unpickled).

    Returns:
        ``(model in eval mode, metrics recorded at training time)``.

    Raises:
        ValueError: If the files are missing or not a classifier artifact.
    """
    path = Path(path)
    sidecar_path = path.with_suffix(".json")
    if not path.is_file() or not sidecar_path.is_file():
        raise ValueError(f"classifier {path} (+ {sidecar_path.name}) does not exist; train it "
                         "with `python -m benchmarks.quality --only classifier`")  # fmt: skip
    sidecar = json.loads(sidecar_path.read_text())
    if sidecar.get("format") != FORMAT:
        raise ValueError(f"{sidecar_path} is not an {FORMAT} file")
    try:
        with np.load(path, allow_pickle=False) as arrays:
            state = {k: torch.from_numpy(arrays[k]) for k in arrays.files}
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path} is not a readable .npz of weights ({exc})") from None
    model = Classifier(ClassifierConfig(**sidecar["config"]))
    model.load_state_dict(state)
    meta = ("format", "version", "config", "size_bytes")
    metrics = {k: v for k, v in sidecar.items() if k not in meta}
    return model.eval(), metrics
