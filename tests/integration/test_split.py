"""The split overlay, run on loopback: its three processes, started with the commands of its
rendered manifests, answer HTTP, OIP HTTP and OIP gRPC exactly as one `bentoml serve` does."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
from bentoml._internal.container.generate import BENTO_PATH
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc

from tests.conftest import REPO, Server, base_env, free_port, stop_server
from tests.integration.test_deploy import (
    container,
    env_of,
    of_kind,
    pod_labels,
    render,
    selects,
    service_name,
)

pytestmark = pytest.mark.integration
GEN, DIS = "products-generator", "products-discriminator"


def loopback_command(command: list[str], port: int, urls: dict[str, str]) -> list[str]:
    """A manifest's command run here: this Python, loopback host, `port`, the repo as the bento,
    and each --depends URL of a Service replaced by `urls[url]`."""
    assert command[0] == "python", command
    local = [sys.executable]
    args = iter(command[1:])
    for arg in args:
        if arg == "--host":
            local += [arg, "127.0.0.1"]
            next(args)
        elif arg == "--port":
            local += [arg, str(port)]
            next(args)
        elif arg == "--depends":
            dependency, url = next(args).split("=", 1)
            local += [arg, f"{dependency}={urls[url]}"]
        else:
            local.append(str(REPO) if arg == BENTO_PATH else arg)
    return local


@pytest.fixture(scope="module")
def split(shipped_home: Path, tmp_path_factory) -> Iterator[dict[str, Server]]:
    """The split overlay's Deployments as local processes, by BentoML service name."""
    objs = render("split")
    deployments = of_kind(objs, "Deployment")
    ports = {name: free_port() for name in deployments}
    urls = {}
    for svc_name, svc in of_kind(objs, "Service").items():
        (dep,) = [
            name
            for name, d in deployments.items()
            if selects(svc["spec"]["selector"], pod_labels(d))
        ]
        for p in svc["spec"]["ports"]:
            if p["name"] == "http":
                urls[f"http://{svc_name}:{p['port']}"] = f"http://127.0.0.1:{ports[dep]}"
    logs = tmp_path_factory.mktemp("split")
    servers: dict[str, Server] = {}
    try:
        for name, dep in deployments.items():
            c = container(dep)
            # Each pod has its own BENTOML_HOME (BentoML empties its prometheus_multiproc_dir on
            # start); here each shares the test home's models instead of reading the bento's.
            home = logs / f"{name}-home"
            home.mkdir()
            (home / "models").symlink_to(shipped_home / "models")
            env = base_env(home)
            env.update({k: v for k, v in env_of(c).items() if k != "BENTOML_HOME"})
            grpc_target = ""
            if "ECOMGAN_GRPC_PORT" in env_of(c):
                grpc_port = free_port()
                env["ECOMGAN_GRPC_PORT"] = str(grpc_port)
                grpc_target = f"127.0.0.1:{grpc_port}"
            log = logs / f"{name}.log"
            proc = subprocess.Popen(
                loopback_command(c["command"], ports[name], urls),
                cwd=REPO,
                env=env,
                stdout=log.open("wb"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            servers[service_name(dep)] = Server(
                f"http://127.0.0.1:{ports[name]}", grpc_target, proc, log, env
            )
        wait_ready(servers)
        yield servers
    finally:
        for server in servers.values():
            stop_server(server)


def wait_ready(servers: dict[str, Server], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    waiting = dict(servers)
    while waiting and time.monotonic() < deadline:
        for name, server in list(waiting.items()):
            if server.proc.poll() is not None:
                pytest.fail(f"{name} exited {server.proc.returncode}:\n{server.log_text()[-4000:]}")
            try:
                if httpx.get(server.url + "/readyz", timeout=2).status_code == 200:
                    del waiting[name]
            except httpx.HTTPError:
                pass
        time.sleep(0.5)
    if waiting:
        logs = "\n".join(f"--- {n}\n{s.log_text()[-3000:]}" for n, s in waiting.items())
        pytest.fail(f"not ready after {timeout}s: {sorted(waiting)}\n{logs}")


def test_only_the_entry_answers_the_public_apis(split):
    # The role processes serve their batch APIs only: the manifests' Services must route
    # users to the entry.
    for role in ("Generator", "Discriminator"):
        r = httpx.post(
            split[role].url + "/products/generate", json={"category": "Bag", "count": 1}, timeout=10
        )
        assert r.status_code == 404, role


def test_generate_matches_single_process(split, server):
    body = {"category": "Sneaker", "count": 4, "seed": 1234}
    got = httpx.post(split["EcomGAN"].url + "/products/generate", json=body, timeout=30)
    want = httpx.post(server.url + "/products/generate", json=body, timeout=30)
    assert got.status_code == want.status_code == 200, got.text
    assert got.json() == want.json()
    assert np.asarray(got.json()["images"]).shape == (4, 28, 28)


def oip_inputs(url: str) -> dict[str, dict[str, np.ndarray]]:
    """Fixed inputs for both models, shaped by the generator's metadata."""
    meta = httpx.get(f"{url}/v2/models/{GEN}", timeout=10).json()
    nz = meta["inputs"][0]["shape"][1]
    rng = np.random.default_rng(11)
    label = np.array([1, 5, 9], dtype=np.int64)
    return {
        GEN: {"z": rng.standard_normal((3, nz), dtype=np.float32), "label": label},
        DIS: {"image": rng.uniform(-1, 1, (3, 1, 28, 28)).astype(np.float32), "label": label},
    }


DATATYPES = {np.dtype(np.float32): "FP32", np.dtype(np.int64): "INT64"}


@pytest.mark.parametrize("model", [GEN, DIS])
def test_oip_http_matches_single_process(split, server, model):
    inputs = oip_inputs(server.url)[model]
    tensors = [
        {"name": n, "datatype": DATATYPES[a.dtype], "shape": a.shape, "data": a.ravel().tolist()}
        for n, a in inputs.items()
    ]
    body = {"inputs": tensors}
    got = httpx.post(f"{split['EcomGAN'].url}/v2/models/{model}/infer", json=body, timeout=30)
    want = httpx.post(f"{server.url}/v2/models/{model}/infer", json=body, timeout=30)
    assert got.status_code == want.status_code == 200, got.text
    assert got.json()["outputs"] == want.json()["outputs"]


def model_infer(target: str, model: str, inputs: dict[str, np.ndarray]):
    request = service_pb2.ModelInferRequest(model_name=model)
    for name, arr in inputs.items():
        request.inputs.add(name=name, datatype=DATATYPES[arr.dtype], shape=arr.shape)
        request.raw_input_contents.append(arr.tobytes())
    with grpc.insecure_channel(target) as channel:
        return service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)


@pytest.mark.parametrize("model", [GEN, DIS])
def test_oip_grpc_matches_single_process(split, server, model):
    inputs = oip_inputs(server.url)[model]
    got = model_infer(split["EcomGAN"].grpc_target, model, inputs)
    want = model_infer(server.grpc_target, model, inputs)
    assert [(o.name, o.datatype, list(o.shape)) for o in got.outputs] == [
        (o.name, o.datatype, list(o.shape)) for o in want.outputs
    ]
    assert list(got.raw_output_contents) == list(want.raw_output_contents)


def test_grpc_health_serves_the_startup_probe(split):
    # The entry's startupProbe is a Kubernetes gRPC probe: grpc.health.v1 Check, service "".
    with grpc.insecure_channel(split["EcomGAN"].grpc_target) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=10
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
