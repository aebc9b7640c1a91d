"""Torch-free maths of the demand family, shared by training (``gan.demand``) and the service.

- weekly sales files (Walmart's day-first ``dd/mm/yy`` dates) and history checks;
- the calendar of a week (derived from its date, not only from the given holiday flag: the
  pre-Christmas peak is the week BEFORE the flagged one, and Thanksgiving and Christmas move
  between weeks from year to year);
- the generator's condition: the context window and the same weeks one year earlier (lag 52)
  as logs of sales over the history's level, and the calendar of the forecast weeks;
- the detector's window, stock-out maths on scenario paths and quantiles (the fan chart PNG
  is ``ecomgan.demand_chart``).

The service imports this module: numpy and the standard library only.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "ecomgan.demand/1"
CALENDAR = (
    "week_sin",
    "week_cos",
    "holiday",
    "thanksgiving",
    "pre_christmas_2",
    "pre_christmas",
    "christmas",
)
WINDOW_FEATURES = (
    "log_ratio",
    "week_sin",
    "week_cos",
    "thanksgiving",
    "pre_christmas",
    "christmas",
)
QUANTILES = tuple(round(0.05 * i, 2) for i in range(1, 20))  # 5%, 10%, ..., 95%
FLOOR = 1e-3  # sales below FLOOR * level are read as FLOOR * level before the log


@dataclass(frozen=True)
class Layout:
    """Shapes of the condition and the detector window (stored in the encoding JSON).

    Attributes:
        horizon: H, the weeks the generator forecasts.
        context: Past weeks in the condition.
        lag: Seasonal lag in weeks (52).
        lag_pad: Weeks before the forecast's in the lag window (the year-earlier context; at
            least ``level_weeks``, for the year-over-year level ratio).
        level_weeks: Weeks whose mean sales is the level everything is scaled by.
        window: Weeks the detector scores (the last ``window`` of a history).
    """

    horizon: int = 8
    context: int = 12
    lag: int = 52
    lag_pad: int = 8
    level_weeks: int = 8
    window: int = 20

    @property
    def min_history(self) -> int:
        """Weeks of history a forecast needs: the lag window reaches back ``lag + lag_pad``."""
        return max(self.lag + self.lag_pad, self.context, self.window)

    @property
    def cond_dim(self) -> int:
        return self.context + self.lag_pad + self.horizon + self.horizon * len(CALENDAR)

    @property
    def window_dim(self) -> int:
        return self.window * len(WINDOW_FEATURES)


SALES_FILE = "walmart_weekly_sales.csv"


def sales_file(path: str | os.PathLike[str] | None = None) -> Path:
    """The sales CSV for ``ecomgan sample``: ``path`` (the file or its folder), else
    ``$ECOMGAN_DATA_DIR/walmart/`` or ``$ECOMGAN_DATA_DIR`` (the torch-free part of
    ``gan.datasets.find``'s lookup).

    Raises:
        FileNotFoundError: Naming the places looked at.
    """
    if path is not None:
        tried = [Path(path), Path(path) / SALES_FILE]
    else:
        root = Path(os.environ.get("ECOMGAN_DATA_DIR", "."))
        tried = [root / "walmart" / SALES_FILE, root / SALES_FILE]
    for candidate in tried:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"no {SALES_FILE} at {', '.join(map(str, tried))}; pass "
        "--condition data=PATH or set ECOMGAN_DATA_DIR"
    )


def parse_day_first(text: str) -> dt.date:
    """``05/02/10`` or ``05/02/2010`` -> 5 Feb 2010 (day first, as the Walmart file)."""
    day, month, year = (int(p) for p in text.strip().split("/"))
    return dt.date(year + 2000 if year < 100 else year, month, day)


def read_sales(path: Path) -> dict[int, dict[str, np.ndarray]]:
    """Read a weekly sales CSV (``Store,Date,Weekly_Sales,Holiday_Flag,...``), checked.

    Returns:
        Store -> ``{"dates": datetime64[D] (n,), "sales": float64 (n,), "holiday": int8 (n,)}``,
        sorted by date.

    Raises:
        ValueError: A bad date, a repeated or missing week, or negative/non-finite sales.
    """
    rows: dict[int, list[tuple[dt.date, float, int]]] = {}
    with open(path, newline="") as f:
        for i, rec in enumerate(csv.DictReader(f), start=2):
            try:
                store, date = int(rec["Store"]), parse_day_first(rec["Date"])
                sales, flag = float(rec["Weekly_Sales"]), int(rec["Holiday_Flag"])
            except (KeyError, ValueError) as exc:
                raise ValueError(f"{path}:{i}: {exc}") from None
            rows.setdefault(store, []).append((date, sales, flag))
    out = {}
    for store, recs in sorted(rows.items()):
        recs.sort()
        dates = np.array([r[0] for r in recs], dtype="datetime64[D]")
        sales = np.array([r[1] for r in recs])
        check_history(dates, sales, f"store {store}", sort_ok=True)
        out[store] = {
            "dates": dates,
            "sales": sales,
            "holiday": np.array([r[2] for r in recs], dtype=np.int8),
        }
    return out


def check_history(
    dates: np.ndarray,
    sales: np.ndarray,
    what: str = "history",
    *,
    min_weeks: int = 1,
    sort_ok: bool = False,
) -> None:
    """Refuse a history that is not one clean weekly series.

    Raises:
        ValueError: Too short, dates out of order, repeated or missing weeks, spacing other
            than 7 days, negative or non-finite sales, or lengths that differ; the message
            says what is allowed.
    """
    if len(dates) != len(sales):
        raise ValueError(f"{what}: {len(dates)} dates but {len(sales)} sales; give one per week")
    if len(sales) < min_weeks:
        raise ValueError(
            f"{what} has {len(sales)} weeks; at least {min_weeks} consecutive weeks are needed"
        )
    bad = ~np.isfinite(sales)
    if bad.any():
        raise ValueError(
            f"{what}: sales must be finite numbers; week {int(np.argmax(bad))} is {sales[bad][0]}"
        )
    if (sales < 0).any():
        i = int(np.argmax(sales < 0))
        raise ValueError(f"{what}: sales must be >= 0; week {i} ({dates[i]}) is {sales[i]}")
    gaps = np.diff(dates).astype(int)
    # order first, then repeats, then the spacing: the message names the first real problem
    for bad_gap, message in (
        (
            lambda g: g < 0 and not sort_ok,
            "dates out of order ({a} then {b}); give them oldest first",
        ),
        (lambda g: g == 0, "week {b} is repeated; give each week once"),
        (
            lambda g: g != 7 and g % 7 == 0,
            "{m} missing week(s) between {a} and {b}; the weeks must be consecutive",
        ),
        (
            lambda g: g % 7 != 0,
            "{a} and {b} are {g} days apart; dates must be exactly 7 days apart (one per week)",
        ),
    ):
        for i, g in enumerate(gaps):
            if bad_gap(g):
                a, b = dates[i], dates[i + 1]
                raise ValueError(f"{what}: " + message.format(a=a, b=b, g=g, m=g // 7 - 1))


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> dt.date:
    first = dt.date(year, month, 1)
    return first + dt.timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))


def holidays_of(year: int) -> dict[str, dt.date]:
    """Walmart's four flagged holidays: Super Bowl (first Sunday of February, as in
    2004-2021), Labor Day (first Monday of September), Thanksgiving (fourth Thursday of
    November) and Christmas."""
    return {
        "super_bowl": _nth_weekday(year, 2, 6, 1),
        "labor_day": _nth_weekday(year, 9, 0, 1),
        "thanksgiving": _nth_weekday(year, 11, 3, 4),
        "christmas": dt.date(year, 12, 25),
    }


def _contains(end: dt.date, day: dt.date) -> bool:
    """Whether the week of 7 days ending on ``end`` contains ``day``."""
    return 0 <= (end - day).days <= 6


def derived_holiday(end: dt.date) -> int:
    """1 when the week ending on ``end`` holds one of `holidays_of` (the file's flag rule)."""
    return int(
        any(_contains(end, d) for y in (end.year - 1, end.year) for d in holidays_of(y).values())
    )


def week_calendar(dates: Sequence[Any], holiday: Sequence[int] | None = None) -> np.ndarray:
    """Calendar features of weeks, float32 ``(n, len(CALENDAR))`` (see `CALENDAR`).

    A date is the last day of its week (as in the Walmart file). ``holiday`` is the given
    flag of each week (None: `derived_holiday`); the other columns come from the date alone:
    the pre-Christmas weeks (their last day 8-14 and 1-7 days before 25 December) and the
    weeks holding Thanksgiving and Christmas.
    """
    out = np.zeros((len(dates), len(CALENDAR)), dtype=np.float32)
    for i, d in enumerate(dates):
        day = d if isinstance(d, dt.date) else np.datetime64(d, "D").astype(dt.date)
        angle = 2 * math.pi * (day.timetuple().tm_yday - 1) / 365.25
        to_xmas = (dt.date(day.year, 12, 25) - day).days
        flag = derived_holiday(day) if holiday is None else int(holiday[i])
        out[i] = (
            math.sin(angle),
            math.cos(angle),
            flag,
            _contains(day, holidays_of(day.year)["thanksgiving"]),
            8 <= to_xmas <= 14,
            1 <= to_xmas <= 7,
            _contains(day, dt.date(day.year, 12, 25))
            or _contains(day, dt.date(day.year - 1, 12, 25)),
        )
    return out


def future_dates(last: np.datetime64, weeks: int) -> np.ndarray:
    """The ``weeks`` week-ending dates after ``last``, datetime64[D]."""
    return np.datetime64(last, "D") + 7 * np.arange(1, weeks + 1)


def level_of(sales: np.ndarray, layout: Layout) -> float:
    """The mean of the last ``level_weeks`` weeks: the scale of a history."""
    return float(np.mean(sales[-layout.level_weeks :]))


def _log_ratio(x: np.ndarray, level: float) -> np.ndarray:
    return np.log(np.maximum(x, FLOOR * level) / level)


def condition(sales: np.ndarray, future: np.ndarray, layout: Layout) -> tuple[np.ndarray, float]:
    """The generator's condition for a forecast after ``sales``.

    Args:
        sales: The history, oldest first, at least ``layout.min_history`` weeks.
        future: `week_calendar` of the ``layout.horizon`` forecast weeks.

    Returns:
        ``(cond float32 (cond_dim,), level)``: ``[context log-ratios (context,), lag-52
        log-ratios (lag_pad + horizon,), calendar (horizon * len(CALENDAR),)]``.
    """
    n, lay = len(sales), layout
    level = level_of(sales, lay)
    if not level > 0:
        raise ValueError(
            f"the last {lay.level_weeks} weeks of sales sum to zero; the model "
            "scales by their mean, which must be > 0"
        )
    start = n - lay.lag - lay.lag_pad  # week t - lag - lag_pad + 1, t = n - 1
    lag = sales[start : start + lay.lag_pad + lay.horizon]
    cond = np.concatenate(
        [_log_ratio(sales[-lay.context :], level), _log_ratio(lag, level), future.reshape(-1)]
    )
    return cond.astype(np.float32), level


def window(sales: np.ndarray, dates: np.ndarray, layout: Layout) -> np.ndarray:
    """The detector's input for the last ``layout.window`` weeks, float32 ``(window_dim,)``:
    per week the log of sales over the window's mean, then the date-derived calendar."""
    s, d = sales[-layout.window :], dates[-layout.window :]
    mean = float(np.mean(s))
    if not mean > 0:
        raise ValueError(f"the last {layout.window} weeks of sales are all zero")
    cal = week_calendar(d)[:, [0, 1, 3, 5, 6]]  # sin, cos, thanksgiving, pre_christmas, christmas
    return (
        np.concatenate([_log_ratio(s, mean)[:, None], cal], axis=1).reshape(-1).astype(np.float32)
    )


def quantiles(paths: np.ndarray, levels: Sequence[float] = QUANTILES) -> np.ndarray:
    """Per-week quantiles of ``paths (n, h)``: ``(len(levels), h)`` (numpy's linear rule)."""
    return np.quantile(paths, np.asarray(levels), axis=0)


def stockout(
    paths: np.ndarray, stock: float, receipts: np.ndarray | None, service_level: float
) -> dict[str, np.ndarray]:
    """Stock-out risk per week from scenario paths ``(n, h)``.

    With cumulative demand ``D_t`` (sum of weeks 1..t of a path) and supply
    ``S_t = stock + receipts[0] + ... + receipts[t-1]``:

    - ``p_stockout[t] = mean(D_t > S_t)`` over the paths;
    - ``expected_shortfall[t] = mean(max(0, D_t - S_t))``;
    - ``stock_needed[t] = max(0, quantile(D_t, service_level) - cumulative receipts)``: the
      stock on hand that covers demand up to week t with that probability.
    """
    cum = np.cumsum(paths, axis=1)  # (n, h)
    got = np.cumsum(np.zeros(paths.shape[1]) if receipts is None else receipts)  # (h,)
    supply = stock + got
    return {
        "cumulative_demand_mean": cum.mean(axis=0),
        "supply": supply,
        "p_stockout": (cum > supply).mean(axis=0),
        "expected_shortfall": np.maximum(cum - supply, 0.0).mean(axis=0),
        "stock_needed": np.maximum(np.quantile(cum, service_level, axis=0) - got, 0.0),
    }


def encoding(layout: Layout, scalers: dict[str, Any], stores: dict[str, Any]) -> dict[str, Any]:
    """The versioned JSON document shipped beside the models (``demand.json``)."""
    return {
        "format": FORMAT,
        "layout": asdict(layout),
        "calendar": list(CALENDAR),
        "window_features": list(WINDOW_FEATURES),
        "quantiles": list(QUANTILES),
        "floor": FLOOR,
        "scalers": scalers,
        "stores": stores,
    }


def read_encoding(doc: dict[str, Any]) -> Layout:
    """The `Layout` of an encoding document, refusing other formats or calendars."""
    if doc.get("format") != FORMAT:
        raise ValueError(f"not a {FORMAT} document (format {doc.get('format')!r})")
    if tuple(doc["calendar"]) != CALENDAR or tuple(doc["window_features"]) != WINDOW_FEATURES:
        raise ValueError("the document's calendar encoding differs from this version's")
    return Layout(**doc["layout"])
