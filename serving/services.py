"""Building blocks that `service.py` composes into BentoML services, one set per registered family.

Two topologies (``ECOMGAN_TOPOLOGY``):

- ``colocated`` (default): the entry service (`EcomGAN`) loads every model into each of its
  workers and batches requests in-process (`serving.batcher`); no hop between processes.
- ``split``: role services (`Generator`, `Discriminator`) hold one ONNX Runtime session per family
  behind one BentoML batchable API per family, named after it; the entry reaches them over HTTP
  (`bentoml.depends`), so each role scales on its own (see deploy/k8s/split).

Either way the entry mixes in each family's user-facing API and owns the gateway that OIP HTTP
and OIP gRPC share.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
from typing import Any

import bentoml
import numpy as np
from bentoml.models import BentoModel

from ecomgan.families import FAMILIES, ROLES, Family
from serving.settings import Settings

logger = logging.getLogger("ecomgan.services")

# BentoML's dependency client recycles its HTTP session after `max_requests` requests or
# `max_age` seconds and closes the old one while other requests are still in flight on it,
# which surfaced as 500s (ServerDisconnectedError) under concurrency. Never recycle.
RUNNER_CONNECTION = {"max_requests": 10**9, "max_age": 1e9}


def topology() -> str:
    """``colocated`` or ``split``, from ``ECOMGAN_TOPOLOGY``."""
    return Settings.from_env().topology


def batch_limits(family: Family, role: str) -> tuple[int, int]:
    """``(max_batch_size, max_latency_ms)`` of one model: the registry's, or the env override
    ``ECOMGAN_<FAMILY>_<ROLE>_MAX_BATCH_SIZE`` / ``..._MAX_LATENCY_MS``."""
    defaults = (family.max_batch_size[role], family.max_latency_ms[role])
    return Settings.from_env().batch_limits(family.name, role, defaults)


def load_sessions(role: str) -> dict[str, tuple[Any, Any]]:
    """Family name -> (ONNX Runtime session, signature) of one role, from the model store.

    The INT8 file is loaded instead of the FP32 one where `serving.catalog.int8_path` says so
    (``ECOMGAN_PRECISION=int8``).
    """
    from serving.catalog import int8_path, stored_model
    from serving.runtime import create_session, session_signature

    sessions = {}
    for family in FAMILIES.values():
        model = stored_model(family, role)
        path = int8_path(model, warn=True) or model.path_of("model.onnx")
        try:
            session = create_session(path)
        except Exception as exc:
            raise RuntimeError(
                f"cannot load {path} ({model.tag}): {exc}. The file is corrupt; "
                f"delete the model (`bentoml models delete {model.tag}`) and re-register "
                f"it (`ecomgan register`)"
            ) from exc
        sessions[family.name] = (session, session_signature(session))
        logger.info("%s loaded %s (%s)", role, model.tag, os.path.basename(path))
    return sessions


_BATCH_SIZE_METRIC = None


def _observe_batch(model: str):
    """Record in-process batch sizes as ``ecomgan_batch_size`` (Prometheus, on /metrics)."""
    global _BATCH_SIZE_METRIC
    if _BATCH_SIZE_METRIC is None:
        _BATCH_SIZE_METRIC = bentoml.metrics.Histogram(
            name="ecomgan_batch_size",
            documentation="Items per model run of the in-process dynamic batcher",
            labelnames=["model"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
        )
    return _BATCH_SIZE_METRIC.labels(model=model).observe


def role_config(role: str) -> dict[str, Any]:
    """`@bentoml.service` keyword arguments of a role service (workers, resources, traffic)."""
    settings = Settings.from_env()
    config: dict[str, Any] = {
        "workers": settings.workers_of(role),
        "runner_connection": RUNNER_CONNECTION,
        "traffic": {"timeout": settings.request_timeout_s},
        "endpoints": {"livez": "/livez", "readyz": "/readyz"},
    }
    if settings.gpu:
        config["resources"] = {"gpu": 1}
    return config


def entry_config() -> dict[str, Any]:
    """`@bentoml.service` keyword arguments of the entry service."""
    settings = Settings.from_env()
    return {
        "workers": settings.workers_of("entry"),
        # One log line per HTTP request (ECOMGAN_ACCESS_LOG=off drops it).
        "logging": {"access": {"enabled": settings.access_log}},
        "traffic": {
            "timeout": settings.request_timeout_s,
            "max_concurrency": settings.max_concurrency,
        },
        "endpoints": {"livez": "/livez", "readyz": "/readyz"},
    }


def freeze_startup_heap() -> None:
    """Move every object alive after start-up (modules, BentoML, the sessions' Python side) out
    of the garbage collector's reach (`gc.freeze`).

    Otherwise each full collection walks that whole heap while requests wait: at 64 clients
    those pauses were the p99 (OIP HTTP p99 101-131 ms with them, 55-57 ms without; p50 alike;
    `benchmarks/results/performance.md`). Objects made later are collected as usual.
    """
    import gc

    gc.collect()
    gc.freeze()


class RoleServiceBase:
    """Loads one ONNX Runtime session per family for this service's role (split topology)."""

    role: str = ""

    def __init__(self) -> None:
        self.sessions = load_sessions(self.role)

    @bentoml.on_startup
    def _freeze_heap(self) -> None:
        freeze_startup_heap()

    def run(self, family: str, batch: np.ndarray) -> np.ndarray:
        from serving.runtime import run_records

        return run_records(*self.sessions[family], batch)


def _batch_api(family: Family, role: str):
    def infer(self, batch: np.ndarray) -> np.ndarray:
        return self.run(family.name, batch)

    infer.__name__ = family.name
    infer.__doc__ = f"Batched {family.model_name(role)} on a record array (one field per input)."
    max_batch_size, max_latency_ms = batch_limits(family, role)
    if max_batch_size == 1:  # batching off (BentoML's batchable APIs need a cap > 1)
        return bentoml.api(route=f"/{family.name}")(infer)
    return bentoml.api(
        batchable=True,
        max_batch_size=max_batch_size,
        max_latency_ms=max_latency_ms,
        route=f"/{family.name}",
    )(infer)


def role_bases(role: str) -> tuple[type, ...]:
    """Base classes of a role service: the session loader plus one batchable API per family."""

    mixins = [
        type(
            f"{family.name.title()}{role.title()}API",
            (),
            {
                family.name: _batch_api(family, role),
                f"model_{family.name}": BentoModel(f"{family.model_name(role)}:latest"),
            },
        )
        for family in FAMILIES.values()
    ]
    base = type(f"{role.title()}Base", (RoleServiceBase,), {"role": role})
    return (base, *mixins)


def model_refs() -> type:
    """A mixin declaring every family's models (``BentoModel``), so the bento packs them.

    The entry needs them itself in the colocated topology; the role services declare their own.
    """
    attrs = {
        f"model_{family.name}_{role}": BentoModel(f"{family.model_name(role)}:latest")
        for family in FAMILIES.values()
        for role in ROLES
    }
    return type("ModelRefs", (), attrs)


def family_api_bases() -> tuple[type, ...]:
    """Each family's user-facing API class, mixed into the entry service."""
    return tuple(family.load_api() for family in FAMILIES.values())


def batch_padding(family: Family, role: str) -> dict[str, Any]:
    """Input name -> padding function of one model, from the family API's
    ``batch_padding(role)`` (`ecomgan.contract.FamilyAPI`; default none: inputs batch only
    with items of the same shape)."""
    return dict(family.load_api().batch_padding(role))


def local_backends(catalog: dict) -> dict[str, Any]:
    """Model name -> in-process `Batcher` over a session of this worker (colocated topology)."""
    from serving.batcher import Batcher
    from serving.runtime import run_session

    backends = {}
    for role in ROLES:
        for family_name, (session, signature) in load_sessions(role).items():
            family = FAMILIES[family_name]
            name = family.model_name(role)
            max_batch_size, max_latency_ms = batch_limits(family, role)
            backends[name] = Batcher(
                functools.partial(run_session, session, signature),
                max_batch_size,
                max_latency_ms,
                name=name,
                observe=_observe_batch(name),
                pad=batch_padding(family, role),
            )
    return backends


def attach_logging() -> None:
    """Send ``ecomgan.*`` records through BentoML's handlers (its format, its level).

    BentoML configures only its own loggers in a worker; without this our INFO lines (refused
    requests, the gRPC port) would be dropped.
    """
    ours, theirs = logging.getLogger("ecomgan"), logging.getLogger("bentoml")
    if theirs.handlers and not ours.handlers:
        for handler in theirs.handlers:
            ours.addHandler(handler)
        ours.setLevel(logging.INFO)
        ours.propagate = False


class EntryBase:
    """Entry-service state shared by every family API and both OIP protocols.

    Each entry worker also runs the OIP gRPC server (SO_REUSEPORT: all workers share the port).
    In the split topology `service.py` adds the role services as `generator`/`discriminator`.
    """

    def __init__(self) -> None:
        from serving.catalog import load_catalog
        from serving.gateway import Gateway, RemoteModel

        attach_logging()
        self.limits = Settings.from_env()
        self.catalog = load_catalog()
        self.remote = topology() == "split"
        if self.remote:
            backends = {
                name: RemoteModel(getattr(self, served.role), served)
                for name, served in self.catalog.items()
            }
        else:
            backends = local_backends(self.catalog)
        self.gateway = Gateway(self.catalog, backends, self.limits)
        self._grpc = None
        self.accepting = True

    @bentoml.on_startup
    def _freeze_heap(self) -> None:
        freeze_startup_heap()

    @bentoml.on_startup
    async def _start_grpc(self) -> None:
        from serving import oip_grpc
        from serving.ports import PortInUseError

        if not self.limits.grpc:
            logger.info("OIP gRPC disabled by ECOMGAN_GRPC")
            return
        try:
            self._grpc = await oip_grpc.start(
                self,
                self.limits.grpc_port,
                max_message_bytes=self.limits.max_grpc_message_bytes,
                max_concurrent_rpcs=self.limits.grpc_workers,
            )
        except PortInUseError as exc:
            # Restarting the worker cannot free the port: stop the whole server (the
            # supervisor is this worker's parent) with one line, not a crash loop.
            logger.error("cannot start: %s", exc)
            os.kill(os.getppid(), signal.SIGTERM)
            os._exit(2)

    @bentoml.on_shutdown
    async def _stop_grpc(self) -> None:
        from serving import oip_grpc

        self.accepting = False  # readiness turns false before the drain
        if self._grpc is not None:
            await oip_grpc.stop(*self._grpc)

    async def dependencies_ready(self) -> bool:
        """True while accepting and, in the split topology, when both role services are ready."""
        if not self.accepting:
            return False
        if not self.remote:
            return True
        for client in (getattr(self, role) for role in ROLES):
            is_ready = getattr(client, "is_ready", None)
            if is_ready is None:
                continue
            try:
                if not await is_ready(timeout=2):
                    return False
            except Exception:
                return False
        return True
