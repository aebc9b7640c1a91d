"""Bearer-token authentication: constant-time check, open health paths, HTTP and gRPC."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from serving.auth import BearerAuthMiddleware, GrpcAuthInterceptor, authorized

TOKEN = b"s3cret-token"


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        ("Bearer s3cret-token", True),
        ("bearer s3cret-token", True),
        ("Bearer s3cret-tokenX", False),
        ("Bearer ", False),
        ("Basic s3cret-token", False),
        ("s3cret-token", False),
        (None, False),
    ],
)
def test_authorized(header, ok):
    assert authorized(header, TOKEN) is ok


def _client(token: bytes | None) -> TestClient:
    app = Starlette(
        routes=[
            Route("/livez", lambda r: PlainTextResponse("ok")),
            Route("/products/generate", lambda r: PlainTextResponse("made"), methods=["POST"]),
        ]
    )
    app.add_middleware(BearerAuthMiddleware, token=token)
    return TestClient(app)


def test_http_middleware_guards_apis_not_probes():
    client = _client(TOKEN)
    r = client.post("/products/generate")
    assert r.status_code == 401 and "Bearer" in r.json()["error"]
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert (
        client.post("/products/generate", headers={"Authorization": "Bearer nope"}).status_code
        == 401
    )
    ok = client.post("/products/generate", headers={"Authorization": "Bearer s3cret-token"})
    assert ok.status_code == 200 and ok.text == "made"
    assert client.get("/livez").status_code == 200


def test_http_middleware_off_without_token(monkeypatch):
    monkeypatch.delenv("ECOMGAN_API_TOKEN", raising=False)
    assert _client(None).post("/products/generate").status_code == 200


def test_grpc_interceptor():
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    async def scenario() -> tuple:
        server = grpc.aio.server(interceptors=[GrpcAuthInterceptor(TOKEN)])
        health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)

        async def echo(request, context):
            return request

        handler = grpc.method_handlers_generic_handler(
            "test.Echo", {"Call": grpc.unary_unary_rpc_method_handler(echo)}
        )
        server.add_generic_rpc_handlers((handler,))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                call = channel.unary_unary("/test.Echo/Call")
                try:
                    await call(b"x")
                    denied = None
                except grpc.aio.AioRpcError as exc:
                    denied = exc.code()
                allowed = await call(b"x", metadata=(("authorization", "Bearer s3cret-token"),))
                stub = health_pb2_grpc.HealthStub(channel)
                probe = await stub.Check(health_pb2.HealthCheckRequest())
                return denied, allowed, probe.status
        finally:
            await server.stop(None)

    denied, allowed, probe = asyncio.run(scenario())
    assert denied == grpc.StatusCode.UNAUTHENTICATED
    assert allowed == b"x"
    assert probe == health_pb2.HealthCheckResponse.SERVING
