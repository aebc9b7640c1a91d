"""OIP v2 over gRPC and HTTP against a real `bentoml serve`, with the real tritonclient."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
from tritonclient.grpc import service_pb2, service_pb2_grpc

from tests.conftest import REPO, batch_histogram

pytestmark = pytest.mark.integration
GEN, DIS = "products-generator", "products-discriminator"


def ort_reference(home: Path, name: str, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """Run the same ONNX file as the server, in this process."""
    import onnxruntime as ort

    versions = sorted((home / "models" / name).glob("*/model.onnx"))
    assert versions, f"no model file for {name} under {home}"
    latest = (home / "models" / name / "latest").read_text().strip()
    session = ort.InferenceSession(str(home / "models" / name / latest / "model.onnx"))
    return session.run(None, feeds)[0]


@pytest.fixture(scope="module", params=["http", "grpc"])
def triton_report(request, server, tmp_path_factory):
    protocol = request.param
    out = tmp_path_factory.mktemp(f"triton-{protocol}")
    url = server.url.removeprefix("http://") if protocol == "http" else server.grpc_target
    proc = subprocess.run(
        [sys.executable, str(REPO / "tests/integration/triton_check.py"), protocol, url, str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return protocol, out, json.loads((out / "report.json").read_text())


def test_health_and_metadata(triton_report):
    protocol, _, report = triton_report
    assert report["live"] and report["ready"] and report["model_ready"]
    assert report["server_name"] == "ecomgan"
    gen = report["meta"][GEN]
    assert gen["platform"] == "onnxruntime_onnx"
    assert [(t["name"], t["datatype"]) for t in gen["inputs"]] == [
        ("z", "FP32"),
        ("label", "INT64"),
    ]
    assert gen["inputs"][0]["shape"][0] == -1 and gen["inputs"][1]["shape"] == [-1]
    assert gen["outputs"] == [{"name": "image", "datatype": "FP32", "shape": [-1, 1, 28, 28]}]
    dis = report["meta"][DIS]
    assert [t["name"] for t in dis["inputs"]] == ["image", "label"]
    assert dis["versions"] and gen["versions"]


def test_outputs_match_onnxruntime(triton_report, shipped_home):
    _, out, _ = triton_report
    z, label, image = (np.load(out / f"{n}.npy") for n in ("z", "label", "image"))
    want = ort_reference(shipped_home, GEN, {"z": z, "label": label})
    for kind in ("bin", "json"):
        got = np.load(out / f"image_out_{kind}.npy")
        assert got.shape == (5, 1, 28, 28)
        np.testing.assert_allclose(got, want, atol=1e-5)
    want_logit = ort_reference(shipped_home, DIS, {"image": image, "label": label})
    np.testing.assert_allclose(np.load(out / "logit_out.npy"), want_logit, atol=1e-5)


EXPECTED = {
    "unknown_model": ("404", "NOT_FOUND", "available models"),
    "unknown_version": ("404", "NOT_FOUND", "served version"),
    "unknown_model_metadata": ("404", "NOT_FOUND", "available models"),
    "wrong_input_name": ("400", "INVALID_ARGUMENT", "takes inputs"),
    "wrong_datatype": ("400", "INVALID_ARGUMENT", "must be FP32"),
    "wrong_shape": ("400", "INVALID_ARGUMENT", "must have shape"),
    "label_out_of_range": ("400", "INVALID_ARGUMENT", "takes values 0..9"),
    "batch_above_cap": ("400", "INVALID_ARGUMENT", "batch size must be 1..256"),
    # grpcio refuses it before our code runs: "Received message larger than max (N vs. M)".
    "oversize": ("413", "RESOURCE_EXHAUSTED", ("limit", "larger than max")),
}


def test_errors_are_client_errors(triton_report):
    protocol, _, report = triton_report
    for key, got in report["errors"].items():
        http_status, grpc_status, fragment = EXPECTED[key]
        want = http_status if protocol == "http" else grpc_status
        want = want if isinstance(want, tuple) else (want,)
        assert any(w in got["status"] for w in want), (key, got)
        fragments = fragment if isinstance(fragment, tuple) else (fragment,)
        assert any(f in got["message"] for f in fragments), (key, got)
    assert report["ready_after_errors"]


def test_grpc_typed_contents_and_health(server, shipped_home):
    channel = grpc.insecure_channel(server.grpc_target)
    stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
    nz = stub.ModelMetadata(service_pb2.ModelMetadataRequest(name=GEN)).inputs[0].shape[1]
    z = np.random.default_rng(1).standard_normal((2, nz), dtype=np.float32)
    req = service_pb2.ModelInferRequest(model_name=GEN)
    t = req.inputs.add(name="z", datatype="FP32", shape=[2, nz])
    t.contents.fp32_contents.extend(z.reshape(-1).tolist())
    t = req.inputs.add(name="label", datatype="INT64", shape=[2])
    t.contents.int64_contents.extend([1, 8])
    resp = stub.ModelInfer(req)
    assert resp.outputs[0].name == "image" and list(resp.outputs[0].shape) == [2, 1, 28, 28]
    got = np.frombuffer(resp.raw_output_contents[0], dtype="<f4").reshape(2, 1, 28, 28)
    want = ort_reference(shipped_home, GEN, {"z": z, "label": np.array([1, 8], np.int64)})
    np.testing.assert_allclose(got, want, atol=1e-5)

    # Raw bytes that do not match the declared shape (tritonclient checks this client-side).
    bad = service_pb2.ModelInferRequest(model_name=GEN)
    bad.inputs.add(name="z", datatype="FP32", shape=[2, nz])
    bad.inputs.add(name="label", datatype="INT64", shape=[2])
    bad.raw_input_contents.extend([z.tobytes()[:-4], np.array([1, 8], np.int64).tobytes()])
    with pytest.raises(grpc.RpcError) as err:
        stub.ModelInfer(bad)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "needs" in err.value.details()

    from grpc_health.v1 import health_pb2, health_pb2_grpc

    health = health_pb2_grpc.HealthStub(channel)
    status = health.Check(health_pb2.HealthCheckRequest(service="")).status
    assert status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as err:
        stub.ModelStatistics(service_pb2.ModelStatisticsRequest(name=GEN))
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_http_json_and_binary_without_content_type(server):
    meta = httpx.get(f"{server.url}/v2/models/{GEN}").json()
    nz = meta["inputs"][0]["shape"][1]
    z = np.zeros((1, nz), np.float32)
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "z",
                    "datatype": "FP32",
                    "shape": [1, nz],
                    "parameters": {"binary_data_size": z.nbytes},
                },
                {"name": "label", "datatype": "INT64", "shape": [1], "data": [3]},
            ],
            "outputs": [{"name": "image", "parameters": {"binary_data": True}}],
        }
    ).encode()
    r = httpx.post(
        f"{server.url}/v2/models/{GEN}/infer",
        content=header + z.tobytes(),
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert r.status_code == 200, r.text
    n = int(r.headers["inference-header-content-length"])
    head = json.loads(r.content[:n])
    assert head["outputs"][0]["parameters"]["binary_data_size"] == 28 * 28 * 4
    assert len(r.content) - n == 28 * 28 * 4
    # Declared header longer than the body, and garbage JSON: 400 with a reason.
    r = httpx.post(
        f"{server.url}/v2/models/{GEN}/infer",
        content=header,
        headers={"Inference-Header-Content-Length": "99999"},
    )
    assert r.status_code == 400 and "body has only" in r.json()["error"]
    r = httpx.post(f"{server.url}/v2/models/{GEN}/infer", content=b"{not json")
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]
    assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200
    assert httpx.get(f"{server.url}/v2/nope").status_code == 404


def test_grpc_concurrency_forms_batches(triton_report, server):
    protocol, _, report = triton_report
    if protocol != "grpc":
        pytest.skip("the burst runs over gRPC")
    assert report["burst_failed"] == 0
    metrics = httpx.get(server.url + "/metrics").text
    sizes = batch_histogram(metrics, "products-generator")
    assert any(size > 1 and count > 0 for size, count in sizes.items()), sizes
