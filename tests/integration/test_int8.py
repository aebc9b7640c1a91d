"""ECOMGAN_PRECISION=int8 through a real `bentoml serve`: INT8 discriminator and calibration.

Needs the shipped folder to hold ``discriminator.int8.onnx`` (``ecomgan quantize``).
"""

from __future__ import annotations

import json

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from ecomgan.images import to_model_range
from tests.conftest import REPO, start_server, stop_server

pytestmark = pytest.mark.integration

FOLDER = REPO / "models" / "products"


@pytest.fixture(scope="module")
def int8_server(shipped_home, tmp_path_factory):
    entry = json.loads((FOLDER / "manifest.json").read_text())["roles"]["discriminator"]
    if "int8" not in entry:
        pytest.fail(f"{FOLDER} has no INT8 discriminator; run `ecomgan quantize --family products`")
    log = tmp_path_factory.mktemp("logs-int8") / "serve.log"
    srv = start_server(shipped_home, log, {"ECOMGAN_PRECISION": "int8"})
    yield srv, entry["int8"]
    stop_server(srv)


def test_int8_discriminator_serves_scores_with_its_own_calibration(int8_server):
    srv, int8 = int8_server
    gen = httpx.post(f"{srv.url}/products/generate", json={"category": 7, "count": 8, "seed": 3})
    pixels = np.asarray(gen.json()["images"], dtype=np.uint8)  # (8, 28, 28)
    labels = np.full(8, 7, dtype=np.int64)
    r = httpx.post(
        f"{srv.url}/products/score_arrays",
        json={"images": pixels.tolist(), "categories": labels.tolist()},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    cal = int8["calibration"]
    assert body["threshold"] == cal["threshold"] and body["target_fpr"] == cal["target_fpr"]
    served = np.array([x["logit"] for x in body["results"]])
    feeds = {"image": to_model_range(pixels)[:, None], "label": labels}
    expect = {
        name: ort.InferenceSession(str(FOLDER / name), providers=["CPUExecutionProvider"])
        .run(None, feeds)[0]
        .reshape(-1)
        for name in ("discriminator.int8.onnx", "discriminator.onnx")
    }
    np.testing.assert_allclose(served, expect["discriminator.int8.onnx"], atol=1e-4)
    assert np.abs(served - expect["discriminator.onnx"]).max() > 1e-3  # not the FP32 file
    p = 1 / (1 + np.exp(-(cal["a"] * served + cal["b"])))
    np.testing.assert_allclose([x["p_synthetic"] for x in body["results"]], p, rtol=1e-6)

    meta = httpx.get(f"{srv.url}/v2/models/products-discriminator").json()["parameters"]
    assert float(meta["threshold"]) == cal["threshold"]
    assert float(meta["calibration_a"]) == cal["a"] and float(meta["calibration_b"]) == cal["b"]
    assert meta["precision"] == "int8"
    gen = httpx.get(f"{srv.url}/v2/models/products-generator").json()["parameters"]
    assert gen["precision"] == "fp32"
    # The generator has no INT8 file: FP32, with a warning (the INFO "loaded" lines are not
    # shown under BentoML's logging configuration).
    assert "products-generator" in srv.log_text() and "no INT8 file" in srv.log_text()
