"""The every-family benchmark's smoke run (`python -m benchmarks.families --smoke`)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.families import SMOKE

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
ROUTES = {
    "shoppers": {"/shoppers/generate", "/shoppers/score"},
    "demand": {"/demand/scenarios", "/demand/stockout"},
    "reviews": {"/reviews/score", "/reviews/generate"},
}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("families")
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.families", "--smoke", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, json.loads((out / "families.json").read_text())


def test_every_family_and_route_at_every_level_without_errors(smoke):
    _, result = smoke
    served = [r for r in result["rows"] if r["clients"] != "in-process"]
    seen = {(r["family"], r["route"], r["clients"]) for r in served}
    for family, routes in ROUTES.items():
        for route in routes:
            for clients in SMOKE.levels:
                assert (family, route, str(clients)) in seen, (family, route, clients)
    generate_counts = {r["label"] for r in served if r["route"] == "/reviews/generate"}
    assert len(generate_counts) == len(SMOKE.review_counts)
    for r in served:
        assert r["errors"] == 0, r
        assert r["requests"] > 0 and r["rps"] > 0 and r["items_per_s"] > 0, r
        assert r["p50_ms"] > 0 and r["p99_ms"] >= r["p50_ms"], r
        assert r["server_cpu_s"] > 0 and r["items_per_cpu_s"] > 0, r


def test_in_process_references_for_every_family(smoke):
    _, result = smoke
    local = [r for r in result["rows"] if r["clients"] == "in-process"]
    assert {r["family"] for r in local} == set(ROUTES)
    assert all(r["items_per_s"] > 0 for r in local)
    ctgan = [r for r in local if r["label"].startswith("ctgan")]
    assert len(ctgan) == (importlib.util.find_spec("ctgan") is not None)


def test_report_has_machine_header_and_one_table(smoke):
    out, result = smoke
    text = (out / "families.md").read_text()
    for key in ("CPU", "RAM", "ORT providers", "versions"):
        assert result["machine"][key] and f"**{key}**" in text, key
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert len(table) == 2 + len(result["rows"])
    for routes in ROUTES.values():
        assert all(f"`{route}`" in text for route in routes)
