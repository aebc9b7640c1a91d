"""Write a shoppers evaluation (``gan.shoppers.evaluate``) as JSON, Markdown and PNGs.

Also the pairwise association matrix behind ``correlation_difference.png`` and the
``association_difference`` score: Spearman's rho between numeric columns (rank-based, since
durations and page values are heavy-tailed), Cramer's V between categorical columns and the
correlation ratio eta (on ranks) between a numeric and a categorical column. Each lies in
[0, 1] except rho, in [-1, 1].
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gan.shoppers.data import COLUMNS

_LOG_KINDS = ("count", "duration", "amount")  # heavy-tailed: plotted as log1p(x)


def _cramers_v(a: pd.Series, b: pd.Series) -> float:
    table = pd.crosstab(a, b).to_numpy(dtype=np.float64)
    k = min(table.shape) - 1
    if k < 1:
        return 0.0
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    chi2 = ((table - expected) ** 2 / expected).sum()
    return float(np.sqrt(chi2 / table.sum() / k))


def _eta(ranks: np.ndarray, groups: pd.Series) -> float:
    total = ((ranks - ranks.mean()) ** 2).sum()
    if total == 0:
        return 0.0
    means = pd.Series(ranks).groupby(groups.to_numpy()).agg(["mean", "size"])
    between = (means["size"] * (means["mean"] - ranks.mean()) ** 2).sum()
    return float(np.sqrt(between / total))


def association_matrix(table: pd.DataFrame) -> np.ndarray:
    """Pairwise associations of the shoppers columns, in ``COLUMNS`` order: (18, 18)."""
    cols = list(COLUMNS)
    numeric = {c for c, k in COLUMNS.items() if k not in ("categorical", "boolean")}
    ranks = {c: table[c].rank().to_numpy(dtype=np.float64) for c in numeric}
    text = {c: table[c].astype(str) for c in cols if c not in numeric}
    out = np.eye(len(cols))
    for i, a in enumerate(cols):
        for j in range(i + 1, len(cols)):
            b = cols[j]
            if a in numeric and b in numeric:
                r = np.corrcoef(ranks[a], ranks[b])[0, 1]
                v = 0.0 if np.isnan(r) else float(r)  # a constant column correlates with nothing
            elif a in numeric or b in numeric:
                num, cat = (a, b) if a in numeric else (b, a)
                v = _eta(ranks[num], text[cat])
            else:
                v = _cramers_v(text[a], text[b])
            out[i, j] = out[j, i] = v
    return out


def association_difference(real: pd.DataFrame, synthetic: pd.DataFrame) -> np.ndarray:
    """``|association_matrix(real) - association_matrix(synthetic)|``: (18, 18)."""
    return np.abs(association_matrix(real) - association_matrix(synthetic))


def _f(x: Any, fmt: str = "{:.3f}") -> str:
    return "-" if x is None or (isinstance(x, float) and np.isnan(x)) else fmt.format(x)


def to_markdown(result: dict[str, Any]) -> str:
    """One evaluation (``evaluate_tables``' dict) as Markdown tables."""
    eff, fid, s = result["efficacy"], result["fidelity"], result["settings"]
    lines = [
        "# Shoppers evaluation",
        "",
        f"{s['n_synthetic']} synthetic rows vs the real split ({s['n_train']} train / "
        f"{s['n_test']} test rows), seed {s['seed']}{', quick mode' if s['quick'] else ''}"
        + (f", checkpoint `{result['checkpoint']}`" if "checkpoint" in result else "")
        + ".",
        "",
        "## Machine-learning efficacy (train on synthetic / real train, test on real test)",
        "",
        "| model | buyer F1, synthetic | buyer F1, real | AUC, synthetic | AUC, real |",
        "| --- | --- | --- | --- | --- |",
    ]
    for m, r in eff["real"]["per_model"].items():
        y = eff["synthetic"]["per_model"][m]
        lines.append(f"| {m} | {_f(y['f1'])} | {_f(r['f1'])} | {_f(y['auc'])} | {_f(r['auc'])} |")
    lines.append(
        f"| **mean** | {_f(eff['synthetic']['f1_mean'])} | {_f(eff['real']['f1_mean'])} | "
        f"{_f(eff['synthetic']['auc_mean'])} | {_f(eff['real']['auc_mean'])} |"
    )
    lines += ["", f"Ratio synthetic / real: F1 {_f(eff['ratio']['f1_mean'])}, "
              f"AUC {_f(eff['ratio']['auc_mean'])}."]  # fmt: skip
    if eff.get("error"):
        lines += ["", f"**Error:** {eff['error']}."]
    q = fid["quality"]
    lines += [
        "", "## Fidelity (against the real train split)", "",
        "| score | value |", "| --- | --- |",
        f"| SDMetrics quality (1 = best) | {_f(q['score'])} |",
        f"| - column shapes | {_f(q['column_shapes'])} |",
        f"| - column pair trends | {_f(q['column_pair_trends'])} |",
        f"| SDMetrics logistic detection (1 = indistinguishable) | {_f(fid['detection'])} |",
        f"| - share of synthetic rows outside the real vocabulary, left out of detection | "
        f"{_f(fid['detection_rows_excluded'], '{:.4f}')} |",
        f"| random-forest C2ST accuracy (0.5 = indistinguishable) | "
        f"{_f(fid['c2st']['accuracy'])} |",
        f"| mean abs. association difference (0 = best) | "
        f"{_f(fid['association_difference']['mean'])} |",
        "", "## Constraint violations (share of rows)", "",
        f"Any rule: {_f(result['constraints']['any'], '{:.4f}')}.", "",
        "| rule | share of rows |", "| --- | --- |",
    ]  # fmt: skip
    lines += [f"| {k} | {_f(v, '{:.4f}')} |" for k, v in result["constraints"]["per_rule"].items()]
    if "privacy" in result:
        lines += _privacy_lines(result["privacy"])
    lines += ["", "## Column shapes (KS / TV complement, 1 = same marginal)", "",
              "| column | score |", "| --- | --- |"]  # fmt: skip
    lines += [f"| {c} | {_f(v)} |" for c, v in q["per_column"].items()]
    return "\n".join(lines) + "\n"


def _privacy_lines(p: dict[str, Any]) -> list[str]:
    syn, test = p["synthetic"], p["test"]
    verdict = "passed" if p["passed"] else "FAILED"
    lines = ["", "## Privacy: distance to the closest train record (DCR)", "",
             f"Synthetic rows must be no closer to training rows than held-out real rows are "
             f"({verdict}).", "",
             "| rows | DCR 5% | DCR median | DCR mean | exact copies |",
             "| --- | --- | --- | --- | --- |"]  # fmt: skip
    for name, r in (("synthetic", syn), ("real test (held out)", test)):
        lines.append(f"| {name} ({r['rows']}) | {_f(r['dcr_p5'])} | {_f(r['dcr_median'])} | "
                     f"{_f(r['dcr_mean'])} | {_f(r['exact_copies'], '{:.4f}')} |")  # fmt: skip
    allowed = p["allowed"]
    lines += ["", f"Synthetic rows closer than the test rows' 5% quantile: "
              f"{_f(p['closer_than_test_5pct'])} (0.05 = as close as real data; allowed up to "
              f"{_f(allowed['closer_than_test_5pct'])}, three standard errors); exact copies "
              f"allowed up to {_f(allowed['exact_copies'], '{:.4f}')}."]  # fmt: skip
    return lines


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_marginals(tables: dict[str, pd.DataFrame], path: str | Path) -> Path:
    """Real vs synthetic marginals, one panel per column; the first table is the reference.

    Numeric columns are histograms on the reference's range (count, duration and amount
    columns as log1p(x), out-of-range values piled into the edge bins); categorical columns
    are grouped bars of each value's share, in the reference's order of frequency.
    """
    plt = _pyplot()
    names = list(tables)
    ref = tables[names[0]]
    fig, axes = plt.subplots(3, 6, figsize=(20, 9), dpi=70)
    for ax, (c, kind) in zip(axes.flat, COLUMNS.items(), strict=True):
        if kind in ("categorical", "boolean"):
            order = ref[c].astype(str).value_counts().index.tolist()
            width = 0.8 / len(names)
            for k, name in enumerate(names):
                share = tables[name][c].astype(str).value_counts(normalize=True)
                ax.bar(np.arange(len(order)) + k * width, share.reindex(order).fillna(0.0),
                       width, label=name)  # fmt: skip
            ax.set_xticks(np.arange(len(order)) + 0.4 - width / 2, order, rotation=90, fontsize=7)
        else:
            tf = np.log1p if kind in _LOG_KINDS else (lambda v: v)
            lo, hi = np.nanmin(tf(ref[c].clip(lower=0))), np.nanmax(tf(ref[c].clip(lower=0)))
            bins = np.linspace(lo, hi if hi > lo else lo + 1, 31)
            for k, name in enumerate(names):
                x = tf(np.clip(pd.to_numeric(tables[name][c]).to_numpy(float), 0, None))
                ax.hist(np.clip(x, bins[0], bins[-1]), bins=bins, density=True,
                        histtype="stepfilled" if k == 0 else "step", alpha=0.35 if k == 0 else 1,
                        lw=1.4, label=name)  # fmt: skip
            ax.set_yscale("log")
        ax.set_title(c + (" (log1p)" if kind in _LOG_KINDS else ""), fontsize=9)
        ax.tick_params(labelsize=7)
    axes.flat[0].legend(fontsize=8)
    fig.subplots_adjust(left=0.03, right=0.99, top=0.96, bottom=0.12, wspace=0.25, hspace=0.55)
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def plot_correlation_difference(real: pd.DataFrame, synthetics: dict[str, pd.DataFrame],
                                path: str | Path) -> Path:  # fmt: skip
    """Heat maps of ``association_difference(real, table)``, one per synthetic table."""
    plt = _pyplot()
    cols = list(COLUMNS)
    fig, axes = plt.subplots(1, len(synthetics), figsize=(7.5 * len(synthetics), 7), dpi=70,
                             squeeze=False)  # fmt: skip
    for k, (ax, (name, table)) in enumerate(zip(axes[0], synthetics.items(), strict=True)):
        diff = association_difference(real, table)
        im = ax.imshow(diff, vmin=0, vmax=1, cmap="magma_r")
        upper = diff[np.triu_indices(len(cols), 1)]
        ax.set_title(f"|assoc(real) - assoc({name})|, mean {upper.mean():.3f}", fontsize=10)
        ax.set_xticks(range(len(cols)), cols, rotation=90, fontsize=7)
        ax.set_yticks(range(len(cols)), cols if k == 0 else [], fontsize=7)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.7)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def write_report(result: dict[str, Any], synthetics: dict[str, pd.DataFrame], train: pd.DataFrame,
                 out_dir: str | Path) -> list[Path]:  # fmt: skip
    """Write ``report.json``, ``report.md``, ``marginals.png`` and ``correlation_difference.png``.

    Args:
        result: ``evaluate_tables``' dict (plus any extra JSON-able keys).
        synthetics: Name -> synthetic table, plotted against ``train``.
        train: The real train split.
        out_dir: Created if needed.

    Returns:
        The files written.
    """
    from gan.common import atomic_write

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / "report.json") as f:
        f.write((json.dumps(result, indent=2, allow_nan=False) + "\n").encode())
    with atomic_write(out / "report.md") as f:
        f.write(to_markdown(result).encode())
    return [
        out / "report.json",
        out / "report.md",
        plot_marginals({"real train": train, **synthetics}, out / "marginals.png"),
        plot_correlation_difference(train, synthetics, out / "correlation_difference.png"),
    ]
