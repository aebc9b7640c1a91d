"""The shoppers evaluation: scores separate real from broken tables, rules catch violations."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from gan.shoppers.data import COLUMNS, load_split
from gan.shoppers.evaluate import constraint_violations, efficacy, evaluate_tables
from gan.shoppers.report import association_difference, write_report
from tests.conftest import shared_data_dir


@pytest.fixture(scope="module")
def split() -> tuple[pd.DataFrame, pd.DataFrame]:
    return load_split(shared_data_dir(), seed=0)


@pytest.fixture(scope="module")
def halves(split) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two disjoint halves of the real train split: one plays "synthetic", one "real"."""
    train, _ = split
    return train.iloc[::2].reset_index(drop=True), train.iloc[1::2].reset_index(drop=True)


@pytest.fixture(scope="module")
def real_result(split, halves) -> dict:
    return evaluate_tables(halves[0], halves[1], split[1], seed=0, quick=True)


@pytest.fixture(scope="module")
def shuffled_result(split, halves) -> dict:
    # Every column permuted on its own: marginals intact, every dependence destroyed.
    rng = np.random.default_rng(1)
    table = halves[0].copy()
    for c in table.columns:
        table[c] = table[c].to_numpy()[rng.permutation(len(table))]
    return evaluate_tables(table, halves[1], split[1], seed=0, quick=True)


def test_real_rows_as_synthetic_score_like_the_real_baseline(real_result):
    eff, fid = real_result["efficacy"], real_result["fidelity"]
    assert eff["error"] is None
    assert set(eff["synthetic"]["per_model"]) == {
        "logistic_regression", "decision_tree", "random_forest", "mlp"
    }  # fmt: skip
    assert eff["real"]["f1_mean"] > 0.4  # buyers are predictable from real sessions
    assert 0.8 < eff["ratio"]["f1_mean"] < 1.25
    assert eff["synthetic"]["auc_mean"] > 0.8
    assert fid["quality"]["score"] > 0.9
    assert fid["detection"] > 0.8
    assert fid["c2st"]["accuracy"] < 0.6
    assert fid["association_difference"]["mean"] < 0.06
    assert real_result["constraints"]["any"] < 0.01  # only categories rare enough to miss a half


def test_shuffled_columns_score_measurably_worse(real_result, shuffled_result):
    good, bad = real_result, shuffled_result
    assert bad["efficacy"]["synthetic"]["f1_mean"] < 0.5 * good["efficacy"]["synthetic"]["f1_mean"]
    assert (
        bad["efficacy"]["synthetic"]["auc_mean"] < good["efficacy"]["synthetic"]["auc_mean"] - 0.1
    )
    gq, bq = good["fidelity"]["quality"], bad["fidelity"]["quality"]
    assert bq["column_shapes"] > 0.9  # marginals survive shuffling ...
    assert bq["column_pair_trends"] < gq["column_pair_trends"] - 0.1  # ... pairs do not
    assert bad["fidelity"]["c2st"]["accuracy"] > 0.7
    bad_assoc = bad["fidelity"]["association_difference"]["mean"]
    assert bad_assoc > 2 * good["fidelity"]["association_difference"]["mean"]


def test_single_revenue_class_scores_zero_with_an_error(split, halves):
    train, test = halves[1].iloc[:1500], split[1]
    synthetic = halves[0].iloc[:500].assign(Revenue=False)
    out = efficacy(synthetic, train, test, seed=0, quick=True)
    assert "only Revenue=False" in out["error"]
    assert out["synthetic"]["f1_mean"] == 0.0 and out["synthetic"]["auc_mean"] == 0.5
    assert out["real"]["f1_mean"] > 0.3
    assert out["ratio"]["f1_mean"] == 0.0


def test_efficacy_is_deterministic(split, halves):
    train, test = halves[1].iloc[:800], split[1].iloc[:600]
    a = efficacy(halves[0].iloc[:800], train, test, seed=3, quick=True)
    b = efficacy(halves[0].iloc[:800], train, test, seed=3, quick=True)
    assert a == b


def test_constraint_checker_catches_each_violation(split):
    train = split[0]
    table = train.iloc[:100].astype(
        {"Administrative": float, "ProductRelated": float, "Weekend": object}
    )
    clean = constraint_violations(table, train)
    assert clean["any"] == 0.0 and set(clean["per_rule"].values()) == {0.0}
    table.loc[0, "Administrative"] = -1
    table.loc[1, "ProductRelated"] = 2.5
    table.loc[2, "BounceRates"] = 1.2
    table.loc[3, "Month"] = "Smarch"
    table.loc[4, "Weekend"] = "maybe"
    table.loc[5, "PageValues"] = -3.0
    table.loc[6, "Informational_Duration"] = np.nan
    table.loc[6, "SpecialDay"] = -0.1  # two rules broken by one row
    i = int(np.flatnonzero(table["Informational"].to_numpy() == 0)[-1])
    table.loc[i, "Informational_Duration"] = 12.0  # time on a page type never visited
    out = constraint_violations(table, train)
    broken = {k: v for k, v in out["per_rule"].items() if v}
    assert broken == {
        "Administrative: non-negative integer": 0.01,
        "ProductRelated: non-negative integer": 0.01,
        "BounceRates: in [0, 1]": 0.01,
        "Month: in vocabulary": 0.01,
        "Weekend: in vocabulary": 0.01,
        "PageValues: >= 0": 0.01,
        "Informational_Duration: >= 0": 0.01,
        "SpecialDay: in [0, 1]": 0.01,
        # Cross-column rules derived from the real rows (row 6's NaN duration breaks one too).
        "Informational_Duration is 0 when Informational is 0": 0.02,
        "SpecialDay is 0 unless Month is one of ['Feb', 'May']": 0.01,
    }
    assert out["any"] == pytest.approx(0.08)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.drop(columns=["Month", "ExitRates"]), r"missing .*\['ExitRates', 'Month'\]"),
        (lambda t: t.assign(BounceRates=np.nan), r"NaN.*BounceRates"),
        (lambda t: t.assign(PageValues="a lot"), r"PageValues must be numeric"),
        (lambda t: t.iloc[:5], r"at least 10"),
    ],
)  # fmt: skip
def test_bad_tables_raise_actionable_errors(split, change, message):
    train, test = split
    with pytest.raises(ValueError, match=message):
        evaluate_tables(change(train.iloc[:200]), train, test, quick=True)


def test_association_difference_is_zero_for_identical_tables(halves):
    diff = association_difference(halves[0], halves[0].copy())
    assert diff.shape == (len(COLUMNS), len(COLUMNS))
    assert np.abs(diff).max() == 0.0


def test_report_files_are_written(tmp_path, real_result, halves):
    files = write_report(real_result, {"half A": halves[0]}, halves[1], tmp_path)
    assert [f.name for f in files] == [
        "report.json", "report.md", "marginals.png", "correlation_difference.png"
    ]  # fmt: skip
    assert json.loads((tmp_path / "report.json").read_text()) == real_result
    md = (tmp_path / "report.md").read_text()
    assert "buyer F1" in md and "SDMetrics quality" in md and "random_forest" in md
    for png in files[2:]:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_evaluate_samples_a_checkpoint_and_writes_the_report(tmp_path):
    from gan.shoppers import TrainConfig, train
    from gan.shoppers.evaluate import evaluate

    ckpt = train(TrainConfig(), tmp_path / "run", dry_run=True, progress=False)
    out = tmp_path / "eval"
    report = evaluate(ckpt, out, data_dir=shared_data_dir(), n_samples=400, quick=True)
    assert report["settings"]["n_synthetic"] == 400 and report["checkpoint"] == str(ckpt)
    assert json.loads((out / "report.json").read_text())["efficacy"] == report["efficacy"]
    for name in ("report.md", "marginals.png", "correlation_difference.png"):
        assert (out / name).stat().st_size > 0
    with pytest.raises(ValueError, match="n_samples must be >= 10"):
        evaluate(ckpt, out, data_dir=shared_data_dir(), n_samples=3)


def test_privacy_flags_copied_rows_and_passes_held_out_rows(split, halves):
    from gan.shoppers.evaluate import privacy

    train, test = split
    # Random halves: neighbouring rows of the file are near-duplicates (the interleaved
    # `halves` fixture puts 8.7% of one half closer than the test rows' 5% quantile).
    order = np.random.default_rng(0).permutation(len(train))
    known, fresh_rows = train.iloc[order[::2]], train.iloc[order[1::2]]
    fresh = privacy(fresh_rows.iloc[:1500], known, test)  # real rows never trained on
    assert fresh["passed"] and abs(fresh["closer_than_test_5pct"] - 0.05) < 0.02
    copied = privacy(known.iloc[:1500], known, test)  # the training rows themselves
    assert not copied["passed"] and copied["synthetic"]["exact_copies"] == 1.0
    assert copied["synthetic"]["dcr_median"] == 0.0 < fresh["synthetic"]["dcr_median"]
    # Half copies, half fresh: still caught.
    mixed = privacy(pd.concat([known.iloc[:300], fresh_rows.iloc[:1200]]), known, test)
    assert not mixed["passed"]


def test_report_has_the_privacy_section(real_result):
    from gan.shoppers.report import to_markdown

    p = real_result["privacy"]
    assert set(p) == {"synthetic", "test", "closer_than_test_5pct", "allowed", "passed"}
    assert "## Privacy: distance to the closest train record (DCR)" in to_markdown(real_result)
