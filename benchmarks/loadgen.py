"""A closed-loop load generator for the served paths, shared by the benchmark scripts.

Each of `clients` coroutines sends one request, waits for the answer, and sends the next,
until a request budget or a deadline is reached. Paths:
- `json`: the JSON API `POST /products/generate` (our bento, and the Starlette peer's copy);
- `json-b64`: the same with ``"encoding": "base64"`` (pixels as one base64 string);
- `oip-http`: OIP REST infer with Triton's binary tensor data extension;
- `oip-json`: OIP REST infer with tensors as JSON lists;
- `grpc`: OIP gRPC ModelInfer with raw contents.

Request bodies are built once per run (64 distinct ones, reused round-robin), so the client's
share of the shared CPUs is spent on I/O, the same for every server it drives.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

import numpy as np

GEN = "products-generator"
PATHS = ("json", "json-b64", "oip-http", "grpc")
ALL_PATHS = (*PATHS, "oip-json")
_DISTINCT = 64


class BadResponse(Exception):
    """A 2xx answer whose output tensor has the wrong size: counted as an error, not a success."""


@dataclass
class LevelResult:
    path: str
    clients: int
    images_per_request: int
    latencies_s: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    server_cpu_s: float | None = None
    client_cpu_s: float = 0.0

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
            "server_cpu_s": self.server_cpu_s,
            "client_cpu_s": self.client_cpu_s,
            "images_per_cpu_s": (
                n * self.images_per_request / self.server_cpu_s if self.server_cpu_s else None
            ),
        }


def _error_kind(exc: Exception) -> str:
    """HTTP status, gRPC status code, or exception type: how the table counts errors."""
    status = getattr(exc, "status", None)  # aiohttp.ClientResponseError
    if isinstance(status, int):
        return str(status)
    code = getattr(exc, "code", None)
    if callable(code):
        return str(code())
    if isinstance(exc, BadResponse):
        return "bad-response"
    return type(exc).__name__


def oip_json_body(z: np.ndarray, label: np.ndarray) -> bytes:
    """An OIP REST infer body with both inputs as JSON lists (the protocol's base form)."""
    return json.dumps(
        {
            "inputs": [
                {
                    "name": "z",
                    "datatype": "FP32",
                    "shape": list(z.shape),
                    "data": z.ravel().tolist(),
                },
                {
                    "name": "label",
                    "datatype": "INT64",
                    "shape": list(label.shape),
                    "data": label.tolist(),
                },
            ]
        }
    ).encode()


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


def _payloads(path: str, batch: int, nz: int, model: str) -> list:
    """`_DISTINCT` ready-to-send requests for `path` (bodies, or protobuf messages for gRPC)."""
    from tritonclient.grpc import service_pb2

    rng = np.random.default_rng(0)
    out = []
    for i in range(_DISTINCT):
        z = rng.standard_normal((batch, nz), dtype=np.float32)
        label = np.full(batch, i % 10, dtype=np.int64)
        if path == "json":
            out.append({"category": i % 10, "count": batch, "seed": i})
        elif path == "json-b64":
            out.append({"category": i % 10, "count": batch, "seed": i, "encoding": "base64"})
        elif path == "oip-http":
            out.append(oip_http_body(z, label))
        elif path == "oip-json":
            out.append(oip_json_body(z, label))
        else:
            req = service_pb2.ModelInferRequest(model_name=model)
            req.inputs.add(name="z", datatype="FP32", shape=[batch, nz])
            req.inputs.add(name="label", datatype="INT64", shape=[batch])
            req.raw_input_contents.extend([z.tobytes(), label.tobytes()])
            out.append(req)
    return out


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
    model: str = GEN,
    item_bytes: int | None = None,
    cpu=None,
) -> LevelResult:
    """Drive one path with `clients` closed-loop clients for `seconds` or `requests` in total.

    Args:
        path: One of `ALL_PATHS`.
        clients: Concurrent closed-loop clients.
        url: Base HTTP URL of the server.
        grpc_target: host:port of its OIP gRPC endpoint.
        nz: Latent size of the generator (the `z` input is (batch, nz)).
        batch: Images per request.
        seconds: Run until this deadline ...
        requests: ... or until this many requests were sent, whichever comes first.
        model: OIP model name.
        item_bytes: Bytes of one image in the output; when given, OIP answers whose output
            is not `batch * item_bytes` long count as `bad-response` errors.
        cpu: A `benchmarks.machine.TreeCPU` of the server, read around the timed part.

    Returns:
        Latencies, error counts, elapsed time and (with `cpu`) the server's CPU seconds.
    """
    import aiohttp
    import grpc
    from tritonclient.grpc import service_pb2_grpc

    if path not in ALL_PATHS:
        raise ValueError(f"unknown path {path!r}; use one of {', '.join(ALL_PATHS)}")
    result = LevelResult(path, clients, batch)
    payloads = _payloads(path, batch, nz, model)
    expect = batch * item_bytes if item_bytes else None
    infer_url = f"{url}/v2/models/{model}/infer"
    # aiohttp, not httpx: httpx's async pool serialises on a lock and, at 64 concurrent
    # requests on 2 cores, became the bottleneck it was supposed to measure.
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:
        channel = grpc.aio.insecure_channel(grpc_target)
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)

        async def one(i: int) -> None:
            payload = payloads[i % _DISTINCT]
            if path in ("json", "json-b64"):
                async with client.post(f"{url}/products/generate", json=payload) as r:
                    body = await r.read()
                    r.raise_for_status()
                if expect is not None and len(body) < batch * item_bytes // 4:
                    raise BadResponse(f"a {len(body)}-byte answer for {batch} images")
            elif path == "oip-http":
                data, headers = payload
                async with client.post(infer_url, data=data, headers=headers) as r:
                    body = await r.read()
                    r.raise_for_status()
                head = int(r.headers.get("Inference-Header-Content-Length", len(body)))
                if expect is not None and len(body) - head != expect:
                    raise BadResponse(f"{len(body) - head} output bytes, expected {expect}")
            elif path == "oip-json":
                headers = {"Content-Type": "application/json"}
                async with client.post(infer_url, data=payload, headers=headers) as r:
                    body = await r.read()
                    r.raise_for_status()
                if expect is not None:
                    got = 4 * sum(len(o["data"]) for o in json.loads(body)["outputs"])
                    if got != expect:
                        raise BadResponse(f"{got} output bytes, expected {expect}")
            else:
                reply = await stub.ModelInfer(payload, timeout=60)
                got = sum(len(b) for b in reply.raw_output_contents)
                if expect is not None and got != expect:
                    raise BadResponse(f"{got} output bytes, expected {expect}")

        await _closed_loop(result, one, clients, seconds, requests, cpu)
        await channel.close()
    return result


async def _closed_loop(result: LevelResult, one, clients: int, seconds: float | None,
                       requests: int | None, cpu) -> None:  # fmt: skip
    """Run `clients` closed-loop workers of `one(i)` (client `w` sends i = w, w + clients,
    ...) until the deadline or the request budget; record latencies, errors, times in
    `result`."""
    budget = [requests if requests is not None else float("inf")]
    deadline = time.perf_counter() + (seconds if seconds is not None else float("inf"))

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

    if cpu is not None:
        cpu.start()
    t0, c0 = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker(w) for w in range(clients)))
    result.elapsed_s = time.perf_counter() - t0
    result.client_cpu_s = time.process_time() - c0
    if cpu is not None:
        result.server_cpu_s = cpu.stop()


@dataclass(frozen=True)
class Prepared:
    """One ready-to-send HTTP POST: absolute URL, body bytes and headers."""

    url: str
    body: bytes
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})


async def run_prepared(
    label: str,
    payloads: list[Prepared],
    clients: int,
    *,
    items: int = 1,
    seconds: float | None = None,
    requests: int | None = None,
    check=None,
    cpu=None,
) -> LevelResult:
    """Drive prepared POSTs (round-robin) with `clients` closed-loop clients, like `run_level`.

    Args:
        label: The `path` of the returned `LevelResult` (e.g. the route).
        payloads: Requests to send; client `w` sends `payloads[w]`, then every `clients`-th.
        clients: Concurrent closed-loop clients.
        items: Items (rows, paths, texts, ...) one request asks for.
        seconds: Run until this deadline ...
        requests: ... or until this many requests were sent, whichever comes first.
        check: Called with each 2xx body (bytes); a falsy return or any exception counts
            the request as a `bad-response` error.
        cpu: A `benchmarks.machine.TreeCPU` of the server, read around the timed part.

    Returns:
        Latencies, error counts, elapsed time and (with `cpu`) the server's CPU seconds.
    """
    import aiohttp

    if not payloads:
        raise ValueError("no payloads to send")
    result = LevelResult(label, clients, items)
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:

        async def one(p: Prepared) -> None:
            async with client.post(p.url, data=p.body, headers=p.headers) as r:
                body = await r.read()
                r.raise_for_status()
            if check is not None:
                try:
                    ok = check(body)
                except Exception as exc:
                    raise BadResponse(f"{type(exc).__name__}: {exc}") from exc
                if not ok:
                    raise BadResponse(body[:200].decode(errors="replace"))

        async def send(i: int) -> None:
            await one(payloads[i % len(payloads)])

        await _closed_loop(result, send, clients, seconds, requests, cpu)
    return result
