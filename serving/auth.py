"""Optional bearer-token authentication for HTTP and gRPC, off unless ECOMGAN_API_TOKEN is set.

Health and metrics stay open so that Kubernetes probes and Prometheus need no secret.
The token is compared in constant time and never logged.
"""

from __future__ import annotations

import hmac

import grpc

from serving.errors import Unauthenticated, send_error

TOKEN_ENV = "ECOMGAN_API_TOKEN"
OPEN_HTTP_PATHS = frozenset(
    {"/livez", "/readyz", "/healthz", "/metrics", "/v2/health/live", "/v2/health/ready"}
)
# The root page and the web UI's shell and static files (no data; the UI sends the token).
OPEN_UI_PATHS = frozenset({"/", "/ui", "/ui/"})
OPEN_UI_PREFIX = "/ui/static/"
OPEN_GRPC_PREFIXES = ("/grpc.health.v1.Health/",)
_MESSAGE = "missing or invalid bearer token; send the header 'Authorization: Bearer <token>'"


def configured_token() -> bytes | None:
    """The expected token, or None when authentication is off."""
    from serving.settings import Settings

    token = Settings.from_env().api_token
    return token.encode() if token else None


def authorized(header_value: str | bytes | None, token: bytes) -> bool:
    """True when `header_value` is `Bearer <token>` (constant-time comparison)."""
    if header_value is None:
        return False
    value = header_value.encode() if isinstance(header_value, str) else header_value
    scheme, _, presented = value.partition(b" ")
    # compare_digest on equal-length inputs is constant time; a length mismatch leaks only length.
    return scheme.lower() == b"bearer" and hmac.compare_digest(presented.strip(), token)


class BearerAuthMiddleware:
    """ASGI middleware answering 401 to HTTP requests without the configured bearer token."""

    def __init__(self, app, token: bytes | None = None) -> None:
        self.app = app
        self.token = token if token is not None else configured_token()

    async def __call__(self, scope, receive, send) -> None:
        if (
            self.token is None
            or scope["type"] != "http"
            or scope.get("path", "") in OPEN_HTTP_PATHS
            or scope.get("path", "") in OPEN_UI_PATHS
            or scope.get("path", "").startswith(OPEN_UI_PREFIX)
        ):
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers") or []).get(b"authorization")
        if authorized(header, self.token):
            await self.app(scope, receive, send)
            return
        await refuse(send)


async def refuse(send) -> None:
    """Answer an ASGI request with 401 and the bearer challenge."""
    await send_error(
        send, Unauthenticated(_MESSAGE), [(b"www-authenticate", b'Bearer realm="ecomgan"')]
    )


class GrpcAuthInterceptor(grpc.aio.ServerInterceptor):
    """Refuses gRPC calls (except health checks) without `authorization: Bearer <token>`."""

    def __init__(self, token: bytes) -> None:
        self.token = token

        async def deny(request, context):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, _MESSAGE)

        self._deny = grpc.unary_unary_rpc_method_handler(deny)

    async def intercept_service(self, continuation, handler_call_details):
        if handler_call_details.method.startswith(OPEN_GRPC_PREFIXES):
            return await continuation(handler_call_details)
        metadata = dict(handler_call_details.invocation_metadata or ())
        if authorized(metadata.get("authorization"), self.token):
            return await continuation(handler_call_details)
        return self._deny
