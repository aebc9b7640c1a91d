"""The fast lane answers exactly what BentoML's stack answers: every family's JSON routes and
OIP inference, valid and malformed, against a second server with ``ECOMGAN_FAST_LANE=off``."""

from __future__ import annotations

import re

import httpx
import pytest

from ecomgan.families import FAMILIES
from tests.conftest import start_server, stop_server

pytestmark = pytest.mark.integration


def _cases() -> list[tuple[str, str, bytes, dict]]:
    """(id, route, body, headers): each family example, and malformed variants of it."""
    import json

    cases = []
    for family in FAMILIES.values():
        api = family.load_api()
        for name, example in api.examples.items():
            route = getattr(api, name).route
            first = next(iter(example))
            variants = {
                "example": example,
                "unknown-field": {**example, "zzz": 1},
                "missing-field": {k: v for k, v in example.items() if k != first},
                "wrong-type": {**example, first: {"nested": [1, 2]}},
            }
            for kind, body in variants.items():
                cases.append((f"{name}-{kind}", route, json.dumps(body).encode(), {}))
            cases.append((f"{name}-not-json", route, b"{", {}))
            cases.append((f"{name}-array", route, b"[]", {}))
            cases.append((f"{name}-csv", route, b"a,b", {"content-type": "text/csv"}))
    body = json.dumps({"category": 1, "count": 2, "seed": 3, "encoding": "hex"}).encode()
    cases.append(("products_generate-bad-encoding", "/products/generate", body, {}))
    body = json.dumps({"category": 1, "count": 2, "seed": 3, "encoding": "base64"}).encode()
    cases.append(("products_generate-base64", "/products/generate", body, {}))
    return cases


CASES = _cases()


@pytest.fixture(scope="module")
def bentoml_path(shipped_home, tmp_path_factory):
    srv = start_server(
        shipped_home, tmp_path_factory.mktemp("slow") / "serve.log", {"ECOMGAN_FAST_LANE": "off"}
    )
    yield srv
    stop_server(srv)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_same_answer_as_bentoml(server, bentoml_path, case):
    _, route, body, headers = case
    headers = {"content-type": "application/json", **headers}
    fast = httpx.post(server.url + route, content=body, headers=headers, timeout=60)
    slow = httpx.post(bentoml_path.url + route, content=body, headers=headers, timeout=60)
    assert fast.status_code == slow.status_code, (fast.text[:300], slow.text[:300])
    assert fast.status_code < 500
    if case[0].endswith("bad-encoding"):
        assert fast.status_code == 400 and "'lists' or 'base64'" in fast.json()["error"], fast.text
    if fast.headers["content-type"].startswith("application/json"):
        assert fast.json() == slow.json()
    else:
        assert fast.content == slow.content


def test_scores_and_oip_json_match(server, bentoml_path):
    image = httpx.post(
        server.url + "/products/generate", json={"category": 3, "count": 2, "seed": 5}
    ).json()
    body = {"images": image["images"], "categories": [3, 3]}
    nz = httpx.get(f"{server.url}/v2/models/products-generator").json()["inputs"][0]["shape"][1]
    oip = {
        "inputs": [
            {"name": "z", "datatype": "FP32", "shape": [1, nz], "data": [0.25] * nz},
            {"name": "label", "datatype": "INT64", "shape": [1], "data": [7]},
        ]
    }
    for route, payload in [
        ("/products/score_arrays", body),
        ("/v2/models/products-generator/infer", oip),
        ("/v2/models/products-generator/versions/9/infer", oip),
        ("/v2/models/nope/infer", oip),
    ]:
        fast = httpx.post(server.url + route, json=payload, timeout=60)
        slow = httpx.post(bentoml_path.url + route, json=payload, timeout=60)
        assert (fast.status_code, fast.json()) == (slow.status_code, slow.json()), route


def test_fast_lane_requests_are_counted_on_metrics(server):
    httpx.post(server.url + "/products/generate", json={"category": 1, "count": 1, "seed": 1})
    text = httpx.get(server.url + "/metrics").text
    counted = re.search(
        r'ecomgan_http_requests_total\{[^}]*endpoint="/products/generate"[^}]*'
        r'http_response_code="200"[^}]*\} (\d+)',
        text,
    )
    assert counted and float(counted.group(1)) >= 1, text[:2000]
    assert "ecomgan_http_request_duration_seconds_bucket" in text
