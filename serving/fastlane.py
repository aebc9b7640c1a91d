"""The entry worker's front door: hot routes answered ahead of BentoML's per-request middleware.

Profiled on 2 cores (benchmarks/results/serving_profile.md), about 70% of an entry worker's
event-loop time per OIP HTTP request went to BentoML's per-request chain (Prometheus traffic
metrics, an OpenTelemetry span with its wrapped send/receive, timeout and concurrency
middlewares, context, two Starlette routers and a Mount) and only 10% to the request's own work;
a JSON API also paid for a JSON schema built anew for every response. `FastLane` is the ASGI app
uvicorn calls: the family JSON APIs (``POST``, JSON in, JSON out) and OIP inference
(``POST /v2/models/{m}[/versions/{v}]/infer``) are answered here, with what users rely on kept:
bearer auth, the body, concurrency and time limits, our ``{"error": ...}`` refusals in the same
words (`serving.edge`, `serving.oip_http` do the checking), Prometheus counters on ``/metrics``
(``ecomgan_http_*``) and the access log. Everything else (uploads, PNG routes, docs, UI,
health, ``/metrics``, lifespan) goes to BentoML's app unchanged, and ``ECOMGAN_FAST_LANE=off``
sends everything there (for OpenTelemetry spans on every route).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import bentoml
import orjson
from bentoml import get_current_service
from bentoml.exceptions import BentoMLException
from pydantic import BaseModel, ValidationError
from starlette.responses import Response

from serving import auth, oip_http
from serving.edge import RouteSpec, check_json, read_body, route_specs
from serving.errors import (
    DeadlineExceeded,
    ServerFault,
    ServingError,
    TooManyRequests,
    UnsupportedMediaType,
    error_response,
    send_error,
)
from serving.settings import Settings

logger = logging.getLogger("ecomgan.refused")
access_logger = logging.getLogger("bentoml.access")
JSON_MEDIA = (b"application/json", b"text/plain", b"")
OIP_INFER = "/v2/models/{model}/infer"


@dataclass(frozen=True)
class JsonRoute:
    """A family JSON API the fast lane answers: its input checks and its function."""

    spec: RouteSpec
    # The undecorated ``async def`` of the API, called with the instance and every field (so
    # BentoML's per-call binding of defaults, `APIMethod.local`, has nothing left to do).
    func: Callable[..., Awaitable[Any]]
    fields: tuple[str, ...]


def json_routes(apis: dict[str, Any]) -> dict[str, JsonRoute]:
    """The APIs (``Service.apis``) that take a JSON body and answer JSON from an async method
    taking plain keyword arguments; uploads, streams, tasks, batchable and context-taking APIs
    stay with BentoML."""
    specs = route_specs(apis)
    routes = {}
    for api in apis.values():
        spec = specs[api.route]
        if (
            spec.files
            or api.batchable
            or api.is_stream
            or api.is_task
            or api.ctx_param is not None
            or getattr(api.input_spec, "__root_input__", False)
            or not inspect.iscoroutinefunction(api.func)
            or api.output_spec.mime_type() != "application/json"
        ):
            continue
        routes[api.route] = JsonRoute(spec, api.func, tuple(spec.fields))
    return routes


def _oip_target(path: str) -> tuple[str, str | None] | None:
    """``(model, version)`` of an OIP inference path, else None."""
    parts = path.split("/")
    if len(parts) == 5 and parts[4] == "infer" and parts[3]:  # /v2/models/{m}/infer
        return parts[3], None
    if len(parts) == 7 and parts[4] == "versions" and parts[6] == "infer" and parts[3]:
        return parts[3], parts[5]
    return None


class _Metrics:
    """``ecomgan_http_requests_total`` and ``ecomgan_http_request_duration_seconds`` by route
    template and status; the labelled children are cached (prometheus' ``labels()`` costs more
    than the update)."""

    def __init__(self) -> None:
        import bentoml

        labels = ["endpoint", "http_response_code"]
        self.total = bentoml.metrics.Counter(
            name="ecomgan_http_requests_total",
            documentation="HTTP requests answered by the fast lane",
            labelnames=labels,
        )
        self.duration = bentoml.metrics.Histogram(
            name="ecomgan_http_request_duration_seconds",
            documentation="Time from the request's arrival to its answer (fast lane)",
            labelnames=labels,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self._children: dict[tuple[str, int], tuple[Any, Any]] = {}

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        children = self._children.get((endpoint, status))
        if children is None:
            children = (
                self.total.labels(endpoint=endpoint, http_response_code=status),
                self.duration.labels(endpoint=endpoint, http_response_code=status),
            )
            self._children[(endpoint, status)] = children
        children[0].inc()
        children[1].observe(seconds)


class FastLane:
    """ASGI app in front of BentoML's: see the module docstring.

    Args:
        app: BentoML's ASGI app of the entry service (everything not answered here).
        apis: The entry service's ``apis``.
        settings: Limits, token and access-log switch.
        workers: Entry worker processes (the concurrency limit is per service, like BentoML's).
    """

    def __init__(self, app, apis: dict[str, Any], settings: Settings, workers: int = 1) -> None:
        self.app = app
        self.routes = json_routes(apis)
        self.token = settings.api_token.encode() if settings.api_token else None
        self.max_body_bytes = settings.max_body_bytes
        self.timeout_s = settings.request_timeout_s
        self.max_in_flight = -(-settings.max_concurrency // max(1, workers))
        self.access_log = settings.access_log
        self.in_flight = 0
        self._metrics: _Metrics | None = None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        route = self.routes.get(path)
        target = None if route is not None else _oip_target(path)
        entry = _entry()
        if (route is None and target is None) or entry is None:
            await self.app(scope, receive, send)  # BentoML answers (or says it is starting)
            return
        start = time.perf_counter()
        headers = dict(scope["headers"])
        token = self.token
        if token is not None and not auth.authorized(headers.get(b"authorization"), token):
            await auth.refuse(send)
            return
        if self.in_flight >= self.max_in_flight:
            # BentoML's own limit answers 429 "Too many requests" too; ours says which limit.
            await send_error(
                send,
                TooManyRequests(
                    f"too many concurrent requests (the limit is {self.max_in_flight} per "
                    "worker, ECOMGAN_MAX_CONCURRENCY); retry later"
                ),
                [(b"retry-after", b"1")],
            )
            return
        self.in_flight += 1
        try:
            try:
                async with asyncio.timeout(self.timeout_s):
                    body = await read_body(
                        receive, self.max_body_bytes, headers.get(b"content-length")
                    )
                    if route is not None:
                        response = await self._json_api(entry, route, headers, body)
                    else:
                        length = headers.get(oip_http.HEADER_LENGTH.encode())
                        response = await oip_http.infer(
                            entry, *target, body, length.decode("latin-1") if length else None
                        )
            except ServingError as exc:
                logger.info("refused POST %s (%d): %s", path, int(exc.http_status), exc.message)
                response = error_response(exc)
            except TimeoutError:
                response = error_response(DeadlineExceeded(
                    f"not answered within {self.timeout_s:g} s (ECOMGAN_REQUEST_TIMEOUT_S)"
                ))  # fmt: skip
            except Exception:  # a bug of ours: a 500 that says where to look, never a hang
                logger.exception("POST %s failed", path)
                response = error_response(ServerFault("internal error; see the server log"))
            await response(scope, receive, send)
        finally:
            self.in_flight -= 1
        self._record(scope, route.spec.route if route else OIP_INFER, response, start)

    async def _json_api(self, entry, route: JsonRoute, headers: dict, body: bytes) -> Response:
        media = headers.get(b"content-type", b"application/json").split(b";")[0].strip().lower()
        if media not in JSON_MEDIA:
            raise UnsupportedMediaType(
                f"{route.spec.route} takes a JSON object (Content-Type: application/json); "
                f"got Content-Type {media.decode('latin-1')!r}"
            )
        try:
            request: BaseModel = route.spec.strict.model_validate_json(body.strip() or b"{}")
        except ValidationError:
            check_json(route.spec, body)  # raises InvalidInput naming the field
            raise
        output = await route.func(entry, **{name: getattr(request, name) for name in route.fields})
        if isinstance(output, Response):
            return output
        return Response(
            orjson.dumps(output, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json"
        )

    def _record(self, scope, endpoint: str, response: Response, start: float) -> None:
        elapsed = time.perf_counter() - start
        if self._metrics is None:
            self._metrics = _Metrics()
        self._metrics.observe(endpoint, response.status_code, elapsed)
        if self.access_log:
            client = scope.get("client") or ("-", 0)
            access_logger.info(
                "%s:%s (scheme=http,method=POST,path=%s) (status=%d) %.3fms",
                client[0], client[1], scope["path"], response.status_code, elapsed * 1000,
            )  # fmt: skip


def _entry():
    """The entry service instance, or None while it is starting."""
    try:
        entry = get_current_service()
    except BentoMLException:
        return None
    return entry if hasattr(entry, "gateway") else None


def front(service: bentoml.Service) -> bentoml.Service:
    """Put a `FastLane` in front of `service`'s ASGI app (unless ``ECOMGAN_FAST_LANE=off``).

    BentoML's worker serves ``service.to_asgi()``; a `bentoml.Service` is a slotted attrs
    object, so the override is a subclass assigned to the instance's ``__class__`` rather
    than an instance attribute.
    """
    service.__class__ = FrontedService
    return service


class FrontedService(bentoml.Service):
    """A `bentoml.Service` whose ASGI app is wrapped in a `FastLane`."""

    __slots__ = ()

    def to_asgi(self, is_main: bool = True):
        app = super().to_asgi(is_main=is_main)
        settings = Settings.from_env()
        if not settings.fast_lane:
            return app
        return FastLane(app, self.apis, settings, workers=settings.workers_of("entry"))
