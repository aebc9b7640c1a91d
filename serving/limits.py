"""Serving limits, each configurable by an environment variable (documented in the README)."""

from __future__ import annotations

import os
from dataclasses import dataclass


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return value


@dataclass(frozen=True)
class Limits:
    """Per-request caps shared by the JSON APIs, OIP HTTP and OIP gRPC."""

    max_items: int  # items per model request (the batch axis of OIP and the image APIs)
    max_rows: int  # rows per request of the tabular JSON APIs (sent to the model in chunks)
    max_body_bytes: int  # HTTP request body
    max_grpc_message_bytes: int  # gRPC receive and send
    grpc_port: int
    grpc_workers: int  # concurrent gRPC calls served per entry worker

    @classmethod
    def from_env(cls) -> Limits:
        return cls(
            max_items=_env_int("ECOMGAN_MAX_ITEMS", 256),
            max_rows=_env_int("ECOMGAN_MAX_ROWS", 10_000),
            max_body_bytes=_env_int("ECOMGAN_MAX_BODY_BYTES", 16 * 1024 * 1024),
            max_grpc_message_bytes=_env_int("ECOMGAN_GRPC_MAX_MESSAGE_BYTES", 16 * 1024 * 1024),
            grpc_port=_env_int("ECOMGAN_GRPC_PORT", 3001),
            grpc_workers=_env_int("ECOMGAN_GRPC_CONCURRENCY", 512),
        )
