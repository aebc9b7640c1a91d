"""The reviews JSON APIs and OIP models (text as BYTES) through a real `bentoml serve`."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from ecomgan.calibration import apply as apply_calibration
from ecomgan.text import WordTokenizer
from serving.reviews import EXAMPLE_GENERATE, MAX_TEXT_CHARS, SYNTHETIC_HEADER
from tests.conftest import REPO
from tests.integration.reviews_oip_client import TEXTS

pytestmark = pytest.mark.integration
SHIPPED = REPO / "models" / "reviews"


def post(server, route: str, payload: dict | bytes) -> httpx.Response:
    url = f"{server.url}/reviews/{route}"
    if isinstance(payload, bytes):
        return httpx.post(url, content=payload, headers={"content-type": "application/json"},
                          timeout=60)  # fmt: skip
    return httpx.post(url, json=payload, timeout=60)


def test_score_equals_onnx_plus_calibration(server):
    r = post(server, "score", {"texts": TEXTS})
    assert r.status_code == 200, r.text
    body = r.json()
    manifest = json.loads((SHIPPED / "manifest.json").read_text())
    cal = manifest["calibration"]
    tok = WordTokenizer.from_dict(json.loads((SHIPPED / "tokenizer.json").read_text()))
    sess = ort.InferenceSession(str(SHIPPED / "discriminator.onnx"))
    feed = {"ids": tok.encode_batch(TEXTS), "subwords": tok.subword_batch(TEXTS)}
    logit = sess.run(["logit"], feed)[0]
    p, flagged = apply_calibration(cal, logit)
    assert body["threshold"] == cal["threshold"] and body["target_fpr"] == cal["target_fpr"]
    for res, pi, fi, li in zip(body["results"], p, flagged, logit, strict=True):
        assert res["p_deceptive"] == pytest.approx(float(pi), abs=1e-6)
        assert res["logit"] == pytest.approx(float(li), abs=1e-5)
        assert res["label"] == ("deceptive" if fi else "truthful")


def test_generate_is_deterministic_and_labelled_synthetic(server):
    a = post(server, "generate", EXAMPLE_GENERATE)
    assert a.status_code == 200, a.text
    assert a.headers[SYNTHETIC_HEADER] == "true"
    body = a.json()
    assert body["synthetic"] is True and body["seed"] == EXAMPLE_GENERATE["seed"]
    assert len(body["reviews"]) == EXAMPLE_GENERATE["count"]
    assert all(r["synthetic"] is True and r["text"] for r in body["reviews"])
    assert post(server, "generate", EXAMPLE_GENERATE).json() == body
    other = post(server, "generate", {**EXAMPLE_GENERATE, "seed": 8}).json()
    assert other["reviews"][0]["text"] == body["reviews"][1]["text"]  # review i: seed + i
    assert other["reviews"] != body["reviews"]


@pytest.mark.parametrize(
    ("route", "payload", "message"),
    [
        ("score", {"texts": [""]}, "text 0 is empty"),
        ("score", {"texts": ["ok", " \n "]}, "text 1 is empty"),
        ("score", {"texts": ["a" * (MAX_TEXT_CHARS + 1)]}, f"at most {MAX_TEXT_CHARS}"),
        ("score", {"texts": ["fine"] * 65}, "1..64 texts"),
        ("score", {"texts": []}, "1..64 texts"),
        ("score", {"texts": [3]}, "texts"),
        ("score", {"texts": "one string"}, "texts"),
        ("score", {"texts": ["ok"], "extra": 1}, "extra"),
        ("score", b'{"texts": ["caf\xe9"]}', ""),
        ("generate", {"polarity": "neutral"}, "'positive' or 'negative'"),
        ("generate", {"polarity": "positive", "count": 65}, "count must be 1..64"),
        ("generate", {"polarity": "positive", "count": 0}, "count must be 1..64"),
        ("generate", {"polarity": "positive", "max_tokens": 301}, "max_tokens must be 1..300"),
        ("generate", {"polarity": "positive", "seed": -1}, "seed must be"),
        ("generate", {"polarity": "positive", "count": "3"}, "count"),
        ("generate", {"polarity": "positive", "colour": "red"}, "colour"),
    ],
)
def test_bad_input_is_a_4xx_saying_what_is_allowed(server, route, payload, message):
    r = post(server, route, payload)
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    assert message in r.text, r.text


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_oip_bytes_with_tritonclient(server, protocol):
    url = server.url.removeprefix("http://") if protocol == "http" else server.grpc_target
    proc = subprocess.run([sys.executable, str(REPO / "tests/integration/reviews_oip_client.py"),
                           protocol, url], cwd=REPO, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    got = json.loads(proc.stdout)
    assert got["meta"] == "BYTES"
    scored = post(server, "score", {"texts": TEXTS}).json()["results"]
    gen_json = [post(server, "generate", {"polarity": p, "count": 1, "seed": s, "max_tokens": 40}
                     ).json()["reviews"][0]["text"] for p, s in (("positive", 3), ("negative", 4))]
    modes = ("json", "binary") if protocol == "http" else ("grpc",)
    for mode in modes:
        score, gen = got[mode]["score"], got[mode]["generate"]
        np.testing.assert_allclose(score["p_deceptive"], [r["p_deceptive"] for r in scored],
                                   atol=1e-6)  # fmt: skip
        assert score["deceptive"] == [r["label"] == "deceptive" for r in scored]
        assert gen["synthetic"] == [True, True]
        assert gen["text"] == gen_json  # the same texts as the JSON API for the same seeds
    invalid = "400" if protocol == "http" else "StatusCode.INVALID_ARGUMENT"
    for case, expected in (("not_utf8", "not UTF-8"), ("empty", "empty"),
                           ("too_long", f"at most {MAX_TEXT_CHARS}"),
                           ("polarity", "unknown polarity"), ("max_tokens", "1..300")):  # fmt: skip
        status, message = got["errors"][case]
        assert status == invalid and expected in message, (case, got["errors"][case])


def test_sample_from_the_store_equals_the_service(server, tmp_path):
    from tests.conftest import run_cli

    out = tmp_path / "reviews.jsonl"
    run_cli("sample", "--model", "reviews", "--condition", "polarity=negative", "--count", "3",
            "--seed", "11", "--out", str(out), env=server.env)  # fmt: skip
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    api = post(server, "generate", {"polarity": "negative", "count": 3, "seed": 11}).json()
    assert [r["text"] for r in rows] == [r["text"] for r in api["reviews"]]
    assert all(r["synthetic"] is True and r["polarity"] == "negative" for r in rows)
