"""Building blocks that `service.py` composes into BentoML services, one set per registered family.

Role services (`Generator`, `Discriminator`) hold one ONNX Runtime session per family and expose
one batchable API per family, named after it. The entry service (`EcomGAN`) mixes in each
family's user-facing API and owns the gateway that OIP HTTP and OIP gRPC share.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import bentoml
import numpy as np
from bentoml.models import BentoModel

from ecomgan.families import FAMILIES, Family
from serving.limits import Limits

logger = logging.getLogger("ecomgan.services")

# BentoML's dependency client recycles its HTTP session after `max_requests` requests or
# `max_age` seconds and closes the old one while other requests are still in flight on it,
# which surfaced as 500s (ServerDisconnectedError) under concurrency. Never recycle.
RUNNER_CONNECTION = {"max_requests": 10**9, "max_age": 1e9}


def _workers(role: str) -> int:
    return int(os.environ.get(f"ECOMGAN_{role.upper()}_WORKERS", "1"))


def role_config(role: str) -> dict[str, Any]:
    """`@bentoml.service` keyword arguments of a role service (workers, resources, traffic)."""
    config: dict[str, Any] = {
        "workers": _workers(role),
        "runner_connection": RUNNER_CONNECTION,
        "traffic": {"timeout": float(os.environ.get("ECOMGAN_REQUEST_TIMEOUT_S", "30"))},
        "endpoints": {"livez": "/livez", "readyz": "/readyz"},
    }
    if os.environ.get("ECOMGAN_GPU") == "1":
        config["resources"] = {"gpu": 1}
    return config


def entry_config() -> dict[str, Any]:
    """`@bentoml.service` keyword arguments of the entry service."""
    return {
        "workers": _workers("entry"),
        "traffic": {
            "timeout": float(os.environ.get("ECOMGAN_REQUEST_TIMEOUT_S", "30")),
            "max_concurrency": int(os.environ.get("ECOMGAN_MAX_CONCURRENCY", "1024")),
        },
        "endpoints": {"livez": "/livez", "readyz": "/readyz"},
    }


class RoleServiceBase:
    """Loads one ONNX Runtime session per family for this service's role."""

    role: str = ""

    def __init__(self) -> None:
        from serving.catalog import stored_model
        from serving.runtime import create_session, session_signature

        self.sessions: dict[str, Any] = {}
        self.signatures = {}
        for family in FAMILIES.values():
            model = stored_model(family, self.role)
            path = model.path_of("model.onnx")
            try:
                session = create_session(path)
            except Exception as exc:
                raise RuntimeError(
                    f"cannot load {path} ({model.tag}): {exc}. The file is corrupt; "
                    f"delete the model (`bentoml models delete {model.tag}`) and re-register "
                    f"it (`ecomgan register`)"
                ) from exc
            self.sessions[family.name] = session
            self.signatures[family.name] = session_signature(session)
            logger.info("%s serves %s", type(self).__name__, model.tag)

    def run(self, family: str, batch: np.ndarray) -> np.ndarray:
        from serving.runtime import run_records

        return run_records(self.sessions[family], self.signatures[family], batch)


def _batch_api(family: Family, role: str):
    def infer(self, batch: np.ndarray) -> np.ndarray:
        return self.run(family.name, batch)

    infer.__name__ = family.name
    infer.__doc__ = f"Batched {family.model_name(role)} on a record array (one field per input)."
    prefix = f"ECOMGAN_{family.name.upper()}_{role.upper()}"
    return bentoml.api(
        batchable=True,
        max_batch_size=int(os.environ.get(f"{prefix}_MAX_BATCH_SIZE", family.max_batch_size[role])),
        max_latency_ms=int(os.environ.get(f"{prefix}_MAX_LATENCY_MS", family.max_latency_ms[role])),
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


def family_api_bases() -> tuple[type, ...]:
    """Each family's user-facing API class, mixed into the entry service."""
    return tuple(family.load_api() for family in FAMILIES.values())


class EntryBase:
    """Entry-service state shared by every family API and both OIP protocols.

    Each entry worker also runs the OIP gRPC server (SO_REUSEPORT: all workers share the port).
    """

    generator: Any
    discriminator: Any

    def __init__(self) -> None:
        from serving.catalog import load_catalog
        from serving.gateway import Gateway

        self.limits = Limits.from_env()
        self.catalog = load_catalog()
        self.gateway = Gateway(
            self.catalog,
            {"generator": self.generator, "discriminator": self.discriminator},
            self.limits,
        )
        self._grpc = None
        self.accepting = True

    @bentoml.on_startup
    async def _start_grpc(self) -> None:
        from serving import oip_grpc

        if os.environ.get("ECOMGAN_GRPC", "on").lower() in ("0", "off", "false", "no"):
            logger.info("OIP gRPC disabled by ECOMGAN_GRPC")
            return
        self._grpc = await oip_grpc.start(
            self,
            self.limits.grpc_port,
            max_message_bytes=self.limits.max_grpc_message_bytes,
            max_concurrent_rpcs=self.limits.grpc_workers,
        )

    @bentoml.on_shutdown
    async def _stop_grpc(self) -> None:
        from serving import oip_grpc

        self.accepting = False  # readiness turns false before the drain
        if self._grpc is not None:
            await oip_grpc.stop(*self._grpc)

    async def dependencies_ready(self) -> bool:
        """True when both role services answer their readiness probe."""
        if not self.accepting:
            return False
        for client in (self.generator, self.discriminator):
            is_ready = getattr(client, "is_ready", None)
            if is_ready is None:
                continue
            try:
                if not await is_ready(timeout=2):
                    return False
            except Exception:
                return False
        return True
