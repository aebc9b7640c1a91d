"""The products JSON APIs through a real `bentoml serve`, with `bentoml.SyncHTTPClient`."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import bentoml
import httpx
import numpy as np
import pytest
from PIL import Image

from serving.products import EXAMPLE_GENERATE
from tests.conftest import batch_histogram

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(server):
    with bentoml.SyncHTTPClient(server.url, timeout=60) as c:
        yield c


def png(pixels: np.ndarray, mode: str = "L") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(buf, format="PNG")
    return buf.getvalue()


def test_generate_is_deterministic(client):
    a = client.products_generate(**EXAMPLE_GENERATE)
    b = client.products_generate(**EXAMPLE_GENERATE)
    assert a == b
    assert a["category"] == "Sneaker" and a["label"] == 7 and a["seed"] == 42
    pixels = np.asarray(a["images"], dtype=np.uint8)
    assert pixels.shape == (4, 28, 28) and pixels.std() > 10
    c = client.products_generate(category="sneaker", count=4, seed=43)
    assert c["images"] != a["images"]
    r = client.products_generate(category=7, count=2, seed=None)
    assert isinstance(r["seed"], int)


def test_generate_png(server):
    r = httpx.post(
        f"{server.url}/products/generate_png",
        json={"category": "Bag", "count": 16, "seed": 1, "nrow": 8},
    )
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    img = Image.open(io.BytesIO(r.content))
    assert img.size == (8 * 30 + 2, 2 * 30 + 2)


def test_score_upload_and_arrays(client, server):
    real = np.asarray(client.products_generate(category=0, count=1, seed=5)["images"][0], np.uint8)
    r = httpx.post(
        f"{server.url}/products/score",
        files={"image": ("x.png", png(real), "image/png")},
        data={"category": "0"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert 0.0 <= body["p_synthetic"] <= 1.0 and body["label"] in ("real", "synthetic")
    arrays = client.products_score_arrays(
        images=[real.tolist()] * 3, categories=[0, "T-shirt/top", 0]
    )
    assert len(arrays["results"]) == 3
    assert arrays["results"][0]["p_synthetic"] == pytest.approx(body["p_synthetic"], abs=1e-6)


BAD_JSON = [
    ("/products/generate", {"category": "Spaceship", "count": 2}, "unknown category"),
    ("/products/generate", {"category": 10, "count": 2}, "unknown category"),
    ("/products/generate", {"category": "Bag", "count": 0}, "count must be 1..256"),
    ("/products/generate", {"category": "Bag", "count": -3}, "count must be 1..256"),
    ("/products/generate", {"category": "Bag", "count": 100000}, "count must be 1..256"),
    ("/products/generate", {"category": "Bag", "count": "many"}, "count must be an integer"),
    ("/products/generate", {"category": "Bag", "seed": -1}, "seed must be"),
    ("/products/generate_png", {"category": "Bag", "nrow": 0}, "nrow must be 1..64"),
    ("/products/score_arrays", {"images": [[[0] * 28] * 27], "categories": [0]}, "28x28"),
    (
        "/products/score_arrays",
        {"images": [[[0] * 28] * 28], "categories": [0, 1]},
        "one category per image",
    ),
    ("/products/score_arrays", {"images": [[[300] * 28] * 28], "categories": [0]}, "0..255"),
    (
        "/products/score_arrays",
        {"images": [[[0] * 28] * 28], "categories": ["x"]},
        "unknown category",
    ),
]


@pytest.mark.parametrize(("route", "payload", "fragment"), BAD_JSON)
def test_bad_json_inputs_get_400(server, route, payload, fragment):
    r = httpx.post(server.url + route, json=payload)
    assert r.status_code == 400, (r.status_code, r.text)
    assert fragment in r.text


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"definitely not an image", "cannot decode"),
        (png(np.zeros((32, 32), np.uint8)), "expected 28x28"),
        (png(np.zeros((28, 28), np.uint8), "RGB"), "single-channel"),
    ],
)
def test_bad_uploads_get_400(server, content, fragment):
    r = httpx.post(
        f"{server.url}/products/score",
        files={"image": ("x.png", content, "image/png")},
        data={"category": "Bag"},
    )
    assert r.status_code == 400, (r.status_code, r.text)
    assert fragment in r.text
    assert httpx.get(server.url + "/livez").status_code == 200


def test_concurrent_requests_are_batched(server):
    """64 concurrent clients, 384 requests: zero failures and batches larger than one."""

    def call(i: int) -> int:
        with httpx.Client(timeout=60) as c:
            r = c.post(
                f"{server.url}/products/generate", json={"category": i % 10, "count": 1, "seed": i}
            )
            return r.status_code

    with ThreadPoolExecutor(64) as pool:
        statuses = list(pool.map(call, range(384)))
    assert statuses.count(200) == len(statuses), {s: statuses.count(s) for s in set(statuses)}
    sizes = batch_histogram(httpx.get(server.url + "/metrics").text, "products-generator")
    assert any(size > 1 and count > 0 for size, count in sizes.items()), sizes


def test_score_matches_onnx_and_calibration(client, shipped_home):
    """The score API's probability is the ONNX logit through the stored Platt calibration."""
    import onnxruntime as ort
    import yaml

    from ecomgan.calibration import apply

    name = "products-discriminator"
    version = (shipped_home / "models" / name / "latest").read_text().strip()
    folder = shipped_home / "models" / name / version
    session = ort.InferenceSession(str(folder / "model.onnx"))
    calibration = yaml.safe_load((folder / "model.yaml").read_text())["metadata"]["calibration"]
    pixels = np.random.default_rng(3).integers(0, 256, (5, 28, 28)).astype(np.uint8)
    labels = np.array([0, 3, 5, 7, 9], np.int64)
    got = client.products_score_arrays(images=pixels.tolist(), categories=labels.tolist())
    logit = session.run(
        None, {"image": (pixels / 127.5 - 1).astype(np.float32)[:, None], "label": labels}
    )[0]
    p, flag = apply(calibration, logit)
    assert got["threshold"] == pytest.approx(calibration["threshold"])
    for r, pi, fi, li in zip(got["results"], p, flag, logit, strict=True):
        assert r["logit"] == pytest.approx(float(li), abs=1e-5)
        assert r["p_synthetic"] == pytest.approx(float(pi), abs=1e-6)
        assert r["label"] == ("synthetic" if fi else "real")
