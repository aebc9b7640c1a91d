"""Requests/s and latency of the three served paths at several concurrency levels.

Usage:
    python benchmarks/serving.py [--clients 1 16 64] [--seconds 10]
        [--url http://127.0.0.1:3000 --grpc 127.0.0.1:3001] [--out benchmarks/results/serving.md]

Without --url it starts `bentoml serve` of this repo (shipped models, temporary BENTOML_HOME).
Load generator and server share the machine: compare rows of one run, not runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.loadgen import GEN, PATHS, run_level  # noqa: E402
from benchmarks.server import REPO, batch_histogram, bento, machine  # noqa: E402


def table(rows: list[dict], note: str) -> str:
    lines = [
        note,
        "",
        "| path | clients | req/s | p50 ms | p90 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['path']} | {r['clients']} | {r['rps']:.0f} | {r['p50_ms']:.1f} | "
            f"{r['p90_ms']:.1f} | {r['p99_ms']:.1f} | {r['errors']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--url")
    ap.add_argument("--grpc")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 16, 64])
    ap.add_argument("--paths", nargs="+", default=list(PATHS), choices=PATHS)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/results/serving.md")
    args = ap.parse_args()
    rows = []
    with bento(args.url, args.grpc) as (url, grpc_target, _):
        import httpx

        nz = httpx.get(f"{url}/v2/models/{GEN}").json()["inputs"][0]["shape"][1]
        # Level-major order: BentoML's batcher adapts its wait to recent load, and a burst of
        # 64 clients leaves single-client latency higher for a while; every path meets the
        # same history this way.
        for n in args.clients:
            for path in args.paths:
                kw = {"url": url, "grpc_target": grpc_target, "nz": nz}
                asyncio.run(run_level(path, n, seconds=min(2.0, args.seconds), **kw))  # warm-up
                row = asyncio.run(run_level(path, n, seconds=args.seconds, **kw)).summary()
                print(json.dumps(row), flush=True)
                rows.append(row)
        sizes = batch_histogram(httpx.get(f"{url}/metrics").text, "Generator", "products")
    batches = ", ".join(f"<={le:g}: {int(n)}" for le, n in sizes.items() if n)
    note_batches = f"Generator batch sizes over the run (histogram buckets): {batches}."
    note = (
        f"Machine: {machine()}; load generator on the same machine; {args.seconds:.0f} s "
        f"per row; one single-image generation per request; one worker per service."
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table(rows, note) + "\n" + note_batches + "\n")
    print(table(rows, note) + "\n" + note_batches)


if __name__ == "__main__":
    main()
