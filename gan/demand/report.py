"""The demand backtest's ``report.md``, reliability diagram and fan charts (matplotlib)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ecomgan.files import atomic_write

COLUMNS = (
    ("scaled_crps", "scaled CRPS", ".4f"),
    ("wql", "wQL", ".4f"),
    ("coverage_80", "cov 80%", ".3f"),
    ("width_80", "width 80%", ".3f"),
    ("coverage_95", "cov 95%", ".3f"),
    ("width_95", "width 95%", ".3f"),
    ("wape", "WAPE (median)", ".4f"),
    ("brier", "Brier", ".4f"),
    ("brier_skill", "Brier skill", ".3f"),
)


def table(methods: dict[str, dict[str, Any]]) -> str:
    """The markdown table of the methods' horizon 1-4 scores."""
    lines = [
        "| method | " + " | ".join(c[1] for c in COLUMNS) + " |",
        "|---|" + "---:|" * len(COLUMNS),
    ]
    for name, r in methods.items():
        lines.append(f"| {name} | " + " | ".join(format(r[k], f) for k, _, f in COLUMNS) + " |")
    return "\n".join(lines)


def markdown(report: dict[str, Any]) -> str:
    """``report.md``: setup, the table, per-horizon CRPS, targets and fidelity."""
    m, fid, tg = report["methods"], report["fidelity"], report["targets"]
    honest = (
        "trained only on weeks before the backtest"
        if report["honest"]
        else "**trained on weeks inside the backtest: these numbers are not a fair backtest**"
    )
    horizons = sorted({h for r in m.values() for h in r["by_horizon"]})
    by_h = [
        "| method | " + " | ".join(f"h={h}" for h in horizons) + " |",
        "|---|" + "---:|" * len(horizons),
    ]
    for name, r in m.items():
        by_h.append(
            f"| {name} | "
            + " | ".join(f"{r['by_horizon'][h]['scaled_crps']:.4f}" for h in horizons)
            + " |"
        )
    cc = fid["copy_check"]
    return "\n".join(
        [
            "# Demand backtest",
            "",
            f"{report['stores']} stores x {report['origins']} weekly origins over the last "
            f"{report['backtest_weeks']} weeks, {report['paths']} paths per forecast, seed "
            f"{report['seed']}{' (quick run)' if report['quick'] else ''}; the GAN was {honest}.",
            "Horizons 1-4 (points: "
            f"{m[next(iter(m))]['points']}); stock-out events: next 4 weeks' "
            "demand above 0.9/1.0/1.1/1.2 x 4 x the last 8 weeks' mean; Brier skill against the "
            "training period's event rates.",
            "",
            table(m),
            "",
            "Scaled CRPS by horizon:",
            "",
            *by_h,
            "",
            f"Targets: CRPS {tg['crps_ratio_to_best_baseline']:.3f}x the best baseline "
            f"({'met' if tg['crps_ok'] else 'missed'}, <= 0.85); coverage 80% "
            f"{'met' if tg['coverage_80_ok'] else 'missed'} (0.77-0.83), 95% "
            f"{'met' if tg['coverage_95_ok'] else 'missed'} (0.93-0.97); Brier skill gain "
            f"{tg['brier_skill_gain']:+.3f} ({'met' if tg['brier_ok'] else 'missed'}, >= +0.05); "
            f"discriminative score {fid['discriminative_score']:.3f} "
            f"({'met' if tg['discriminative_ok'] else 'missed'}, <= 0.10).",
            "",
            f"Fidelity on {fid['windows']} backtest windows: discriminative score "
            f"{fid['discriminative_score']:.3f}; predictive MAE (log-ratio of the last week) "
            f"trained on generated {fid['predictive_tstr_mae']:.4f} vs on real training windows "
            f"{fid['predictive_trtr_mae']:.4f}. Copy check: median nearest-training-future "
            f"distance {cc['median_nn_generated']:.3f} (generated) vs {cc['median_nn_real']:.3f} "
            f"(held-out real); {cc['share_closer_than_real_p1']:.1%} of generated futures are "
            "closer than the real ones' 1st percentile.",
            "",
            "![reliability](reliability.png) ![fan charts](fan_charts.png)",
            "",
        ]
    )


def write_report(
    report: dict[str, Any], out: Path, net_g, layout, stores: dict, ids: list[int], last: int
) -> None:
    """Write ``report.md``, ``reliability.png`` and ``fan_charts.png`` into ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gan.demand import sample_paths

    with atomic_write(out / "report.md") as f:
        f.write(markdown(report).encode())
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--")
    for name, r in report["methods"].items():
        pts = r["reliability"]
        ax.plot([p["p"] for p in pts], [p["observed"] for p in pts], marker="o", label=name)
    ax.set(
        xlabel="forecast probability of a stock-out",
        ylabel="observed frequency",
        title="Reliability: stock-out in the next 4 weeks",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "reliability.png", dpi=100)
    plt.close(fig)

    t = last - layout.horizon
    fig, axes = plt.subplots(1, min(3, len(ids)), figsize=(12, 3.5), squeeze=False)
    for ax, s in zip(axes[0], ids[:3], strict=False):
        x = stores[s]["sales"] / 1e6
        paths = sample_paths(net_g, stores[s], layout, 1000, report["seed"], upto=t) / 1e6
        q = np.quantile(paths, [0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95], axis=0)
        weeks = np.arange(t - 25, last + 1)
        future = np.arange(t + 1, t + 1 + layout.horizon)
        for lo, hi, a in ((0, 6, 0.2), (1, 5, 0.3), (2, 4, 0.45)):
            ax.fill_between(future, q[lo], q[hi], color="tab:blue", alpha=a, lw=0)
        ax.plot(future, q[3], color="tab:blue", label="median")
        ax.plot(weeks, x[weeks], color="black", lw=1.2, label="actual")
        ax.axvline(t + 0.5, color="grey", lw=0.8)
        ax.set(
            title=f"store {s}: origin {stores[s]['dates'][t]}", xlabel="week", ylabel="sales ($M)"
        )
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "fan_charts.png", dpi=100)
    plt.close(fig)
