"""The performance benchmark suite (issue 7): one command, one run, every ratio comparable.

Usage:
    python -m benchmarks.run [--smoke] [--out benchmarks/results]

Measures, in this order and on this machine: the in-process ceiling (ONNX Runtime and PyTorch
eager, products generator and discriminator, batch 1..256); our bento (started through
`benchmarks/server.py`) over the JSON API, OIP HTTP with binary tensors and OIP gRPC at 1, 16,
64 and 128 closed-loop clients, plus 64-image gRPC requests at 4 clients; the bento again with
adaptive batching off (max batch size 1); then two peers serving the same ONNX file on loopback:
a hand-written Starlette + ORT app and a KServe ModelServer (its venv, `.bench/kserve-venv`, is
created on first use). Writes `performance.md`, `performance.json` and `performance_*.png`.

`--smoke` runs the same code at tiny durations and two client levels (CI); it skips the KServe
peer when its venv is absent rather than installing it.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks import ceiling, report
from benchmarks.loadgen import GEN, run_level
from benchmarks.machine import REPO, TreeCPU, describe
from benchmarks.peers import launch
from benchmarks.server import bento, registered_home

SERVED_PATHS = ("json", "json-b64", "oip-http", "grpc")
PEER_PATHS = {
    "starlette": ("json", "json-b64", "oip-http", "oip-json"),
    "kserve": ("grpc", "oip-http"),
}
# Our bento again with one setting changed: (label, environment, paths).
VARIANTS = {
    "2-workers": (report.OURS_2W, {"ECOMGAN_ENTRY_WORKERS": "2"}, SERVED_PATHS),
    "fast-lane-off": (report.FAST_LANE_OFF, {"ECOMGAN_FAST_LANE": "off"}, ("json", "oip-http")),
}
PEER_LABELS = {"starlette": "Starlette + ORT", "kserve": "KServe ModelServer"}
# Like the peers (uvicorn access_log=False, KServe's latency logging off): no per-request log line.
SERVER_ENV = {"ECOMGAN_ACCESS_LOG": "off"}


@dataclass(frozen=True)
class Plan:
    """What one run measures and for how long.

    Attributes:
        levels: Concurrent closed-loop clients, one image per request.
        seconds: Measured duration of each level.
        warmup: Unmeasured run before each level (connections, the batcher's wait estimate).
        batches: Batch sizes of the in-process ceiling.
        ceiling_seconds: Duration of each in-process timing.
        ceiling_trials: In-process timings per point (alternating runtimes); the median counts.
        big_batch: Images per request of the large-request row ...
        big_clients: ... and its clients.
        batching_clients: Clients of the batching-off comparison (gRPC).
        peers: Peers to run ("starlette", "kserve").
        variants: Our bento with one setting changed (keys of `VARIANTS`), at every level.
        create_kserve_venv: Create `.bench/kserve-venv` when absent (else skip the KServe peer).
    """

    levels: tuple[int, ...] = (1, 16, 64, 128)
    seconds: float = 10.0
    warmup: float = 2.0
    batches: tuple[int, ...] = ceiling.BATCHES
    ceiling_seconds: float = 1.5
    ceiling_trials: int = 3
    big_batch: int = 64
    big_clients: int = 4
    batching_clients: int = 64
    peers: tuple[str, ...] = ("starlette", "kserve")
    variants: tuple[str, ...] = tuple(VARIANTS)
    create_kserve_venv: bool = True

    def __post_init__(self) -> None:
        if not self.levels or min(self.levels) < 1:
            raise ValueError(f"levels must be client counts >= 1, got {self.levels}")
        if self.seconds <= 0 or self.ceiling_seconds <= 0 or self.warmup < 0:
            raise ValueError("seconds and ceiling_seconds must be > 0, warmup >= 0")
        unknown = set(self.peers) - set(PEER_PATHS)
        if unknown:
            raise ValueError(f"unknown peers {sorted(unknown)}; use {sorted(PEER_PATHS)}")


SMOKE = Plan(
    levels=(1, 16),
    seconds=0.5,
    warmup=0.1,
    batches=(1, 64),
    ceiling_seconds=0.2,
    ceiling_trials=1,
    big_clients=2,
    batching_clients=16,
    create_kserve_venv=False,
)


def _level(label: str, path: str, clients: int, plan: Plan, cpu: TreeCPU, **kw) -> dict:
    """Warm up, then measure one (server, path, clients) point with server CPU accounting."""
    if plan.warmup:
        asyncio.run(run_level(path, clients, seconds=plan.warmup, **kw))
    row = asyncio.run(run_level(path, clients, seconds=plan.seconds, cpu=cpu, **kw)).summary()
    row["server"] = label
    print(json.dumps({k: v for k, v in row.items() if k != "error_kinds"}), flush=True)
    return row


def _io(url: str) -> tuple[int, int]:
    """(nz, bytes of one output image) from the generator's OIP metadata."""
    import math

    import httpx

    meta = httpx.get(f"{url}/v2/models/{GEN}", timeout=10).json()
    out_shape = meta["outputs"][0]["shape"][1:]
    return int(meta["inputs"][0]["shape"][1]), 4 * math.prod(out_shape)


def served(plan: Plan, home: Path, notes: list[str]) -> tuple[list[dict], int, int]:
    """Our bento at every level and path, the large-request row, then batching off."""
    rows = []
    notes.append("Our bento runs with ECOMGAN_ACCESS_LOG=off (the peers log no requests either).")
    with bento(home=home, env=SERVER_ENV) as (url, grpc_target, server):
        nz, item = _io(url)
        kw = {"url": url, "grpc_target": grpc_target, "nz": nz, "item_bytes": item}
        cpu = TreeCPU(server.proc.pid)
        # Level-major: BentoML's batcher adapts its wait to recent load, so every path
        # meets the same history.
        for clients in plan.levels:
            for path in SERVED_PATHS:
                rows.append(_level(report.OURS, path, clients, plan, cpu, **kw))
        rows.append(
            _level(report.OURS, "grpc", plan.big_clients, plan, cpu, batch=plan.big_batch, **kw)
        )
        try:
            import httpx

            from benchmarks.server import batch_histogram

            sizes = batch_histogram(httpx.get(f"{url}/metrics").text, GEN)
        except Exception as exc:  # metrics are a note, not a measurement
            sizes = {}
            notes.append(f"(no batch-size metrics: {exc})")
        if any(sizes.values()):
            hist = ", ".join(f"<={le:g}: {int(n)}" for le, n in sizes.items() if n)
            notes.append(f"Generator batch sizes over the bento run (histogram buckets): {hist}.")
    knobs = {
        f"ECOMGAN_PRODUCTS_{role}_MAX_BATCH_SIZE": "1" for role in ("GENERATOR", "DISCRIMINATOR")
    }
    setting = ", ".join(f"{k}=1" for k in knobs)
    try:
        with bento(home=home, env={**SERVER_ENV, **knobs}) as (url, grpc_target, server):
            kw = {"url": url, "grpc_target": grpc_target, "nz": nz, "item_bytes": item}
            cpu = TreeCPU(server.proc.pid)
            rows.append(_level(report.OURS_OFF, "grpc", plan.batching_clients, plan, cpu, **kw))
        notes.append(f"Batching off: {setting}.")
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # a refused start raises benchmarks.server.ServerError
        lines = [ln for ln in str(exc).splitlines() if "Error" in ln] or [repr(exc)]
        notes.append(f"Batching off NOT measured: the server refused {setting}: {lines[-1]}")
        print(notes[-1], flush=True)
    for name in plan.variants:
        label, env, paths = VARIANTS[name]
        with bento(home=home, env={**SERVER_ENV, **env}) as (url, grpc_target, server):
            kw = {"url": url, "grpc_target": grpc_target, "nz": nz, "item_bytes": item}
            cpu = TreeCPU(server.proc.pid)
            for clients in plan.levels:
                for path in paths:
                    rows.append(_level(label, path, clients, plan, cpu, **kw))
        notes.append(f"{label}: {', '.join(f'{k}={v}' for k, v in env.items())}.")
    return rows, nz, item


def peers(plan: Plan, nz: int, item: int, log_dir: Path, notes: list[str]) -> tuple[list, str]:
    """Each peer at every level over its paths; returns (rows, kserve version or None)."""
    rows, kserve = [], None
    for name in plan.peers:
        try:
            if name == "kserve":
                python = launch.kserve_python(create=plan.create_kserve_venv)
                if python is None:
                    notes.append(f"KServe peer skipped: no venv at {launch.KSERVE_VENV}.")
                    continue
                kserve = launch.kserve_version(python)
            with launch.peer(name, log_dir, GEN) as p:
                kw = {"url": p.url, "grpc_target": p.grpc_target, "nz": nz, "item_bytes": item}
                cpu = TreeCPU(p.proc.pid)
                for clients in plan.levels:
                    for path in PEER_PATHS[name]:
                        rows.append(_level(PEER_LABELS[name], path, clients, plan, cpu, **kw))
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            # A peer that cannot start must not cost the rest of the run its numbers.
            notes.append(f"{PEER_LABELS[name]} NOT measured: {str(exc)[-500:]}")
            print(notes[-1], flush=True)
    return rows, kserve


def run(plan: Plan, out: Path) -> dict:
    """Measure everything in `plan`; write the report files under `out`; return the result."""
    t0 = time.monotonic()
    machine = describe()  # load average before this run adds its own
    notes = [
        "Load generator: closed-loop asyncio clients (aiohttp, grpc.aio) in one process on the "
        "same CPUs as the server; server CPU-s = user+system seconds of the server's process "
        "tree during the measured part of each level; client CPU-s = the load generator's.",
        f"Peers serve `models/products/generator.onnx` with {machine['ORT intra-op threads']} "
        "ORT intra-op threads and no batching; KServe per-request latency logging is off.",
    ]
    print("in-process ceiling ...", flush=True)
    timings, provider, weights = ceiling.run(
        plan.batches, plan.ceiling_seconds, trials=plan.ceiling_trials
    )
    ort_device = "cuda" if provider == "CUDAExecutionProvider" else "cpu"
    home = registered_home()
    try:
        rows, nz, item = served(plan, home, notes)
        peer_rows, kserve = peers(plan, nz, item, home, notes)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    machine["versions"] = machine["versions"].replace("kserve not run", f"kserve {kserve}")
    result = {
        "machine": machine,
        "plan": (
            f"{'smoke, ' if plan == SMOKE else ''}levels {list(plan.levels)}, {plan.seconds:g} s "
            f"per level after {plan.warmup:g} s warm-up, ceiling: median of "
            f"{plan.ceiling_trials} x {plan.ceiling_seconds:g} s per point; "
            f"took {time.monotonic() - t0:.0f} s"
        ),
        "weights": weights,
        "ort_device": ort_device,
        "ceiling": [dataclasses.asdict(t) for t in timings],
        "served": rows + peer_rows,
        "notes": notes,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "performance.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    (out / "performance.md").write_text(report.markdown(result))
    report.plots(result, out)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--smoke", action="store_true", help="tiny durations, two levels (CI)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args()
    result = run(SMOKE if args.smoke else Plan(), args.out)
    print(report.markdown(result))


if __name__ == "__main__":
    main()
