"""Baseline forecasters of the demand backtest, each returning scenario paths ``(n, H)``.

Every baseline sees only the weeks up to its origin ``t`` (index of the last observed week).

- ``seasonal_naive``: week ``t+h`` repeats week ``t+h-52``; paths multiply it by bootstrapped
  residual vectors ``(log s[u+h] - log s[u+h-52])_{h=1..H}`` of past origins ``u`` of the same
  store (``u + H <= t``), so a path keeps the correlation between its weeks.
- ``level_adjusted``: the same, scaled by the ratio of the last 8 weeks to the same 8 weeks a
  year earlier; residual vectors are those of the same rule at past origins.
- ``ets``: statsforecast's AutoETS (Hyndman et al. 2008) on the log lag-52 ratio series
  ``log s[i] - log s[i-52]`` (a seasonal ETS needs two seasons; the data has ~1.7 before the
  backtest), non-seasonal, model chosen by AICc; per-week Gaussian paths from its 95% interval
  (statsforecast gives per-week intervals, not paths), back-transformed by the week a year
  earlier.
"""

from __future__ import annotations

import numpy as np

LAG = 52
LEVEL_WEEKS = 8


def _bootstrap(
    base: np.ndarray, residuals: np.ndarray, n: int, rng: np.random.Generator
) -> np.ndarray:
    pick = rng.integers(len(residuals), size=n)
    return base[None] * np.exp(residuals[pick])  # (n, H)


def seasonal_naive(
    sales: np.ndarray, t: int, horizon: int, n: int, rng: np.random.Generator
) -> np.ndarray:
    """Seasonal naive (lag 52) with bootstrapped residual paths."""
    log = np.log(np.maximum(sales[: t + 1], 1.0))
    h = np.arange(1, horizon + 1)
    us = np.arange(LAG - 1, t - horizon + 1)
    res = np.stack([log[u + h] - log[u + h - LAG] for u in us])  # (U, H)
    return _bootstrap(sales[t + h - LAG], res, n, rng)


def _factor(log_sales: np.ndarray, u: int) -> float:
    recent = np.exp(log_sales[u - LEVEL_WEEKS + 1 : u + 1]).mean()
    year_ago = np.exp(log_sales[u - LEVEL_WEEKS + 1 - LAG : u + 1 - LAG]).mean()
    return float(np.log(recent / year_ago))


def level_adjusted(
    sales: np.ndarray, t: int, horizon: int, n: int, rng: np.random.Generator
) -> np.ndarray:
    """Level-adjusted seasonal naive with bootstrapped residual paths."""
    log = np.log(np.maximum(sales[: t + 1], 1.0))
    h = np.arange(1, horizon + 1)
    us = np.arange(LAG + LEVEL_WEEKS - 1, t - horizon + 1)
    res = np.stack([log[u + h] - log[u + h - LAG] - _factor(log, u) for u in us])  # (U, H)
    return _bootstrap(sales[t + h - LAG] * np.exp(_factor(log, t)), res, n, rng)


def ets(sales: np.ndarray, t: int, horizon: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """AutoETS on the log lag-52 ratio; independent Gaussian weeks from its intervals."""
    from statsforecast.models import AutoETS

    log = np.log(np.maximum(sales[: t + 1], 1.0))
    ratio = log[LAG:] - log[:-LAG]
    fc = AutoETS(season_length=1, model="ZZN").forecast(y=ratio, h=horizon, level=[95])
    mean, sd = fc["mean"], np.maximum((fc["hi-95"] - fc["mean"]) / 1.959964, 1e-6)
    h = np.arange(1, horizon + 1)
    z = rng.standard_normal((n, horizon))
    return np.exp(log[t + h - LAG][None] + mean[None] + sd[None] * z)


BASELINES = {
    "seasonal naive": seasonal_naive,
    "level-adjusted s. naive": level_adjusted,
    "AutoETS (log lag-52 ratio)": ets,
}
