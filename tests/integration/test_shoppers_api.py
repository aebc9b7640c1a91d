"""The shoppers JSON APIs and OIP models through a real `bentoml serve`."""

from __future__ import annotations

import csv
import io
import json
from itertools import combinations

import bentoml
import httpx
import numpy as np
import onnxruntime as ort
import pytest

from ecomgan.calibration import apply as apply_calibration
from ecomgan.seeding import latent
from ecomgan.tabular import TabularTransformer
from gan.shoppers.data import load_split
from serving.shoppers import EXAMPLE_GENERATE, EXAMPLE_SESSION
from tests.conftest import REPO

pytestmark = pytest.mark.integration
SHIPPED = REPO / "models" / "shoppers"


@pytest.fixture(scope="module")
def client(server):
    with bentoml.SyncHTTPClient(server.url, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def transformer() -> TabularTransformer:
    return TabularTransformer.from_dict(json.loads((SHIPPED / "transformer.json").read_text()))


def post(server, route: str, payload: dict) -> httpx.Response:
    return httpx.post(f"{server.url}/shoppers/{route}", json=payload, timeout=60)


def test_generate_is_deterministic_and_meets_conditions(client):
    a = client.shoppers_generate(**EXAMPLE_GENERATE)
    assert a == client.shoppers_generate(**EXAMPLE_GENERATE)
    assert a["seed"] == 42 and a["conditions"] == {"Revenue": True, "VisitorType": "New_Visitor"}
    assert len(a["rows"]) == 3 and list(a["rows"][0]) == a["columns"]
    other = client.shoppers_generate(count=3, seed=43, conditions=EXAMPLE_GENERATE["conditions"])
    assert other["rows"] != a["rows"]
    many = client.shoppers_generate(
        count=600,
        seed=1,
        conditions={"revenue": "TRUE", "Month": "nov", "VisitorType": "New_Visitor"},
    )
    assert all(
        r["Revenue"] is True and r["Month"] == "Nov" and r["VisitorType"] == "New_Visitor"
        for r in many["rows"]
    )


def test_generated_rows_honour_the_constraints(client, transformer):
    rows = client.shoppers_generate(count=3000, seed=7, conditions={})["rows"]
    by_name = {c.name: c for c in transformer.columns}
    for name, spec in by_name.items():
        values = [r[name] for r in rows]
        if spec.discrete:
            assert set(values) <= set(spec.categories), name
        elif spec.kind == "count":
            assert all(isinstance(v, int) and v >= 0 for v in values), name
        elif spec.kind == "rate":
            assert all(0.0 <= v <= 1.0 for v in values), name
        else:
            assert all(v >= 0.0 for v in values), name
    buyers = np.mean([r["Revenue"] for r in rows])
    assert 0.03 < buyers < 0.4  # the real share is 15.5%


def test_csv_matches_json(server):
    payload = {"count": 20, "seed": 3, "conditions": {"Weekend": True}}
    as_json = post(server, "generate", payload).json()
    r = post(server, "generate", {**payload, "format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(r.text)))
    assert table[0] == as_json["columns"] and len(table) == 21
    for line, row in zip(table[1:], as_json["rows"], strict=True):
        assert line == [str(v) for v in row.values()]


def test_generate_equals_onnx_and_the_transformer(client, transformer):
    """The service's rows are the shipped ONNX generator's output decoded with numpy."""
    conditions = {"Month": "Dec"}
    got = client.shoppers_generate(count=50, seed=11, conditions=conditions)["rows"]
    session = ort.InferenceSession(str(SHIPPED / "generator.onnx"))
    nz = session.get_inputs()[0].shape[1]
    chosen = {"Month": transformer.category_index("Month", "Dec")}
    x = session.run(["x"], {"z": latent(50, nz, 11), "cond": transformer.cond_vector(chosen, 50)})[
        0
    ]
    rows = transformer.decode(x)
    transformer.apply_conditions(rows, chosen)
    for name in rows:
        want = rows[name].tolist()
        have = [r[name] for r in got]
        if transformer.columns[[c.name for c in transformer.columns].index(name)].discrete:
            assert have == want, name
        else:
            np.testing.assert_allclose(have, want, rtol=1e-4, atol=1e-4, err_msg=name)


def test_score_is_calibrated_on_real_sessions(client, server):
    train, _ = load_split()
    sessions = json.loads(train.sample(300, random_state=0).to_json(orient="records"))
    result = client.shoppers_score(sessions=sessions)
    flagged = np.mean([r["implausible"] for r in result["results"]])
    assert flagged < 0.08  # calibrated for 1% of real test sessions
    meta = httpx.get(f"{server.url}/v2/models/shoppers-discriminator").json()
    cal = {
        "method": meta["parameters"]["calibration_method"],
        "a": float(meta["parameters"]["calibration_a"]),
        "b": float(meta["parameters"]["calibration_b"]),
        "threshold": float(meta["parameters"]["threshold"]),
    }
    logits = np.array([r["logit"] for r in result["results"]])
    p, _ = apply_calibration(cal, logits)
    np.testing.assert_allclose(p, [r["p_implausible"] for r in result["results"]], rtol=1e-6)
    odd = dict(EXAMPLE_SESSION, ProductRelated=700, ProductRelated_Duration=60_000.0)
    assert client.shoppers_score(sessions=[odd])["results"][0]["p_implausible"] > flagged


def test_models_appear_in_oip(server):
    for role, inputs in (("generator", {"z", "cond"}), ("discriminator", {"x"})):
        meta = httpx.get(f"{server.url}/v2/models/shoppers-{role}").json()
        assert {t["name"] for t in meta["inputs"]} == inputs
        assert meta["platform"] == "onnxruntime_onnx"


def impossible_pair(tf: TabularTransformer) -> dict:
    for a, b in combinations(tf.discrete_names, 2):
        ca = next(c for c in tf.columns if c.name == a).categories
        cb = next(c for c in tf.columns if c.name == b).categories
        for i, va in enumerate(ca):
            for j, vb in enumerate(cb):
                if not tf.cooccurs({a: i, b: j}):
                    return {a: va, b: vb}
    raise AssertionError("every pair co-occurs")


BAD_GENERATE = [
    ({"count": 0}, "count must be 1..10000"),
    ({"count": 10_001}, "count must be 1..10000"),
    ({"count": 2, "seed": -1}, "seed must be"),
    ({"count": 2, "format": "xml"}, "format"),
    ({"count": 2, "conditions": {"Colour": "red"}}, "unknown column 'Colour'"),
    ({"count": 2, "conditions": {"Month": "Jan"}}, "allowed: "),
    ({"count": 2, "conditions": {"PageValues": 3}}, "categorical columns only"),
    ({"count": 2, "conditions": {"Revenue": "maybe"}}, "unknown value 'maybe' for Revenue"),
    ({"count": 2, "conditions": ["Revenue"]}, "conditions"),
    ({"count": 2, "conditions": {"Month": "Nov", "month": "Dec"}}, "conditioned once"),
]


@pytest.mark.parametrize(("payload", "fragment"), BAD_GENERATE)
def test_bad_generate_requests_get_4xx(server, payload, fragment):
    r = post(server, "generate", payload)
    assert 400 <= r.status_code < 500, r.text
    assert fragment in r.text, r.text


def test_impossible_condition_gets_4xx(server, transformer):
    r = post(server, "generate", {"count": 2, "conditions": impossible_pair(transformer)})
    assert r.status_code == 400 and "no training session has" in r.text, r.text


BAD_SESSIONS = [
    ([], "sessions must be a list of 1..10000"),
    ([{k: v for k, v in EXAMPLE_SESSION.items() if k != "Month"}], "missing columns ['Month']"),
    ([dict(EXAMPLE_SESSION, Colour="red")], "unknown columns ['Colour']"),
    ([dict(EXAMPLE_SESSION, ProductRelated=-3)], "non-negative integer"),
    ([dict(EXAMPLE_SESSION, ProductRelated=2.5)], "non-negative integer"),
    ([dict(EXAMPLE_SESSION, BounceRates=1.5)], "rate in [0, 1]"),
    ([dict(EXAMPLE_SESSION, PageValues=-1)], "must be >= 0"),
    ([dict(EXAMPLE_SESSION, ExitRates="high")], "finite number"),
    ([dict(EXAMPLE_SESSION, Weekend=None)], "Weekend"),
    ([dict(EXAMPLE_SESSION, Month="Jan")], "allowed: "),
    (["not a session"], "sessions[0] must be an object"),  # the edge's schema check
]


@pytest.mark.parametrize(("sessions", "fragment"), BAD_SESSIONS)
def test_bad_sessions_get_4xx(server, sessions, fragment):
    r = post(server, "score", {"sessions": sessions})
    assert 400 <= r.status_code < 500, r.text
    assert fragment in r.text, r.text
    assert httpx.get(f"{server.url}/livez").status_code == 200
