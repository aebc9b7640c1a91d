"""The shoppers family: a conditional tabular GAN (CTGAN class) on browsing sessions.

This is the torch-side family module that ``ecomgan.families`` names. ``train.py`` holds
``TrainConfig`` and ``train``; this file reads a checkpoint back: ``load``, ``sample``,
``sample_frame``, ``exportables``, ``calibration_inputs``, ``describe``, ``artifacts`` and
the optional hooks of ``ecomgan.contract`` ``write_samples`` (a CSV) and
``evaluate_checkpoint``.
``sample`` does exactly what the service does with the ONNX generator: seeded latents
(``ecomgan.seeding.latent``), the conditional vector and the decoding of
``ecomgan.tabular.TabularTransformer``, then the conditions forced onto the rows.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ecomgan.contract import EvaluateRequest
from ecomgan.tabular import TabularTransformer
from gan.common import describe_checkpoint, latent, load_checkpoint
from gan.exportable import CalibrationInputs, Exportable
from gan.shoppers.data import COLUMNS, load_split
from gan.shoppers.model import Critic, Detector, Generator
from gan.shoppers.train import FAMILY, TrainConfig, round_trip, train

__all__ = [
    "COLUMNS",
    "TrainConfig",
    "artifacts",
    "calibration_inputs",
    "describe",
    "evaluate_checkpoint",
    "exportables",
    "load",
    "load_transformer",
    "sample",
    "sample_frame",
    "train",
    "write_samples",
]
MAX_BATCH = 1000  # rows per generator call: bounds memory, and BatchNorm is per row in eval


def _read(checkpoint: Path) -> tuple[dict[str, Any], TrainConfig, TabularTransformer, dict]:
    ckpt = load_checkpoint(checkpoint, FAMILY)
    cfg = TrainConfig.from_dict(ckpt["config"])
    transformer = TabularTransformer.from_dict(ckpt["transformer"])
    mcfg = cfg.model_config(transformer)
    nets = {"generator": Generator(mcfg), "discriminator": Detector(mcfg), "critic": Critic(mcfg)}
    for role, key in (("generator", "generator_ema"), ("discriminator", "detector"),
                      ("critic", "critic")):  # fmt: skip
        nets[role].load_state_dict(ckpt[key])
        nets[role].eval()
    return ckpt, cfg, transformer, nets


def load(checkpoint: Path) -> tuple[TrainConfig, dict[str, torch.nn.Module]]:
    """Rebuild a checkpoint's networks in eval mode.

    Returns:
        ``(config, {"generator": EMA generator, "discriminator": per-row detector})``.

    Raises:
        ValueError: If the file is not a readable shoppers checkpoint.
    """
    _, cfg, _, nets = _read(checkpoint)
    return cfg, {"generator": nets["generator"], "discriminator": nets["discriminator"]}


def load_transformer(checkpoint: Path) -> TabularTransformer:
    """The checkpoint's data transformer."""
    return TabularTransformer.from_dict(load_checkpoint(checkpoint)["transformer"])


def condition_indices(
    transformer: TabularTransformer, conditions: Mapping[str, Any] | None
) -> dict[str, int]:
    """``{column: value}`` (typed or string values) -> ``{column: category index}``.

    Raises:
        ValueError: On an unknown column or value, or a combination never seen in training.
    """
    idx = {c: transformer.category_index(c, v) for c, v in (conditions or {}).items()}
    if idx and not transformer.cooccurs(idx):
        raise ValueError(
            f"the conditions {dict(conditions or {})} never occur together in the training "
            "data; drop or change one of them"
        )
    return idx


@torch.no_grad()
def _generate(net_g, transformer, n: int, seed: int, idx: Mapping[str, int]) -> np.ndarray:
    z = torch.from_numpy(latent(n, net_g.z_dim, seed))
    cond = torch.from_numpy(transformer.cond_vector(idx, n))
    parts = [
        net_g(zb, cb) for zb, cb in zip(z.split(MAX_BATCH), cond.split(MAX_BATCH), strict=True)
    ]
    return torch.cat(parts).numpy()  # (n, output_dim)


def sample(
    checkpoint: Path, n: int, seed: int, conditions: Mapping[str, Any] | None = None
) -> dict[str, np.ndarray]:
    """Generate ``n`` sessions with the EMA generator.

    Args:
        checkpoint: A shoppers checkpoint.
        n: Number of sessions (>= 1).
        seed: Seed of the latents; the same arguments give the same rows.
        conditions: Optional ``{column: value}`` on categorical columns, e.g.
            ``{"Revenue": True, "Month": "Nov"}``; every row meets them exactly.

    Returns:
        Column name -> typed array (int64 counts and integer categories, float64 continuous
        values, str months and visitor types, bool flags), in table order.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    _, _, transformer, nets = _read(checkpoint)
    idx = condition_indices(transformer, conditions)
    rows = transformer.decode(_generate(nets["generator"], transformer, n, seed, idx))
    transformer.apply_conditions(rows, idx)
    return rows


def sample_frame(
    checkpoint: Path, n: int, seed: int, conditions: Mapping[str, Any] | None = None
) -> pd.DataFrame:
    """``sample`` as a table with the dataset's column order and dtypes."""
    rows = sample(checkpoint, n, seed, conditions)
    frame = pd.DataFrame({c: rows[c] for c in COLUMNS})
    for c in ("Month", "VisitorType"):
        frame[c] = frame[c].astype(object)  # as pandas reads the CSV
    return frame


def exportables(checkpoint: Path) -> dict[str, Exportable]:
    """The EMA generator ``(z, cond) -> x`` and the detector ``x -> logit``, ready for ONNX."""
    _, _, transformer, nets = _read(checkpoint)
    # Examples cover the free vector and one condition per discrete column.
    conds = [{}] + [{c: 0} for c in transformer.discrete_names]
    cond = torch.from_numpy(np.concatenate([transformer.cond_vector(c, 1) for c in conds]))
    z = torch.from_numpy(latent(len(cond), nets["generator"].z_dim, 0))
    with torch.no_grad():
        x = nets["generator"](z, cond)
    return {
        "generator": Exportable(nets["generator"], (z, cond), ("z", "cond"), ("x",)),
        "discriminator": Exportable(nets["discriminator"], (x,), ("x",), ("logit",)),
    }


@torch.no_grad()
def calibration_inputs(
    checkpoint: Path, n: int, seed: int, data_dir: Path | None = None
) -> CalibrationInputs:
    """Detector inputs for fitting a real/fake calibration downstream.

    Args:
        checkpoint: A shoppers checkpoint.
        n: Number of real and of fake rows; capped at the test split's size, minus rows with
            a category unseen in training (1,970 rows here; the exporter asks for 2,000, and the
            manifest records the numbers used).
        seed: Seed of the choice of test rows and of the latents.
        data_dir: The shoppers CSV or its folder.

    Returns:
        ``((real_x,), (fake_x,))``: float32 (n, output_dim) encoded rows; reals from the
        TEST split, fakes generated without conditions and re-encoded as the service would.
    """
    _, cfg, transformer, nets = _read(checkpoint)
    _, test = load_split(data_dir, seed=cfg.split_seed)
    known = np.ones(len(test), dtype=bool)
    for c in transformer.discrete_names:
        vocab = set(transformer.columns[list(COLUMNS).index(c)].categories)
        known &= test[c].isin(vocab).to_numpy()
    test = test[known]
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    n = min(n, len(test))
    rng = np.random.Generator(np.random.PCG64(seed))
    pick = test.iloc[np.sort(rng.choice(len(test), size=n, replace=False))]
    real = transformer.encode({c: pick[c].to_numpy() for c in COLUMNS})
    fake = round_trip(
        transformer, torch.from_numpy(_generate(nets["generator"], transformer, n, seed, {}))
    )
    return (real,), (fake.numpy(),)


def describe(checkpoint: Path) -> dict[str, Any]:
    """JSON-serialisable facts about a checkpoint, for model-store metadata."""
    ckpt, cfg, transformer, nets = _read(checkpoint)
    return {
        **describe_checkpoint(ckpt, cfg, nets),
        "z_dim": nets["generator"].z_dim,
        "cond_dim": transformer.cond_dim,
        "output_dim": transformer.output_dim,
        "transformer_format": TabularTransformer.FORMAT,
        "columns": dict(COLUMNS),
    }


def artifacts(checkpoint: Path) -> dict[str, bytes]:
    """Files to ship beside the ONNX models: ``{"transformer.json": <UTF-8 JSON>}``."""
    doc = load_checkpoint(checkpoint)["transformer"]
    TabularTransformer.from_dict(doc)  # refuse to ship a document the service cannot read
    return {"transformer.json": (json.dumps(doc, indent=1, allow_nan=False) + "\n").encode()}


def write_samples(
    checkpoint: Path, out: Path, *, count: int, seed: int, category: str | None = None,
    conditions: Mapping[str, str] | None = None,
) -> str:  # fmt: skip
    """``ecomgan sample --checkpoint``: ``count`` rows as CSV, optionally conditioned.

    Args:
        checkpoint: A shoppers checkpoint.
        out: The CSV to write (``samples.csv`` when None).
        count: Number of rows.
        seed: Seed of the latents.
        category: Image families only; refused here.
        conditions: ``{column: value}`` on categorical columns.
    """
    if category is not None:
        raise ValueError("--category applies to image families; use --condition COL=VALUE")
    frame = sample_frame(Path(checkpoint), count, seed, conditions)
    out = Path(out or "samples.csv")
    frame.to_csv(out, index=False)
    return f"wrote {count} rows to {out}"


def evaluate_checkpoint(request: EvaluateRequest) -> str:
    """``ecomgan evaluate --family shoppers``: ``gan.shoppers.evaluate.evaluate`` on the subject."""
    from gan.shoppers.evaluate import evaluate

    extra = [flag for flag, v in (("--compare", request.compare), ("--classifier",
             request.classifier), ("--detector", request.detector)) if v]  # fmt: skip
    if extra:
        raise ValueError(f"{', '.join(extra)} apply to the products family, not shoppers")
    evaluate(
        Path(request.checkpoint),
        request.out,
        data_dir=request.data_dir,
        n_samples=request.samples,
        seed=request.seed,
        quick=request.quick,
    )
    report = (request.out / "report.md").read_text()
    return f"{report}\nreport in {request.out}/ (report.json, report.md, PNGs)"
