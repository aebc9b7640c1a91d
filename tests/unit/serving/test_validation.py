"""Every validation rule of the serving edge, without a server."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from ecomgan.families import get_family
from serving import oip
from serving.catalog import ServedModel
from serving.errors import InvalidInput, NotFound, PayloadTooLarge
from serving.gateway import Gateway
from serving.products import decode_image, parse_category
from serving.runtime import Signature, TensorSpec
from serving.settings import Settings

GEN_SIG = Signature(
    (TensorSpec("z", "FP32", (-1, 8)), TensorSpec("label", "INT64", (-1,))),
    (TensorSpec("image", "FP32", (-1, 1, 28, 28)),),
)


@pytest.fixture
def gateway() -> Gateway:
    served = ServedModel(
        name="products-generator",
        family=get_family("products"),
        role="generator",
        version="v1",
        signature=GEN_SIG,
        metadata={},
        input_ranges={"label": (0, 9)},
    )
    limits = Settings(
        max_items=16,
        max_rows=100,
        max_body_bytes=1 << 20,
        max_grpc_message_bytes=1 << 20,
        grpc_port=3001,
        grpc_workers=8,
    )
    return Gateway({served.name: served}, {}, limits)


def ok(n: int = 2) -> dict[str, np.ndarray]:
    return {"z": np.zeros((n, 8), np.float32), "label": np.arange(n, dtype=np.int64) % 10}


def test_valid_request_passes(gateway):
    assert gateway.validate(gateway.model("products-generator"), ok(3)) == 3


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda x: x.pop("label"), "missing ['label']"),
        (lambda x: x.update(extra=np.zeros(2, np.float32)), "unexpected ['extra']"),
        (lambda x: x.update(z=np.zeros((2, 8), np.float64)), "must be FP32"),
        (lambda x: x.update(z=np.zeros((2, 7), np.float32)), "must have shape [-1, 8]"),
        (lambda x: x.update(z=np.zeros((8,), np.float32)), "must have shape"),
        (lambda x: x.update(label=np.arange(3, dtype=np.int64)), "share the batch size"),
        (lambda x: x["z"].__setitem__((0, 0), np.nan), "NaN or Inf"),
        (lambda x: x["z"].__setitem__((0, 0), np.inf), "NaN or Inf"),
        (lambda x: x["label"].__setitem__(0, 10), "takes values 0..9"),
        (lambda x: x["label"].__setitem__(0, -1), "takes values 0..9"),
    ],
)
def test_invalid_requests(gateway, mutate, fragment):
    inputs = ok()
    mutate(inputs)
    with pytest.raises(InvalidInput) as err:
        gateway.validate(gateway.model("products-generator"), inputs)
    assert fragment in err.value.message


def test_batch_limits(gateway):
    served = gateway.model("products-generator")
    with pytest.raises(InvalidInput, match=r"1\.\.16"):
        gateway.validate(served, ok(17))
    with pytest.raises(InvalidInput, match=r"1\.\.16"):
        gateway.validate(
            served, {"z": np.zeros((0, 8), np.float32), "label": np.zeros(0, np.int64)}
        )


def test_unknown_model_and_version(gateway):
    with pytest.raises(NotFound, match="available models: products-generator"):
        gateway.model("nope")
    with pytest.raises(NotFound, match="served version is 'v1'"):
        gateway.model("products-generator", "v2")
    assert gateway.model("products-generator", "v1").version == "v1"


def test_decode_tensor_raw_and_json():
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    got = oip.decode_tensor("x", "FP32", [2, 3], raw=arr.tobytes(), max_bytes=1024)
    np.testing.assert_array_equal(got, arr)
    got = oip.decode_tensor("x", "INT64", [3], data=[1, 2, 3], max_bytes=1024)
    assert got.dtype == np.int64 and got.tolist() == [1, 2, 3]
    got = oip.decode_tensor("x", "FP32", [2, 2], data=[[1, 2], [3, 4]], max_bytes=1024)
    assert got.shape == (2, 2)


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({"datatype": "COMPLEX64", "shape": [1], "data": [1]}, InvalidInput, "not supported"),
        ({"datatype": "FP32", "shape": [-1], "data": [1.0]}, InvalidInput, "non-negative"),
        ({"datatype": "FP32", "shape": ["a"], "data": [1.0]}, InvalidInput, "integers"),
        ({"datatype": "FP32", "shape": [2], "raw": b"\0" * 7}, InvalidInput, "needs 8 bytes"),
        ({"datatype": "FP32", "shape": [3], "data": [1.0, 2.0]}, InvalidInput, "3 elements"),
        ({"datatype": "INT64", "shape": [1], "data": [1.5]}, InvalidInput, "INT64 numbers"),
        ({"datatype": "FP32", "shape": [1], "data": ["x"]}, InvalidInput, "FP32 numbers"),
        ({"datatype": "FP32", "shape": [2], "data": [[1], [2, 3]]}, InvalidInput, "numbers"),
        ({"datatype": "FP32", "shape": [1]}, InvalidInput, "no data"),
        ({"datatype": "FP32", "shape": [10**6]}, PayloadTooLarge, "limit is 1024"),
    ],
)
def test_decode_tensor_errors(kwargs, error, fragment):
    with pytest.raises(error) as err:
        oip.decode_tensor("x", max_bytes=1024, **kwargs)
    assert fragment in err.value.message


@pytest.mark.parametrize(
    ("category", "label"), [("Sneaker", 7), ("ankle boot", 9), ("t-shirt-top", 0), (3, 3), ("8", 8)]
)
def test_parse_category(category, label):
    assert parse_category(category) == label


@pytest.mark.parametrize("category", ["", "Spaceship", 10, -1, True, "99"])
def test_parse_category_rejects(category):
    with pytest.raises(InvalidInput, match="use a name or index"):
        parse_category(category)


def _encode(arr: np.ndarray, fmt: str, mode: str = "L") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).convert(mode).save(buf, format=fmt)
    return buf.getvalue()


def test_decode_image_accepts_png_and_jpeg():
    pixels = np.tile(np.arange(28, dtype=np.uint8) * 9, (28, 1))
    np.testing.assert_array_equal(decode_image(_encode(pixels, "PNG")), pixels)
    assert decode_image(_encode(pixels, "JPEG")).shape == (28, 28)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "cannot decode"),
        (b"GIF89a garbage", "cannot decode"),
        (_encode(np.zeros((28, 28), np.uint8), "GIF"), "not accepted"),
        (_encode(np.zeros((28, 28), np.uint8), "PNG", "RGB"), "single-channel"),
        (_encode(np.zeros((30, 28), np.uint8), "PNG"), "expected 28x28"),
        (_encode(np.zeros((28, 28), np.uint8), "PNG")[:40], "cannot decode"),
    ],
)
def test_decode_image_rejects(data, fragment):
    with pytest.raises(InvalidInput) as err:
        decode_image(data)
    assert fragment in err.value.message
