"""Bulk generation of shoppers sessions: `ecomgan sample` against `ctgan`'s `sample()`.

    python -m benchmarks.shoppers_bulk [--rows 100000 1000000 10000000] [--ctgan-rows 100000]

Ours: each row count is written by `ecomgan sample --from models/shoppers` (CSV, chunks of
`serving.shoppers.CSV_CHUNK` rows) in a fresh process, which reports its wall time and peak
resident memory; flat memory from 1 to 10 million rows is the point. ctgan: `CTGAN` from the
`ctgan` package with its default networks, fitted for one epoch on the project's train split
(sampling speed does not depend on how long it trained), then `sample(n)` timed alone and with
`DataFrame.to_csv`, its users' way to a file; `sample()` is timed with torch on 1 thread and on
every usable CPU, and the faster counts. Both run one after the other in this process's
session, on the same machine; the table goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.machine import REPO, cpu_model, usable_cpus


def _child(rows: int, out: Path, seed: int) -> None:
    """Run `ecomgan sample` in this process and print wall time and peak RSS as JSON."""
    from ecomgan.cli import main

    start = time.perf_counter()
    code = main(["sample", "--from", str(REPO / "models" / "shoppers"), "--count", str(rows),
                 "--seed", str(seed), "--out", str(out)])  # fmt: skip
    wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime
    print(json.dumps({"code": code, "wall_s": wall, "cpu_s": cpu,
                      "max_rss_mb": usage.ru_maxrss / 1024, "bytes": out.stat().st_size}))


def ours(rows: int, seed: int, work: Path) -> dict:
    out = work / f"ours_{rows}.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.shoppers_bulk", "--child", str(rows), str(out)],
        cwd=REPO, capture_output=True, text=True, check=True,
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    lines = sum(1 for _ in out.open())
    out.unlink()
    if result["code"] != 0 or lines != rows + 1:
        raise RuntimeError(f"ecomgan sample wrote {lines} lines for {rows} rows: {proc.stderr}")
    return {**result, "rows_per_s": rows / result["wall_s"]}


def ctgan_speed(rows: int, seed: int, work: Path) -> dict:
    import torch
    from ctgan import CTGAN

    from gan.shoppers.data import COLUMNS, load_split

    torch.manual_seed(seed)
    train, _ = load_split()
    model = CTGAN(epochs=1, enable_gpu=False)
    model.fit(train, discrete_columns=[c for c, k in COLUMNS.items()
                                       if k in ("categorical", "boolean")])  # fmt: skip
    # Its best thread count: under load, torch's two spinning OpenMP threads can be 10x slower
    # than one (measured on this project's 2-core machine), and a starved baseline proves nothing.
    timings = {}
    for threads in sorted({1, usable_cpus()}):
        torch.set_num_threads(threads)
        model.sample(1000)  # warm-up
        start = time.perf_counter()
        frame = model.sample(rows)
        timings[threads] = time.perf_counter() - start
    threads = min(timings, key=timings.get)
    start = time.perf_counter()
    frame.to_csv(work / "ctgan.csv", index=False)
    csv_s = time.perf_counter() - start
    sample_s = timings[threads]
    return {"rows": rows, "sample_s": sample_s, "csv_s": csv_s, "threads": threads,
            "timings": timings, "rows_per_s": rows / sample_s,
            "rows_per_s_csv": rows / (sample_s + csv_s)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000])
    parser.add_argument("--ctgan-rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--child", nargs=2, metavar=("ROWS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(int(args.child[0]), Path(args.child[1]), args.seed)
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        results = {n: ours(n, args.seed, work) for n in args.rows}
        theirs = ctgan_speed(args.ctgan_rows, args.seed, work)
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"Machine: {cpu_model()}, load average after the run {' '.join(load)}\n")
    print("| generator | rows | wall s | rows/s | peak RSS MB | vs ctgan sample() |")
    print("|---|---:|---:|---:|---:|---:|")
    base = theirs["rows_per_s"]
    for n, r in results.items():
        print(f"| ecomgan sample (CSV) | {n:,} | {r['wall_s']:.1f} | {r['rows_per_s']:,.0f} | "
              f"{r['max_rss_mb']:.0f} | {r['rows_per_s'] / base:.1f}x |")
    print(f"| ctgan sample(), torch threads {theirs['threads']} | {theirs['rows']:,} | "
          f"{theirs['sample_s']:.1f} | {base:,.0f} | | 1.0x |")
    print(f"| ctgan sample() + to_csv | {theirs['rows']:,} | "
          f"{theirs['sample_s'] + theirs['csv_s']:.1f} | {theirs['rows_per_s_csv']:,.0f} | | |")


if __name__ == "__main__":
    main()
