"""The demand targets' benchmark: train (CPU time measured) and run the full backtest.

1. ``ecomgan train --family demand`` with the default config (``holdout=1``: weeks before the
   26-week backtest only), its CPU time (user + system of the process) measured;
2. ``ecomgan evaluate --family demand`` on it: 45 stores x 26 weekly origins, 1,000 paths,
   against the baselines in the same run, and an ablation trained without the adversarial
   term (``--adv-weight 0``, row "GAN no-critic");
3. ``benchmarks/results/demand.md``: the table, the targets, training CPU time, the machine
   and its load average; the reliability diagram and fan charts go to ``docs/demand/``.

    python -m benchmarks.demand_backtest [--out runs/demand_backtest] [--skip-train]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks.server import machine
from gan.demand.report import table

REPO = Path(__file__).resolve().parents[1]


def cli(*args: str) -> float:
    """Run ``ecomgan ...``; return its CPU seconds (user + system)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(
        [sys.executable, "-m", "ecomgan.cli", *args],
        check=True,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=REPO / "runs" / "demand_backtest")
    p.add_argument("--skip-train", action="store_true", help="reuse OUT/run/checkpoint.pt")
    args = p.parse_args()
    run, report = args.out / "run", args.out / "report"
    load_start = os.getloadavg()
    cpu = None
    ablation = args.out / "no-critic"
    if not args.skip_train:
        cpu = cli("train", "--family", "demand", "--out", str(run))
        cli("train", "--family", "demand", "--adv-weight", "0", "--out", str(ablation))
    cli(
        "evaluate",
        "--family",
        "demand",
        "--checkpoint",
        str(run / "checkpoint.pt"),
        "--compare",
        f"no-critic={ablation / 'checkpoint.pt'}",
        "--out",
        str(report),
    )
    load_end = os.getloadavg()
    doc = json.loads((report / "report.json").read_text())
    tg, fid = doc["targets"], doc["fidelity"]
    docs = REPO / "docs" / "demand"
    docs.mkdir(parents=True, exist_ok=True)
    for png in ("reliability.png", "fan_charts.png"):
        shutil.copy(report / png, docs / png)
    ours = doc["methods"]["GAN (ours)"]
    lines = [
        "# Demand: backtest against the baselines",
        "",
        f"Machine: {machine()}. Load average (1, 5, 15 min) at the start "
        f"{load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}, at the end "
        f"{load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f} (other jobs may share "
        "the two cores); lscpu: 2-core Intel Xeon, family 6 model 167 (AVX-512 VNNI).",
        "",
        f"{doc['stores']} stores x {doc['origins']} weekly origins (the last "
        f"{doc['backtest_weeks']} weeks), {doc['paths']} paths per forecast, horizons 1-4; "
        f"the GAN trained only on weeks before the backtest: {doc['honest']}.",
        "",
        table(doc["methods"]),
        "",
        "| target | goal | measured | met |",
        "|---|---|---:|---|",
        f"| scaled CRPS vs best baseline | <= 0.85x | {tg['crps_ratio_to_best_baseline']:.3f}x | "
        f"{tg['crps_ok']} |",
        f"| 80% coverage | 0.77-0.83 | {ours['coverage_80']:.3f} | {tg['coverage_80_ok']} |",
        f"| 95% coverage | 0.93-0.97 | {ours['coverage_95']:.3f} | {tg['coverage_95_ok']} |",
        f"| Brier skill gain over best baseline | >= +0.05 | {tg['brier_skill_gain']:+.3f} | "
        f"{tg['brier_ok']} |",
        f"| discriminative score | <= 0.10 | {fid['discriminative_score']:.3f} | "
        f"{tg['discriminative_ok']} |",
        "| training CPU time | <= 15 min | "
        + (f"{cpu / 60:.1f} min | {cpu <= 900} |" if cpu is not None else "not measured | |"),
        "",
        f"Predictive score (MAE, TSTR): {fid['predictive_tstr_mae']:.4f} vs "
        f"{fid['predictive_trtr_mae']:.4f} trained on real. Copy check: "
        f"{fid['copy_check']['share_closer_than_real_p1']:.1%} of generated futures are closer "
        "to a training future than the real futures' 1st percentile.",
        "",
    ]
    out = REPO / "benchmarks" / "results" / "demand.md"
    out.write_text("\n".join(lines))
    print(out.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
