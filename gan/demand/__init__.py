"""The demand family: weekly demand scenarios and stock-out risk from a conditional GAN.

The torch-side family module that ``ecomgan.families`` names. ``train.py`` holds
``TrainConfig`` and ``train``; this file reads a checkpoint back: ``load``, ``sample_paths``
(exactly what the service computes with the ONNX generator: seeded latents from
``ecomgan.seeding.latent``, the condition of ``ecomgan.demand.condition``, paths =
level * exp(output)), ``exportables``, ``calibration_inputs``, ``describe``, ``artifacts``
(``demand.json``, the versioned layout, calendar encoding and scalers), ``write_samples`` (a
fan chart PNG) and ``evaluate_checkpoint``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ecomgan.contract import EvaluateRequest
from ecomgan.demand import Layout, condition, encoding, future_dates, week_calendar
from ecomgan.demand_chart import fan_chart
from gan.common import describe_checkpoint, latent, load_checkpoint
from gan.demand.data import generated_windows, make_windows
from gan.demand.data import load as load_stores
from gan.demand.train import FAMILY, TrainConfig, train
from gan.exportable import CalibrationInputs, Exportable

__all__ = [
    "TrainConfig",
    "artifacts",
    "calibration_inputs",
    "describe",
    "evaluate_checkpoint",
    "exportables",
    "fan_chart_of_store",
    "load",
    "sample_paths",
    "train",
    "write_samples",
]
ARTIFACT = "demand.json"


def load(checkpoint: Path) -> tuple[TrainConfig, dict[str, torch.nn.Module], dict[str, Any]]:
    """A checkpoint's config, networks in eval mode (``generator`` = EMA, ``discriminator`` =
    the detector) and the checkpoint itself."""
    from gan.demand.model import Detector, Generator

    ckpt = load_checkpoint(checkpoint, FAMILY)
    cfg = TrainConfig.from_dict(ckpt["config"])
    nets = {
        "generator": Generator(cfg.model_config()),
        "discriminator": Detector(cfg.model_config()),
    }
    nets["generator"].load_state_dict(ckpt["generator_ema"])
    nets["discriminator"].load_state_dict(ckpt["detector"])
    for net in nets.values():
        net.eval()
    return cfg, nets, ckpt


@torch.no_grad()
def generate(net_g: torch.nn.Module, cond: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` log-ratio paths (n, H) for ONE condition (cond_dim,), seeded as the service."""
    z = torch.from_numpy(latent(n, net_g.z_dim, seed))
    return net_g(z, torch.from_numpy(np.tile(cond, (n, 1)))).numpy()


def sample_paths(
    net_g: torch.nn.Module,
    series: Mapping[str, np.ndarray],
    layout: Layout,
    n: int,
    seed: int,
    upto: int | None = None,
    horizon: int | None = None,
) -> np.ndarray:
    """Demand paths (n, horizon) after week ``upto`` (default: the last) of a store's series;
    the forecast weeks' flags are derived from their dates."""
    sales, dates = series["sales"], series["dates"]
    t = len(sales) - 1 if upto is None else upto
    future = week_calendar(future_dates(dates[t], layout.horizon))
    cond, level = condition(sales[: t + 1], future, layout)
    return level * np.exp(generate(net_g, cond, n, seed)[:, : horizon or layout.horizon])


def fan_chart_of_store(
    net_g: torch.nn.Module,
    series: Mapping[str, np.ndarray],
    layout: Layout,
    n: int,
    seed: int,
    upto: int | None = None,
    title: str = "",
) -> bytes:
    """A fan chart PNG of ``n`` paths after week ``upto`` with the last 26 weeks of history."""
    t = len(series["sales"]) - 1 if upto is None else upto
    was = net_g.training
    net_g.eval()
    paths = sample_paths(net_g, series, layout, n, seed, t)
    net_g.train(was)
    return fan_chart(
        series["dates"][t - 25 : t + 1],
        series["sales"][t - 25 : t + 1],
        future_dates(series["dates"][t], layout.horizon),
        paths,
        title=title,
    )


def exportables(checkpoint: Path) -> dict[str, Exportable]:
    """The EMA generator ``(z, cond) -> y`` and the detector ``x -> logit``, ready for ONNX."""
    cfg, nets, _ = load(checkpoint)
    mcfg = cfg.model_config()
    g = torch.Generator().manual_seed(0)
    z, cond = torch.randn(4, mcfg.nz, generator=g), torch.randn(4, mcfg.cond_dim, generator=g)
    x = torch.randn(4, mcfg.window_dim, generator=g)
    return {
        "generator": Exportable(nets["generator"], (z, cond), ("z", "cond"), ("y",)),
        "discriminator": Exportable(nets["discriminator"], (x,), ("x",), ("logit",)),
    }


@torch.no_grad()
def calibration_inputs(
    checkpoint: Path, n: int, seed: int, data_dir: Path | None = None
) -> CalibrationInputs:
    """Detector inputs for the calibration at 1% false positives.

    Reals: windows whose forecast weeks reach into the backtest (the last 26 weeks; a model
    trained with ``holdout=0`` has seen them). Fakes: the same windows with the generator's
    future (one path each) after the real context.
    """
    cfg, nets, _ = load(checkpoint)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    layout = cfg.layout()
    stores, _ = load_stores(data_dir)
    last = min(len(s["sales"]) for s in stores.values()) - 1
    picks = {
        s: list(range(last - 26 - layout.horizon + 1, last - layout.horizon + 1)) for s in stores
    }
    w = make_windows(stores, layout, origin_list=picks)
    rng = np.random.Generator(np.random.PCG64(seed))
    idx = np.sort(rng.choice(len(w), size=min(n, len(w)), replace=False))
    w = w.take(idx)
    z = torch.from_numpy(latent(len(w), cfg.nz, seed))
    y = nets["generator"](z, torch.from_numpy(w.cond)).numpy()
    return (w.real,), (generated_windows(w, y, layout),)


def describe(checkpoint: Path) -> dict[str, Any]:
    """JSON-serialisable facts about a checkpoint, for model-store metadata."""
    cfg, nets, ckpt = load(checkpoint)
    return {
        **describe_checkpoint(ckpt, cfg, nets),
        "layout": dict(ckpt["layout"]),
        "trained_until_week": int(ckpt["last_week"]),
        "holdout_weeks": 26 if cfg.holdout else 0,
    }


def artifacts(checkpoint: Path) -> dict[str, bytes]:
    """``{"demand.json": ...}``: the layout, calendar encoding and the generator's scalers."""
    cfg, nets, ckpt = load(checkpoint)
    g = nets["generator"]
    scalers = {k: getattr(g, k).tolist() for k in ("cond_mean", "cond_std", "y_mean", "y_std")}
    doc = encoding(
        Layout(**ckpt["layout"]),
        scalers,
        {"trained_until_week": int(ckpt["last_week"]), "holdout": cfg.holdout},
    )
    return {ARTIFACT: (json.dumps(doc, indent=1, allow_nan=False) + "\n").encode()}


def write_samples(
    checkpoint: Path,
    out: Path | None,
    *,
    count: int,
    seed: int,
    category: str | None = None,
    conditions: Mapping[str, str] | None = None,
) -> str:
    """``ecomgan sample --checkpoint``: a fan chart PNG of ``count`` paths for a store.

    ``conditions``: ``store=N`` (default 1) and ``data=PATH`` (the sales CSV, default found
    as for training).
    """
    if category is not None:
        raise ValueError("--category applies to image families; use --condition store=N")
    conditions = dict(conditions or {})
    unknown = set(conditions) - {"store", "data"}
    if unknown:
        raise ValueError(f"unknown conditions {sorted(unknown)}; demand takes store=N, data=PATH")
    cfg, nets, _ = load(Path(checkpoint))
    stores, _ = load_stores(conditions.get("data"))
    store = int(conditions.get("store", 1))
    if store not in stores:
        raise ValueError(f"store {store} is not in the data (stores {min(stores)}..{max(stores)})")
    out = Path(out or "samples.png")
    out = out if out.suffix else out.with_suffix(".png")
    out.write_bytes(
        fan_chart_of_store(
            nets["generator"],
            stores[store],
            cfg.layout(),
            count,
            seed,
            title=f"store {store}: {count} paths",
        )
    )
    return f"wrote a fan chart of {count} paths for store {store} to {out}"


def evaluate_checkpoint(request: EvaluateRequest) -> str:
    """``ecomgan evaluate --family demand``: the rolling-origin backtest with baselines."""
    from gan.demand.evaluate import evaluate

    extra = [
        flag
        for flag, v in (
            ("--classifier", request.classifier),
            ("--detector", request.detector),
        )
        if v
    ]
    if extra:
        raise ValueError(f"{', '.join(extra)} apply to the products family, not demand")
    evaluate(
        Path(request.checkpoint),
        request.out,
        data_dir=request.data_dir,
        n_paths=request.samples,
        seed=request.seed,
        quick=request.quick,
        compare=dict(request.compare),
    )
    report = (request.out / "report.md").read_text()
    return f"{report}\nreport in {request.out}/ (report.json, report.md, PNGs)"
