"""Bulk shoppers generation: `ecomgan sample` and the API's CSV stream write the same rows in
constant-size chunks (issue: bulk generation for data teams)."""

from __future__ import annotations

import gzip

import httpx
import pytest

from serving.shoppers import CSV_CHUNK
from tests.conftest import REPO, run_cli, start_server, stop_server

pytestmark = pytest.mark.integration

ROWS = 2 * CSV_CHUNK + 123  # three chunks, the last one short


@pytest.fixture(scope="module")
def bulk_server(shipped_home, tmp_path_factory):
    log = tmp_path_factory.mktemp("logs-bulk") / "serve.log"
    srv = start_server(shipped_home, log, {"ECOMGAN_MAX_ROWS": str(ROWS)})
    yield srv
    stop_server(srv)


def test_csv_stream_equals_ecomgan_sample(bulk_server, tmp_path):
    payload = {"count": ROWS, "seed": 17, "conditions": {"VisitorType": "New_Visitor"},
               "format": "csv"}  # fmt: skip
    with httpx.stream("POST", f"{bulk_server.url}/shoppers/generate", json=payload,
                      timeout=120) as r:  # fmt: skip
        assert r.status_code == 200 and r.headers["x-ecomgan-seed"] == "17"
        assert "content-length" not in r.headers  # streamed, not built whole
        pieces = list(r.iter_text())
    served = "".join(pieces)
    assert served.count("\n") == ROWS + 1

    for name in ("rows.csv", "rows.csv.gz"):
        run_cli("sample", "--from", str(REPO / "models" / "shoppers"), "--count", str(ROWS),
                "--seed", "17", "--condition", "VisitorType=New_Visitor",
                "--out", str(tmp_path / name), env=bulk_server.env)  # fmt: skip
    assert (tmp_path / "rows.csv").read_text() == served
    packed = (tmp_path / "rows.csv.gz").read_bytes()
    assert gzip.decompress(packed).decode() == served
    assert packed[4:8] == b"\0\0\0\0"  # no time stamp: the same seed writes the same bytes

    # The API's first CSV_CHUNK rows are a short request's rows: chunking changes nothing.
    short = httpx.post(f"{bulk_server.url}/shoppers/generate",
                       json={**payload, "count": 50}, timeout=60).text  # fmt: skip
    assert served.startswith(short)


def test_over_the_cap_is_refused_before_streaming(bulk_server):
    r = httpx.post(f"{bulk_server.url}/shoppers/generate",
                   json={"count": ROWS + 1, "format": "csv"}, timeout=60)  # fmt: skip
    assert r.status_code == 400 and f"count must be 1..{ROWS}" in r.json()["error"]
