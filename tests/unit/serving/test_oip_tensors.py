"""OIP v2 tensors of every datatype, BYTES included, against tritonclient's own encoders."""

from __future__ import annotations

import numpy as np
import pytest
from tritonclient.utils import deserialize_bytes_tensor, serialize_byte_tensor

from serving import oip
from serving.errors import InvalidInput, PayloadTooLarge
from serving.runtime import OIP_TO_NUMPY

TEXTS = np.array([["great stay", ""], ["ünïcode ✓", "x" * 300]], dtype=object)


def test_every_oip_datatype_round_trips_in_binary_and_json():
    rng = np.random.default_rng(0)
    for datatype, dtype in OIP_TO_NUMPY.items():
        if datatype == "BYTES":
            arr = np.vectorize(lambda s: s.encode(), otypes=[object])(TEXTS)
        elif dtype.kind == "b":
            arr = rng.random((2, 3)) < 0.5
        else:
            arr = (rng.random((2, 3)) * 100).astype(dtype)
        raw = oip.raw_bytes(arr)
        back = oip.decode_tensor("t", datatype, list(arr.shape), raw=raw, max_bytes=10**6)
        assert back.dtype == dtype and back.shape == arr.shape
        assert back.tolist() == arr.tolist(), datatype
        data = oip.json_data("t", arr)
        again = oip.decode_tensor("t", datatype, list(arr.shape), data=data, max_bytes=10**6)
        assert again.tolist() == arr.tolist(), datatype
        assert oip.datatype_of(back) == datatype


def test_bytes_wire_format_is_tritonclients():
    arr = np.vectorize(lambda s: s.encode(), otypes=[object])(TEXTS)
    theirs = serialize_byte_tensor(arr).item()  # the length-prefixed form tritonclient sends
    assert oip.raw_bytes(arr) == theirs
    ours = oip.decode_tensor("t", "BYTES", [2, 2], raw=theirs, max_bytes=10**6)
    assert ours.tolist() == arr.tolist()
    assert deserialize_bytes_tensor(oip.raw_bytes(ours)).tolist() == arr.reshape(-1).tolist()
    assert oip.json_data("t", ours)[2] == "ünïcode ✓"


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"raw": b"\x05\x00\x00\x00abc"}, "declares 5 bytes, 3 are left"),
        ({"raw": b"\x01\x00"}, "has no 4-byte length prefix"),
        ({"raw": b"\x01\x00\x00\x00a\x01\x00\x00\x00bzz"}, "2 bytes follow the 2 BYTES"),
        ({"data": ["a", 3]}, "BYTES data must be strings, got int at 1"),
        ({"data": ["a"]}, "needs 2 elements, got 1"),
        ({}, "has no data"),
    ],
)
def test_malformed_bytes_are_refused_with_what_was_wrong(kwargs, fragment):
    with pytest.raises(InvalidInput, match=fragment):
        oip.decode_tensor("text", "BYTES", [2], max_bytes=10**6, **kwargs)


def test_bytes_limits_and_non_utf8_json_output():
    with pytest.raises(PayloadTooLarge):
        oip.decode_tensor("text", "BYTES", [10**6], raw=b"", max_bytes=1000)
    binary = np.array([b"\xff\xfe"], dtype=object)
    with pytest.raises(InvalidInput, match="not UTF-8 text"):
        oip.json_data("text", binary)
    assert oip.raw_bytes(binary) == b"\x02\x00\x00\x00\xff\xfe"


def test_bytes_reach_onnx_runtime_as_text_and_come_back_as_sent(tmp_path):
    """Wire bytes -> OIP decode -> gateway -> batcher -> ONNX Runtime string model -> wire."""
    import asyncio

    from onnx import TensorProto, helper

    from ecomgan.families import get_family
    from serving.batcher import Batcher
    from serving.catalog import ServedModel
    from serving.gateway import Gateway
    from serving.runtime import create_session, run_session, session_signature
    from serving.settings import Settings

    graph = helper.make_graph(
        [helper.make_node("Identity", ["text"], ["echo"])],
        "echo",
        [helper.make_tensor_value_info("text", TensorProto.STRING, ["n"])],
        [helper.make_tensor_value_info("echo", TensorProto.STRING, ["n"])],
    )
    path = tmp_path / "echo.onnx"
    path.write_bytes(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]).SerializeToString()
    )
    session = create_session(path, threads=1)
    signature = session_signature(session)
    assert signature.inputs[0].datatype == "BYTES"
    served = ServedModel("echo", get_family("products"), "generator", "1", signature, {})
    backend = Batcher(lambda x: run_session(session, signature, x), 8, 5000, name="echo")
    gateway = Gateway({"echo": served}, {"echo": backend}, Settings.parse({}))

    wire = serialize_byte_tensor(np.array(["héllo".encode(), b"", b"a b"], dtype=object)).item()
    inputs = {"text": oip.decode_tensor("text", "BYTES", [3], raw=wire, max_bytes=10**6)}
    out = asyncio.run(gateway.infer("echo", inputs))["echo"]
    assert oip.raw_bytes(out) == wire
    assert oip.json_data("echo", out) == ["héllo", "", "a b"]
    bad = {"text": np.array([b"\xff"], dtype=object)}
    with pytest.raises(InvalidInput, match="not UTF-8"):
        asyncio.run(gateway.infer("echo", bad))
