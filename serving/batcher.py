"""Dynamic batching inside the process that owns the model.

Requests queue up while the model is busy; when it frees up, everything queued (up to
`max_batch_size` items) goes through in one run. This is the scheduling of Triton's dynamic
batcher with no queue delay ("Dynamic Batcher", Triton Inference Server model configuration
docs): an idle server answers a lone request at once, a busy one forms batches as large as the
load makes them, and no request waits for a timer. A request whose queueing time passes
`max_latency_ms` before it is dispatched is shed with `Unavailable` (503 / UNAVAILABLE), as
BentoML's adaptive batcher does, so overload shows up as fast refusals instead of a growing queue.

A request is a dict of named arrays (axis 0 = items), passed as is: the batcher concatenates each
input along axis 0, runs the model once and hands each caller its slice of every output. Only
requests whose items have the same shape beyond axis 0 share a run (variable-length inputs form
one group per shape), unless the family gives a padding function for that input
(`pad_to_longest`, or its API's ``batch_padding(role)``).

The model runs in one dedicated thread (ONNX Runtime releases the GIL and uses its own intra-op
pool), so the event loop keeps parsing the next requests while a batch runs.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from serving.errors import Unavailable

logger = logging.getLogger("ecomgan.batcher")

Tensors = dict[str, np.ndarray]
# Joins one input of several requests into one array along axis 0, padding where item shapes differ.
PadFn = Callable[[Sequence[np.ndarray]], np.ndarray]


def pad_to_longest(fill: Any = 0) -> PadFn:
    """A `PadFn` that pads every axis after the first to the batch's longest with `fill`.

    For token sequences give one for the ids (the pad id) and one for the mask input (0).
    """

    def pad(arrays: Sequence[np.ndarray]) -> np.ndarray:
        first = arrays[0]
        shape = [max(a.shape[d] for a in arrays) for d in range(1, first.ndim)]
        out = np.full((sum(len(a) for a in arrays), *shape), fill, dtype=first.dtype)
        start = 0
        for a in arrays:
            out[(slice(start, start + len(a)), *(slice(0, n) for n in a.shape[1:]))] = a
            start += len(a)
        return out

    return pad


@dataclass
class _Job:
    inputs: Tensors
    size: int
    key: tuple
    future: asyncio.Future
    enqueued: float


class Batcher:
    """Batch concurrent calls of `run` on dicts of named arrays (axis 0 = items).

    Args:
        run: Model call on named inputs; returns named outputs with one row per input row.
        max_batch_size: Most items per `run` call; larger requests are split across calls.
        max_latency_ms: Longest a request may queue before it is refused as overloaded.
        name: Model name, for logs and metrics.
        observe: Called with each dispatched batch's size (e.g. a Prometheus histogram).
        pad: Input name -> `PadFn` for inputs whose items may differ in shape and are padded
            into one run; every other input batches only with items of its own shape.
    """

    def __init__(
        self,
        run: Callable[[Tensors], Tensors],
        max_batch_size: int,
        max_latency_ms: float,
        name: str = "",
        observe: Callable[[int], None] | None = None,
        pad: Mapping[str, PadFn] | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        self.run = run
        self.max_batch_size = max_batch_size
        self.max_latency_s = max_latency_ms / 1000
        self.name = name
        self.observe = observe
        self.pad = dict(pad or {})
        self._queue: collections.deque[_Job] = collections.deque()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"batch-{name}")
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    async def __call__(self, inputs: Tensors) -> Tensors:
        """Queue `inputs`, wait for their batch, return their outputs (same order)."""
        size = len(next(iter(inputs.values())))
        if size > self.max_batch_size:
            step = self.max_batch_size
            chunks = [{k: v[i : i + step] for k, v in inputs.items()} for i in range(0, size, step)]
            parts = await asyncio.gather(
                *(self._submit(chunk, len(next(iter(chunk.values())))) for chunk in chunks)
            )
            return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        return await self._submit(inputs, size)

    def _key(self, inputs: Tensors) -> tuple:
        """What requests must share to be concatenated: item shape and dtype of each input."""
        return tuple(
            (k, v.dtype.str, None if k in self.pad else v.shape[1:]) for k, v in inputs.items()
        )

    def _submit(self, inputs: Tensors, size: int) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self._task = loop.create_task(self._dispatch_forever(), name=f"batcher-{self.name}")
        job = _Job(inputs, size, self._key(inputs), loop.create_future(), time.monotonic())
        self._queue.append(job)
        self._wake.set()
        return job.future

    def _take_batch(self) -> list[_Job]:
        """Pop the oldest job and the queued jobs of its group, up to `max_batch_size` items;
        shed the ones queued past the deadline. Jobs of other groups keep their place."""
        now, size, batch, kept = time.monotonic(), 0, [], collections.deque()
        while self._queue:
            job = self._queue.popleft()
            if job.future.done():  # the caller went away (cancelled or timed out)
                continue
            if now - job.enqueued > self.max_latency_s:
                job.future.set_exception(
                    Unavailable(
                        f"{self.name} is overloaded: the request queued for more than "
                        f"{self.max_latency_s * 1000:.0f} ms; retry with backoff"
                    )
                )
                continue
            if batch and job.key != batch[0].key:
                kept.append(job)
                continue
            if size + job.size > self.max_batch_size:
                kept.append(job)
                break
            size += job.size
            batch.append(job)
        kept.extend(self._queue)
        self._queue = kept
        return batch

    def _join(self, batch: list[_Job]) -> Tensors:
        if len(batch) == 1:
            return batch[0].inputs
        joined = {}
        for name in batch[0].inputs:
            arrays = [job.inputs[name] for job in batch]
            joined[name] = self.pad[name](arrays) if name in self.pad else np.concatenate(arrays)
        return joined

    async def _dispatch_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
            batch = self._take_batch()
            if not batch:
                continue
            size = sum(job.size for job in batch)
            try:
                out = await loop.run_in_executor(self._executor, self.run, self._join(batch))
            except Exception as exc:  # the model failed: every caller in the batch gets it
                logger.exception("%s failed on a batch of %d", self.name, size)
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            if self.observe is not None:
                self.observe(size)
            start = 0
            for job in batch:
                end = start + job.size
                if not job.future.done():
                    job.future.set_result({k: v[start:end] for k, v in out.items()})
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
