"""The `OIPAdapter` hook of the family contract: a model whose protocol tensors (text) differ
from its ONNX graph's (ids), run through the gateway and a real dynamic batcher over an ONNX
Runtime session."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from onnx import TensorProto, helper

from ecomgan.contract import FamilyAPI, OIPAdapter
from ecomgan.families import ROLES, get_family
from serving.batcher import Batcher
from serving.catalog import ServedModel, adapted_signature
from serving.errors import InvalidInput
from serving.gateway import Gateway
from serving.runtime import create_session, run_session, session_signature
from serving.settings import Settings


def _graph(path) -> None:
    """ids (B, 4) int64 -> total (B,) int64: ReduceSum over axis 1."""
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["ids", "axes"], ["total"], keepdims=0)],
        "sum", [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", 4])],
        [helper.make_tensor_value_info("total", TensorProto.INT64, ["batch"])], [axes],
    )  # fmt: skip
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
                     .SerializeToString())  # fmt: skip


def _call(inputs, run):
    texts = list(inputs["text"])
    if any(not t for t in texts):
        raise ValueError("empty text; give at least one character")
    ids = np.zeros((len(texts), 4), np.int64)
    for i, t in enumerate(texts):
        codes = [ord(c) for c in t[:4]]
        ids[i, : len(codes)] = codes
    total = run({"ids": ids})["total"]  # through the batcher, possibly several times
    assert (run({"ids": ids})["total"] == total).all()
    return {"label": np.array([f"{t}:{n}" for t, n in zip(texts, total, strict=True)],
                              dtype=object)}


ADAPTER = OIPAdapter(
    inputs=({"name": "text", "datatype": "BYTES", "shape": [-1]},),
    outputs=({"name": "label", "datatype": "BYTES", "shape": [-1]},),
    call=_call,
)


@pytest.fixture
def gateway(tmp_path):
    _graph(tmp_path / "m.onnx")
    session = create_session(tmp_path / "m.onnx", threads=1)
    graph = session_signature(session)
    served = ServedModel(name="reviews-discriminator", family=get_family("reviews"),
                         role="discriminator", version="v1", signature=adapted_signature(ADAPTER),
                         metadata={}, adapter=ADAPTER, onnx_signature=graph)  # fmt: skip
    runs: list[int] = []

    def run(inputs):
        runs.append(len(inputs["ids"]))
        return run_session(session, graph, inputs)

    limits = Settings(max_items=8, max_rows=100, max_body_bytes=1 << 20,
                      max_grpc_message_bytes=1 << 20, grpc_port=3001, grpc_workers=8)  # fmt: skip
    return Gateway({served.name: served}, {served.name: Batcher(run, 64, 1000)}, limits), runs


def test_the_default_is_no_adapter_for_the_existing_families():
    for name in ("products", "shoppers"):
        api = get_family(name).load_api()
        assert all(api.oip_adapter(role, {}, {}) is None for role in ROLES)
    assert FamilyAPI.oip_adapter("generator", {}, {}) is None


def test_text_in_text_out_through_the_batched_graph(gateway):
    gw, runs = gateway

    async def go():
        texts = np.array([b"ab", "héllo".encode()], dtype=object)
        return await gw.infer("reviews-discriminator", {"text": texts})

    out = asyncio.run(go())
    assert out["label"].tolist() == [f"ab:{97 + 98}", f"héllo:{sum(map(ord, 'héll'))}"]
    assert runs == [2, 2]  # the adapter ran the graph twice, each through the batcher


def test_adapter_refusals_and_protocol_checks_are_client_errors(gateway):
    gw, _ = gateway

    def infer(inputs):
        return asyncio.run(gw.infer("reviews-discriminator", inputs))

    with pytest.raises(InvalidInput, match="empty text"):
        infer({"text": np.array([b"ok", b""], dtype=object)})
    with pytest.raises(InvalidInput, match="not UTF-8"):
        infer({"text": np.array([b"\xff"], dtype=object)})
    with pytest.raises(InvalidInput, match="takes inputs text BYTES"):
        infer({"ids": np.zeros((1, 4), np.int64)})  # the graph's own input is not served
    with pytest.raises(InvalidInput, match="batch size must be 1..8"):
        infer({"text": np.array([b"a"] * 9, dtype=object)})
