"""A closed-loop load generator for the three served paths, shared by the benchmark scripts.

Each of `clients` coroutines sends one request, waits for the answer, and sends the next,
until a request budget or a deadline is reached. Paths:
- `json`: BentoML JSON API `POST /products/generate` (count 1);
- `oip-http`: OIP REST infer with Triton binary tensors;
- `grpc`: OIP gRPC ModelInfer with raw contents.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

import numpy as np

GEN = "products-generator"
PATHS = ("json", "oip-http", "grpc")


@dataclass
class LevelResult:
    path: str
    clients: int
    images_per_request: int
    latencies_s: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0

    def summary(self) -> dict:
        lat = sorted(self.latencies_s) or [float("nan")]

        def pct(p: float) -> float:
            return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000

        n = len(self.latencies_s)
        return {
            "path": self.path,
            "clients": self.clients,
            "batch": self.images_per_request,
            "requests": n,
            "errors": sum(self.errors.values()),
            "error_kinds": self.errors,
            "rps": n / self.elapsed_s if self.elapsed_s else 0.0,
            "images_per_s": n * self.images_per_request / self.elapsed_s if self.elapsed_s else 0.0,
            "p50_ms": pct(0.50),
            "p90_ms": pct(0.90),
            "p99_ms": pct(0.99),
        }


def _error_kind(exc: Exception) -> str:
    """HTTP status, gRPC status code, or exception type: how the table counts errors."""
    status = getattr(exc, "status", None)  # aiohttp.ClientResponseError
    if isinstance(status, int):
        return str(status)
    code = getattr(exc, "code", None)
    if callable(code):
        return str(code())
    return type(exc).__name__


def oip_http_body(z: np.ndarray, label: np.ndarray) -> tuple[bytes, dict[str, str]]:
    """An OIP REST infer body with both inputs and the output as binary tensors."""
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "z",
                    "datatype": "FP32",
                    "shape": list(z.shape),
                    "parameters": {"binary_data_size": z.nbytes},
                },
                {
                    "name": "label",
                    "datatype": "INT64",
                    "shape": list(label.shape),
                    "parameters": {"binary_data_size": label.nbytes},
                },
            ],
            "outputs": [{"name": "image", "parameters": {"binary_data": True}}],
        }
    ).encode()
    return header + z.tobytes() + label.tobytes(), {
        "Inference-Header-Content-Length": str(len(header))
    }


async def run_level(
    path: str,
    clients: int,
    *,
    url: str,
    grpc_target: str,
    nz: int,
    batch: int = 1,
    seconds: float | None = None,
    requests: int | None = None,
) -> LevelResult:
    """Drive one path with `clients` closed-loop clients for `seconds` or `requests` in total."""
    import aiohttp
    import grpc
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    result = LevelResult(path, clients, batch)
    budget = [requests if requests is not None else float("inf")]
    deadline = time.perf_counter() + (seconds if seconds is not None else float("inf"))
    rng = np.random.default_rng(0)
    zs = rng.standard_normal((64, batch, nz), dtype=np.float32)
    # aiohttp, not httpx: httpx's async pool serialises on a lock and, at 64 concurrent
    # requests on 2 cores, became the bottleneck it was supposed to measure.
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:
        channel = grpc.aio.insecure_channel(grpc_target)
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)

        async def one(i: int) -> None:
            z, label = zs[i % 64], np.full(batch, i % 10, dtype=np.int64)
            if path == "json":
                body = {"category": i % 10, "count": batch, "seed": i}
                async with client.post(f"{url}/products/generate", json=body) as r:
                    await r.read()
                    r.raise_for_status()
            elif path == "oip-http":
                data, headers = oip_http_body(z, label)
                async with client.post(
                    f"{url}/v2/models/{GEN}/infer", data=data, headers=headers
                ) as r:
                    await r.read()
                    r.raise_for_status()
            else:
                req = service_pb2.ModelInferRequest(model_name=GEN)
                req.inputs.add(name="z", datatype="FP32", shape=[batch, nz])
                req.inputs.add(name="label", datatype="INT64", shape=[batch])
                req.raw_input_contents.extend([z.tobytes(), label.tobytes()])
                await stub.ModelInfer(req, timeout=60)

        async def worker(w: int) -> None:
            i = w
            while time.perf_counter() < deadline and budget[0] > 0:
                budget[0] -= 1
                t0 = time.perf_counter()
                try:
                    await one(i)
                    result.latencies_s.append(time.perf_counter() - t0)
                except Exception as exc:  # every failure kind is counted, none is fatal
                    key = _error_kind(exc)
                    result.errors[key] = result.errors.get(key, 0) + 1
                i += clients

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(clients)))
        result.elapsed_s = time.perf_counter() - t0
        await channel.close()
    return result
