"""What a new user meets first, through a real `bentoml serve`: defaults, refusals, ports, rules.

Each test here failed before the fixes it guards: example values used as defaults, ignored
misspelled fields, pydantic wording, temporary file names in upload errors, ERROR tracebacks for
client mistakes, a gRPC port silently shared by two servers, both raw and typed gRPC contents,
shoppers rows with time on pages never visited, and a 1-image PNG that /products/score refused.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
import time

import grpc
import httpx
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from tritonclient.grpc import service_pb2, service_pb2_grpc

from ecomgan.tabular import TabularTransformer
from gan.shoppers.data import load_split
from gan.shoppers.evaluate import constraint_violations
from tests.conftest import REPO, free_port, run_cli

pytestmark = pytest.mark.integration
SHOPPERS = REPO / "models" / "shoppers"


def post(server, route: str, **kwargs) -> httpx.Response:
    return httpx.post(server.url + route, timeout=60, **kwargs)


def test_shoppers_without_conditions_follow_the_data_and_seeds_are_random(server):
    a = post(server, "/shoppers/generate", json={"count": 2000}).json()
    share = np.mean([r["Revenue"] for r in a["rows"]])
    assert a["conditions"] == {} and 0.05 < share < 0.35, share  # real data: 15.5% buyers
    assert {r["VisitorType"] for r in a["rows"]} >= {"New_Visitor", "Returning_Visitor"}
    b = post(server, "/shoppers/generate", json={"count": 5}).json()
    assert isinstance(a["seed"], int) and a["seed"] != b["seed"]
    again = post(server, "/shoppers/generate", json={"count": 5, "seed": b["seed"]}).json()
    assert again["rows"] == b["rows"]
    products = post(server, "/products/generate", json={"category": "Bag"}).json()
    assert products["shape"] == [1, 28, 28]  # count defaults to 1, not the example's 4
    replay = post(server, "/products/generate", json={"category": "Bag", "seed": products["seed"]})
    assert replay.json()["images"] == products["images"]


# The edge's wording is unit-tested in tests/unit/serving/test_edge.py; these go through the
# real server, with other fields and routes, to show BentoML never answers them itself.
REFUSED = [
    (
        "/products/generate_png",
        {"category": "Bag", "nrows": 2},
        "unknown field 'nrows'; /products/generate_png accepts: category, count, seed, nrow",
    ),  # noqa: E501
    (
        "/shoppers/generate",
        {"count": 3, "Conditions": {}},
        "unknown field 'Conditions'; /shoppers/generate accepts: count, seed, conditions, format",
    ),  # noqa: E501
    (
        "/shoppers/score",
        {"session": []},
        "unknown field 'session'; /shoppers/score accepts: sessions",
    ),  # noqa: E501
    (
        "/products/score_arrays",
        {"images": [[[0] * 28] * 28]},
        "missing required field 'categories'; /products/score_arrays accepts: images, categories",
    ),  # noqa: E501
    (
        "/products/generate",
        {"category": "Bag", "seed": 1.5},
        "seed must be an integer or null, got 1.5",
    ),  # noqa: E501
    ("/shoppers/generate", {"count": "3"}, 'count must be an integer, got "3"'),
    ("/products/generate", {"category": True}, "category must be a string or an integer, got true"),
    ("/shoppers/generate", {"count": 2, "seed": None}, None),  # null seed: random
    (
        "/products/score_arrays",
        {"images": "x", "categories": [1]},
        'images must be a list, got "x"',
    ),  # noqa: E501
]


@pytest.mark.parametrize(("route", "payload", "message"), REFUSED)
def test_refusals_are_ours_and_name_what_is_allowed(server, route, payload, message):
    r = post(server, route, json=payload)
    if message is None:
        assert r.status_code == 200, r.text
        return
    assert r.status_code == 400 and r.json() == {"error": message}


def test_invalid_json_and_upload_errors_show_no_internals(server, tmp_path):
    r = post(
        server, "/products/generate", content=b"{nope", headers={"content-type": "application/json"}
    )  # noqa: E501
    assert r.status_code == 400 and r.json()["error"].startswith(
        "the request body is not valid JSON"
    )
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"not an image at all")
    for files, data in (
        ({"image": ("upload.png", bad.read_bytes(), "image/png")}, {"category": "Bag"}),
        ({"image": ("t.png", bad.read_bytes()[:5], "image/png")}, {"category": "Bag"}),
        (None, {"image": "x", "category": "Bag"}),
        ({"image": ("u.png", bad.read_bytes(), "image/png")}, {"categry": "Bag"}),
    ):
        r = post(server, "/products/score", files=files, data=data)
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert "/tmp" not in error and "object at 0x" not in error and "validation" not in error


def test_client_errors_are_one_info_line_not_an_error_traceback(server):
    start = len(server.log_text())
    post(server, "/products/generate", json={"category": "Bag", "cuont": 1})
    post(server, "/products/generate", json={"category": "Spaceship"})
    post(server, "/products/generate", json={"category": "Bag", "count": 2.5})
    post(server, "/shoppers/score", json={})
    time.sleep(0.5)
    log = server.log_text()[start:]
    assert "refused POST /products/generate (400): unknown field 'cuont'" in log
    assert "refused (400): unknown category 'Spaceship'" in log
    assert "[ERROR]" not in log and "Traceback" not in log


def test_one_image_png_round_trips_through_score(server):
    r = post(server, "/products/generate_png", json={"category": "Trouser", "seed": 3})
    assert r.status_code == 200 and r.headers["x-ecomgan-seed"] == "3"
    assert Image.open(io.BytesIO(r.content)).size == (28, 28)
    score = post(
        server,
        "/products/score",
        files={"image": ("g.png", r.content, "image/png")},
        data={"category": "Trouser"},
    )
    assert score.status_code == 200 and score.json()["label"] in ("real", "synthetic")
    grid = post(server, "/products/generate_png", json={"category": "Bag", "count": 4})
    assert Image.open(io.BytesIO(grid.content)).size == (122, 32)
    assert int(grid.headers["x-ecomgan-seed"]) >= 0


def test_oip_refuses_unknown_members_and_both_kinds_of_grpc_contents(server):
    gen = "products-generator"
    nz = httpx.get(f"{server.url}/v2/models/{gen}").json()["inputs"][0]["shape"][1]
    body = {
        "inputs": [
            {"name": "z", "shape": [1, nz], "datatype": "FP32", "data": [0.0] * nz},
            {"name": "label", "shape": [1], "datatype": "INT64", "data": [1], "dtype": "x"},
        ]
    }
    r = httpx.post(f"{server.url}/v2/models/{gen}/infer", json=body)
    assert r.status_code == 400
    assert r.json()["error"] == (
        "input 'label': unknown field 'dtype'; allowed: name, shape, datatype, parameters, data"
    )
    body["inputs"][1].pop("dtype")
    body["output"] = []
    r = httpx.post(f"{server.url}/v2/models/{gen}/infer", json=body)
    assert r.status_code == 400 and "unknown field 'output'" in r.json()["error"]

    stub = service_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(server.grpc_target))
    z = np.zeros((1, nz), np.float32)
    req = service_pb2.ModelInferRequest(model_name=gen)
    t = req.inputs.add(name="z", datatype="FP32", shape=[1, nz])
    t.contents.fp32_contents.extend(z.reshape(-1).tolist())
    req.inputs.add(name="label", datatype="INT64", shape=[1])
    req.raw_input_contents.extend([z.tobytes(), np.array([1], np.int64).tobytes()])
    with pytest.raises(grpc.RpcError) as err:
        stub.ModelInfer(req)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "typed 'contents'" in err.value.details() and "raw_input_contents" in err.value.details()


def test_served_rows_obey_the_cross_column_rules_of_the_real_data(server, data_dir):
    """10,000 served rows (no conditions, and conditions that move SpecialDay's months)."""
    train, _ = load_split(data_dir, download=False)
    tf = TabularTransformer.from_dict(json.loads((SHOPPERS / "transformer.json").read_text()))
    tables = []
    for payload in (
        {"count": 7000, "seed": 11},
        {"count": 3000, "seed": 12, "conditions": {"Month": "Nov"}},
    ):
        r = post(server, "/shoppers/generate", json={**payload, "format": "csv"})
        assert r.status_code == 200
        tables.append(pd.read_csv(io.StringIO(r.text)))
    rows = pd.concat(tables, ignore_index=True)
    assert len(rows) == 10_000
    assert sum(tf.rule_violations({c: rows[c].to_numpy() for c in rows.columns}).values()) == 0
    # The evaluator derives the rules from the real train split itself, independently.
    report = constraint_violations(rows, train)
    assert report["any"] == 0.0, {k: v for k, v in report["per_rule"].items() if v}
    assert any("Duration is 0 when" in k for k in report["per_rule"])
    assert (rows["Informational"] == 0).any() and (rows["SpecialDay"] > 0).any()


def test_a_second_server_never_joins_the_grpc_port(server, shipped_home, tmp_path):
    """Same gRPC port, another HTTP port: the second server stops with one line and status 2
    before starting a worker (a worker that still meets a foreign listener, e.g. in a race,
    refuses it too: tests/unit/serving/test_ports.py); the first keeps the port to itself."""
    port = int(server.grpc_target.rsplit(":", 1)[1])
    home = tmp_path / "home"
    shutil.copytree(shipped_home / "models", home / "models", symlinks=True)
    env = {**server.env, "BENTOML_HOME": str(home), "ECOMGAN_GRPC_PORT": str(port)}
    proc = subprocess.run(
        [sys.executable, "-m", "bentoml", "serve", "service:EcomGAN", "--host", "127.0.0.1",
         "--port", str(free_port())],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    text = (proc.stdout + proc.stderr).strip()
    assert proc.returncode == 2, text[-3000:]
    assert text == (
        f"bentoml serve: gRPC port {port} on 0.0.0.0 is in use; choose another with "
        "ECOMGAN_GRPC_PORT (ecomgan serve --grpc-port)"
    )
    stub = service_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(server.grpc_target))
    for _ in range(8):  # new connections: none may reach another process
        assert stub.ServerLive(service_pb2.ServerLiveRequest()).live


def test_ecomgan_serve_names_the_busy_port_in_one_line(server):
    http_port = int(server.url.rsplit(":", 1)[1])
    proc = subprocess.run(
        [sys.executable, "-m", "ecomgan.cli", "serve", "--host", "127.0.0.1", "--port",
         str(http_port), "--grpc-port", str(free_port())],
        cwd=REPO, env=server.env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"ecomgan serve: port {http_port} on 127.0.0.1 is in use; choose another with --port"
    )
    grpc_port = int(server.grpc_target.rsplit(":", 1)[1])
    proc = subprocess.run(
        [sys.executable, "-m", "ecomgan.cli", "serve", "--port", str(free_port()),
         "--grpc-port", str(grpc_port)],
        cwd=REPO, env=server.env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2 and f"port {grpc_port}" in proc.stderr
    assert "--grpc-port" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_sample_from_the_store_and_a_folder_equals_the_service(server, tmp_path):
    png = tmp_path / "trouser.png"
    run_cli("sample", "--model", "products", "--category", "Trouser", "--count", "3",
            "--seed", "5", "--out", str(png), env=server.env)  # fmt: skip
    api = post(server, "/products/generate", json={"category": "Trouser", "count": 3, "seed": 5})
    tiles = np.asarray(Image.open(png))
    images = np.asarray(api.json()["images"], dtype=np.uint8)
    for i in range(3):  # a 2-pixel border around each 28x28 tile
        x = 2 + i * 30
        np.testing.assert_array_equal(tiles[2:30, x : x + 28], images[i])

    rows = tmp_path / "buyers.csv"
    run_cli("sample", "--from", str(SHOPPERS), "--count", "50", "--seed", "9",
            "--condition", "Revenue=true", "--out", str(rows), env=server.env)  # fmt: skip
    api = post(
        server,
        "/shoppers/generate",
        json={"count": 50, "seed": 9, "conditions": {"Revenue": True}, "format": "csv"},
    )
    assert rows.read_text() == api.text
    assert len(list(csv.reader(io.StringIO(api.text)))) == 51

    onnx = REPO / "models" / "products" / "generator.onnx"
    proc = subprocess.run(
        [sys.executable, "-m", "ecomgan.cli", "sample", "--checkpoint", str(onnx)],
        cwd=REPO, env=server.env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "is an ONNX model, not a training checkpoint" in proc.stderr
    assert "--from" in proc.stderr and "weights_only" not in proc.stderr


def test_oip_parameters_outside_the_binary_extension_are_refused(server):
    """A misspelled or unsupported parameter is a client error, over HTTP and gRPC alike."""
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    gen = "products-generator"
    nz = httpx.get(f"{server.url}/v2/models/{gen}").json()["inputs"][0]["shape"][1]
    body = {
        "inputs": [
            {"name": "z", "shape": [1, nz], "datatype": "FP32", "data": [0.0] * nz},
            {"name": "label", "shape": [1], "datatype": "INT64", "data": [1]},
        ],
        "parameters": {"binary_data_outptu": True},
    }
    r = httpx.post(f"{server.url}/v2/models/{gen}/infer", json=body)
    assert r.status_code == 400 and r.json()["error"] == (
        "the inference request: unsupported parameter 'binary_data_outptu'; "
        "accepted here: binary_data_output"
    )
    z = np.zeros((1, nz), np.float32)
    label = np.array([1], np.int64)
    http = httpclient.InferenceServerClient(server.url.removeprefix("http://"))
    inputs = [
        httpclient.InferInput("z", [1, nz], "FP32"),
        httpclient.InferInput("label", [1], "INT64"),
    ]
    inputs[0].set_data_from_numpy(z)
    inputs[1].set_data_from_numpy(label)
    with pytest.raises(InferenceServerException, match="unsupported parameter 'tempo'"):
        http.infer(gen, inputs, parameters={"tempo": 1})
    g = grpcclient.InferenceServerClient(server.grpc_target)
    inputs = [
        grpcclient.InferInput("z", [1, nz], "FP32"),
        grpcclient.InferInput("label", [1], "INT64"),
    ]
    inputs[0].set_data_from_numpy(z)
    inputs[1].set_data_from_numpy(label)
    with pytest.raises(InferenceServerException, match="unsupported parameter 'priority'"):
        g.infer(gen, inputs, priority=3)
    assert g.infer(gen, inputs).as_numpy("image").shape == (1, 1, 28, 28)
