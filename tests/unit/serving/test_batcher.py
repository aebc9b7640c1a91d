"""The in-process dynamic batcher: batches under concurrency, order, splitting, shedding, errors."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from serving.batcher import Batcher
from serving.errors import Unavailable


class SlowDouble:
    """A fake model: doubles its input, takes `delay` seconds per call, records batch sizes."""

    def __init__(self, delay: float = 0.01) -> None:
        self.delay = delay
        self.sizes: list[int] = []
        self.threads: set[str] = set()

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.sizes.append(len(inputs["x"]))
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)
        return {"y": inputs["x"] * 2}


def x(values) -> dict[str, np.ndarray]:
    return {"x": np.asarray(values, dtype=np.float64)}


def run(coro):
    return asyncio.run(coro)


def test_lone_request_runs_at_once():
    model = SlowDouble(0)
    batcher = Batcher(model, max_batch_size=8, max_latency_ms=1000, name="m")

    async def go():
        t0 = time.perf_counter()
        out = (await batcher(x(np.arange(3.0))))["y"]
        return out, time.perf_counter() - t0

    out, elapsed = run(go())
    np.testing.assert_array_equal(out, [0, 2, 4])
    assert model.sizes == [3]
    assert elapsed < 0.5


def test_concurrent_requests_share_batches_and_keep_their_own_outputs():
    model = SlowDouble(0.02)
    seen: list[int] = []
    batcher = Batcher(model, max_batch_size=16, max_latency_ms=5000, name="m", observe=seen.append)

    async def go():
        return await asyncio.gather(*(batcher(x(np.full(2, float(i)))) for i in range(40)))

    outs = run(go())
    for i, out in enumerate(outs):
        np.testing.assert_array_equal(out["y"], [2 * i, 2 * i])
    assert sum(model.sizes) == 80
    assert max(model.sizes) > 2  # requests met in batches
    assert max(model.sizes) <= 16
    assert seen == model.sizes
    assert len(model.threads) == 1  # one model thread, never the event loop's


def test_request_larger_than_the_batch_cap_is_split_in_order():
    model = SlowDouble(0)
    batcher = Batcher(model, max_batch_size=4, max_latency_ms=1000, name="m")
    out = run(batcher(x(np.arange(10.0))))
    np.testing.assert_array_equal(out["y"], np.arange(10.0) * 2)
    assert max(model.sizes) <= 4 and sum(model.sizes) == 10


def test_batching_off_runs_one_item_per_call():
    model = SlowDouble(0.001)
    batcher = Batcher(model, max_batch_size=1, max_latency_ms=10_000, name="m")

    async def go():
        return await asyncio.gather(*(batcher(x(np.ones(1))) for _ in range(20)))

    run(go())
    assert model.sizes == [1] * 20


def test_requests_queued_past_the_deadline_are_shed_as_unavailable():
    model = SlowDouble(0.05)
    batcher = Batcher(model, max_batch_size=1, max_latency_ms=20, name="gen")

    async def go():
        return await asyncio.gather(
            *(batcher(x(np.ones(1))) for _ in range(10)), return_exceptions=True
        )

    results = run(go())
    shed = [r for r in results if isinstance(r, Unavailable)]
    done = [r for r in results if isinstance(r, dict)]
    assert shed and done
    assert len(shed) + len(done) == 10
    assert "overloaded" in shed[0].message and "gen" in shed[0].message


def test_model_error_reaches_every_caller_of_the_batch_and_the_next_batch_runs():
    calls = []

    def flaky(inputs):
        calls.append(len(inputs["x"]))
        if len(calls) == 1:
            raise RuntimeError("boom")
        return {"y": inputs["x"]}

    batcher = Batcher(flaky, max_batch_size=8, max_latency_ms=1000, name="m")

    async def go():
        first = await asyncio.gather(batcher(x(np.ones(1))), return_exceptions=True)
        second = await batcher(x(np.ones(2)))
        return first, second

    first, second = run(go())
    assert isinstance(first[0], RuntimeError)
    np.testing.assert_array_equal(second["y"], [1, 1])


def test_rejects_a_zero_batch_cap():
    with pytest.raises(ValueError, match="max_batch_size"):
        Batcher(lambda x: x, max_batch_size=0, max_latency_ms=10)
