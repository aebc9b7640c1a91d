"""The demand loader, calendar and rolling windows (no leakage across the backtest boundary)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from ecomgan import demand
from gan.demand.data import (
    BACKTEST_WEEKS,
    corrupt,
    generated_windows,
    make_windows,
    synthetic_stores,
    write_csv,
)
from tests.conftest import shared_data_dir

LAYOUT = demand.Layout()


def test_dates_are_day_first():
    assert demand.parse_day_first("05/02/10") == dt.date(2010, 2, 5)
    assert demand.parse_day_first("12/10/2012") == dt.date(2012, 10, 12)


def _csv(tmp_path, rows):
    path = tmp_path / "sales.csv"
    path.write_text("Store,Date,Weekly_Sales,Holiday_Flag\n" + "\n".join(rows) + "\n")
    return path


def test_loader_sorts_and_reads_day_first(tmp_path):
    path = _csv(tmp_path, ["1,19/02/10,3.0,0", "1,05/02/10,1.0,0", "1,12/02/10,2.0,1"])
    got = demand.read_sales(path)[1]
    assert list(got["dates"].astype(str)) == ["2010-02-05", "2010-02-12", "2010-02-19"]
    assert got["sales"].tolist() == [1.0, 2.0, 3.0] and got["holiday"].tolist() == [0, 1, 0]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (["1,05/02/10,1,0", "1,05/02/10,2,0"], "repeated"),
        (["1,05/02/10,1,0", "1,19/02/10,2,0"], "1 missing week"),
        (["1,05/02/10,1,0", "1,10/02/10,2,0"], "exactly 7 days"),
        (["1,05/02/10,-1,0", "1,12/02/10,2,0"], ">= 0"),
        (["1,05/02/10,nan,0"], "finite"),
        (["1,2010-02-05,1,0"], "sales.csv:2"),
    ],
)
def test_loader_refuses_broken_series(tmp_path, rows, message):
    with pytest.raises(ValueError, match=message):
        demand.read_sales(_csv(tmp_path, rows))


def test_history_out_of_order_is_refused():
    dates = np.array(["2010-02-12", "2010-02-05"], dtype="datetime64[D]")
    with pytest.raises(ValueError, match="out of order"):
        demand.check_history(dates, np.ones(2))


def test_calendar_marks_the_week_before_christmas_and_moving_holidays():
    dates = [
        dt.date(2010, 12, 17),
        dt.date(2010, 12, 24),
        dt.date(2010, 12, 31),
        dt.date(2011, 11, 25),
        dt.date(2012, 11, 23),
    ]
    cal = dict(zip(demand.CALENDAR, demand.week_calendar(dates).T, strict=True))
    assert cal["pre_christmas_2"].tolist() == [1, 0, 0, 0, 0]
    assert cal["pre_christmas"].tolist() == [0, 1, 0, 0, 0]
    assert cal["christmas"].tolist() == [0, 0, 1, 0, 0]
    assert cal["thanksgiving"].tolist() == [0, 0, 0, 1, 1]  # 24 Nov 2011, 22 Nov 2012
    assert cal["holiday"].tolist() == [0, 0, 1, 1, 1]


def test_derived_holidays_equal_the_files_flags():
    path = shared_data_dir() / "walmart_weekly_sales.csv"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    for series in demand.read_sales(path).values():
        derived = [demand.derived_holiday(d.astype(dt.date)) for d in series["dates"]]
        assert derived == series["holiday"].tolist()


def test_csv_round_trip(tmp_path):
    stores = synthetic_stores(2, 60)
    write_csv(stores, tmp_path / "w.csv")
    back = demand.read_sales(tmp_path / "w.csv")
    np.testing.assert_allclose(back[2]["sales"], stores[2]["sales"], atol=0.01)
    assert (back[1]["dates"] == stores[1]["dates"]).all()


def test_windows_never_see_weeks_after_the_boundary():
    stores = synthetic_stores(3, 117)
    last = 116 - BACKTEST_WEEKS
    w = make_windows(stores, LAYOUT, last_week=last)
    assert w.origin.max() + LAYOUT.horizon == last and w.origin.min() == LAYOUT.min_history - 1
    changed = {s: {**v, "sales": v["sales"].copy()} for s, v in stores.items()}
    for v in changed.values():
        v["sales"][last + 1 :] *= 3.0  # the backtest weeks change; no window may notice
    w2 = make_windows(changed, LAYOUT, last_week=last)
    for a, b in ((w.cond, w2.cond), (w.y, w2.y), (w.real, w2.real)):
        np.testing.assert_array_equal(a, b)


def test_condition_is_context_lag_and_calendar():
    s = synthetic_stores(1, 80)[1]
    w = make_windows({1: s}, LAYOUT, origin_list={1: [70]})
    level = s["sales"][63:71].mean()
    c, lay = w.cond[0], LAYOUT
    np.testing.assert_allclose(c[: lay.context], np.log(s["sales"][59:71] / level), rtol=1e-5)
    lag = c[lay.context : lay.context + lay.lag_pad + lay.horizon]
    np.testing.assert_allclose(lag, np.log(s["sales"][11:27] / level), rtol=1e-5)
    np.testing.assert_allclose(w.y[0], np.log(s["sales"][71:79] / level), rtol=1e-5)


def test_generated_windows_replace_only_the_sales_column():
    stores = synthetic_stores(2, 90)
    w = make_windows(stores, LAYOUT)
    same = generated_windows(w, w.y, LAYOUT)  # the real future -> the real window
    np.testing.assert_allclose(same, w.real, atol=1e-5)
    bad = corrupt(w.real, LAYOUT, np.random.default_rng(0))
    assert bad.shape == w.real.shape and (np.abs(bad - w.real).max(1) > 0.01).all()
