"""The family contract end to end: a family that lives only in tests/toyfamily plugs in with one
registry entry (``ECOMGAN_FAMILIES``), then trains, exports, registers and serves over its JSON
API, OIP HTTP and OIP gRPC, beside the built-in families."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from ecomgan.seeding import latent
from tests.conftest import REPO, base_env, run_cli, start_server, stop_server
from tests.toyfamily.api import ToyAPI

pytestmark = pytest.mark.integration
ENTRY = {"ECOMGAN_FAMILIES": "tests.toyfamily:FAMILY"}


def test_toy_family_trains_exports_and_serves(tmp_path):
    home = tmp_path / "bentoml"
    env = {**base_env(home), **ENTRY}
    run, export = tmp_path / "run", tmp_path / "export"
    run_cli("train", "--family", "toy", "--steps", "40", "--out", str(run), env=env)
    checkpoint = run / "checkpoint.pt"
    out = run_cli("export", "--family", "toy", "--checkpoint", str(checkpoint),
                  "--out", str(export), env=env).stdout  # fmt: skip
    assert "registered generator: toy-generator:" in out
    manifest = json.loads((export / "manifest.json").read_text())
    assert manifest["family"] == "toy" and "quality" not in manifest  # no gates declared
    assert all(e["validation"]["max_abs_diff"] < 1e-4 for e in manifest["roles"].values())
    listed = run_cli("register", env=env).stdout  # the built-in shipped models; toy ships none
    assert "toy: ships no models" in listed and "products-generator:" in listed
    # The optional write_samples hook, from the checkpoint and from the exported folder.
    run_cli("sample", "--family", "toy", "--checkpoint", str(checkpoint), "--count", "5",
            "--seed", "7", "--out", str(tmp_path / "ckpt.txt"), env=env)  # fmt: skip
    run_cli("sample", "--from", str(export), "--count", "5", "--seed", "7",
            "--out", str(tmp_path / "onnx.txt"), env=env)  # fmt: skip
    np.testing.assert_allclose(np.loadtxt(tmp_path / "ckpt.txt"),
                               np.loadtxt(tmp_path / "onnx.txt"), atol=1e-5)  # fmt: skip

    session = ort.InferenceSession(str(export / "generator.onnx"))
    disc = ort.InferenceSession(str(export / "discriminator.onnx"))
    nz = session.get_inputs()[0].shape[1]
    srv = start_server(home, tmp_path / "serve.log", {**ENTRY, "ECOMGAN_SKIP_SHIPPED": "1"})
    try:
        body = ToyAPI.examples["toy_generate"]
        r = httpx.post(f"{srv.url}/toy/generate", json=body, timeout=30)
        assert r.status_code == 200, r.text
        want = session.run(None, {"z": latent(body["count"], nz, body["seed"])})[0][:, 0]
        np.testing.assert_allclose(r.json()["values"], want, atol=1e-6)
        assert r.json()["seed"] == body["seed"]
        bad = httpx.post(f"{srv.url}/toy/generate", json={"count": 0}, timeout=30)
        assert bad.status_code == 400 and "count must be" in bad.text
        for name in ("toy-discriminator", "products-generator", "shoppers-generator"):
            assert httpx.get(f"{srv.url}/v2/models/{name}", timeout=30).status_code == 200
        for protocol, url in (("http", srv.url.removeprefix("http://")),
                              ("grpc", srv.grpc_target)):  # fmt: skip
            folder = tmp_path / protocol
            folder.mkdir()
            proc = subprocess.run(
                [sys.executable, str(REPO / "tests/toyfamily/oip_client.py"), protocol, url,
                 str(nz), str(folder)],
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            assert proc.returncode == 0, proc.stdout + proc.stderr
            z, x = np.load(folder / "z.npy"), np.load(folder / "x.npy")
            np.testing.assert_allclose(x, session.run(None, {"z": z})[0], atol=1e-6)
            np.testing.assert_allclose(np.load(folder / "logit.npy"),
                                       disc.run(None, {"x": x})[0], atol=1e-6)  # fmt: skip
            meta = json.loads((folder / "meta.json").read_text())
            assert meta["ready"] and meta["meta"]["name"] == "toy-generator"
    finally:
        stop_server(srv)
