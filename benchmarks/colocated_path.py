"""Micro-benchmark of the colocated request path: named arrays vs record arrays per request.

Runs requests of one image through `serving.gateway.Gateway.infer` and the in-process
`serving.batcher.Batcher` on the shipped products models (ONNX Runtime, one intra-op thread),
in one process, two ways:

- ``dict``: what the colocated topology does now: each request's arrays go to the batcher as
  they are, are concatenated per input and the outputs sliced per request.
- ``records``: the earlier path, still the split topology's format: the request is packed into a
  numpy record array (one field per input), batched as one array, unpacked and made contiguous
  for the session, and the outputs packed into a record array and read back per field.

Both variants alternate within each trial; the table gives the median over trials of the wall
time and the process CPU time per request, sequential (one request at a time, batch 1) and with
64 concurrent requests (the batcher forms batches). Usage::

    python benchmarks/colocated_path.py [--requests 2000] [--trials 7]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from ecomgan.families import get_family  # noqa: E402
from serving.batcher import Batcher  # noqa: E402
from serving.catalog import ServedModel  # noqa: E402
from serving.gateway import Gateway  # noqa: E402
from serving.runtime import (  # noqa: E402
    create_session,
    run_records,
    run_session,
    session_signature,
    to_records,
)
from serving.settings import Settings  # noqa: E402


def _records_backend(session, signature, batcher_kw) -> object:
    """The earlier colocated path: pack, batch the record array, unpack in `run_records`."""

    def run(inputs):
        return {"records": run_records(session, signature, inputs["records"])}

    batcher = Batcher(run, **batcher_kw)

    async def call(inputs):
        records = to_records(signature.inputs, inputs)
        out = (await batcher({"records": records}))["records"]
        return {s.name: out[s.name] for s in signature.outputs}

    return call


def gateways(role: str) -> dict[str, tuple[Gateway, str, callable]]:
    """Variant -> (gateway, model name, request maker) for one products model."""
    family = get_family("products")
    session = create_session(family.shipped_dir / f"{role}.onnx", threads=1)
    signature = session_signature(session)
    name = family.model_name(role)
    served = ServedModel(name, family, role, "bench", signature, {}, {"label": (0, 9)})
    kw = {"max_batch_size": 256, "max_latency_ms": 60_000, "name": name}
    rng = np.random.default_rng(0)

    def make() -> dict[str, np.ndarray]:
        # one item of every input: labels 0..9, anything else standard normal
        return {
            s.name: np.array([int(rng.integers(10))], dtype=np.int64)
            if s.name == "label"
            else rng.standard_normal((1, *s.item_shape), dtype=np.float32)
            for s in signature.inputs
        }

    settings = Settings()
    return {
        "dict": (
            Gateway(
                {name: served},
                {name: Batcher(functools.partial(run_session, session, signature), **kw)},
                settings,
            ),
            name,
            make,
        ),
        "records": (
            Gateway({name: served}, {name: _records_backend(session, signature, kw)}, settings),
            name,
            make,
        ),
    }


async def _trial(gateway: Gateway, name: str, make, n: int, concurrency: int) -> tuple:
    requests = [make() for _ in range(n)]
    queue = iter(requests)

    async def client():
        for inputs in queue:
            await gateway.infer(name, inputs)

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return (time.perf_counter() - wall) / n * 1e6, (time.process_time() - cpu) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--trials", type=int, default=7)
    args = parser.parse_args()
    print(f"# colocated path, {args.requests} requests of 1 image x {args.trials} trials")
    print(f"cpu: {_cpu_model()} ({os.cpu_count()} CPUs); avx512_vnni: {_has_flag('avx512_vnni')}; "
          f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")  # fmt: skip
    print("\n| model | variant | clients | wall us/request | CPU us/request |")
    print("|---|---|---:|---:|---:|")
    for role in ("generator", "discriminator"):
        variants = gateways(role)
        # the answers are identical between the variants (same session, same inputs)
        probe = variants["dict"][2]()
        a = asyncio.run(variants["dict"][0].infer(variants["dict"][1], probe))
        b = asyncio.run(variants["records"][0].infer(variants["records"][1], probe))
        assert all(a[k].tobytes() == b[k].tobytes() for k in a), "the variants disagree"
        for concurrency in (1, 64):
            results: dict[str, list[tuple[float, float]]] = {v: [] for v in variants}
            for _ in range(args.trials):
                for variant, (gateway, name, make) in variants.items():
                    results[variant].append(
                        asyncio.run(_trial(gateway, name, make, args.requests, concurrency))
                    )
            for variant, rows in results.items():
                wall = statistics.median(r[0] for r in rows)
                cpu = statistics.median(r[1] for r in rows)
                print(f"| {role} | {variant} | {concurrency} | {wall:.1f} | {cpu:.1f} |")
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def _has_flag(flag: str) -> bool:
    return any(
        line.startswith("flags") and flag in line.split()
        for line in Path("/proc/cpuinfo").read_text().splitlines()
    )


if __name__ == "__main__":
    main()
