"""Overload is a clear 503, never a 500: BentoML's batcher treats max_latency_ms as a deadline."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import start_server, stop_server

pytestmark = pytest.mark.integration


def test_deadline_misses_are_503_not_500(shipped_home, tmp_path):
    # A 1 ms deadline makes the dispatcher refuse most requests at once.
    srv = start_server(
        shipped_home, tmp_path / "serve.log", {"ECOMGAN_PRODUCTS_GENERATOR_MAX_LATENCY_MS": "1"}
    )
    try:

        def call(i: int) -> tuple[int, str]:
            r = httpx.post(
                f"{srv.url}/products/generate",
                json={"category": i % 10, "count": 4, "seed": i},
                timeout=60,
            )
            return r.status_code, r.text

        def oip(i: int) -> tuple[int, str]:
            body = {
                "inputs": [
                    {"name": "z", "datatype": "FP32", "shape": [1, nz], "data": [0.0] * nz},
                    {"name": "label", "datatype": "INT64", "shape": [1], "data": [i % 10]},
                ]
            }
            r = httpx.post(f"{srv.url}/v2/models/products-generator/infer", json=body, timeout=60)
            return r.status_code, r.text

        nz = httpx.get(f"{srv.url}/v2/models/products-generator").json()["inputs"][0]["shape"][1]
        with ThreadPoolExecutor(32) as pool:
            results = list(pool.map(call, range(160))) + list(pool.map(oip, range(160)))
        statuses = [s for s, _ in results]
        assert set(statuses) <= {200, 503}, {s: statuses.count(s) for s in set(statuses)}
        assert 503 in statuses
        assert all("overloaded" in text for s, text in results if s == 503)
        assert httpx.get(f"{srv.url}/livez").status_code == 200
    finally:
        stop_server(srv)
