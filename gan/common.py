"""Family-independent training helpers: seeding, checkpoints, EMA, sample grids, metrics."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import random
from pathlib import Path
from typing import Any, Self

import numpy as np
import torch

from ecomgan.files import atomic_write as atomic_write

# The canonical seed -> z mapping lives in the torch-free ecomgan.seeding (the service
# imports it); re-exported so that training code finds every helper here.
from ecomgan.files import sha256_file as sha256_file
from ecomgan.images import grid, to_uint8
from ecomgan.seeding import latent as latent

CHECKPOINT_FORMAT = "ecomgan-checkpoint"
CHECKPOINT_VERSION = 1


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch, and ask torch for deterministic kernels.

    Args:
        seed: The run's seed.

    Returns:
        A fresh CPU ``torch.Generator`` seeded with ``seed``, for the training loop's own
        draws (minibatch indices, noise), so that its state can be checkpointed and resumed.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    return torch.Generator().manual_seed(seed)


def option(default: Any, help: str) -> Any:
    """A config field with its CLI help (``ecomgan train`` turns every field into a flag)."""
    return dataclasses.field(default=default, metadata={"help": help})


class FlatConfig:
    """Dict round trip of a flat, frozen config dataclass (stored in checkpoints as JSON-able)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def require_positive(self, *names: str) -> None:
        """Raise ValueError unless every named field is >= 1 (for ``__post_init__``)."""
        for name in names:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Self:
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields: {sorted(unknown)}")
        return cls(**d)


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> None:
    """Atomically write a checkpoint dict with ``torch.save``.

    Args:
        path: Destination file; its folder is created if needed.
        payload: Tensors, dicts, lists, str, int, float and bool only, so that
            ``load_checkpoint`` can read it back with ``weights_only=True``. Tensors are
            written from the CPU, so a checkpoint from a GPU run looks like any other.
    """
    with atomic_write(path) as f:
        torch.save(_to_cpu(payload), f)


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def load_checkpoint(path: str | os.PathLike[str], family: str | None = None) -> dict[str, Any]:
    """Read a checkpoint written by ``save_checkpoint`` onto the CPU, without unpickling code.

    Args:
        path: The checkpoint file.
        family: When given, the family the checkpoint must belong to.

    Raises:
        ValueError: If the file is missing, unreadable, not an ecomgan checkpoint, or
            another family's.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"checkpoint {path} is corrupt or not a torch checkpoint: {e}") from e
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not an {CHECKPOINT_FORMAT} file")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise ValueError(
            f"checkpoint {path} has version {payload.get('version')!r}; "
            f"this code reads version {CHECKPOINT_VERSION}"
        )
    if family is not None and payload.get("family") != family:
        raise ValueError(f"{path} is a {payload.get('family')!r} checkpoint, not {family!r}")
    return payload


def count_parameters(module: torch.nn.Module) -> int:
    """Number of trainable parameters (spectral-norm vectors are buffers, not counted)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def describe_checkpoint(
    ckpt: dict[str, Any], config: FlatConfig, nets: dict[str, torch.nn.Module]
) -> dict[str, Any]:
    """The JSON-serialisable facts every family's ``describe`` starts from (model-store metadata).

    Args:
        ckpt: The checkpoint, as ``load_checkpoint`` returns it.
        config: Its ``TrainConfig``.
        nets: Its networks by role, whose parameters are counted.
    """
    return {
        "family": ckpt["family"],
        "config": config.to_dict(),
        "step": ckpt["step"],
        "data_sha256": ckpt["data_sha256"],
        "final_metrics": dict(ckpt["last_metrics"]),
        "elapsed_s": ckpt["elapsed_s"],
        "parameters": {role: count_parameters(net) for role, net in nets.items()},
    }


class EMA:
    """Exponential moving average of a module's weights (Yazici et al. 2019; Karras et al. 2018).

    ``self.module`` is an eval-mode copy whose parameters track
    ``ema = decay * ema + (1 - decay) * param``; buffers (BatchNorm running statistics)
    are copied as they are. During warm-up the decay is ``min(decay, (1 + n) / (10 + n))``
    after ``n`` updates, as in TensorFlow's ``ExponentialMovingAverage``, so that the
    average is not dominated by the random initial weights in short runs.
    """

    def __init__(self, module: torch.nn.Module, decay: float = 0.999) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.num_updates = 0
        self.module = copy.deepcopy(module).eval().requires_grad_(False)

    def current_decay(self) -> float:
        """The decay the next ``update`` will use."""
        n = self.num_updates
        return min(self.decay, (1 + n) / (10 + n))

    @torch.no_grad()
    def update(self, module: torch.nn.Module) -> None:
        """Move the average one step towards ``module``'s current weights."""
        d = self.current_decay()
        for avg, p in zip(self.module.parameters(), module.parameters(), strict=True):
            avg.lerp_(p, 1.0 - d)
        for avg, b in zip(self.module.buffers(), module.buffers(), strict=True):
            avg.copy_(b)
        self.num_updates += 1


def save_grid(
    images: np.ndarray | torch.Tensor,
    nrow: int,
    path: str | os.PathLike[str],
    *,
    padding: int = 2,
    pad_value: int = 128,
) -> None:
    """Tile greyscale images into one PNG, ``nrow`` images per row (atomic write).

    Args:
        images: (N, 1, H, W) in [-1, 1] (values outside are clipped).
        nrow: Images per row of the grid.
        path: Destination ``.png``.
        padding: Pixels between images and around the border.
        pad_value: Grey level (0-255) of the padding.
    """
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or images.shape[1] != 1:
        raise ValueError(f"expected images of shape (N, 1, H, W), got {images.shape}")
    with atomic_write(path) as f:
        grid(to_uint8(images), nrow, pad=padding, pad_value=pad_value).save(f, format="PNG")


class MetricsLog:
    """Metrics as JSON lines in a file, and as a list of dicts in ``records``.

    Args:
        path: The ``.jsonl`` file.
        keep_until: ``None`` starts a fresh log (an existing file is emptied). An int
            keeps the existing records whose ``step`` is at most that value, e.g. the step
            a run resumes from, and drops the rest (logged after that checkpoint).
    """

    def __init__(self, path: str | os.PathLike[str], keep_until: int | None = None) -> None:
        self.path = Path(path)
        self.records: list[dict[str, Any]] = []
        if keep_until is not None and self.path.is_file():
            for line in self.path.read_text().splitlines():
                if line.strip():
                    record = json.loads(line)
                    if record.get("step", 0) <= keep_until:
                        self.records.append(record)
        with atomic_write(self.path) as f:
            f.write("".join(json.dumps(r) + "\n" for r in self.records).encode())

    def append(self, record: dict[str, Any]) -> None:
        """Add one record (JSON-serialisable values) to the file and to ``records``."""
        self.records.append(record)
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
