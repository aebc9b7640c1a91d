"""Load and soak: a fixed number of requests across all three protocols, then a timed soak
while sampling the server's resident memory.

Usage:
    python benchmarks/soak.py [--requests 10000] [--clients 64] [--soak-seconds 300]
        [--out benchmarks/results/soak.md]

Reports requests and errors per protocol, and the server's total RSS (all processes of the
bento) after warm-up and at the end of the soak. CI runs a short version (tests/integration).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.loadgen import GEN, PATHS, run_level  # noqa: E402
from benchmarks.server import REPO, bento, machine, server_pids  # noqa: E402


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


async def mixed(clients: int, requests: int, seconds: float | None, **kw) -> list[dict]:
    """Split the clients and the request budget evenly across the three protocols, at once."""
    n = len(PATHS)
    runs = [
        run_level(
            path,
            clients // n + (i < clients % n),
            requests=None if seconds else requests // n + (i < requests % n),
            seconds=seconds,
            **kw,
        )
        for i, path in enumerate(PATHS)
    ]
    return [r.summary() for r in await asyncio.gather(*runs)]


def run(requests: int, clients: int, soak_seconds: float, server=None, **kw) -> dict:
    load = asyncio.run(mixed(clients, requests, None, **kw))
    report = {"load": load, "soak": None}
    if soak_seconds > 0 and server is not None:
        pids = server_pids(server)
        samples: list[tuple[float, int]] = []
        done = threading.Event()

        def sample() -> None:
            t0 = time.monotonic()
            while not done.is_set():
                samples.append((time.monotonic() - t0, rss_bytes(pids)))
                done.wait(2.0)

        sampler = threading.Thread(target=sample)
        sampler.start()
        soak = asyncio.run(mixed(clients, 0, soak_seconds, **kw))
        done.set()
        sampler.join()
        # The first 10% of the soak is warm-up (allocator pools, caches), as in Triton's tests.
        warm = [m for t, m in samples if t >= 0.1 * soak_seconds] or [samples[-1][1]]
        report["soak"] = {
            "seconds": soak_seconds,
            "results": soak,
            "rss_start_mb": warm[0] / 2**20,
            "rss_end_mb": warm[-1] / 2**20,
            "rss_max_mb": max(warm) / 2**20,
            "rss_growth_pct": 100.0 * (warm[-1] - warm[0]) / warm[0],
        }
    return report


def markdown(report: dict, requests: int, clients: int) -> str:
    lines = [
        f"Machine: {machine()}; {clients} concurrent clients split across the protocols.",
        "",
        f"Load: {requests} requests.",
        "",
        "| path | clients | requests | errors | req/s | p50 ms | p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["load"]:
        lines.append(
            f"| {r['path']} | {r['clients']} | {r['requests']} | {r['errors']} | "
            f"{r['rps']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} |"
        )
    soak = report["soak"]
    if soak:
        total = sum(r["requests"] for r in soak["results"])
        errors = sum(r["errors"] for r in soak["results"])
        lines += [
            "",
            f"Soak: {soak['seconds']:.0f} s, {total} requests, {errors} errors; server "
            f"RSS {soak['rss_start_mb']:.0f} MB after warm-up -> {soak['rss_end_mb']:.0f} MB "
            f"at the end ({soak['rss_growth_pct']:+.1f}%, max {soak['rss_max_mb']:.0f} MB).",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--soak-seconds", type=float, default=300)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/results/soak.md")
    args = ap.parse_args()
    with bento() as (url, grpc_target, server):
        import httpx

        nz = httpx.get(f"{url}/v2/models/{GEN}").json()["inputs"][0]["shape"][1]
        report = run(
            args.requests,
            args.clients,
            args.soak_seconds,
            server,
            url=url,
            grpc_target=grpc_target,
            nz=nz,
        )
    print(json.dumps(report, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown(report, args.requests, args.clients))
    print(markdown(report, args.requests, args.clients))


if __name__ == "__main__":
    main()
