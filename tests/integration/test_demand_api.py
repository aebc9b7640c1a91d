"""The demand JSON APIs and OIP models through the session's real `bentoml serve`."""

from __future__ import annotations

import io
import json

import bentoml
import httpx
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as triton_http
from PIL import Image

from ecomgan import demand
from ecomgan.calibration import apply as apply_calibration
from ecomgan.seeding import latent
from serving.demand import EXAMPLE_HISTORY, EXAMPLE_SCENARIOS, EXAMPLE_STOCKOUT, MAX_PATHS
from tests.conftest import REPO, shared_data_dir

pytestmark = pytest.mark.integration
SHIPPED = REPO / "models" / "demand"
D, S = EXAMPLE_HISTORY["dates"], EXAMPLE_HISTORY["sales"]


@pytest.fixture(scope="module")
def client(server):
    with bentoml.SyncHTTPClient(server.url, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def layout() -> demand.Layout:
    return demand.read_encoding(json.loads((SHIPPED / "demand.json").read_text()))


def post(server, route: str, payload: dict) -> httpx.Response:
    return httpx.post(f"{server.url}/demand/{route}", json=payload, timeout=60)


def test_scenarios_are_deterministic_and_equal_onnx_plus_numpy(client, layout):
    a = client.demand_scenarios(**EXAMPLE_SCENARIOS)
    assert a == client.demand_scenarios(**EXAMPLE_SCENARIOS)
    paths = np.asarray(a["paths"])
    assert paths.shape == (1000, 8) and (paths > 0).all() and a["seed"] == 7
    assert a["dates"][0] == "2012-03-30" and list(a["quantiles"])[0] == "0.05"
    np.testing.assert_allclose(a["quantiles"]["0.50"], np.quantile(paths, 0.5, axis=0))
    session = ort.InferenceSession(str(SHIPPED / "generator.onnx"))
    dates = np.array(D, dtype="datetime64[D]")
    future = demand.week_calendar(demand.future_dates(dates[-1], layout.horizon))
    cond, level = demand.condition(np.array(S), future, layout)
    nz = session.get_inputs()[0].shape[1]
    y = session.run(["y"], {"z": latent(1000, nz, 7), "cond": np.tile(cond, (1000, 1))})[0]
    np.testing.assert_allclose(paths, level * np.exp(y.astype(np.float64)), rtol=1e-4)
    other = client.demand_scenarios(**{**EXAMPLE_SCENARIOS, "seed": 8, "horizon": 3})
    assert np.asarray(other["paths"]).shape == (1000, 3) and other["paths"][0] != a["paths"][0][:3]


def test_stockout_equals_numpy_on_the_same_paths(client):
    risk = client.demand_stockout(**EXAMPLE_STOCKOUT)
    same = client.demand_scenarios(dates=D, sales=S, horizon=4, paths=1000, seed=7)
    want = demand.stockout(
        np.asarray(same["paths"]),
        EXAMPLE_STOCKOUT["stock"],
        np.asarray(EXAMPLE_STOCKOUT["receipts"]),
        0.95,
    )
    weeks = risk["weeks"]
    assert weeks["dates"] == same["dates"] and risk["paths"] == 1000
    for key, value in want.items():
        np.testing.assert_allclose(weeks[key], value, rtol=1e-9, err_msg=key)
    assert all(0 <= p <= 1 for p in weeks["p_stockout"])


def test_fan_chart_png(server):
    r = post(server, "fan_chart", EXAMPLE_STOCKOUT)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png", r.text
    assert r.headers["x-ecomgan-seed"] == "7"
    assert Image.open(io.BytesIO(r.content)).size == (720, 600)
    plain = post(server, "fan_chart", EXAMPLE_SCENARIOS)
    assert Image.open(io.BytesIO(plain.content)).size == (720, 300)


def test_score_is_calibrated_on_real_histories_and_flags_corruption(client, server):
    path = shared_data_dir() / "walmart_weekly_sales.csv"
    stores = demand.read_sales(path)
    flagged, spikes = [], []
    for series in list(stores.values())[:15]:
        dates = [str(d) for d in series["dates"]]
        sales = series["sales"].tolist()
        real = client.demand_score(dates=dates, sales=sales)
        flagged += [w["implausible"] for w in real["windows"]]
        broken = list(sales)
        broken[60] = 0.0  # a week of sales lost in the export
        spikes.append(client.demand_score(dates=dates, sales=broken)["implausible"])
    assert np.mean(flagged) < 0.05  # calibrated for 1% of real windows
    assert np.mean(spikes) > 0.5
    meta = httpx.get(f"{server.url}/v2/models/demand-discriminator").json()
    cal = {
        "method": "platt",
        "a": float(meta["parameters"]["calibration_a"]),
        "b": float(meta["parameters"]["calibration_b"]),
        "threshold": float(meta["parameters"]["threshold"]),
    }
    assert real["threshold"] == pytest.approx(cal["threshold"])
    _, flags = apply_calibration(cal, np.zeros(1))
    assert flags.shape == (1,)


def test_models_answer_over_oip(server, layout):
    http = triton_http.InferenceServerClient(server.url.removeprefix("http://"))
    cond = np.zeros((2, layout.cond_dim), np.float32)
    inputs = [
        triton_http.InferInput("z", [2, 16], "FP32"),
        triton_http.InferInput("cond", list(cond.shape), "FP32"),
    ]
    inputs[0].set_data_from_numpy(latent(2, 16, 0))
    inputs[1].set_data_from_numpy(cond)
    y = http.infer("demand-generator", inputs).as_numpy("y")
    assert y.shape == (2, layout.horizon) and np.isfinite(y).all()
    meta = httpx.get(f"{server.url}/v2/models/demand-discriminator").json()
    assert [t["name"] for t in meta["inputs"]] == ["x"]


def _shift(days: int) -> list[str]:
    return D[:-1] + [str(np.datetime64(D[-1]) + days)]


BAD = [
    ("scenarios", {"dates": D[-40:], "sales": S[-40:]}, "at least 60 consecutive weeks"),
    ("scenarios", {"dates": D[:30] + D[31:], "sales": S[:30] + S[31:]}, "missing week"),
    ("scenarios", {"dates": D[:-1] + [D[-2]], "sales": S}, "repeated"),
    ("scenarios", {"dates": D[:-2] + [D[-1], D[-2]], "sales": S}, "out of order"),
    ("scenarios", {"dates": _shift(3), "sales": S}, "exactly 7 days apart"),
    ("scenarios", {"dates": D, "sales": S[:-1] + [-1.0]}, "sales must be >= 0"),
    ("scenarios", {"dates": D, "sales": S[:-1] + ["NaN"]}, "sales"),
    ("scenarios", {"dates": D, "sales": S, "horizon": 0}, "horizon must be 1..8"),
    ("scenarios", {"dates": D, "sales": S, "horizon": 9}, "horizon must be 1..8"),
    ("scenarios", {"dates": D, "sales": S, "paths": MAX_PATHS + 1}, "paths must be 1..10000"),
    ("scenarios", {"dates": D, "sales": S, "horizon": 2, "holidays": [True]}, "holidays needs"),
    ("scenarios", {"dates": D, "sales": S, "colour": "red"}, "colour"),
    (
        "stockout",
        {"dates": D, "sales": S, "stock": 1e6, "horizon": 2, "receipts": [1.0]},
        "receipts needs one value per forecast week: 2",
    ),
    ("stockout", {"dates": D, "sales": S, "stock": 1e6, "service_level": 1.0}, "(0, 1)"),
    ("stockout", {"dates": D, "sales": S, "stock": -1.0}, "stock must be"),
    ("stockout", {"dates": D, "sales": S}, "stock"),
    ("fan_chart", {"dates": D, "sales": S, "paths": 0}, "paths must be"),
    ("score", {"dates": D[:10], "sales": S[:10]}, "at least 20"),
    ("score", {"dates": D, "sales": S, "seed": 1}, "seed"),
]


@pytest.mark.parametrize(("route", "payload", "fragment"), BAD)
def test_bad_requests_get_4xx(server, route, payload, fragment):
    r = post(server, route, payload)
    assert 400 <= r.status_code < 500, r.text
    assert fragment in r.text, r.text
