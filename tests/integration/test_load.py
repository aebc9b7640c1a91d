"""Short version of `benchmarks/soak.py`: three protocols at once, no errors, bounded memory."""

from __future__ import annotations

import httpx
import pytest

from benchmarks.soak import run

pytestmark = pytest.mark.integration


def test_mixed_protocol_load_and_short_soak(server):
    nz = httpx.get(f"{server.url}/v2/models/products-generator").json()["inputs"][0]["shape"][1]
    report = run(1500, 48, 20, server, url=server.url, grpc_target=server.grpc_target, nz=nz)
    for row in report["load"] + report["soak"]["results"]:
        assert row["errors"] == 0, row
        assert row["requests"] > 0, row
    assert sum(r["requests"] for r in report["load"]) == 1500
    # 20 s is short for a leak to show; the 5-minute benchmark is the real measurement.
    assert report["soak"]["rss_growth_pct"] < 25, report["soak"]
