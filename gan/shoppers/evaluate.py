"""`ecomgan evaluate --family shoppers`: how useful and how faithful is a synthetic table?

Every score compares a synthetic table with the seeded split of ``gan.shoppers.data``:

- machine-learning efficacy, "train on synthetic, test on real" (TSTR, Esteban et al. 2017;
  the protocol of Xu et al. 2019): four scikit-learn classifiers predict ``Revenue`` after one
  fixed feature map; buyer-class F1 and ROC-AUC on the real test split, beside the same
  models trained on the real train split, and the ratio synthetic / real;
- fidelity against the real train split: the SDMetrics quality report (column shapes,
  column pair trends), SDMetrics' logistic detection (1 = indistinguishable), a random-forest
  classifier two-sample test (C2ST, Lopez-Paz & Oquab 2017; 0.5 = indistinguishable) and the
  mean absolute difference of pairwise associations;
- constraint checks: share of rows breaking each rule of issue 5 item 4;
- privacy: distance to the closest record (DCR; Park et al. 2018, as used by Zhao et al. 2021)
  of each synthetic row to the real train split, against the same distance for the held-out
  real test rows, and the share of exact copies of training rows.

``gan.shoppers.report`` writes the result as JSON, Markdown and PNGs.
"""

from __future__ import annotations

import math
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecomgan.tabular import ColumnSpec, derive_rules
from gan.shoppers.data import COLUMNS, TARGET, load_split

CATEGORICAL = [c for c, k in COLUMNS.items() if k in ("categorical", "boolean") and c != TARGET]
NUMERIC = [c for c, k in COLUMNS.items() if k not in ("categorical", "boolean")]
MODELS = ("logistic_regression", "decision_tree", "random_forest", "mlp")
QUICK_ROWS = 2000  # rows per table in quick mode (CI)
_TRUE, _FALSE = {"true", "1", "1.0"}, {"false", "0", "0.0"}


def _check_table(df: pd.DataFrame, name: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"{name}: expected a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{name}: missing columns {missing}; a shoppers table has {list(COLUMNS)}")
    if len(df) < 10:
        raise ValueError(f"{name}: {len(df)} rows; at least 10 are needed to evaluate")
    nans = {c: int(n) for c, n in df[list(COLUMNS)].isna().sum().items() if n}
    if nans:
        raise ValueError(f"{name}: empty values (NaN) per column {nans}; drop or fill those rows")
    for c in NUMERIC:
        if not pd.api.types.is_numeric_dtype(df[c]):
            raise ValueError(f"{name}: column {c} must be numeric, got dtype {df[c].dtype}")


def as_bool(values: pd.Series, name: str) -> np.ndarray:
    """``values`` as a bool array; accepts bools, 0/1 and "true"/"false" in any case.

    Raises:
        ValueError: If a value is none of these.
    """
    if values.dtype == bool:
        return values.to_numpy()
    text = values.astype(str).str.strip().str.lower()
    bad = sorted(set(text) - _TRUE - _FALSE)
    if bad:
        raise ValueError(f"{name}: values {bad[:5]} are not booleans; use True/False")
    return text.isin(_TRUE).to_numpy()


def _subsample(df: pd.DataFrame, n: int | None, seed: int) -> pd.DataFrame:
    if n is None or len(df) <= n:
        return df
    return df.sample(n=n, random_state=seed).reset_index(drop=True)


def feature_map(reference: pd.DataFrame, columns: list[str]) -> Any:
    """The fixed preprocessing: one-hot categoricals, standardised numerics, fit on ``reference``.

    Fitting it once on the real train split (never on the table being scored) gives every
    training table the same features; values outside the real vocabulary encode as all zeros.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    cats = [c for c in columns if c not in NUMERIC]
    nums = [c for c in columns if c in NUMERIC]
    ct = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), cats),
         ("num", StandardScaler(), nums)]
    )  # fmt: skip
    return ct.fit(_typed(reference, columns))


def _typed(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    # Categories compare as text, so 2, "2" and an int8 2 are the same category.
    out = df[columns].copy()
    for c in columns:
        out[c] = out[c].astype(str) if c not in NUMERIC else out[c].astype(np.float64)
    return out


def _models(seed: int, quick: bool) -> dict[str, Any]:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.tree import DecisionTreeClassifier

    # As in Xu et al. 2019's benchmark: decision tree of depth 20, MLP of 50 units, 50 epochs.
    return {
        "logistic_regression": LogisticRegression(max_iter=200 if quick else 1000),
        "decision_tree": DecisionTreeClassifier(max_depth=20, random_state=seed),
        "random_forest": RandomForestClassifier(
            n_estimators=20 if quick else 100, n_jobs=1, random_state=seed
        ),
        "mlp": MLPClassifier((50,), max_iter=10 if quick else 50, random_state=seed),
    }


def _fit_score(train: pd.DataFrame, test: pd.DataFrame, fmap: Any, seed: int,
               quick: bool) -> dict[str, dict[str, float]]:  # fmt: skip
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import f1_score, roc_auc_score

    features = CATEGORICAL + NUMERIC
    x, y = fmap.transform(_typed(train, features)), as_bool(train[TARGET], "training table")
    xt, yt = fmap.transform(_typed(test, features)), as_bool(test[TARGET], "test table")
    out = {}
    for name, model in _models(seed, quick).items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(x, y)
        p = model.predict_proba(xt)[:, list(model.classes_).index(True)]
        f1 = f1_score(yt, p >= 0.5, zero_division=0.0)
        out[name] = {"f1": float(f1), "auc": float(roc_auc_score(yt, p))}
    return out


def _summary(scores: dict[str, dict[str, float]]) -> dict[str, Any]:
    return {
        "per_model": scores,
        "f1_mean": float(np.mean([s["f1"] for s in scores.values()])),
        "auc_mean": float(np.mean([s["auc"] for s in scores.values()])),
    }


def efficacy(synthetic: pd.DataFrame, train: pd.DataFrame, test: pd.DataFrame, *, seed: int = 0,
             quick: bool = False, baseline: dict | None = None) -> dict[str, Any]:  # fmt: skip
    """Buyer-class F1 and ROC-AUC on ``test`` of models trained on ``synthetic`` and on ``train``.

    A synthetic table holding one ``Revenue`` class cannot train a classifier: it scores
    F1 0 and AUC 0.5 per model (an uninformative predictor) and ``error`` says why.
    ``baseline``: the ``"real"`` entry of an earlier call with the same ``train``, ``test``,
    ``seed`` and ``quick``, to skip refitting on the real rows (the scores are deterministic).

    Returns:
        ``{"real": ..., "synthetic": ..., "ratio": {"f1_mean", "auc_mean"}, "error"}`` where
        ``real``/``synthetic`` hold ``per_model`` {name: {f1, auc}}, ``f1_mean``, ``auc_mean``.
    """
    fmap = feature_map(train, CATEGORICAL + NUMERIC)
    real = baseline or _summary(_fit_score(train, test, fmap, seed, quick))
    classes = np.unique(as_bool(synthetic[TARGET], "synthetic table"))
    error = None
    if len(classes) < 2:
        error = (f"the synthetic table has only Revenue={bool(classes[0])} rows, so no "
                 "classifier can be trained on it; scored as F1 0, AUC 0.5")  # fmt: skip
        synth = _summary({m: {"f1": 0.0, "auc": 0.5} for m in MODELS})
    else:
        synth = _summary(_fit_score(synthetic, test, fmap, seed, quick))
    ratio = {k: synth[k] / real[k] if real[k] > 0 else None for k in ("f1_mean", "auc_mean")}
    return {"real": real, "synthetic": synth, "ratio": ratio, "error": error}


def sdmetrics_metadata() -> dict[str, Any]:
    """SDMetrics single-table metadata built from ``gan.shoppers.data.COLUMNS``."""
    kinds = {"categorical": "categorical", "boolean": "boolean"}
    return {"columns": {c: {"sdtype": kinds.get(k, "numerical")} for c, k in COLUMNS.items()}}


def c2st_forest(real: pd.DataFrame, synthetic: pd.DataFrame, fmap: Any, *, seed: int = 0,
                quick: bool = False) -> dict[str, float]:  # fmt: skip
    """Held-out accuracy of a random forest told real rows from synthetic ones.

    Equal-sized sets, half of the pooled rows train the forest, the other half score it
    (Lopez-Paz & Oquab 2017); 0.5 means indistinguishable, 1 fully separable. A forest sees
    interactions that logistic detection cannot.
    """
    from sklearn.ensemble import RandomForestClassifier

    n = min(len(real), len(synthetic))
    rng = np.random.default_rng(seed)
    cols = list(COLUMNS)
    x = np.concatenate([fmap.transform(_typed(t.iloc[rng.permutation(len(t))[:n]], cols))
                        for t in (real, synthetic)])  # fmt: skip
    y = np.r_[np.zeros(n), np.ones(n)]
    order = rng.permutation(2 * n)
    tr, te = order[:n], order[n:]
    rf = RandomForestClassifier(n_estimators=20 if quick else 100, min_samples_leaf=2,
                                n_jobs=1, random_state=seed).fit(x[tr], y[tr])  # fmt: skip
    return {"accuracy": float((rf.predict(x[te]) == y[te]).mean()), "n_test": int(len(te))}


def fidelity(synthetic: pd.DataFrame, real: pd.DataFrame, *, seed: int = 0,
             quick: bool = False) -> dict[str, Any]:  # fmt: skip
    """SDMetrics quality, logistic detection, random-forest C2ST and association difference.

    Returns:
        ``quality`` {score, column_shapes, column_pair_trends, per_column},
        ``detection`` (SDMetrics LogisticDetection, 1 = indistinguishable) and the share of
        synthetic rows it had to leave out (``detection_rows_excluded``), ``c2st``
        {accuracy, n_test} and ``association_difference`` {mean, max}.
    """
    from sdmetrics.reports import QualityReport
    from sdmetrics.single_table import LogisticDetection

    from gan.shoppers.report import association_difference

    n = 1000 if quick else None
    syn, ref = _subsample(synthetic, n, seed), _subsample(real, n, seed)
    cols = list(COLUMNS)
    syn_t = syn[cols].assign(**{c: as_bool(syn[c], "synthetic " + c)
                                for c, k in COLUMNS.items() if k == "boolean"})  # fmt: skip
    meta = sdmetrics_metadata()
    report = QualityReport()
    report.generate({"sessions": ref[cols]}, {"sessions": syn_t},
                    {"tables": {"sessions": meta}}, verbose=False)  # fmt: skip
    props = report.get_properties().set_index("Property")["Score"]
    shapes = report.get_details("Column Shapes")
    # LogisticDetection's encoder, fit on the real rows, raises on unseen categories: it scores
    # the rows inside the real vocabulary (the constraint checks count the others).
    known = np.ones(len(syn_t), dtype=bool)
    for c in cols:
        if c not in NUMERIC:
            known &= syn_t[c].astype(str).isin(set(ref[c].astype(str))).to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its logistic regression's convergence chatter
        detection = (
            LogisticDetection.compute(ref[cols], syn_t[known], meta) if known.sum() >= 10 else 0.0
        )  # fewer than 10 rows in the vocabulary: told apart by the vocabulary alone
    diff = association_difference(ref[cols], syn_t)
    upper = diff[np.triu_indices(len(cols), 1)]
    return {
        "quality": {
            "score": float(report.get_score()),
            "column_shapes": float(props["Column Shapes"]),
            "column_pair_trends": float(props["Column Pair Trends"]),
            "per_column": {r.Column: float(r.Score) for r in shapes.itertuples()},
        },
        "detection": float(detection),
        "detection_rows_excluded": float(1.0 - known.mean()),
        "c2st": c2st_forest(ref, syn_t, feature_map(real, cols), seed=seed, quick=quick),
        "association_difference": {"mean": float(upper.mean()), "max": float(upper.max())},
    }


def constraint_violations(table: pd.DataFrame, vocabulary: pd.DataFrame) -> dict[str, Any]:
    """Share of rows breaking each rule of issue 5 item 4 (0 = every row valid).

    Rules: counts are non-negative integers, durations and amounts >= 0, rates in [0, 1],
    categorical and boolean values from ``vocabulary``'s (the real table's) values, and the
    cross-column rules that hold on every row of ``vocabulary`` (`ecomgan.tabular.derive_rules`:
    no pages of a type -> no time on it, SpecialDay only in its months, ...).

    Returns:
        ``{"per_rule": {"<column>: <rule>": share}, "any": share of rows breaking any rule}``.
    """
    rules: dict[str, np.ndarray] = {}
    for c, kind in COLUMNS.items():
        if kind in ("categorical", "boolean"):
            allowed = set(vocabulary[c].astype(str))
            rules[f"{c}: in vocabulary"] = ~table[c].astype(str).isin(allowed).to_numpy()
            continue
        x = pd.to_numeric(table[c], errors="coerce").to_numpy(dtype=np.float64)
        if kind == "count":
            rules[f"{c}: non-negative integer"] = ~((x >= 0) & (x == np.round(x)))
        elif kind == "rate":
            rules[f"{c}: in [0, 1]"] = ~((x >= 0) & (x <= 1))
        else:
            rules[f"{c}: >= 0"] = ~(x >= 0)  # NaN breaks the rule too
    specs = tuple(
        ColumnSpec(c, kind, categories=tuple(pd.unique(vocabulary[c])))
        if kind in ("categorical", "boolean")
        else ColumnSpec(c, kind)
        for c, kind in COLUMNS.items()
    )
    real = {c: vocabulary[c].to_numpy() for c in COLUMNS}
    fake = {c: table[c].to_numpy() for c in COLUMNS}
    for rule in derive_rules(real, specs):
        rules[rule.describe()] = rule.violations(fake)
    broken = np.stack(list(rules.values()))
    return {
        "per_rule": {k: float(v.mean()) for k, v in rules.items()},
        "any": float(broken.any(0).mean()),
    }


def privacy(synthetic: pd.DataFrame, train: pd.DataFrame, test: pd.DataFrame) -> dict[str, Any]:
    """Distance to the closest train record of synthetic rows, against held-out real rows'.

    Rows are compared in ``feature_map``'s space fitted on ``train`` (one-hot categoricals,
    standardised numerics; every column, ``Revenue`` included), Euclidean. Held-out test rows
    were never trained on, so their distances are what "as close as new real data" means: a
    generator that copies or hugs its training rows shows smaller synthetic distances and
    more exact copies.

    Returns:
        Per table (``synthetic``, ``test``): DCR quantiles (5%, 50%) and mean, the share of
        exact copies (distance below 1e-6); ``closer_than_test_5pct``, the share of synthetic
        rows closer than the test rows' 5% quantile (0.05 if no closer than real rows);
        ``allowed``, the most of each that sampling noise explains; and ``passed``.
    """
    from sklearn.neighbors import NearestNeighbors

    columns = list(COLUMNS)
    fmap = feature_map(train, columns)
    index = NearestNeighbors(n_neighbors=1).fit(fmap.transform(_typed(train, columns)))
    dist = {name: index.kneighbors(fmap.transform(_typed(table, columns)))[0][:, 0]
            for name, table in (("synthetic", synthetic), ("test", test))}  # fmt: skip
    out: dict[str, Any] = {
        name: {
            "dcr_p5": float(np.quantile(d, 0.05)),
            "dcr_median": float(np.median(d)),
            "dcr_mean": float(d.mean()),
            "exact_copies": float((d < 1e-6).mean()),  # rounding of the distance formula
            "rows": len(d),
        }
        for name, d in dist.items()
    }
    syn, real = out["synthetic"], out["test"]
    out["closer_than_test_5pct"] = float((dist["synthetic"] < real["dcr_p5"]).mean())
    # Real rows differ by sampling noise too (held-out real halves of the train split score
    # 0.045-0.057 closer and 0.5-0.9% copies), so each check allows three standard errors.
    n_syn, n_real = syn["rows"], real["rows"]
    copies = max(real["exact_copies"], 1.0 / n_real)
    out["allowed"] = {
        "closer_than_test_5pct": 0.05 + 3 * math.sqrt(0.05 * 0.95 * (1 / n_syn + 1 / n_real)),
        "exact_copies": real["exact_copies"]
        + 3 * math.sqrt(copies * (1 - copies) * (1 / n_syn + 1 / n_real)),
    }
    out["passed"] = bool(out["closer_than_test_5pct"] <= out["allowed"]["closer_than_test_5pct"]
                         and syn["exact_copies"] <= out["allowed"]["exact_copies"])  # fmt: skip
    return out


def evaluate_tables(synthetic: pd.DataFrame, train: pd.DataFrame, test: pd.DataFrame, *,
                    seed: int = 0, quick: bool = False,
                    baseline: dict | None = None) -> dict[str, Any]:  # fmt: skip
    """Every score of this module for one synthetic table.

    Args:
        synthetic: The generated table (the shoppers columns; extra columns are ignored).
        train: The real train split (what the generator learnt from).
        test: The real test split (held out; scores the classifiers).
        seed: Seeds the classifiers, subsamples and two-sample tests.
        quick: Small models on at most ``QUICK_ROWS`` rows per table, for CI.
        baseline: See ``efficacy``.

    Returns:
        ``{"efficacy", "fidelity", "constraints", "privacy", "settings", "seconds"}``.

    Raises:
        ValueError: If a table misses columns, has NaNs or non-numeric numeric columns.
    """
    t0 = time.perf_counter()
    for df, name in ((synthetic, "synthetic table"), (train, "train table"), (test, "test table")):
        _check_table(df, name)
    n = QUICK_ROWS if quick else None
    constraints = constraint_violations(synthetic, train)
    syn, tr = _subsample(synthetic, n, seed), _subsample(train, n, seed)
    return {
        "efficacy": efficacy(syn, tr, test, seed=seed, quick=quick, baseline=baseline),
        "fidelity": fidelity(syn, tr, seed=seed, quick=quick),
        "constraints": constraints,
        "privacy": privacy(synthetic, train, test),
        "settings": {
            "n_synthetic": len(synthetic),
            "n_train": len(train),
            "n_test": len(test),
            "seed": seed,
            "quick": quick,
        },  # fmt: skip
        "seconds": round(time.perf_counter() - t0, 1),
    }


def evaluate(
    checkpoint: str | Path,
    out_dir: str | Path,
    *,
    data_dir: str | Path | None = None,
    n_samples: int | None = None,
    seed: int = 0,
    quick: bool = False,
) -> dict[str, Any]:
    """Sample a checkpoint, score the table, and write ``report.json``, ``report.md``,
    ``marginals.png`` and ``correlation_difference.png`` into ``out_dir``.

    Args:
        checkpoint: A shoppers checkpoint (``gan.shoppers.train``'s ``checkpoint.pt``).
        out_dir: Receives the report files.
        data_dir: Where the shoppers CSV is (see ``gan.shoppers.data``).
        n_samples: Rows to generate (default: as many as the train split has).
        seed: Seed of the sampling and of every score.
        quick: See ``evaluate_tables``.

    Returns:
        The report dict written to ``report.json``.
    """
    from gan.shoppers import sample_frame
    from gan.shoppers.report import write_report

    if n_samples is not None and n_samples < 10:
        raise ValueError(f"n_samples must be >= 10 (or None for the train size), got {n_samples}")
    train, test = load_split(data_dir, seed=0)  # the one split every measurement uses
    t = time.perf_counter()
    synthetic = sample_frame(checkpoint, n_samples or len(train), seed)
    sample_s = time.perf_counter() - t
    result = evaluate_tables(synthetic, train, test, seed=seed, quick=quick)
    result.update(checkpoint=str(checkpoint), sample_seconds=round(sample_s, 2))
    write_report(result, {"synthetic": synthetic}, train, out_dir)
    return result
