"""The performance suite's smoke run (`python -m benchmarks.run --smoke`), so it cannot rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import report
from benchmarks.peers.launch import KSERVE_VENV
from benchmarks.run import PEER_PATHS, SERVED_PATHS, SMOKE, VARIANTS, Plan

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--smoke", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, json.loads((out / "performance.json").read_text())


def test_smoke_writes_table_and_plots(smoke):
    out, result = smoke
    text = (out / "performance.md").read_text()
    for heading in ("In-process ceiling", "Served paths and peers", "Targets (issue 7", "issue 16"):
        assert heading in text
    for name in ("throughput", "latency", "ceiling"):
        png = out / f"performance_{name}.png"
        assert png.read_bytes()[:8] == PNG_MAGIC, png
    for key in ("CPU", "cgroup CPU quota", "RAM", "GPU", "ORT providers", "versions"):
        assert result["machine"][key], key


def test_smoke_measures_every_runtime_and_batch(smoke):
    _, result = smoke
    seen = {(r["model"], r["runtime"], r["batch"]) for r in result["ceiling"]}
    for model in ("generator", "discriminator"):
        for runtime in ("onnxruntime", "pytorch eager"):
            for batch in SMOKE.batches:
                assert (model, runtime, batch) in seen
    assert all(r["images_per_s"] > 0 and r["images_per_cpu_s"] > 0 for r in result["ceiling"])


def test_smoke_drives_every_path_without_errors(smoke):
    _, result = smoke
    ours = [r for r in result["served"] if r["server"] == report.OURS and r["batch"] == 1]
    assert {(r["path"], r["clients"]) for r in ours} == {
        (p, c) for p in SERVED_PATHS for c in SMOKE.levels
    }
    for label, _, paths in VARIANTS.values():
        rows = [r for r in result["served"] if r["server"] == label]
        assert {(r["path"], r["clients"]) for r in rows} == {
            (p, c) for p in paths for c in SMOKE.levels
        }, label
    peer = {(r["path"], r["clients"]) for r in result["served"] if r["server"] == report.PEER}
    assert peer == {(p, c) for p in PEER_PATHS["starlette"] for c in SMOKE.levels}
    big = [r for r in result["served"] if r["server"] == report.OURS and r["batch"] > 1]
    assert [(r["batch"], r["clients"]) for r in big] == [(SMOKE.big_batch, SMOKE.big_clients)]
    ours = {report.OURS, report.OURS_OFF} | {label for label, _, _ in VARIANTS.values()}
    peers = {r["server"] for r in result["served"]} - ours
    expected = {"Starlette + ORT"} | ({"KServe ModelServer"} if KSERVE_VENV.exists() else set())
    assert peers == expected
    for r in result["served"]:
        assert r["requests"] > 0 and r["errors"] == 0, r
        assert r["server_cpu_s"] > 0, r
    off = [r for r in result["served"] if r["server"] == report.OURS_OFF]
    assert len(off) == 1, "batching off is measured"


def test_smoke_targets_are_judged_from_measurements(smoke):
    _, result = smoke
    rows = report.targets(result)
    assert len(rows) == 9
    by_name = {name: verdict for name, _, _, verdict in rows}
    # The smoke has no 64-client level: those targets must say so, not pass.
    assert by_name["OIP gRPC @64 clients >= 2x the better peer, p99 <= its p99"] == ("not measured")
    for name, _, ratio, verdict in rows:
        if "PyTorch" in name or "p99 @16" in name:
            assert verdict in ("pass", "miss") and float(ratio) > 0, name


def test_eager_modules_carry_the_onnx_weights():
    from benchmarks.ceiling import torch_models

    _, _, note = torch_models()
    assert note.count("ONNX weights") == 2, note


def test_targets_compare_against_the_better_peer():
    row = {"batch": 1, "errors": 0, "error_kinds": {}, "server_cpu_s": 1.0}
    served = [
        {**row, "server": report.OURS, "path": "grpc", "clients": 64, "rps": 900.0,
         "p99_ms": 40.0, "images_per_s": 900.0, "images_per_cpu_s": 500.0},
        {**row, "server": "Starlette + ORT", "path": "oip-http", "clients": 64, "rps": 400.0,
         "p99_ms": 90.0, "images_per_s": 400.0, "images_per_cpu_s": 300.0},
        {**row, "server": "KServe ModelServer", "path": "grpc", "clients": 64, "rps": 500.0,
         "p99_ms": 60.0, "images_per_s": 500.0, "images_per_cpu_s": 300.0},
    ]  # fmt: skip
    ceiling = [
        {"model": "generator", "runtime": "onnxruntime", "device": "cpu", "batch": 64,
         "images_per_s": 2000.0, "images_per_cpu_s": 1000.0},
    ]  # fmt: skip
    rows = report.targets({"served": served, "ceiling": ceiling, "ort_device": "cpu"})
    name, measured, ratio, verdict = rows[0]
    assert "KServe" in measured and ratio == "1.80" and verdict == "miss"
    assert rows[1][2:] == ("0.50", "pass")


@pytest.mark.parametrize(
    "kwargs", [{"levels": ()}, {"levels": (0, 4)}, {"seconds": 0}, {"peers": ("triton",)}]
)
def test_plan_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError):
        Plan(**kwargs)


def test_issue_16_targets_need_throughput_and_p99():
    row = {"batch": 1, "errors": 0, "error_kinds": {}, "server_cpu_s": 1.0}

    def r(server, path, clients, rps, p99):
        return {**row, "server": server, "path": path, "clients": clients, "rps": rps,
                "p99_ms": p99, "images_per_s": rps, "images_per_cpu_s": rps / 2}  # fmt: skip

    served = [
        r(report.OURS, "json", 16, 1000.0, 20.0), r(report.PEER, "json", 16, 900.0, 25.0),
        r(report.OURS, "json", 64, 1000.0, 90.0), r(report.PEER, "json", 64, 900.0, 80.0),
        r(report.OURS, "grpc", 64, 1700.0, 50.0), r(report.KSERVE, "grpc", 64, 800.0, 60.0),
    ]  # fmt: skip
    ceiling = [
        {"model": "generator", "runtime": "onnxruntime", "device": "cpu", "batch": 64,
         "images_per_s": 2000.0, "images_per_cpu_s": 1000.0},
    ]  # fmt: skip
    rows = {name: (ratio, verdict) for name, _, ratio, verdict in report.targets_16(
        {"served": served, "ceiling": ceiling, "ort_device": "cpu"})}  # fmt: skip
    assert rows["JSON API @16 >= Starlette + ORT"] == ("1.11", "pass")
    assert rows["JSON API @64 >= Starlette + ORT"] == ("1.11", "miss")  # p99 above the peer's
    assert rows["OIP gRPC @64 >= 2x KServe ModelServer"] == ("2.12", "pass")
    assert rows["OIP HTTP binary @16 >= KServe ModelServer"][1] == "not measured"
    assert rows["images per server CPU-s @64 >= 0.6x ceiling (OIP gRPC)"] == ("0.85", "pass")


def test_profile_frames_go_to_their_innermost_component():
    from benchmarks.profile_paths import classify, fold

    bentoml_mw = "RunnerTrafficMetricsMiddleware.__call__ (bentoml/_internal/server/http/x.py:1)"
    ours = "infer (serving/oip_http.py:260)"
    assert classify(["Runner.run (asyncio/runners.py:118)", bentoml_mw, ours]) == (
        "our request code (serving/, ecomgan/)"
    )
    assert classify(["Runner.run (asyncio/runners.py:118)", bentoml_mw]) == (
        "BentoML per-request middleware"
    )
    model = ["_worker (x.py:1)", "run_session (serving/runtime.py:9)", "Session.run (ort.py:406)"]
    assert classify(model) == "model run (ONNX Runtime)"
    raw = "a;Runner.run (asyncio/runners.py:118) 3\nb;loads (json/__init__.py:1) 1\n"
    assert fold(raw) == {"event loop native code (uvloop, gRPC core)": 3, "JSON encode/decode": 1}


def test_profile_smoke(tmp_path):
    import shutil

    if shutil.which("py-spy") is None:
        pytest.skip("py-spy is not installed")
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.profile_paths", "--seconds", "2", "--clients", "8",
         "--paths", "oip-http", "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if proc.returncode != 0 and "ermission" in proc.stderr:
        pytest.skip(f"py-spy may not attach here: {proc.stderr.strip()[-200:]}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads((tmp_path / "serving_profile.json").read_text())
    assert [(r["path"], r["fast_lane"]) for r in rows] == [("oip-http", "on"), ("oip-http", "off")]
    for r in rows:
        assert abs(sum(r["shares"].values()) - 1) < 1e-6 and r["server_cpu_us_per_request"] > 0
    on, off = rows
    bento_mw = "BentoML per-request middleware"
    assert on["shares"].get(bento_mw, 0) < off["shares"][bento_mw]
