"""Dynamic batching inside the process that owns the model.

Requests queue up while the model is busy; when it frees up, everything queued (up to
`max_batch_size` items) goes through in one run. This is the scheduling of Triton's dynamic
batcher with no queue delay ("Dynamic Batcher", Triton Inference Server model configuration
docs): an idle server answers a lone request at once, a busy one forms batches as large as the
load makes them, and no request waits for a timer. A request whose queueing time passes
`max_latency_ms` before it is dispatched is shed with `Unavailable` (503 / UNAVAILABLE), as
BentoML's adaptive batcher does, so overload shows up as fast refusals instead of a growing queue.

The model runs in one dedicated thread (ONNX Runtime releases the GIL and uses its own intra-op
pool), so the event loop keeps parsing the next requests while a batch runs.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from serving.errors import Unavailable

logger = logging.getLogger("ecomgan.batcher")


@dataclass
class _Job:
    items: np.ndarray
    future: asyncio.Future
    enqueued: float


class Batcher:
    """Batch concurrent calls of `run` on record arrays (axis 0 = items).

    Args:
        run: Model call on a record array; returns one output record per input record.
        max_batch_size: Most items per `run` call; larger requests are split across calls.
        max_latency_ms: Longest a request may queue before it is refused as overloaded.
        name: Model name, for logs and metrics.
        observe: Called with each dispatched batch's size (e.g. a Prometheus histogram).
    """

    def __init__(
        self,
        run: Callable[[np.ndarray], np.ndarray],
        max_batch_size: int,
        max_latency_ms: float,
        name: str = "",
        observe: Callable[[int], None] | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        self.run = run
        self.max_batch_size = max_batch_size
        self.max_latency_s = max_latency_ms / 1000
        self.name = name
        self.observe = observe
        self._queue: collections.deque[_Job] = collections.deque()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"batch-{name}")
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    async def __call__(self, items: np.ndarray) -> np.ndarray:
        """Queue `items`, wait for their batch, return their outputs (same order)."""
        if len(items) > self.max_batch_size:
            parts = [
                self._submit(items[i : i + self.max_batch_size])
                for i in range(0, len(items), self.max_batch_size)
            ]
            return np.concatenate(await asyncio.gather(*parts))
        return await self._submit(items)

    def _submit(self, items: np.ndarray) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self._task = loop.create_task(self._dispatch_forever(), name=f"batcher-{self.name}")
        job = _Job(items, loop.create_future(), time.monotonic())
        self._queue.append(job)
        self._wake.set()
        return job.future

    def _take_batch(self) -> list[_Job]:
        """Pop queued jobs up to `max_batch_size` items; shed the ones queued past the deadline."""
        now, size, batch = time.monotonic(), 0, []
        while self._queue:
            job = self._queue[0]
            if job.future.done():  # the caller went away (cancelled or timed out)
                self._queue.popleft()
                continue
            if now - job.enqueued > self.max_latency_s:
                self._queue.popleft()
                job.future.set_exception(
                    Unavailable(
                        f"{self.name} is overloaded: the request queued for more than "
                        f"{self.max_latency_s * 1000:.0f} ms; retry with backoff"
                    )
                )
                continue
            if size + len(job.items) > self.max_batch_size:
                break
            size += len(job.items)
            batch.append(self._queue.popleft())
        return batch

    async def _dispatch_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
            batch = self._take_batch()
            if not batch:
                continue
            items = batch[0].items if len(batch) == 1 else np.concatenate([j.items for j in batch])
            try:
                out = await loop.run_in_executor(self._executor, self.run, items)
            except Exception as exc:  # the model failed: every caller in the batch gets it
                logger.exception("%s failed on a batch of %d", self.name, len(items))
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            if self.observe is not None:
                self.observe(len(items))
            start = 0
            for job in batch:
                end = start + len(job.items)
                if not job.future.done():
                    job.future.set_result(out[start:end])
                start = end

    def close(self) -> None:
        """Stop dispatching and fail what is still queued."""
        if self._task is not None:
            self._task.cancel()
        while self._queue:
            job = self._queue.popleft()
            if not job.future.done():
                job.future.set_exception(Unavailable(f"{self.name} is shutting down"))
        self._executor.shutdown(wait=False)
