"""The one path to the models: validate named tensors, call a backend.

The JSON APIs, OIP HTTP and OIP gRPC all end in `Gateway.infer`, so their requests meet in the
same batches. A backend is any async callable from named input arrays to named output arrays:
an in-process `serving.batcher.Batcher` (the default, colocated topology), which takes the
arrays as they are, or a `RemoteModel` calling a batchable role service (the split topology),
which packs them into one record array for the hop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ecomgan.calibration import apply as apply_calibration
from serving.catalog import ServedModel
from serving.errors import InvalidInput, NotFound, Unavailable
from serving.runtime import oip_datatype, to_records
from serving.settings import Settings

logger = logging.getLogger("ecomgan.gateway")
# Backoff between attempts when a role service's connection fails: covers a supervisor
# restarting a crashed worker (the listening socket stays open, so new connections queue).
RETRY_DELAYS_S = (0.1, 0.5, 1.5)


Tensors = dict[str, np.ndarray]
Backend = Callable[[Tensors], Awaitable[Tensors]]


@dataclass(frozen=True)
class Scores:
    """A discriminator's answer for a batch, calibrated (``ecomgan.calibration``).

    Attributes:
        logit: Raw logits (B,).
        p: Calibrated probability that each item is synthetic / implausible (B,).
        flagged: ``p > threshold`` (B,).
        threshold: The calibrated decision threshold.
        target_fpr: The false-positive rate on real data the threshold was set at.
    """

    logit: np.ndarray
    p: np.ndarray
    flagged: np.ndarray
    threshold: float
    target_fpr: float


class Gateway:
    """Routes validated inference requests to each model's backend.

    Args:
        catalog: Served models by name.
        backends: Model name -> async call on named input arrays.
        limits: The serving settings (per-request caps).
    """

    def __init__(
        self, catalog: dict[str, ServedModel], backends: dict[str, Backend], limits: Settings
    ):
        self.catalog = catalog
        self.backends = backends
        self.limits = limits

    def model(self, name: str, version: str | None = None) -> ServedModel:
        """Look a model up by name and optional version, or raise NotFound saying what exists."""
        served = self.catalog.get(name)
        if served is None:
            raise NotFound(
                f"unknown model {name!r}; available models: {', '.join(sorted(self.catalog))}"
            )
        if version not in (None, "", served.version):
            raise NotFound(
                f"model {name!r} has no version {version!r}; the served version is "
                f"{served.version!r}"
            )
        return served

    def validate(self, served: ServedModel, inputs: dict[str, np.ndarray]) -> int:
        """Check names, datatypes, shapes, batch size and values; return the batch size."""
        specs = {s.name: s for s in served.signature.inputs}
        if set(inputs) != set(specs):
            missing = sorted(set(specs) - set(inputs))
            extra = sorted(set(inputs) - set(specs))
            raise InvalidInput(
                f"model {served.name!r} takes inputs {_describe(served.signature.inputs)}; "
                + (f"missing {missing}" if missing else "")
                + ("; " if missing and extra else "")
                + (f"unexpected {extra}" if extra else "")
            )
        batch = None
        for name, spec in specs.items():
            arr = inputs[name]
            if arr.dtype != spec.dtype:
                raise InvalidInput(
                    f"input {name!r} of {served.name!r} must be {spec.datatype}, "
                    f"got {oip_datatype(arr.dtype)}"
                )
            if arr.ndim != len(spec.shape) or not _fits(arr.shape[1:], spec.item_shape):
                raise InvalidInput(
                    f"input {name!r} of {served.name!r} must have shape {list(spec.shape)} "
                    f"(-1 = batch), got {list(arr.shape)}"
                )
            if batch is None:
                batch = arr.shape[0]
            elif arr.shape[0] != batch:
                raise InvalidInput(
                    f"inputs of {served.name!r} must share the batch size; "
                    f"{name!r} has {arr.shape[0]}, an earlier input has {batch}"
                )
            if spec.datatype == "BYTES":
                inputs[name] = _text(name, arr)
            if arr.dtype.kind == "f" and not np.isfinite(arr).all():
                raise InvalidInput(f"input {name!r} contains NaN or Inf; only finite values")
            if name in served.input_ranges and arr.size:
                lo, hi = served.input_ranges[name]
                if arr.min() < lo or arr.max() > hi:
                    raise InvalidInput(
                        f"input {name!r} of {served.name!r} takes values {lo}..{hi}, "
                        f"got {int(arr.min())}..{int(arr.max())}"
                    )
        if not batch or batch > self.limits.max_items:
            raise InvalidInput(
                f"batch size must be 1..{self.limits.max_items} per request, got {batch}"
            )
        return batch

    async def infer(
        self, name: str, inputs: dict[str, np.ndarray], version: str | None = None
    ) -> dict[str, np.ndarray]:
        """Validate and run one request through the model's batched backend.

        Returns:
            Output name -> array with the request's batch size on axis 0.
        """
        served = self.model(name, version)
        self.validate(served, inputs)
        backend = self.backends[served.name]
        if served.adapter is None:
            out = await backend(inputs)
        else:
            out = await run_adapter(served, inputs, backend)
        return {s.name: out[s.name] for s in served.signature.outputs}

    async def infer_chunked(
        self, name: str, inputs: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """`infer` for a table longer than one request may be: sent as concurrent requests of
        at most ``max_items`` rows (so they join the batches like any client's), concatenated.
        """
        n, step = len(next(iter(inputs.values()))), self.limits.max_items
        parts = await asyncio.gather(
            *(self.infer(name, {k: v[i : i + step] for k, v in inputs.items()})
              for i in range(0, n, step))
        )  # fmt: skip
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    async def score(self, name: str, inputs: dict[str, np.ndarray]) -> Scores:
        """Run a discriminator over a table (in chunks, as `infer_chunked`) and apply the
        calibration stored with it."""
        served = self.model(name)
        logit = (await self.infer_chunked(served.name, inputs))["logit"].reshape(-1)
        calibration = served.metadata["calibration"]
        p, flagged = apply_calibration(calibration, logit)
        return Scores(logit, p, flagged, float(calibration["threshold"]),
                      float(calibration["target_fpr"]))  # fmt: skip


async def run_adapter(served: ServedModel, inputs: Tensors, backend: Backend) -> Tensors:
    """Run a model's `ecomgan.contract.OIPAdapter` in a worker thread; each ONNX run it asks
    for goes through ``backend`` on this event loop (so it joins the dynamic batches).

    Raises:
        InvalidInput: The adapter refused the request (its ``ValueError``'s message).
    """
    loop = asyncio.get_running_loop()

    def run(onnx_inputs: Tensors) -> Tensors:
        return asyncio.run_coroutine_threadsafe(backend(onnx_inputs), loop).result()

    try:
        out = await asyncio.to_thread(served.adapter.call, inputs, run)
    except InvalidInput:
        raise
    except ValueError as exc:
        raise InvalidInput(f"{served.name}: {exc}") from None
    for spec in served.signature.outputs:
        if spec.name not in out:
            raise RuntimeError(f"the adapter of {served.name!r} did not return {spec.name!r}")
    return out


class RemoteModel:
    """A model behind a role service's batchable API (split topology).

    Args:
        client: The BentoML client of the role service (from `bentoml.depends`).
        served: The model; its family names the role service's API.
    """

    def __init__(self, client: Any, served: ServedModel) -> None:
        self.client = client
        self.served = served

    async def __call__(self, inputs: Tensors) -> Tensors:
        """Call the role service; retry connection failures (a worker restarting after a crash).

        Inference here is a pure function of its inputs, so a retry cannot duplicate an effect.
        """
        graph = self.served.graph_signature
        out = await self._call(to_records(graph.inputs, inputs))
        return {s.name: out[s.name] for s in graph.outputs}

    async def _call(self, records: np.ndarray) -> np.ndarray:
        import aiohttp
        import httpx
        from bentoml.exceptions import BentoMLException

        served = self.served
        method = getattr(self.client.to_async, served.family.name)
        for attempt, delay in enumerate((*RETRY_DELAYS_S, None)):
            try:
                return await method(records)
            except BentoMLException as exc:
                status = int(exc.error_code)
                if status in (429, 503):
                    raise Unavailable(
                        f"{served.role} service is overloaded; retry with backoff"
                    ) from None
                if status == 400:
                    raise InvalidInput(str(exc)) from None
                raise
            except (aiohttp.ClientError, httpx.TransportError, OSError) as exc:
                if delay is None:
                    raise Unavailable(
                        f"{served.role} service is unreachable after {attempt + 1} attempts "
                        f"({type(exc).__name__}); retry"
                    ) from None
                logger.warning("%s call failed (%s); retrying in %.1fs", served.name, exc, delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")


def _fits(item_shape: tuple[int, ...], spec: tuple[int, ...]) -> bool:
    """True when every axis matches the spec's, where the spec's is not -1 (any length)."""
    return all(want in (-1, got) for want, got in zip(spec, item_shape, strict=True))


def _describe(specs) -> str:
    return ", ".join(f"{s.name} {s.datatype} {list(s.shape)}" for s in specs)


def _text(name: str, arr: np.ndarray) -> np.ndarray:
    """BYTES elements as `str` for ONNX Runtime, whose string tensors take text: given a bytes
    object it would store its repr (``"b'...'"``). Raises InvalidInput for bytes that are not
    UTF-8."""
    out = np.empty(arr.shape, dtype=object)
    flat = out.reshape(-1)
    for i, v in enumerate(arr.reshape(-1)):
        if isinstance(v, bytes | bytearray):
            try:
                v = bytes(v).decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidInput(
                    f"input {name!r}: element {i} is not UTF-8; this model's BYTES inputs are text"
                ) from None
        elif not isinstance(v, str):
            raise InvalidInput(f"input {name!r}: element {i} is not text or bytes")
        flat[i] = v
    return out
