"""Cross-column rules of the tabular transformer: derived from data, enforced on decode."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ecomgan.families import get_family
from ecomgan.tabular import ColumnSpec, Rule, TabularTransformer, derive_rules

SPECS = (
    ColumnSpec("pages", "count", means=(0.0,), stds=(1.0,), weights=(1.0,), max=50.0),
    ColumnSpec("time", "duration", means=(0.0,), stds=(1.0,), weights=(1.0,), max=500.0),
    ColumnSpec("noise", "duration", means=(0.0,), stds=(1.0,), weights=(1.0,), max=500.0),
    ColumnSpec("special", "rate", means=(0.0,), stds=(1.0,), weights=(1.0,), max=1.0),
    ColumnSpec("month", "categorical", categories=("Feb", "May", "Nov"), frequencies=(0.3,) * 3),
)


def table(n: int = 2000, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    pages = rng.poisson(1.0, n)
    month = rng.choice(np.array(["Feb", "May", "Nov"]), n)
    return {
        "pages": pages,
        "time": np.where(pages > 0, rng.exponential(30.0, n), 0.0),
        "noise": rng.exponential(30.0, n),  # non-zero everywhere: no rule about it
        "special": np.where(month == "Nov", 0.0, rng.random(n)),
        "month": month,
    }


def test_derives_exactly_the_rules_that_hold():
    rules = derive_rules(table(), SPECS)
    assert set(rules) == {
        Rule("zero_if_zero", "time", "pages"),
        Rule("zero_unless", "special", "month", ("Feb", "May")),
    }


def test_a_rule_broken_by_one_row_is_not_derived():
    t = table()
    t["time"][np.flatnonzero(t["pages"] == 0)[0]] = 5.0
    assert Rule("zero_if_zero", "time", "pages") not in derive_rules(t, SPECS)


def test_decode_and_conditions_enforce_the_rules():
    rules = tuple(derive_rules(table(), SPECS))
    tf = TabularTransformer(SPECS, rules=rules)
    x = np.random.default_rng(1).normal(size=(5000, tf.output_dim))
    rows = tf.decode(x)
    assert sum(tf.rule_violations(rows).values()) == 0
    assert (rows["pages"] == 0).any() and (rows["special"] > 0).any()
    tf.apply_conditions(rows, {"month": 2})  # Nov: special must become 0 everywhere
    assert (rows["special"] == 0).all()
    again = TabularTransformer.from_dict(json.loads(json.dumps(tf.to_dict())))
    assert again.rules == tf.rules


def test_without_rules_the_document_is_unchanged():
    tf = TabularTransformer(SPECS)
    assert "rules" not in tf.to_dict()
    with pytest.raises(ValueError, match="unknown kind or column"):
        TabularTransformer(SPECS, rules=(Rule("zero_if_zero", "time", "nope"),))


def test_shipped_shoppers_rules_hold_on_every_real_session(data_dir):
    from gan.shoppers.data import load_shoppers

    doc = json.loads((get_family("shoppers").shipped_dir / "transformer.json").read_text())
    tf = TabularTransformer.from_dict(doc)
    described = {r.describe() for r in tf.rules}
    for page in ("Administrative", "Informational", "ProductRelated"):
        assert f"{page}_Duration is 0 when {page} is 0" in described
    real = load_shoppers(data_dir, download=False)
    assert tf.rule_violations({c: real[c].to_numpy() for c in real.columns}) == {
        d: 0 for d in described
    }
