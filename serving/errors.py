"""One error type for every protocol, mapped to an HTTP status and a gRPC status code."""

from __future__ import annotations

from http import HTTPStatus

import grpc
from bentoml.exceptions import BentoMLException


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


class NotFound(ServingError):
    """Unknown model or version (HTTP 404, NOT_FOUND)."""

    http_status = HTTPStatus.NOT_FOUND
    grpc_code = grpc.StatusCode.NOT_FOUND


class PayloadTooLarge(ServingError):
    """A request above the configured size limit (HTTP 413, RESOURCE_EXHAUSTED)."""

    http_status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(ServingError):
    """Not ready yet, shutting down or overloaded (HTTP 503, UNAVAILABLE); safe to retry."""

    http_status = HTTPStatus.SERVICE_UNAVAILABLE
    grpc_code = grpc.StatusCode.UNAVAILABLE


class Unauthenticated(ServingError):
    """Missing or wrong bearer token (HTTP 401, UNAUTHENTICATED)."""

    http_status = HTTPStatus.UNAUTHORIZED
    grpc_code = grpc.StatusCode.UNAUTHENTICATED
