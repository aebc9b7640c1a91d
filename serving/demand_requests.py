"""The demand service's requests: examples, history and request checks, generator inputs.

Numpy and the standard library only (``ecomgan.demand``); ``serving.demand`` holds the routes.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np

from ecomgan import demand
from ecomgan.seeding import latent
from serving.errors import InvalidInput

MAX_PATHS = 10_000
MAX_WEEKS = 520


def _example_history(weeks: int = 70) -> dict[str, list]:
    """A made-up store (a seasonal curve with a December peak), not data from the file."""
    start = dt.date(2010, 11, 26)
    dates = [start + dt.timedelta(weeks=i) for i in range(weeks)]
    cal = demand.week_calendar(dates)
    sales = 1.2e6 * (
        1 + 0.05 * cal[:, 0] + 0.35 * cal[:, 5] + 0.15 * cal[:, 3] + 0.02 * np.sin(np.arange(weeks))
    )
    return {"dates": [d.isoformat() for d in dates], "sales": [round(float(s), 2) for s in sales]}


EXAMPLE_HISTORY = _example_history()
EXAMPLE_SCENARIOS: dict[str, Any] = {**EXAMPLE_HISTORY, "horizon": 8, "paths": 1000, "seed": 7}
EXAMPLE_STOCKOUT: dict[str, Any] = {
    **EXAMPLE_HISTORY,
    "horizon": 4,
    "paths": 1000,
    "seed": 7,
    "stock": 4.5e6,
    "receipts": [0.0, 1.2e6, 0.0, 1.2e6],
    "service_level": 0.95,
}


def _parse_dates(dates: list[str]) -> np.ndarray:
    try:
        return np.array([dt.date.fromisoformat(d) for d in dates], dtype="datetime64[D]")
    except (TypeError, ValueError):
        bad = next(d for d in dates if not _is_iso(d))
        raise InvalidInput(f"dates must be ISO dates YYYY-MM-DD, got {bad!r}") from None


def _is_iso(d: Any) -> bool:
    try:
        dt.date.fromisoformat(d)
        return True
    except (TypeError, ValueError):
        return False


def check_history(
    layout: demand.Layout, dates: list[str], sales: list[float], min_weeks: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The checked history as arrays (``InvalidInput`` says what is wrong and what is allowed)."""
    d, s = _parse_dates(dates), np.asarray(sales, dtype=np.float64)
    try:
        demand.check_history(d, s, min_weeks=min_weeks or layout.min_history)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    return d, s


def forecast_request(
    layout: demand.Layout,
    dates: list[str],
    sales: list[float],
    horizon: int | None,
    paths: int,
    holidays: list[bool] | None,
    receipts: list[float] | None = None,
) -> dict[str, Any]:
    """Validate a scenarios/stock-out request; the condition, level and forecast dates."""
    h = layout.horizon if horizon is None else horizon
    if isinstance(h, bool) or not 1 <= h <= layout.horizon:
        raise InvalidInput(f"horizon must be 1..{layout.horizon} weeks, got {horizon}")
    if isinstance(paths, bool) or not 1 <= paths <= MAX_PATHS:
        raise InvalidInput(f"paths must be 1..{MAX_PATHS}, got {paths}")
    for name, v in (("holidays", holidays), ("receipts", receipts)):
        if v is not None and len(v) != h:
            raise InvalidInput(f"{name} needs one value per forecast week: {h}, got {len(v)}")
    if receipts is not None and not all(np.isfinite(r) and r >= 0 for r in receipts):
        raise InvalidInput("receipts must be finite numbers >= 0")
    d, s = check_history(layout, dates, sales)
    future = demand.future_dates(d[-1], layout.horizon)
    flags = [demand.derived_holiday(x.astype(dt.date)) for x in future]
    if holidays is not None:
        flags[:h] = [int(x) for x in holidays]
    try:
        cond, level = demand.condition(s, demand.week_calendar(future, flags), layout)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    return {
        "cond": cond,
        "level": level,
        "horizon": h,
        "dates": d,
        "sales": s,
        "future": future[:h],
    }


def generator_inputs(cond: np.ndarray, n: int, seed: int, nz: int) -> dict[str, np.ndarray]:
    """Seeded latents and the condition repeated for ``n`` paths."""
    return {"z": latent(n, nz, seed), "cond": np.tile(cond, (n, 1))}


def to_paths(y: np.ndarray, level: float, h: int) -> np.ndarray:
    """Generator output (n, H) log-ratios -> demand paths (n, h)."""
    return level * np.exp(y[:, :h].astype(np.float64))
