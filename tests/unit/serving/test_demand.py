"""The demand service's numpy side: request checks, paths, stock-out maths and the fan chart."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from ecomgan import demand
from ecomgan.demand_chart import fan_chart
from serving.demand_requests import (
    EXAMPLE_HISTORY,
    EXAMPLE_STOCKOUT,
    MAX_PATHS,
    forecast_request,
    generator_inputs,
    to_paths,
)
from serving.errors import InvalidInput

LAYOUT = demand.Layout()
D, S = EXAMPLE_HISTORY["dates"], EXAMPLE_HISTORY["sales"]


def test_stockout_equals_the_fraction_of_paths():
    rng = np.random.default_rng(0)
    paths = rng.gamma(5.0, 100.0, size=(2000, 4))
    receipts = np.array([0.0, 300.0, 0.0, 500.0])
    got = demand.stockout(paths, 1200.0, receipts, 0.9)
    for t in range(4):
        cum = paths[:, : t + 1].sum(1)
        supply = 1200.0 + receipts[: t + 1].sum()
        assert got["p_stockout"][t] == np.mean(cum > supply)
        assert got["expected_shortfall"][t] == pytest.approx(np.mean(np.maximum(cum - supply, 0)))
        need = max(np.quantile(cum, 0.9) - receipts[: t + 1].sum(), 0.0)
        assert got["stock_needed"][t] == pytest.approx(need)
    # holding stock_needed meets the service level (up to the sample quantile's step)
    enough = demand.stockout(paths, got["stock_needed"][3], receipts, 0.9)
    assert enough["p_stockout"][3] <= 0.1 + 1e-9


def test_example_request_builds_the_condition():
    req = forecast_request(LAYOUT, D, S, 4, 100, None, EXAMPLE_STOCKOUT["receipts"])
    assert req["cond"].shape == (LAYOUT.cond_dim,) and req["horizon"] == 4
    assert str(req["future"][0]) == "2012-03-30"
    assert req["level"] == pytest.approx(np.mean(S[-8:]))
    given = forecast_request(LAYOUT, D, S, 2, 10, [True, False])
    assert not np.array_equal(given["cond"], req["cond"])  # the holiday flag is used


def test_paths_are_seeded_and_scaled():
    a = generator_inputs(np.ones(5, np.float32), 3, 9, 4)
    b = generator_inputs(np.ones(5, np.float32), 3, 9, 4)
    np.testing.assert_array_equal(a["z"], b["z"])
    assert a["cond"].shape == (3, 5)
    y = np.log(np.array([[1.0, 2.0, 4.0]], np.float32))
    np.testing.assert_allclose(to_paths(y, 10.0, 2), [[10.0, 20.0]])


def _shifted(days: int) -> list[str]:
    out = list(D)
    out[-1] = str(np.datetime64(out[-1]) + days)
    return out


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dates": D[-30:], "sales": S[-30:]}, "at least 60"),
        ({"dates": D[:30] + D[31:], "sales": S[:30] + S[31:]}, "missing week"),
        ({"dates": D[:-1] + [D[-2]], "sales": S}, "repeated"),
        ({"dates": D[:-2] + [D[-1], D[-2]], "sales": S}, "out of order"),
        ({"dates": _shifted(3), "sales": S}, "7 days apart"),
        ({"dates": D, "sales": S[:-1] + [-5.0]}, ">= 0"),
        ({"dates": D, "sales": S[:-1] + [float("nan")]}, "finite"),
        ({"dates": D, "sales": S[:-1]}, "one per week"),
        ({"dates": D[:-1] + ["30/03/12"], "sales": S}, "YYYY-MM-DD"),
        ({"horizon": 0}, "horizon must be 1..8"),
        ({"horizon": 9}, "horizon must be 1..8"),
        ({"paths": MAX_PATHS + 1}, "paths must be 1..10000"),
        ({"holidays": [True]}, "holidays needs one value per forecast week: 4"),
        ({"receipts": [1.0, 2.0]}, "receipts needs one value per forecast week: 4"),
        ({"receipts": [1.0, 2.0, -1.0, 0.0]}, "receipts must be finite"),
        ({"sales": S[:-8] + [0.0] * 8}, "sum to zero"),
    ],
)
def test_bad_requests_say_what_is_allowed(kwargs, message):
    args = {
        "dates": D,
        "sales": S,
        "horizon": 4,
        "paths": 100,
        "holidays": None,
        "receipts": None,
        **kwargs,
    }
    with pytest.raises(InvalidInput, match=message):
        forecast_request(LAYOUT, **args)


def test_fan_chart_is_a_png_with_a_stock_panel():
    paths = np.random.default_rng(1).gamma(5.0, 1e5, size=(200, 4))
    future = demand.future_dates(np.datetime64(D[-1]), 4)
    dates = np.array(D[-26:], dtype="datetime64[D]")
    one = Image.open(io.BytesIO(fan_chart(dates, np.array(S[-26:]), future, paths)))
    two = fan_chart(dates, np.array(S[-26:]), future, paths, np.full(4, 2e6))
    assert one.format == "PNG" and Image.open(io.BytesIO(two)).height == 2 * one.height
