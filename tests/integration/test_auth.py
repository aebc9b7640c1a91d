"""Bearer-token auth on a real server: HTTP and gRPC refuse without it, probes stay open."""

from __future__ import annotations

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc

from tests.conftest import start_server, stop_server

pytestmark = pytest.mark.integration
TOKEN = "test-token-4f9c2a"


def test_token_guards_http_and_grpc(shipped_home, tmp_path):
    srv = start_server(shipped_home, tmp_path / "serve.log", {"ECOMGAN_API_TOKEN": TOKEN})
    try:
        body = {"category": "Bag", "count": 1, "seed": 1}
        r = httpx.post(f"{srv.url}/products/generate", json=body)
        assert r.status_code == 401 and "Bearer" in r.json()["error"]
        assert httpx.get(f"{srv.url}/v2/models/products-generator").status_code == 401
        r = httpx.post(
            f"{srv.url}/products/generate", json=body, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert r.status_code == 200
        for path in ("/livez", "/readyz", "/v2/health/ready", "/metrics"):
            assert httpx.get(srv.url + path).status_code == 200, path

        with grpc.insecure_channel(srv.grpc_target) as channel:
            stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
            with pytest.raises(grpc.RpcError) as err:
                stub.ServerMetadata(service_pb2.ServerMetadataRequest(), timeout=10)
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            meta = stub.ServerMetadata(
                service_pb2.ServerMetadataRequest(),
                timeout=10,
                metadata=(("authorization", f"Bearer {TOKEN}"),),
            )
            assert meta.name == "ecomgan"
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
            assert health.status == health_pb2.HealthCheckResponse.SERVING
        assert TOKEN not in srv.log_text()
    finally:
        stop_server(srv)
