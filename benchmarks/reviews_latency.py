"""`/reviews/score` latency for one review per request at 16 concurrent clients (issue target:
p99 <= 50 ms), through a real `bentoml serve` of the shipped models, with httpx.

Usage: ``python -m benchmarks.reviews_latency [--url URL] [--clients 16] [--seconds 20]``;
prints JSON and, with ``--out FILE``, writes it there. ``--reference`` also drives
``/shoppers/score`` (one session per request) on the same server right after, as a reference
for what this machine gives any scoring route.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import time
from pathlib import Path

import httpx
import numpy as np

from benchmarks.server import bento, machine

REVIEWS = [
    "The staff were friendly and the room was spotless. Great location near Michigan Avenue!",
    "Our room smelled of smoke, the bathroom was dirty and nobody at the desk cared at all.",
    "My husband and I stayed here for our anniversary and everything was absolutely perfect.",
    "Check-in took forty minutes, the elevator was broken and the walls were paper thin.",
]


def _bodies(route: str) -> list[dict]:
    if route == "reviews":
        return [{"texts": [r]} for r in REVIEWS]
    from serving.shoppers import EXAMPLE_SESSION

    return [{"sessions": [EXAMPLE_SESSION]}] * 4


async def run(url: str, clients: int, seconds: float, warmup: float = 3.0,
              route: str = "reviews") -> dict:  # fmt: skip
    latencies: list[float] = []
    errors = 0
    bodies = _bodies(route)
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=clients)) as c:

        async def client(i: int, until: float, record: bool) -> None:
            nonlocal errors
            k = i
            while time.perf_counter() < until:
                t0 = time.perf_counter()
                r = await c.post(f"{url}/{route}/score", json=bodies[k % 4])
                k += 1
                if record:
                    if r.status_code == 200:
                        latencies.append(time.perf_counter() - t0)
                    else:
                        errors += 1

        end = time.perf_counter() + warmup
        await asyncio.gather(*(client(i, end, False) for i in range(clients)))
        end = time.perf_counter() + seconds
        await asyncio.gather(*(client(i, end, True) for i in range(clients)))
    ms = np.array(latencies) * 1000
    return {"route": f"/{route}/score", "clients": clients, "requests": len(ms), "errors": errors,
            "rps": len(ms) / seconds, "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)), "max_ms": float(ms.max())}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--reference", action="store_true", help="also /shoppers/score")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        url, _, _ = stack.enter_context(bento(args.url))
        load_before = os.getloadavg()
        result = asyncio.run(run(url, args.clients, args.seconds))
        result.update(load_average_before=load_before, load_average_after=os.getloadavg())
        if args.reference:
            ref = asyncio.run(run(url, args.clients, args.seconds, route="shoppers"))
            result["reference"] = {**ref, "load_average_after": os.getloadavg()}
    result["machine"] = machine()
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
