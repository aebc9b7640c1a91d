"""The backbone end to end: train one step, export with parity checks, register, serve, call."""

from __future__ import annotations

import json
import subprocess
import sys

import bentoml
import numpy as np
import pytest
import yaml

from ecomgan.families import FAMILIES, model_names
from ecomgan.seeding import latent
from tests.conftest import REPO, base_env, run_cli, start_server, stop_server

pytestmark = pytest.mark.integration


def test_train_export_register_serve(tmp_path, data_dir):
    home = tmp_path / "bentoml"
    env = base_env(home)
    env["ECOMGAN_SKIP_SHIPPED"] = "1"
    run = tmp_path / "run"
    run_cli("train", "--family", "products", "--dry-run", "--out", str(run), env=env)
    assert (run / "checkpoint.pt").is_file() and (run / "metrics.jsonl").is_file()
    export = tmp_path / "export"
    run_cli(
        "export",
        "--family",
        "products",
        "--checkpoint",
        str(run / "checkpoint.pt"),
        "--out",
        str(export),
        "--allow-below-gates",
        env=env,
    )
    manifest = json.loads((export / "manifest.json").read_text())
    for role in ("generator", "discriminator"):
        assert (export / f"{role}.onnx").is_file()
    text = json.dumps(manifest)
    assert "max_abs_diff" in text and "sha256" in text

    # The bento serves every family: the others come from their shipped defaults.
    for family in FAMILIES:
        if family != "products":
            run_cli("register", "--family", family, env=env)
    srv = start_server(home, tmp_path / "serve.log", {"ECOMGAN_SKIP_SHIPPED": "1"})
    try:
        with bentoml.SyncHTTPClient(srv.url) as client:
            out = client.products_generate(category="Bag", count=3, seed=11)
        import onnxruntime as ort

        session = ort.InferenceSession(str(export / "generator.onnx"))
        nz = session.get_inputs()[0].shape[1]
        want = session.run(None, {"z": latent(3, nz, 11), "label": np.full(3, 8, np.int64)})[0]
        want_pixels = np.clip(np.rint((want[:, 0] + 1) * 127.5), 0, 255)
        got = np.asarray(out["images"])
        assert np.abs(got - want_pixels).max() <= 1
    finally:
        stop_server(srv)


def test_bento_builds_with_models(shipped_home):
    env = base_env(shipped_home)
    proc = subprocess.run(
        [sys.executable, "-m", "bentoml", "build", "--output", "tag"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tag = proc.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    bento_dir = shipped_home / "bentos" / tag.split(":")[0] / tag.split(":")[1]
    # BentoML 1.4 records model tags in bento.yaml and copies the files into the image's
    # build context (test_deploy.py checks that context holds both ONNX files).
    info = yaml.safe_load((bento_dir / "bento.yaml").read_text())
    tags = sorted(m["tag"].split(":")[0] for svc in info["services"] for m in svc["models"])
    assert tags == sorted(model_names())
    src = bento_dir / "src"
    assert (src / "service.py").is_file() and not (src / "models").exists()
    assert not list(src.rglob("*.pt")) and not list(src.rglob("gan"))


def test_ecomgan_serve_from_empty_store(tmp_path):
    """A fresh clone serves the shipped models: `ecomgan serve` registers them first."""
    import os
    import signal

    import httpx

    from tests.conftest import free_port, wait_ready

    home = tmp_path / "bentoml"
    env = base_env(home)
    port, grpc_port = free_port(), free_port()
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ecomgan.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--grpc-port",
            str(grpc_port),
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc, tmp_path / "serve.log")
        r = httpx.post(
            f"http://127.0.0.1:{port}/products/generate",
            json={"category": "Dress", "count": 2, "seed": 3},
            timeout=30,
        )
        assert r.status_code == 200 and r.json()["label"] == 3
        names = sorted(p.name for p in (home / "models").iterdir())
        assert names == sorted(model_names())
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
