"""``ecomgan evaluate --family demand``: a rolling-origin backtest of the GAN and the baselines.

The backtest is the last ``BACKTEST_WEEKS`` (26) weeks of every store: origins every week from
the last week before it (forecasting weeks 1..H after each origin, truncated at the data's
end). The GAN is scored as trained (``holdout=1`` keeps those weeks out of training; a model
trained on every week is reported as such). The baselines (``gan.demand.baselines``) refit at
every origin on the weeks up to it. Scores (``gan.demand.scores``) cover horizons 1-4 and each
horizon up to H; stock-out events are ``sum of the next 4 weeks > m x 4 x (mean of the last
8 weeks)`` for m in ``STOCK_MULTIPLES``, scored by Brier skill over the training period's
event rates. Fidelity: TimeGAN's discriminative and predictive scores and a copy check.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ecomgan.files import atomic_write
from gan.demand import load as load_checkpoint
from gan.demand import sample_paths
from gan.demand.baselines import BASELINES
from gan.demand.data import BACKTEST_WEEKS, generated_windows, load, make_windows
from gan.demand.scores import (
    brier,
    copy_check,
    discriminative_score,
    point_scores,
    predictive_score,
    reliability,
)

OURS = "GAN (ours)"
STOCK_MULTIPLES = (0.9, 1.0, 1.1, 1.2)
EVENT_WEEKS = 4
MAIN_HORIZONS = 4


def _events(paths: np.ndarray, actual: np.ndarray, sales: np.ndarray, t: int) -> list[tuple]:
    """(p, event, multiple) of the stock-out events after origin t."""
    base = EVENT_WEEKS * sales[t - 7 : t + 1].mean()
    cum = paths[:, :EVENT_WEEKS].sum(1)
    truth = actual[:EVENT_WEEKS].sum()
    return [(float((cum > m * base).mean()), float(truth > m * base), m) for m in STOCK_MULTIPLES]


def climatology(stores: dict, ids: list[int], last_week: int) -> dict[float, float]:
    """Training-period rate of each stock-out event (origins whose 4 weeks end by last_week)."""
    rates = {}
    for m in STOCK_MULTIPLES:
        hits = []
        for s in ids:
            x = stores[s]["sales"]
            for t in range(7, last_week - EVENT_WEEKS + 1):
                hits.append(
                    x[t + 1 : t + 1 + EVENT_WEEKS].sum() > m * EVENT_WEEKS * x[t - 7 : t + 1].mean()
                )
        rates[m] = float(np.mean(hits))
    return rates


def backtest(
    gans: dict, layout, stores: dict, ids: list[int], origins: list[int], n: int, seed: int
) -> dict[str, Any]:
    """Paths of every method at every (store, origin), reduced to scores."""
    horizon, last = layout.horizon, min(len(stores[s]["sales"]) for s in ids) - 1
    first = last - BACKTEST_WEEKS
    methods = {**gans, **BASELINES}
    points = {m: {"paths": [], "y": [], "scale": [], "h": []} for m in methods}
    events: dict[str, list] = {m: [] for m in methods}
    seconds = dict.fromkeys(methods, 0.0)
    for s in ids:
        sales = stores[s]["sales"]
        scale = sales[: first + 1].mean()
        for t in origins:
            h_max = min(horizon, last - t)
            actual = sales[t + 1 : t + 1 + h_max]
            for m, fn in methods.items():
                t0 = time.perf_counter()
                rng = np.random.Generator(np.random.PCG64([seed, s, t]))
                if m in gans:
                    paths = sample_paths(
                        fn, stores[s], layout, n, seed * 100_003 + s * 1000 + t, upto=t
                    )
                else:
                    paths = fn(sales, t, horizon, n, rng)
                seconds[m] += time.perf_counter() - t0
                for h in range(h_max):
                    points[m]["paths"].append(paths[:, h])
                    points[m]["y"].append(actual[h])
                    points[m]["scale"].append(scale)
                    points[m]["h"].append(h + 1)
                if h_max >= EVENT_WEEKS:
                    events[m] += _events(paths, actual, sales, t)
    clim = climatology(stores, ids, first)
    result = {}
    for m in methods:
        p = {k: np.asarray(v) for k, v in points[m].items()}
        main = p["h"] <= MAIN_HORIZONS
        ev = np.asarray(events[m])
        result[m] = {
            **point_scores(p["paths"][main], p["y"][main], p["scale"][main]),
            **brier(ev[:, 0], ev[:, 1], np.array([clim[k] for k in ev[:, 2]])),
            "by_horizon": {
                int(h): point_scores(
                    p["paths"][p["h"] == h], p["y"][p["h"] == h], p["scale"][p["h"] == h]
                )
                for h in range(1, horizon + 1)
                if (p["h"] == h).any()
            },
            "reliability": reliability(ev[:, 0], ev[:, 1]),
            "seconds": seconds[m],
        }
    return {"methods": result, "climatology": {str(k): v for k, v in clim.items()}}


def fidelity(
    net_g, layout, stores: dict, ids: list[int], first: int, seed: int, steps: int
) -> dict[str, Any]:
    """Discriminative and predictive scores and the copy check on the backtest's windows."""
    from gan.common import latent

    last = min(len(stores[s]["sales"]) for s in ids) - 1
    picks = {s: list(range(first, last - layout.horizon + 1)) for s in ids}
    test = make_windows({s: stores[s] for s in ids}, layout, origin_list=picks)
    train = make_windows({s: stores[s] for s in ids}, layout, last_week=first)
    z = torch.from_numpy(latent(len(test), net_g.z_dim, seed))
    with torch.no_grad():
        y_gen = net_g(z, torch.from_numpy(test.cond)).numpy()
    fake = generated_windows(test, y_gen, layout)
    return {
        "discriminative_score": discriminative_score(test.real, fake, seed, steps),
        "predictive_tstr_mae": predictive_score(fake, test.real, layout.window, seed, steps),
        "predictive_trtr_mae": predictive_score(train.real, test.real, layout.window, seed, steps),
        "copy_check": copy_check(y_gen, test.y, train.y),
        "windows": int(len(test)),
    }


def evaluate(
    checkpoint: Path,
    out: Path,
    *,
    data_dir: Path | None = None,
    n_paths: int | None = None,
    seed: int = 1,
    quick: bool = False,
    compare: dict[str, Path] | None = None,
) -> dict[str, Any]:
    """Run the backtest and write ``report.json``, ``report.md`` and the PNGs into ``out``.

    Args:
        checkpoint: A demand checkpoint.
        out: Output folder.
        data_dir: The Walmart CSV or its folder.
        n_paths: Paths per forecast (default 1000; quick 100).
        seed: Seed of the paths and the fidelity classifiers.
        quick: 3 stores, every third origin, 100 paths, short classifiers (a smoke run).
        compare: Name -> checkpoint of more demand generators scored beside it (as
            "GAN <name>"; e.g. an ablation).
    """
    from gan.demand.report import write_report

    t0 = time.perf_counter()
    torch.set_num_threads(1)  # small MLPs: a second thread only contends for a shared core
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stores, sha = load(data_dir)
    cfg, nets, ckpt = load_checkpoint(checkpoint)
    layout, net_g = cfg.layout(), nets["generator"]
    others = {f"GAN {k}": load_checkpoint(v)[1]["generator"] for k, v in (compare or {}).items()}
    ids = sorted(stores)[:3] if quick else sorted(stores)
    last = min(len(stores[s]["sales"]) for s in ids) - 1
    first = last - BACKTEST_WEEKS
    origins = list(range(first, last))[:: 3 if quick else 1]
    n = n_paths or (100 if quick else 1000)
    report = {
        "checkpoint": str(checkpoint),
        "data_sha256": sha,
        "seed": seed,
        "quick": quick,
        "stores": len(ids),
        "origins": len(origins),
        "paths": n,
        "backtest_weeks": BACKTEST_WEEKS,
        "first_origin_week": first,
        "model_trained_until_week": int(ckpt["last_week"]),
        "honest": int(ckpt["last_week"]) <= first,
        **backtest({OURS: net_g, **others}, layout, stores, ids, origins, n, seed),
        "fidelity": fidelity(net_g, layout, stores, ids, first, seed, 300 if quick else 1500),
    }
    report["targets"] = targets(report)
    report["seconds"] = time.perf_counter() - t0
    with atomic_write(out / "report.json") as f:
        f.write((json.dumps(report, indent=1) + "\n").encode())
    write_report(report, out, net_g, layout, stores, ids, last)
    return report


def targets(report: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets against this run's numbers."""
    m = report["methods"]
    ours = m[OURS]
    base = {k: v for k, v in m.items() if not k.startswith("GAN")}
    best_crps = min(v["scaled_crps"] for v in base.values())
    best_bss = max(v["brier_skill"] for v in base.values())
    disc = report["fidelity"]["discriminative_score"]
    return {
        "crps_ratio_to_best_baseline": ours["scaled_crps"] / best_crps,
        "crps_ok": ours["scaled_crps"] <= 0.85 * best_crps,
        "coverage_80_ok": 0.77 <= ours["coverage_80"] <= 0.83,
        "coverage_95_ok": 0.93 <= ours["coverage_95"] <= 0.97,
        "brier_skill_gain": ours["brier_skill"] - best_bss,
        "brier_ok": ours["brier_skill"] - best_bss >= 0.05,
        "discriminative_ok": disc <= 0.10,
    }
