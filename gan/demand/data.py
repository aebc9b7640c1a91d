"""Walmart weekly sales: loading, the backtest boundary and rolling training windows.

``walmart_weekly_sales.csv`` (45 stores x 117 weeks, 2010-02-05 .. 2012-04-27, day-first
dates) is found by ``gan.datasets.find`` (``--data-dir``, ``$ECOMGAN_DATA_DIR``...). The file is
parsed and checked by the torch-free ``ecomgan.demand.read_sales`` (the service's parser).

A window at origin ``t`` (the index of its last observed week) conditions on weeks up to ``t``
and targets weeks ``t+1 .. t+H``. ``last_week`` bounds the TARGETS: with the backtest held out
(``BACKTEST_WEEKS``), no training window sees a week of the backtest.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from ecomgan.demand import FLOOR, Layout, condition, read_sales, week_calendar, window
from ecomgan.files import sha256_file
from gan.datasets import WALMART, find

FILE = "walmart_weekly_sales.csv"
BACKTEST_WEEKS = 26

Stores = dict[int, dict[str, np.ndarray]]


def find_csv(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The Walmart CSV (``DatasetNotFoundError`` says where it was looked for)."""
    return find(WALMART, [FILE], data_dir)[0]


def load(data_dir: str | os.PathLike[str] | None = None) -> tuple[Stores, str]:
    """Every store's checked series and the file's SHA-256."""
    path = find_csv(data_dir)
    return read_sales(path), sha256_file(path)


def synthetic_stores(n_stores: int = 4, weeks: int = 117, seed: int = 0) -> Stores:
    """Seasonal series with noise, for dry runs and tests (no dataset needed)."""
    rng = np.random.default_rng(seed)
    dates = np.datetime64(dt.date(2010, 2, 5)) + 7 * np.arange(weeks)
    cal = week_calendar(dates)
    out = {}
    for s in range(1, n_stores + 1):
        base = rng.uniform(0.5e6, 2e6)
        season = 1 + 0.1 * cal[:, 0] + 0.3 * cal[:, 5] + 0.15 * cal[:, 3]
        sales = base * season * np.exp(rng.normal(0, 0.05, weeks))
        out[s] = {"dates": dates, "sales": sales, "holiday": cal[:, 2].astype(np.int8)}
    return out


@dataclass(frozen=True)
class Windows:
    """Rolling windows, one row per (store, origin).

    Attributes:
        cond: float32 (N, cond_dim) generator conditions.
        y: float32 (N, H) targets: log of sales over the level.
        level: float64 (N,) the level (mean sales of the last ``level_weeks``).
        real: float32 (N, window_dim) detector windows of the real weeks up to t + H.
        context: float64 (N, window - H) the sales of the window's past weeks.
        store, origin: int (N,) where each window comes from.
    """

    cond: np.ndarray
    y: np.ndarray
    level: np.ndarray
    real: np.ndarray
    context: np.ndarray
    store: np.ndarray
    origin: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def take(self, idx: np.ndarray) -> Windows:
        """The windows at ``idx``."""
        return Windows(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})


def origins(n_weeks: int, layout: Layout, last_week: int | None = None) -> range:
    """Origins whose H target weeks all lie at or before ``last_week`` (default: the end)."""
    last = n_weeks - 1 if last_week is None else last_week
    return range(layout.min_history - 1, last - layout.horizon + 1)


def make_windows(
    stores: Stores,
    layout: Layout,
    last_week: int | None = None,
    origin_list: dict[int, list[int]] | None = None,
) -> Windows:
    """Windows of every store at every origin allowed by ``last_week`` (or ``origin_list``).

    The forecast weeks' holiday flags are the file's (known in advance); all other calendar
    features come from the dates.
    """
    rows: dict[str, list] = {
        k: [] for k in ("cond", "y", "level", "real", "context", "store", "origin")
    }
    h, past = layout.horizon, layout.window - layout.horizon
    for store, series in stores.items():
        sales, dates, flags = series["sales"], series["dates"], series["holiday"]
        cal = week_calendar(dates, flags)
        picks = origin_list[store] if origin_list else origins(len(sales), layout, last_week)
        for t in picks:
            cond, level = condition(sales[: t + 1], cal[t + 1 : t + 1 + h], layout)
            rows["cond"].append(cond)
            rows["y"].append(np.log(np.maximum(sales[t + 1 : t + 1 + h], 1e-3 * level) / level))
            rows["level"].append(level)
            rows["real"].append(window(sales[: t + 1 + h], dates[: t + 1 + h], layout))
            rows["context"].append(sales[t + 1 - past : t + 1])
            rows["store"].append(store)
            rows["origin"].append(t)
    return Windows(
        cond=np.stack(rows["cond"]).astype(np.float32),
        y=np.stack(rows["y"]).astype(np.float32),
        level=np.asarray(rows["level"]),
        real=np.stack(rows["real"]),
        context=np.stack(rows["context"]),
        store=np.asarray(rows["store"]),
        origin=np.asarray(rows["origin"]),
    )


def generated_windows(w: Windows, y_gen: np.ndarray, layout: Layout) -> np.ndarray:
    """Detector windows whose last H weeks are generated (``y_gen`` (N, H) log-ratios) after
    the real context: what a generated scenario looks like to the detector. The calendar
    columns are the real window's (same weeks); only the sales column changes."""
    sales = np.concatenate([w.context, w.level[:, None] * np.exp(y_gen)], axis=1)  # (N, window)
    mean = sales.mean(axis=1, keepdims=True)
    out = w.real.reshape(len(w), layout.window, -1).copy()
    out[:, :, 0] = np.log(np.maximum(sales, FLOOR * mean) / mean)
    return out.reshape(len(w), -1).astype(np.float32)


def corrupt(real: np.ndarray, layout: Layout, gen: np.random.Generator) -> np.ndarray:
    """Corrupted copies of real detector windows: a spike, a drop to near zero, two weeks
    swapped or a level shift of part of the window, one per window, in log-ratio space."""
    f = len(real[0]) // layout.window
    x = real.reshape(len(real), layout.window, f).copy()
    for i in range(len(x)):
        kind, a, b = gen.integers(4), *np.sort(gen.choice(layout.window, 2, replace=False))
        if kind == 0:
            x[i, a, 0] += gen.choice([-1, 1]) * gen.uniform(0.4, 1.2)
        elif kind == 1:
            x[i, a, 0] = np.log(1e-3)
        elif kind == 2:
            x[i, [a, b], 0] = x[i, [b, a], 0]
            if abs(x[i, a, 0] - x[i, b, 0]) < 0.05:
                x[i, a, 0] += 0.5
        else:
            x[i, a:, 0] += gen.choice([-1, 1]) * gen.uniform(0.3, 0.7)
    return x.reshape(len(real), -1)


def write_csv(stores: Stores, path: Path) -> None:
    """Write series in the Walmart file's layout (day-first dates; covariates left empty)."""
    lines = ["Store,Date,Weekly_Sales,Holiday_Flag,Temperature,Fuel_Price,CPI,Unemployment"]
    for store, s in stores.items():
        for d, x, f in zip(s["dates"], s["sales"], s["holiday"], strict=True):
            day = d.astype(dt.date)
            lines.append(f"{store},{day:%d/%m/%y},{x:.2f},{int(f)},,,,")
    Path(path).write_text("\n".join(lines) + "\n")
