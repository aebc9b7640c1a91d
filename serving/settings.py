"""Every serving setting, read once per process from ``ECOMGAN_*`` environment variables.

The one place that reads them: each field of `Settings` names its variable, its default (as the
README's Configuration table shows it) and its meaning, and `tests/unit/serving/test_settings.py`
checks that table against these fields. Switches share one rule (`parse_bool`); a value that
cannot be read is a ValueError naming the variable, so a typo stops the server at start-up.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

TRUE_WORDS = ("1", "true", "on", "yes")
FALSE_WORDS = ("0", "false", "off", "no")
TOPOLOGIES = ("colocated", "split")
PRECISIONS = ("fp32", "int8")
WORKER_ROLES = ("entry", "generator", "discriminator")
MODEL_ROLES = ("generator", "discriminator")
MIB = 1024 * 1024


def parse_bool(name: str, raw: str) -> bool:
    """The one on/off rule: ``1/true/on/yes`` or ``0/false/off/no``, any case."""
    value = raw.strip().lower()
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise ValueError(f"{name} must be one of {'/'.join(TRUE_WORDS + FALSE_WORDS)}, got {raw!r}")


def _number(kind: type, what: str, ok: Callable[[Any], bool]) -> Callable[[str, str], Any]:
    def parse(name: str, raw: str) -> Any:
        try:
            value = kind(raw.strip())
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise ValueError(f"{name} must be {what}, got {raw!r}")
        return value

    return parse


positive_int = _number(int, "a positive integer", lambda v: v >= 1)
non_negative_int = _number(int, "an integer >= 0", lambda v: v >= 0)
positive_float = _number(float, "a positive number", lambda v: 0 < v < float("inf"))


def _choice(*allowed: str) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        value = raw.strip().lower()
        if value not in allowed:
            raise ValueError(f"{name} must be one of {allowed}, got {raw!r}")
        return value

    return parse


def _text(name: str, raw: str) -> str:
    return raw


def _providers(name: str, raw: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in raw.split(",") if p.strip())


def _setting(env: str, default: Any, shown: str, meaning: str, parse: Callable, **kw: Any) -> Any:
    """A dataclass field carrying its variable, README default and meaning as metadata."""
    meta = {"env": env, "default": shown, "meaning": meaning, "parse": parse}
    if isinstance(default, Mapping):
        return field(default_factory=lambda: MappingProxyType({}), metadata=meta, **kw)
    return field(default=default, metadata=meta, **kw)


def _pattern(env: str) -> re.Pattern:
    """``ECOMGAN_<FAMILY>_<ROLE>_MAX_BATCH_SIZE`` -> a regex capturing FAMILY and ROLE."""
    roles = "|".join(r.upper() for r in (MODEL_ROLES if "<FAMILY>" in env else WORKER_ROLES))
    text = re.escape(env).replace("<FAMILY>", "(?P<family>[A-Z0-9]+)")
    return re.compile(text.replace("<ROLE>", f"(?P<role>{roles})") + "$")


@dataclass(frozen=True)
class Settings:
    """Serving settings; `Settings.from_env()` reads them (once per process)."""

    grpc_port: int = _setting(
        "ECOMGAN_GRPC_PORT", 3001, "3001",
        "OIP gRPC port (`ecomgan serve --grpc-port`); every entry worker binds it with "
        "SO_REUSEPORT, and a worker refuses a port that another server holds (the server stops "
        "with one line naming the port and this setting)", positive_int,
    )
    grpc: bool = _setting("ECOMGAN_GRPC", True, "on", "`off` disables the gRPC server", parse_bool)
    max_items: int = _setting(
        "ECOMGAN_MAX_ITEMS", 256, "256", "images (batch rows) per request, all protocols",
        positive_int,
    )
    max_body_bytes: int = _setting(
        "ECOMGAN_MAX_BODY_BYTES", 16 * MIB, "16 MiB", "HTTP request body limit (413 above)",
        positive_int,
    )
    max_grpc_message_bytes: int = _setting(
        "ECOMGAN_GRPC_MAX_MESSAGE_BYTES", 16 * MIB, "16 MiB",
        "gRPC receive and send limit (grpcio's default is 4 MiB; 256 images of 28x28 FP32 are "
        "0.8 MB, so 16 MiB leaves room for larger families without letting one message pin "
        "memory)", positive_int,
    )
    grpc_workers: int = _setting(
        "ECOMGAN_GRPC_CONCURRENCY", 512, "512",
        "concurrent gRPC calls per entry worker (RESOURCE_EXHAUSTED above)", positive_int,
    )
    request_timeout_s: float = _setting(
        "ECOMGAN_REQUEST_TIMEOUT_S", 30.0, "30", "per-request timeout of every service",
        positive_float,
    )
    max_concurrency: int = _setting(
        "ECOMGAN_MAX_CONCURRENCY", 1024, "1024", "concurrent HTTP requests of the entry service",
        positive_int,
    )
    topology: str = _setting(
        "ECOMGAN_TOPOLOGY", "colocated", "colocated",
        "`colocated`: the entry workers hold the models and batch in-process; `split`: separate "
        "Generator/Discriminator services (see Architecture)", _choice(*TOPOLOGIES),
    )
    workers: Mapping[str, int] = _setting(
        "ECOMGAN_<ROLE>_WORKERS", {}, "1",
        "worker processes per service; ROLE is `ENTRY`, `GENERATOR` or `DISCRIMINATOR`",
        positive_int,
    )
    max_batch_size: Mapping[tuple[str, str], int] = _setting(
        "ECOMGAN_<FAMILY>_<ROLE>_MAX_BATCH_SIZE", {}, "256 (shoppers 1024)",
        "the most items per model run of one model (ROLE `GENERATOR` or `DISCRIMINATOR`); 1 "
        "turns batching off", positive_int,
    )
    max_latency_ms: Mapping[tuple[str, str], int] = _setting(
        "ECOMGAN_<FAMILY>_<ROLE>_MAX_LATENCY_MS", {}, "1000",
        "the longest a request of one model may queue before it is refused with 503",
        non_negative_int,
    )
    max_rows: int = _setting(
        "ECOMGAN_MAX_ROWS", 10_000, "10,000",
        "rows per request of the tabular JSON APIs (sent to the model in chunks of "
        "`ECOMGAN_MAX_ITEMS`; CSV answers stream 10,000 rows at a time, so memory stays flat "
        "if you raise it)", positive_int,
    )
    ort_threads: int = _setting(
        "ECOMGAN_ORT_THREADS", 0, "cgroup CPU quota",
        "ONNX Runtime intra-op threads (0: the cgroup CPU quota)", non_negative_int,
    )
    ort_spin: bool = _setting(
        "ECOMGAN_ORT_SPIN", False, "off",
        "ONNX Runtime's idle intra-op threads spin-wait by default; in a server that burns the "
        "cores that parse requests, so it is off", parse_bool,
    )
    ort_providers: tuple[str, ...] = _setting(
        "ECOMGAN_ORT_PROVIDERS", (), "CUDA, then CPU",
        "execution providers, comma-separated (the available ones are kept)", _providers,
    )
    access_log: bool = _setting(
        "ECOMGAN_ACCESS_LOG", True, "on", "BentoML's per-request HTTP access log line", parse_bool
    )
    fast_lane: bool = _setting(
        "ECOMGAN_FAST_LANE", True, "on",
        "the family JSON APIs and OIP inference are answered ahead of BentoML's per-request "
        "middleware (same limits, auth, errors and metrics; no OpenTelemetry spans); `off` "
        "sends them through BentoML's stack", parse_bool,
    )
    precision: str = _setting(
        "ECOMGAN_PRECISION", "fp32", "fp32",
        "`int8` serves the models' INT8 files (`ecomgan quantize`) on CPU, with their own "
        "calibration", _choice(*PRECISIONS),
    )
    gpu: bool = _setting(
        "ECOMGAN_GPU", False, "off", "`on` gives each role service one GPU (the GPU bento sets it)",
        parse_bool,
    )
    skip_shipped: bool = _setting(
        "ECOMGAN_SKIP_SHIPPED", False, "off",
        "`on` skips registering the repo's shipped models at start-up (set inside a bento)",
        parse_bool,
    )
    api_token: str = _setting(
        "ECOMGAN_API_TOKEN", "", "",
        "bearer token required on HTTP and gRPC (probes and `/metrics` stay open); unset: no "
        "authentication; never logged", _text, repr=False,
    )

    @classmethod
    def parse(cls, environ: Mapping[str, str]) -> Settings:
        """Read the settings from `environ` (unset or empty variables keep their defaults).

        Raises:
            ValueError: A value cannot be read; the message names the variable.
        """
        values: dict[str, Any] = {}
        for f in fields(cls):
            env, parse = f.metadata["env"], f.metadata["parse"]
            if "<" in env:  # a family of variables: a mapping keyed by role or (family, role)
                found = {}
                regex = _pattern(env)
                for name, raw in environ.items():
                    match = regex.match(name)
                    if match and raw.strip():
                        groups = match.groupdict()
                        role = groups["role"].lower()
                        key = (groups["family"].lower(), role) if "family" in groups else role
                        found[key] = parse(name, raw)
                values[f.name] = MappingProxyType(found)
            elif environ.get(env, "").strip():
                values[f.name] = parse(env, environ[env])
        return cls(**values)

    @classmethod
    def from_env(cls) -> Settings:
        """The process's settings, parsed from ``os.environ`` once and then reused.

        The same object comes back while the ``ECOMGAN_*`` variables stay as they were (in a
        server, for the life of the process); a test that changes one gets the new values.
        """
        return _cached(tuple(sorted(_ours(os.environ).items())))

    @classmethod
    def reload(cls) -> Settings:
        """Parse the environment again, whether or not it changed."""
        _cached.cache_clear()
        return cls.from_env()

    def workers_of(self, role: str) -> int:
        """Worker processes of one service (``entry``, ``generator``, ``discriminator``)."""
        return self.workers.get(role, 1)

    def batch_limits(self, family: str, role: str, defaults: tuple[int, int]) -> tuple[int, int]:
        """``(max_batch_size, max_latency_ms)`` of one model: the overrides, else `defaults`."""
        return (
            self.max_batch_size.get((family, role), defaults[0]),
            self.max_latency_ms.get((family, role), defaults[1]),
        )


def _ours(environ: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in environ.items() if k.startswith("ECOMGAN_")}


@functools.lru_cache(maxsize=1)
def _cached(variables: tuple[tuple[str, str], ...]) -> Settings:
    return Settings.parse(dict(variables))


def documented() -> list[tuple[str, str, str]]:
    """``(variable, default, meaning)`` of every setting, in declaration order."""
    return [tuple(f.metadata[k] for k in ("env", "default", "meaning")) for f in fields(Settings)]
