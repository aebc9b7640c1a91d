"""Tests of the tabular transformer (ecomgan.tabular) fitted on the real shoppers data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ecomgan.tabular import ColumnSpec, TabularTransformer
from gan.shoppers.data import COLUMNS, load_split
from gan.shoppers.transformer import _fit_column, fit_transformer
from tests.conftest import shared_data_dir


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    # 2,500 random train rows (the file is sorted by month): the mixtures fit in seconds.
    return load_split(shared_data_dir())[0].sample(2500, random_state=0).reset_index(drop=True)


@pytest.fixture(scope="module")
def tf(table) -> TabularTransformer:
    return fit_transformer(table, seed=0)


def as_columns(df: pd.DataFrame) -> dict[str, np.ndarray]:
    return {c: df[c].to_numpy() for c in df.columns}


def test_layout(tf):
    assert tf.discrete_names == tuple(n for n, k in COLUMNS.items() if k in ("categorical",
                                      "boolean"))  # fmt: skip
    assert [c.name for c in tf.columns] == list(COLUMNS)
    spans = tf.output_info()
    assert spans[0][0] == 0 and spans[-1][1] == tf.output_dim
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))
    assert tf.cond_dim == sum(c.width for c in tf.columns if c.discrete)
    modes = {c.name: len(c.means) for c in tf.columns if not c.discrete}
    assert all(1 <= k <= 20 for k in modes.values()), modes


def test_round_trip_on_real_rows(tf, table):
    x = tf.encode(as_columns(table))
    assert x.dtype == np.float32 and x.shape == (len(table), tf.output_dim)
    assert np.abs(x).max() <= 1.0
    np.testing.assert_array_equal(x, tf.encode(as_columns(table)))  # deterministic
    rows = tf.decode(x)
    for name, kind in COLUMNS.items():
        real, back = table[name].to_numpy(), rows[name]
        if kind in ("categorical", "boolean"):
            np.testing.assert_array_equal(back, real, err_msg=name)
            assert back.dtype == real.dtype or back.dtype.kind == "U", name
        elif kind == "count":
            assert back.dtype == np.int64
            # Exact except far in a tail, where alpha is clipped at 4 sigma.
            assert np.mean(back == real) > 0.999 and np.abs(back - real).max() <= 2, name
        else:
            err = np.abs(back - real)
            assert np.mean(err <= 1e-6 * np.maximum(real, 1.0)) > 0.99, name
            assert np.all(err <= 0.01 * np.maximum(real, 1.0)), name
    zeros = table["PageValues"].to_numpy() == 0  # atoms come back exactly
    assert np.all(rows["PageValues"][zeros] == 0)


def test_json_round_trip_and_format_check(tf, table):
    doc = json.loads(json.dumps(tf.to_dict()))
    assert doc["format"] == "ecomgan.tabular/1"
    month = next(c for c in doc["columns"] if c["name"] == "Month")
    assert set(month) == {"name", "kind", "categories", "frequencies"}
    assert abs(sum(month["frequencies"]) - 1) < 1e-9
    pages = next(c for c in doc["columns"] if c["name"] == "PageValues")
    assert set(pages) == {"name", "kind", "transform", "modes", "min", "max"}
    back = TabularTransformer.from_dict(doc)
    x = tf.encode(as_columns(table))
    np.testing.assert_array_equal(back.encode(as_columns(table)), x)
    for name, values in tf.decode(x).items():
        np.testing.assert_array_equal(back.decode(x)[name], values)
    assert back.cooccurrence == tf.cooccurrence
    with pytest.raises(ValueError, match="not a ecomgan.tabular/1 document.*tabular/2"):
        TabularTransformer.from_dict({**doc, "format": "ecomgan.tabular/2"})
    with pytest.raises(ValueError, match="malformed"):
        TabularTransformer.from_dict({**doc, "columns": [{"name": "x"}]})
    bad = json.loads(json.dumps(doc))
    bad["columns"][0]["modes"]["stds"][0] = -1.0
    with pytest.raises(ValueError, match="stds must be >= 0"):
        TabularTransformer.from_dict(bad)


def test_constraints_hold_on_random_outputs(tf):
    rng = np.random.default_rng(0)
    for x in (
        rng.normal(0, 3, (10_000, tf.output_dim)),
        rng.uniform(-50, 50, (100, tf.output_dim)),
    ):
        rows = tf.decode(x.astype(np.float32))
        for name, kind in COLUMNS.items():
            v = rows[name]
            assert len(v) == len(x), name
            if kind == "count":
                assert v.dtype == np.int64 and v.min() >= 0, name
            elif kind in ("duration", "amount"):
                assert v.dtype == np.float64 and v.min() >= 0 and np.isfinite(v).all(), name
            elif kind == "rate":
                assert v.min() >= 0 and v.max() <= 1, name
            else:
                spec = tf.columns[list(COLUMNS).index(name)]
                assert set(v.tolist()) <= set(spec.categories), name
    assert tf.decode(np.full((2, tf.output_dim), np.nan))["Month"].shape == (2,)
    with pytest.raises(ValueError, match="expected an array"):
        tf.decode(np.zeros((2, 3)))


def test_category_index_accepts_typed_and_string_forms(tf, table):
    assert tf.category_index("Month", "Nov") == tf.category_index("Month", "nov")
    assert tf.columns[10].categories[tf.category_index("Month", "NOV")] == "Nov"
    assert tf.category_index("Region", 2) == tf.category_index("Region", "2")
    for v in (True, "true", "TRUE", "1"):
        assert tf.category_index("Revenue", v) == tf.category_index("Revenue", True)
    assert tf.category_index("Revenue", "false") != tf.category_index("Revenue", "true")
    with pytest.raises(ValueError, match=r"unknown value 'Jan' for Month; allowed: .*Nov"):
        tf.category_index("Month", "Jan")
    with pytest.raises(ValueError, match="unknown value True for Region"):
        tf.category_index("Region", True)
    with pytest.raises(ValueError, match="unknown column 'Colour'; conditions apply to: Month"):
        tf.category_index("Colour", "red")
    with pytest.raises(ValueError, match="PageValues is a continuous column.*categorical"):
        tf.category_index("PageValues", 0)
    with pytest.raises(ValueError, match="unknown value 'Jan' for Month"):
        tf.encode({**as_columns(table.iloc[:1]), "Month": np.array(["Jan"])})


def test_conditions(tf, table):
    nov, buyer = tf.category_index("Month", "Nov"), tf.category_index("Revenue", True)
    conds = {"Month": nov, "Revenue": buyer}
    cond = tf.cond_vector(conds, 4)
    assert cond.shape == (4, tf.cond_dim) and cond.dtype == np.float32
    assert (cond.sum(1) == 2).all()
    assert cond[0, tf.cond_offsets["Month"] + nov] == 1
    assert cond[0, tf.cond_offsets["Revenue"] + buyer] == 1
    assert not tf.cond_vector({}, 3).any()
    rows = tf.decode(np.random.default_rng(1).normal(size=(50, tf.output_dim)))
    tf.apply_conditions(rows, conds)
    assert (rows["Month"] == "Nov").all() and (rows["Revenue"] == np.True_).all()
    assert rows["Revenue"].dtype == bool
    with pytest.raises(ValueError, match=r"index in \[0, 2\)"):
        tf.cond_vector({"Revenue": 2}, 1)
    # Co-occurrence: every pair seen in the table is allowed, unseen pairs are not.
    assert tf.cooccurs(conds) and tf.cooccurs({}) and tf.cooccurs({"Month": nov})
    seen = set(zip(table["Browser"], table["TrafficType"], strict=True))
    pairs = {(b, t) for b in set(table["Browser"]) for t in set(table["TrafficType"])}
    never = sorted(pairs - seen)[0]
    ok = sorted(seen)[0]
    idx = {"Browser": tf.category_index("Browser", never[0]),
           "TrafficType": tf.category_index("TrafficType", never[1])}  # fmt: skip
    assert not tf.cooccurs(idx) and not tf.cooccurs({**idx, "Month": nov})
    assert tf.cooccurs({"Browser": tf.category_index("Browser", ok[0]),
                        "TrafficType": tf.category_index("TrafficType", ok[1])})  # fmt: skip


def test_unseen_category_is_not_cooccurring():
    spec = ColumnSpec("c", "categorical", categories=("a", "b"), frequencies=(1.0, 0.0))
    tf = TabularTransformer((spec,))
    assert tf.cooccurs({"c": 0}) and not tf.cooccurs({"c": 1})


def test_fit_is_deterministic(tf, table):
    values = table["ProductRelated_Duration"].to_numpy()
    spec = _fit_column("ProductRelated_Duration", "duration", values, seed=5)
    assert spec == tf.columns[5]  # fit_transformer seeds column i with seed + i


def test_tabular_module_imports_numpy_only():
    code = (
        "import sys, ecomgan.tabular\n"
        "bad = {'torch', 'sklearn', 'pandas'} & set(sys.modules)\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[3])
