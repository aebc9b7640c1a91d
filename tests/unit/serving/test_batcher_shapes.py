"""Items of variable length: the batcher groups requests by item shape, or pads where told to.

The model is a real ONNX graph run by ONNX Runtime (`serving.runtime.run_session`): token ids
with a dynamic length axis and their mask in, the masked sum and the length of each row out.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from ecomgan.families import get_family
from serving import services
from serving.batcher import Batcher, pad_to_longest
from serving.catalog import ServedModel
from serving.errors import InvalidInput
from serving.gateway import Gateway
from serving.runtime import Signature, TensorSpec, create_session, run_session, session_signature
from serving.settings import Settings


def _save(graph, path) -> None:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.checker.check_model(model)
    onnx.save(model, path)


@pytest.fixture(scope="module")
def masked_sum(tmp_path_factory):
    """(session, signature) of: total = sum(tokens * mask, axis 1), length = sum(mask, axis 1)."""
    path = tmp_path_factory.mktemp("onnx") / "masked_sum.onnx"
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["tokens"], ["tokens_f"], to=TensorProto.FLOAT),
            helper.make_node("Mul", ["tokens_f", "mask"], ["masked"]),
            helper.make_node("ReduceSum", ["masked", "axes"], ["total"], keepdims=0),
            helper.make_node("ReduceSum", ["mask", "axes"], ["length"], keepdims=0),
        ],
        "masked_sum",
        [
            helper.make_tensor_value_info("tokens", TensorProto.INT64, ["n", "seq"]),
            helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["n", "seq"]),
        ],
        [
            helper.make_tensor_value_info("total", TensorProto.FLOAT, ["n"]),
            helper.make_tensor_value_info("length", TensorProto.FLOAT, ["n"]),
        ],
        initializer=[axes],
    )
    _save(graph, path)
    session = create_session(path, threads=1)
    return session, session_signature(session)


class Recorded:
    """`run_session` on a real session; records the shapes of every run, holds the first one
    until released so that the next requests queue up behind it."""

    def __init__(self, session, signature) -> None:
        self.session, self.signature = session, signature
        self.runs: list[dict[str, tuple[int, ...]]] = []
        self.release = threading.Event()

    def __call__(self, inputs):
        self.runs.append({k: v.shape for k, v in inputs.items()})
        if len(self.runs) == 1:
            self.release.wait(5)
        return run_session(self.session, self.signature, inputs)


def request(tokens: list[list[int]]) -> dict[str, np.ndarray]:
    ids = np.asarray(tokens, dtype=np.int64)
    return {"tokens": ids, "mask": np.ones(ids.shape, dtype=np.float32)}


def serve_queued(batcher: Batcher, model: Recorded, requests: list[dict]) -> list[dict]:
    """Send a blocker, queue `requests` behind it, release the model, return their answers."""

    async def go():
        blocker = asyncio.ensure_future(batcher(request([[1]])))
        await asyncio.sleep(0.05)  # the blocker is running; the rest queue behind it
        answers = [asyncio.ensure_future(batcher(r)) for r in requests]
        await asyncio.sleep(0.05)
        model.release.set()
        await blocker
        return await asyncio.gather(*answers)

    return asyncio.run(go())


REQUESTS = [
    request([[1, 2, 3]]),
    request([[4, 5, 6, 7, 8], [1, 1, 1, 1, 1]]),
    request([[10, 20, 30], [0, 0, 1]]),
    request([[9, 9, 9, 9, 9]]),
]
EXPECTED = [([6], [3]), ([30, 5], [5, 5]), ([60, 1], [3, 3]), ([45], [5])]


def test_requests_of_different_item_shapes_never_share_a_run(masked_sum):
    model = Recorded(*masked_sum)
    batcher = Batcher(model, max_batch_size=64, max_latency_ms=5000, name="m")
    answers = serve_queued(batcher, model, REQUESTS)
    for answer, (total, length) in zip(answers, EXPECTED, strict=True):
        np.testing.assert_array_equal(answer["total"], total)
        np.testing.assert_array_equal(answer["length"], length)
    queued_runs = model.runs[1:]
    # one run per shape group, each with every queued request of that shape
    assert sorted(r["tokens"] for r in queued_runs) == [(3, 3), (3, 5)]
    assert all(r["mask"] == r["tokens"] for r in queued_runs)


def test_a_padding_function_lets_different_lengths_share_one_run(masked_sum):
    model = Recorded(*masked_sum)
    pad = {"tokens": pad_to_longest(0), "mask": pad_to_longest(0.0)}
    batcher = Batcher(model, max_batch_size=64, max_latency_ms=5000, name="m", pad=pad)
    answers = serve_queued(batcher, model, REQUESTS)
    for answer, (total, length) in zip(answers, EXPECTED, strict=True):
        # the mask keeps the padding out: the same answers as alone, lengths unpadded
        np.testing.assert_array_equal(answer["total"], total)
        np.testing.assert_array_equal(answer["length"], length)
    assert model.runs[1:] == [{"tokens": (6, 5), "mask": (6, 5)}]


def test_the_batch_cap_still_holds_within_a_shape_group(masked_sum):
    model = Recorded(*masked_sum)
    batcher = Batcher(model, max_batch_size=2, max_latency_ms=5000, name="m")
    answers = serve_queued(batcher, model, REQUESTS)
    assert [len(a["total"]) for a in answers] == [1, 2, 2, 1]
    assert all(r["tokens"][0] <= 2 for r in model.runs)


def test_pad_to_longest_pads_every_axis_after_the_first():
    a = np.ones((1, 2, 3), dtype=np.int32)
    b = np.full((2, 3, 1), 2, dtype=np.int32)
    out = pad_to_longest(-1)([a, b])
    assert out.shape == (3, 3, 3) and out.dtype == np.int32
    np.testing.assert_array_equal(out[0], [[1, 1, 1], [1, 1, 1], [-1, -1, -1]])
    np.testing.assert_array_equal(out[1:, :, 0], 2)
    assert (out[1:, :, 1:] == -1).all()


def test_bytes_items_batch_through_a_string_model(tmp_path):
    path = tmp_path / "echo.onnx"
    graph = helper.make_graph(
        [helper.make_node("Identity", ["text"], ["echo"])],
        "echo",
        [helper.make_tensor_value_info("text", TensorProto.STRING, ["n"])],
        [helper.make_tensor_value_info("echo", TensorProto.STRING, ["n"])],
    )
    _save(graph, path)
    session = create_session(path, threads=1)
    model = Recorded(session, session_signature(session))
    batcher = Batcher(model, max_batch_size=64, max_latency_ms=5000, name="echo")
    words = [["héllo", "a"], ["wörld"], ["", "xyz", "q"]]
    requests = [{"text": np.array(w, dtype=object)} for w in words]
    model.release.set()  # no blocker needed: the first run is one of these requests

    async def go():
        return await asyncio.gather(*(batcher(r) for r in requests))

    answers = asyncio.run(go())
    for answer, w in zip(answers, words, strict=True):
        assert answer["echo"].tolist() == w
    assert sum(r["text"][0] for r in model.runs) == 6


class PaddedAPI(get_family("products").load_api()):
    """A family API declaring the padding hook (what a text family would ship)."""

    @staticmethod
    def batch_padding(role: str) -> dict:
        return {"tokens": pad_to_longest(0), "mask": pad_to_longest(0.0)} if role == "x" else {}


def test_the_padding_hook_is_read_from_the_family_api():
    products = get_family("products")
    assert services.batch_padding(products, "generator") == {}  # no hook: group by shape
    text = dataclasses.replace(products, api=f"{__name__}:PaddedAPI")
    assert set(services.batch_padding(text, "x")) == {"tokens", "mask"}
    assert services.batch_padding(text, "generator") == {}


def test_the_gateway_takes_any_length_on_dynamic_axes_only(masked_sum):
    session, signature = masked_sum
    served = ServedModel("text-x", get_family("products"), "x", "v1", signature, {})
    gateway = Gateway({served.name: served}, {}, Settings())
    assert gateway.validate(served, request([[1, 2, 3, 4, 5, 6, 7]])) == 1
    fixed = Signature((TensorSpec("tokens", "INT64", (-1, 4)),), signature.outputs)
    served = dataclasses.replace(served, signature=fixed)
    with pytest.raises(InvalidInput, match=r"must have shape \[-1, 4\]"):
        gateway.validate(served, {"tokens": np.zeros((1, 5), dtype=np.int64)})
