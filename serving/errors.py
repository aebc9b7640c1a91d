"""One error type for every protocol, mapped to an HTTP status and a gRPC status code."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable
from http import HTTPStatus
from typing import Any

import grpc
from bentoml.exceptions import BentoMLException

logger = logging.getLogger("ecomgan.refused")


class ServingError(BentoMLException):
    """A request the server refuses, with a message saying what was wrong and what is allowed.

    A BentoMLException so that BentoML's JSON APIs answer it with `http_status`, not a 500.
    """

    http_status: HTTPStatus = HTTPStatus.BAD_REQUEST
    grpc_code: grpc.StatusCode = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, message: str) -> None:
        super().__init__(message, error_code=self.http_status)
        self.message = message


class InvalidInput(ServingError):
    """Malformed or out-of-range input (HTTP 400, INVALID_ARGUMENT)."""


class UnsupportedMediaType(ServingError):
    """A body in a content type the route does not take (HTTP 415, INVALID_ARGUMENT)."""

    http_status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE


class MethodNotAllowed(ServingError):
    """A route called with a method it does not take (HTTP 405, UNIMPLEMENTED)."""

    http_status = HTTPStatus.METHOD_NOT_ALLOWED
    grpc_code = grpc.StatusCode.UNIMPLEMENTED


class NotFound(ServingError):
    """Unknown model or version (HTTP 404, NOT_FOUND)."""

    http_status = HTTPStatus.NOT_FOUND
    grpc_code = grpc.StatusCode.NOT_FOUND


class PayloadTooLarge(ServingError):
    """A request above the configured size limit (HTTP 413, RESOURCE_EXHAUSTED)."""

    http_status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class ServerFault(ServingError):
    """A fault of the server, not of the request (HTTP 500, INTERNAL)."""

    http_status = HTTPStatus.INTERNAL_SERVER_ERROR
    grpc_code = grpc.StatusCode.INTERNAL


class Unavailable(ServingError):
    """Not ready yet, shutting down or overloaded (HTTP 503, UNAVAILABLE); safe to retry."""

    http_status = HTTPStatus.SERVICE_UNAVAILABLE
    grpc_code = grpc.StatusCode.UNAVAILABLE


class TooManyRequests(ServingError):
    """Above the concurrent-request limit (HTTP 429, RESOURCE_EXHAUSTED); retry later."""

    http_status = HTTPStatus.TOO_MANY_REQUESTS
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class DeadlineExceeded(ServingError):
    """Not answered within the request timeout (HTTP 504, DEADLINE_EXCEEDED)."""

    http_status = HTTPStatus.GATEWAY_TIMEOUT
    grpc_code = grpc.StatusCode.DEADLINE_EXCEEDED


class Unauthenticated(ServingError):
    """Missing or wrong bearer token (HTTP 401, UNAUTHENTICATED)."""

    http_status = HTTPStatus.UNAUTHORIZED
    grpc_code = grpc.StatusCode.UNAUTHENTICATED


def error_response(exc: ServingError):
    """`{"error": ...}` with the error's status (BentoML would wrap a 4xx body in a list and
    replace a 5xx message with a generic one)."""
    from starlette.responses import JSONResponse

    headers = {"Retry-After": "1"} if isinstance(exc, Unavailable | TooManyRequests) else None
    return JSONResponse({"error": exc.message}, status_code=int(exc.http_status), headers=headers)


async def send_error(send, exc: ServingError, headers: list[tuple[bytes, bytes]] = ()) -> None:
    """Answer an ASGI request with `{"error": ...}` from a middleware (no Starlette response
    object there), rendered like starlette's JSONResponse as every other error body."""
    body = json.dumps({"error": exc.message}, ensure_ascii=False, separators=(",", ":")).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send(
        {
            "type": "http.response.start",
            "status": int(exc.http_status),
            "headers": [*head, *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def answer(work: Awaitable[Any]) -> Any:
    """Await an API's work; turn a refused request into its error response."""
    try:
        return await work
    except ServingError as exc:
        # A client's mistake is one line at INFO; server faults keep their tracebacks elsewhere.
        logger.info("refused (%d): %s", int(exc.http_status), exc.message)
        return error_response(exc)
