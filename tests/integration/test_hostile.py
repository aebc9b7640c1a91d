"""Hostile input against a real `bentoml serve`: every case is a 4xx (or a gRPC client error)
whose message says what is allowed, and the server stays live and serving after each."""

from __future__ import annotations

import contextlib
import io
import json
import socket

import grpc
import httpx
import numpy as np
import pytest
from PIL import Image
from tritonclient.grpc import service_pb2, service_pb2_grpc

pytestmark = pytest.mark.integration
GEN = "products-generator"
NZ = 64  # checked against the served metadata in `nz` below


def _png(arr: np.ndarray, mode: str = "L", fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).convert(mode).save(buf, format=fmt)
    return buf.getvalue()


def _oip(header: dict, binary: bytes = b"", length: int | None = None) -> tuple[bytes, dict]:
    head = json.dumps(header).encode()
    return head + binary, {
        "Inference-Header-Content-Length": str(len(head) if length is None else length)
    }


def _inputs(z=None, label=None, z_shape=(1, NZ), label_shape=(1,), z_type="FP32", l_type="INT64"):
    return {
        "inputs": [
            {
                "name": "z",
                "datatype": z_type,
                "shape": list(z_shape),
                "data": [0.0] * int(np.prod(z_shape)) if z is None else z,
            },
            {
                "name": "label",
                "datatype": l_type,
                "shape": list(label_shape),
                "data": [1] * int(np.prod(label_shape)) if label is None else label,
            },
        ]
    }


GOOD_Z = np.zeros((1, NZ), np.float32).tobytes()
GOOD_L = np.array([1], np.int64).tobytes()
BIN_HEADER = {
    "inputs": [
        {
            "name": "z",
            "datatype": "FP32",
            "shape": [1, NZ],
            "parameters": {"binary_data_size": len(GOOD_Z)},
        },
        {"name": "label", "datatype": "INT64", "shape": [1], "parameters": {"binary_data_size": 8}},
    ]
}
INFER = f"/v2/models/{GEN}/infer"

# (id, method, path, kwargs for httpx, expected status, fragment of the error message)
HTTP_CASES = [
    (
        "json-malformed",
        "POST",
        "/products/generate",
        {"content": b"{bad", "headers": {"content-type": "application/json"}},
        400,
        "error",
    ),
    ("json-array-body", "POST", "/products/generate", {"json": [1, 2]}, 400, "error"),
    (
        "json-count-string",
        "POST",
        "/products/generate",
        {"json": {"category": "Bag", "count": "ten"}},
        400,
        "count",
    ),
    (
        "json-count-float",
        "POST",
        "/products/generate",
        {"json": {"category": "Bag", "count": 2.5}},
        400,
        "count",
    ),
    (
        "json-count-zero",
        "POST",
        "/products/generate",
        {"json": {"category": "Bag", "count": 0}},
        400,
        "count must be",
    ),
    (
        "json-count-negative",
        "POST",
        "/products/generate",
        {"json": {"category": "Bag", "count": -5}},
        400,
        "count must be",
    ),
    (
        "json-count-huge",
        "POST",
        "/products/generate",
        {"json": {"category": "Bag", "count": 10**12}},
        400,
        "count must be",
    ),
    (
        "json-count-bigint",
        "POST",
        "/products/generate",
        {"json": {"category": "Bag", "count": 10**40}},
        400,
        "count",
    ),
    (
        "json-unknown-category",
        "POST",
        "/products/generate",
        {"json": {"category": "Spaceship"}},
        400,
        "use a name or index",
    ),
    (
        "json-category-list",
        "POST",
        "/products/generate",
        {"json": {"category": [1]}},
        400,
        "category",
    ),
    (
        "json-category-negative",
        "POST",
        "/products/generate",
        {"json": {"category": -1}},
        400,
        "use a name or index",
    ),
    (
        "json-seed-negative",
        "POST",
        "/products/generate",
        {"json": {"category": "Bag", "seed": -1}},
        400,
        "seed must be",
    ),
    (
        "json-seed-huge",
        "POST",
        "/products/generate",
        {"json": {"category": "Bag", "seed": 2**70}},
        400,
        "seed",
    ),
    (
        "json-nrow-zero",
        "POST",
        "/products/generate_png",
        {"json": {"category": "Bag", "nrow": 0}},
        400,
        "nrow must be",
    ),
    (
        "json-wrong-content-type",
        "POST",
        "/products/generate",
        {"content": b"count=3", "headers": {"content-type": "text/plain"}},
        400,
        "error",
    ),
    (
        "json-pickle-refused",
        "POST",
        "/products/generate",
        {
            "content": b"\x80\x04K\x01.",
            "headers": {"content-type": "application/vnd.bentoml+pickle"},
        },
        415,
        "pickle",
    ),
    (
        "arrays-nan",
        "POST",
        "/products/score_arrays",
        {
            "content": b'{"images": ['
            + b"["
            + b",".join([b"[" + b",".join([b"NaN"] * 28) + b"]"] * 28)
            + b'], "categories": [0]}',
            "headers": {"content-type": "application/json"},
        },
        400,
        "error",
    ),
    (
        "arrays-wrong-size",
        "POST",
        "/products/score_arrays",
        {"json": {"images": [[[0] * 20] * 20], "categories": [0]}},
        400,
        "28x28",
    ),
    (
        "arrays-ragged",
        "POST",
        "/products/score_arrays",
        {"json": {"images": [[[0] * 28] * 27 + [[0] * 3]], "categories": [0]}},
        400,
        "28x28",
    ),
    (
        "arrays-out-of-range",
        "POST",
        "/products/score_arrays",
        {"json": {"images": [[[-1] * 28] * 28], "categories": [0]}},
        400,
        "0..255",
    ),
    (
        "arrays-count-mismatch",
        "POST",
        "/products/score_arrays",
        {"json": {"images": [[[0] * 28] * 28], "categories": []}},
        400,
        "one category per image",
    ),
    (
        "arrays-empty",
        "POST",
        "/products/score_arrays",
        {"json": {"images": [], "categories": []}},
        400,
        "count must be",
    ),
    (
        "upload-garbage",
        "POST",
        "/products/score",
        {"files": {"image": ("x.png", b"\x00garbage", "image/png")}, "data": {"category": "0"}},
        400,
        "cannot decode",
    ),
    (
        "upload-truncated-png",
        "POST",
        "/products/score",
        {
            "files": {"image": ("x.png", _png(np.zeros((28, 28), np.uint8))[:50], "image/png")},
            "data": {"category": "0"},
        },
        400,
        "cannot decode",
    ),
    (
        "upload-wrong-size",
        "POST",
        "/products/score",
        {
            "files": {"image": ("x.png", _png(np.zeros((64, 64), np.uint8)), "image/png")},
            "data": {"category": "0"},
        },
        400,
        "expected 28x28",
    ),
    (
        "upload-rgb",
        "POST",
        "/products/score",
        {
            "files": {"image": ("x.png", _png(np.zeros((28, 28), np.uint8), "RGB"), "image/png")},
            "data": {"category": "0"},
        },
        400,
        "single-channel",
    ),
    (
        "upload-gif",
        "POST",
        "/products/score",
        {
            "files": {
                "image": ("x.gif", _png(np.zeros((28, 28), np.uint8), "L", "GIF"), "image/gif")
            },
            "data": {"category": "0"},
        },
        400,
        "PNG or JPEG",
    ),
    ("upload-missing-file", "POST", "/products/score", {"data": {"category": "0"}}, 400, "image"),
    (
        "upload-bad-category",
        "POST",
        "/products/score",
        {
            "files": {"image": ("x.png", _png(np.zeros((28, 28), np.uint8)), "image/png")},
            "data": {"category": "Hat"},
        },
        400,
        "use a name or index",
    ),
    ("oip-malformed-json", "POST", INFER, {"content": b"{oops"}, 400, "not valid JSON"),
    ("oip-no-inputs", "POST", INFER, {"json": {"outputs": []}}, 400, "object with an"),
    ("oip-inputs-not-list", "POST", INFER, {"json": {"inputs": {"z": 1}}}, 400, "object with an"),
    (
        "oip-missing-datatype",
        "POST",
        INFER,
        {"json": {"inputs": [{"name": "z", "shape": [1, NZ], "data": [0] * NZ}]}},
        400,
        "missing 'datatype'",
    ),
    ("oip-wrong-datatype", "POST", INFER, {"json": _inputs(z_type="FP64")}, 400, "must be FP32"),
    (
        "oip-unsupported-datatype",
        "POST",
        INFER,
        {"json": _inputs(z_type="FP8")},
        400,
        "not supported",
    ),
    (
        "oip-bytes-for-a-float-input",
        "POST",
        INFER,
        {"json": _inputs(z=["a"] * NZ, z_type="BYTES")},
        400,
        "must be FP32",
    ),
    (
        "oip-wrong-shape",
        "POST",
        INFER,
        {"json": _inputs(z_shape=(1, NZ + 1))},
        400,
        "must have shape",
    ),
    ("oip-data-count", "POST", INFER, {"json": _inputs(z=[0.0] * 3)}, 400, "elements"),
    (
        "oip-nan",
        "POST",
        INFER,
        {"content": json.dumps(_inputs(z=[float("nan")] * NZ)).encode()},
        400,
        "NaN or Inf",
    ),
    ("oip-label-range", "POST", INFER, {"json": _inputs(label=[42])}, 400, "takes values 0..9"),
    ("oip-float-label", "POST", INFER, {"json": _inputs(label=[1.5])}, 400, "INT64 numbers"),
    (
        "oip-batch-mismatch",
        "POST",
        INFER,
        {"json": _inputs(label=[1, 2], label_shape=(2,))},
        400,
        "share the batch size",
    ),
    (
        "oip-batch-cap",
        "POST",
        INFER,
        {"json": _inputs(z_shape=(300, NZ), label_shape=(300,), label=[0] * 300)},
        400,
        "batch size must be",
    ),
    (
        "oip-declared-huge",
        "POST",
        INFER,
        {"json": _inputs(z=[0.0], z_shape=(10**9, NZ))},
        413,
        "limit",
    ),
    (
        "oip-unknown-output",
        "POST",
        INFER,
        {"json": {**_inputs(), "outputs": [{"name": "nope"}]}},
        400,
        "unknown output",
    ),
    (
        "oip-unknown-model",
        "POST",
        "/v2/models/nope/infer",
        {"json": _inputs()},
        404,
        "available models",
    ),
    (
        "oip-unknown-version",
        "POST",
        f"/v2/models/{GEN}/versions/0/infer",
        {"json": _inputs()},
        404,
        "served version",
    ),
    ("oip-metadata-unknown", "GET", "/v2/models/nope", {}, 404, "available models"),
    (
        "oip-header-longer-than-body",
        "POST",
        INFER,
        dict(
            zip(
                ("content", "headers"), _oip(BIN_HEADER, GOOD_Z + GOOD_L, length=10**6), strict=True
            )
        ),
        400,
        "body has only",
    ),
    (
        "oip-header-length-garbage",
        "POST",
        INFER,
        {"content": b"{}", "headers": {"Inference-Header-Content-Length": "abc"}},
        400,
        "non-negative integer",
    ),
    (
        "oip-truncated-binary",
        "POST",
        INFER,
        dict(zip(("content", "headers"), _oip(BIN_HEADER, GOOD_Z[:-7]), strict=True)),
        400,
        "runs past the end",
    ),
    (
        "oip-extra-binary",
        "POST",
        INFER,
        dict(zip(("content", "headers"), _oip(BIN_HEADER, GOOD_Z + GOOD_L + b"xx"), strict=True)),
        400,
        "no input claims",
    ),
    (
        "oip-binary-size-negative",
        "POST",
        INFER,
        dict(
            zip(
                ("content", "headers"),
                _oip(
                    {
                        "inputs": [
                            {
                                "name": "z",
                                "datatype": "FP32",
                                "shape": [1, NZ],
                                "parameters": {"binary_data_size": -4},
                            }
                        ]
                    }
                ),
                strict=True,
            )
        ),
        400,
        "binary_data_size",
    ),
    ("oip-body-too-large", "POST", INFER, {"content": b" " * (17 * 1024 * 1024)}, 413, "limit"),
    ("oip-wrong-method", "GET", INFER, {}, 405, "not allowed"),
    ("oip-unknown-route", "GET", "/v2/repository/index", {}, 404, "routes"),
]


@pytest.fixture(scope="module")
def nz(server) -> int:
    meta = httpx.get(f"{server.url}/v2/models/{GEN}").json()
    assert meta["inputs"][0]["shape"][1] == NZ, "update NZ to the served latent size"
    return NZ


def _still_serving(server) -> None:
    assert httpx.get(f"{server.url}/livez", timeout=10).status_code == 200
    r = httpx.post(
        f"{server.url}/products/generate",
        json={"category": "Bag", "count": 1, "seed": 1},
        timeout=30,
    )
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("case", "method", "path", "kwargs", "status", "fragment"),
    HTTP_CASES,
    ids=[c[0] for c in HTTP_CASES],
)
def test_http_hostile(server, nz, case, method, path, kwargs, status, fragment):
    r = httpx.request(method, server.url + path, timeout=60, **kwargs)
    assert r.status_code == status, (case, r.status_code, r.text[:500])
    assert fragment.lower() in r.text.lower(), (case, r.text[:500])
    _still_serving(server)


def _grpc_request(**inputs) -> service_pb2.ModelInferRequest:
    req = service_pb2.ModelInferRequest(model_name=inputs.pop("model", GEN))
    for name, (datatype, shape, raw) in inputs.items():
        req.inputs.add(name=name, datatype=datatype, shape=shape)
        if raw is not None:
            req.raw_input_contents.append(raw)
    return req


GRPC_CASES = [
    (
        "unknown-model",
        lambda: _grpc_request(
            model="nope", z=("FP32", [1, NZ], GOOD_Z), label=("INT64", [1], GOOD_L)
        ),
        grpc.StatusCode.NOT_FOUND,
        "available models",
    ),
    (
        "wrong-input-name",
        lambda: _grpc_request(zz=("FP32", [1, NZ], GOOD_Z), label=("INT64", [1], GOOD_L)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "takes inputs",
    ),
    (
        "wrong-datatype",
        lambda: _grpc_request(z=("FP16", [1, NZ], GOOD_Z[: NZ * 2]), label=("INT64", [1], GOOD_L)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "must be FP32",
    ),
    (
        "byte-count",
        lambda: _grpc_request(z=("FP32", [1, NZ], GOOD_Z[:-1]), label=("INT64", [1], GOOD_L)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "needs",
    ),
    (
        "raw-count-mismatch",
        lambda: _grpc_request(z=("FP32", [1, NZ], GOOD_Z), label=("INT64", [1], None)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "raw_input_contents",
    ),
    (
        "declared-huge",
        lambda: _grpc_request(z=("FP32", [10**9, NZ], GOOD_Z), label=("INT64", [1], GOOD_L)),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "limit",
    ),
    (
        "negative-shape",
        lambda: _grpc_request(z=("FP32", [-1, NZ], GOOD_Z), label=("INT64", [1], GOOD_L)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "non-negative",
    ),
    (
        "nan",
        lambda: _grpc_request(
            z=("FP32", [1, NZ], np.full((1, NZ), np.nan, np.float32).tobytes()),
            label=("INT64", [1], GOOD_L),
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "NaN",
    ),
    (
        "label-range",
        lambda: _grpc_request(
            z=("FP32", [1, NZ], GOOD_Z), label=("INT64", [1], np.array([-3], np.int64).tobytes())
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "takes values",
    ),
    ("no-inputs", lambda: _grpc_request(), grpc.StatusCode.INVALID_ARGUMENT, "takes inputs"),
]


@pytest.mark.parametrize(
    ("case", "make", "code", "fragment"), GRPC_CASES, ids=[c[0] for c in GRPC_CASES]
)
def test_grpc_hostile(server, nz, case, make, code, fragment):
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            stub.ModelInfer(make(), timeout=30)
    assert err.value.code() == code, (case, err.value.code(), err.value.details())
    assert fragment.lower() in (err.value.details() or "").lower(), (case, err.value.details())
    _still_serving(server)


def test_grpc_oversize_message(server, nz):
    big = np.zeros((80_000, NZ), np.float32).tobytes()  # 20 MB > the 16 MiB receive limit
    with grpc.insecure_channel(
        server.grpc_target, options=[("grpc.max_send_message_length", 64 << 20)]
    ) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            stub.ModelInfer(
                _grpc_request(z=("FP32", [80_000, NZ], big), label=("INT64", [1], GOOD_L)),
                timeout=30,
            )
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    _still_serving(server)


@pytest.mark.parametrize(
    "junk",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x00" * 64,
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\xff" * 100,
    ],
)
def test_garbage_on_grpc_port(server, nz, junk):
    host, port = server.grpc_target.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(junk)
        sock.settimeout(5)
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            sock.recv(1024)
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        assert stub.ServerLive(service_pb2.ServerLiveRequest(), timeout=10).live
    _still_serving(server)


def test_zero_5xx_in_access_log(server, nz):
    """No request of this module (or any before it) got a 5xx from the entry service."""
    log = server.log_text()
    assert "status=500" not in log and "status=502" not in log, log[-3000:]
