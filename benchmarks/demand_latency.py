"""Latency of ``POST /demand/stockout`` (1,000 paths) under closed-loop load.

Starts the bento on the shipped models (``benchmarks.server.bento``) unless ``--url`` is given,
warms it up, then runs ``--clients`` closed-loop clients (aiohttp, as ``benchmarks.loadgen``)
for ``--seconds`` and reports p50/p90/p99 latency and throughput (``LevelResult.summary``),
with the machine and its load average. Writes ``benchmarks/results/demand_latency.json``.

    python -m benchmarks.demand_latency [--clients 16] [--seconds 30] [--paths 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path

from benchmarks.loadgen import LevelResult, _error_kind
from benchmarks.server import bento, machine
from serving.demand import EXAMPLE_STOCKOUT

REPO = Path(__file__).resolve().parents[1]


async def drive(url: str, clients: int, seconds: float, paths: int) -> LevelResult:
    """``clients`` closed-loop clients posting distinct-seed stock-out requests."""
    import aiohttp

    result = LevelResult("demand-stockout", clients, paths)
    bodies = [{**EXAMPLE_STOCKOUT, "paths": paths, "seed": i} for i in range(64)]
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as client:

        async def worker(w: int) -> None:
            i = w
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                try:
                    async with client.post(f"{url}/demand/stockout", json=bodies[i % 64]) as r:
                        await r.read()
                        r.raise_for_status()
                    result.latencies_s.append(time.perf_counter() - t0)
                except Exception as exc:  # counted, never fatal
                    key = _error_kind(exc)
                    result.errors[key] = result.errors.get(key, 0) + 1
                i += clients

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(clients)))
        result.elapsed_s = time.perf_counter() - t0
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", help="a running server (default: start one on the shipped models)")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--paths", type=int, default=1000)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = p.parse_args()
    with bento(args.url) as (url, _, _):
        asyncio.run(drive(url, 4, 3.0, args.paths))  # warm-up: sessions, batcher, caches
        load_before = os.getloadavg()
        summary = asyncio.run(drive(url, args.clients, args.seconds, args.paths)).summary()
    doc = {
        "machine": machine(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "paths": args.paths,
        **summary,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "demand_latency.json").write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
