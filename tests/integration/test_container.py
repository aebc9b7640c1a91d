"""The CPU image, built by deploy/containerize.py and run with real podman the way the rendered
manifests run it (read-only root, uid 10034, no capabilities, /tmp on tmpfs), and the cpu and
split overlays played with `podman kube play`. Every answer must equal a local `bentoml serve`'s
(the `server` fixture) for the same seeds and inputs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml

from deploy import containerize
from deploy.kube_play import scratch_volumes, transform
from tests.conftest import REPO, base_env, free_port
from tests.integration.test_deploy import container, of_kind, render

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("podman") is None,
        reason="podman is not installed (apt-get install podman buildah mmdebstrap runc "
        "catatonit; .ci/run does)",
    ),
]
READY_WITHIN_S = 60  # what the README states; measured 2-8 s
TRITON_CHECK = REPO / "tests" / "integration" / "triton_check.py"
MEASURED: dict[str, object] = {}


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        ["podman", *args],
        env=containerize.podman_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode:
        pytest.fail(f"podman {' '.join(args[:3])} exited {proc.returncode}: {proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def built(shipped_home: Path) -> dict:
    """deploy/containerize.py, as a user runs it (models registered into the test's home)."""
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(REPO / "deploy" / "containerize.py")],
        cwd=REPO,
        env=base_env(shipped_home),
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    MEASURED.update(info, containerize_wall_s=round(time.monotonic() - start, 1))
    return info


def mebibytes(quantity: str) -> int:
    """A Kubernetes memory quantity (Mi or Gi) in MiB."""
    units = {"Mi": 1, "Gi": 1024}
    return int(quantity[:-2]) * units[quantity[-2:]]


def run_args(image: str, name: str, http_port: int, grpc_port: int) -> list[str]:
    """`podman run` arguments that reproduce the cpu overlay's pod: security context, scratch
    volumes, limits, environment and command."""
    (dep,) = of_kind(render("cpu"), "Deployment").values()
    pod, c = dep["spec"]["template"]["spec"], container(dep)
    user, csc = pod["securityContext"], c["securityContext"]
    args = ["run", "-d", "--name", name, "--user", f"{user['runAsUser']}:{user['runAsGroup']}"]
    if csc["readOnlyRootFilesystem"]:
        args.append("--read-only")
    args += [f"--cap-drop={cap}" for cap in csc["capabilities"]["drop"]]
    if csc["allowPrivilegeEscalation"] is False:
        args += ["--security-opt", "no-new-privileges"]
    scratch = {v["name"]: v["emptyDir"] for v in pod["volumes"] if "emptyDir" in v}
    for m in c["volumeMounts"]:
        size = mebibytes(scratch[m["name"]].get("sizeLimit", "1Gi"))
        args += ["--tmpfs", f"{m['mountPath']}:rw,size={size}m,mode=1777"]
    limits = c["resources"]["limits"]
    args += ["--memory", f"{mebibytes(limits['memory'])}m", "--cpus", str(limits["cpu"])]
    args += ["--stop-timeout", str(pod["terminationGracePeriodSeconds"])]
    for e in c["env"]:
        args += ["-e", f"{e['name']}={e['value']}"]
    args += ["-p", f"127.0.0.1:{http_port}:3000", "-p", f"127.0.0.1:{grpc_port}:3001"]
    return [*args, "--entrypoint", c["command"][0], image, *c["command"][1:]]


@dataclass
class Running:
    name: str
    url: str
    grpc_target: str
    ready_s: float


def wait_ready(url: str, name: str, start: float, timeout: float = READY_WITHIN_S) -> float:
    """Seconds from `start` until url/readyz answers 200; fails with the container's log."""
    while time.monotonic() - start < timeout:
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return time.monotonic() - start
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    logs = podman("logs", name, check=False)
    pytest.fail(f"{name} not ready after {timeout} s:\n{(logs.stdout + logs.stderr)[-4000:]}")


def start(image: str, name: str) -> Running:
    http_port, grpc_port = free_port(), free_port()
    podman("rm", "-f", name, check=False)
    t0 = time.monotonic()
    podman(*run_args(image, name, http_port, grpc_port))
    url = f"http://127.0.0.1:{http_port}"
    return Running(name, url, f"127.0.0.1:{grpc_port}", wait_ready(url, name, t0))


@pytest.fixture(scope="module")
def running(built) -> Iterator[Running]:
    run = start(built["image"], "ecomgan-test-run")
    MEASURED["start_to_ready_s"] = round(run.ready_s, 1)
    yield run
    podman("rm", "-f", "-t", "5", run.name, check=False)


def in_image(image: str, script: str) -> str:
    """stdout of `sh -c script` as root in a throwaway container of `image` (no network)."""
    return podman(
        "run", "--rm", "--network", "none", "--user", "0", "--entrypoint", "sh", image, "-c", script
    ).stdout


def test_image_holds_no_build_time_files_or_credentials(built):
    image, base = built["image"], built["base"]
    ca = containerize.IMAGE_CA
    assert in_image(image, f"sha256sum {ca}") == in_image(base, f"sha256sum {ca}")
    host_ca = hashlib.sha256(containerize.HOST_CA.read_bytes()).hexdigest()
    size = containerize.HOST_CA.stat().st_size
    found = in_image(image, f"find / -xdev -type f -size {size}c -exec sha256sum {{}} + || true")
    copies = [line.split()[1] for line in found.splitlines() if line.startswith(host_ca)]
    assert set(copies) <= ({ca} if in_image(base, f"sha256sum {ca}").startswith(host_ca) else set())
    present = in_image(
        image,
        "for f in /etc/uv /etc/pip.conf /root/.netrc /root/.config; do "
        "test -e $f && echo $f; done; true",
    )
    assert present.split() == []
    env = json.loads(podman("image", "inspect", image).stdout)[0]["Config"]["Env"]
    assert not [e for e in env if containerize.SECRET_ENV.search(e.split("=")[0])]
    # The bento and its models are inside, owned by the image's user.
    models = in_image(image, "ls /home/bentoml/bento/models; stat -c %u /home/bentoml/bento")
    assert "products-generator" in models and models.split()[-1] == "10034"


def test_the_build_check_refuses_baked_certificates_and_credentials(built, tmp_path):
    # An image that did bake them: the host CA bundle, a token variable, and a uv.toml that a
    # later step deletes (gone from the file system, still in a layer).
    shutil.copy(containerize.HOST_CA, tmp_path / "ca.crt")
    (tmp_path / "uv.toml").write_text("native-tls = true\n")
    (tmp_path / "Containerfile").write_text(
        f"FROM {built['image']}\nUSER root\nCOPY ca.crt /etc/uv/host-ca.crt\n"
        "COPY uv.toml /etc/uv/uv.toml\nRUN rm /etc/uv/uv.toml\nENV HF_TOKEN=not-a-real-token\n"
    )
    tag = "localhost/ecomgan-baked-test:1"
    podman("build", "-t", tag, str(tmp_path), timeout=300)
    try:
        baked = containerize.baked_files(tag, built["base"])
    finally:
        podman("rmi", "-f", tag, check=False)
    assert baked == ["/etc/uv/host-ca.crt", "/etc/uv/uv.toml", "HF_TOKEN"]


def test_runs_read_only_as_the_pod_user_without_capabilities(running):
    state = json.loads(podman("inspect", running.name).stdout)[0]
    assert state["Config"]["User"] == "10034:10034"
    assert state["HostConfig"]["ReadonlyRootfs"] is True
    probe = podman(
        "exec",
        running.name,
        "sh",
        "-c",
        "id -u; grep CapEff /proc/1/status; touch /home/bentoml/x 2>&1 || true",
    ).stdout
    assert probe.splitlines()[0] == "10034"
    assert "CapEff:\t0000000000000000" in probe
    assert "Read-only file system" in probe


def test_json_api_matches_local_serve(running, server):
    body = {"category": "Sneaker", "count": 4, "seed": 1234}
    got = httpx.post(running.url + "/products/generate", json=body, timeout=30)
    want = httpx.post(server.url + "/products/generate", json=body, timeout=30)
    assert got.status_code == want.status_code == 200, got.text
    assert got.json() == want.json()
    score = {"images": got.json()["images"], "categories": ["Sneaker"] * 4}
    got = httpx.post(running.url + "/products/score_arrays", json=score, timeout=30)
    want = httpx.post(server.url + "/products/score_arrays", json=score, timeout=30)
    assert got.status_code == want.status_code == 200, got.text
    assert got.json() == want.json()
    assert len(got.json()["results"]) == 4


def triton(protocol: str, target: str, out: Path) -> dict:
    """tests/integration/triton_check.py (the real tritonclient) against one server."""
    out.mkdir()
    proc = subprocess.run(
        [sys.executable, str(TRITON_CHECK), protocol, target, str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads((out / "report.json").read_text())


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_oip_matches_local_serve(running, server, protocol, tmp_path):
    def target(url: str, grpc_target: str) -> str:
        return url.removeprefix("http://") if protocol == "http" else grpc_target

    got = triton(protocol, target(running.url, running.grpc_target), tmp_path / "image")
    want = triton(protocol, target(server.url, server.grpc_target), tmp_path / "local")
    assert got["ready"] and got["model_ready"] and got["ready_after_errors"]
    assert got["meta"] == want["meta"]
    assert {k: e["status"] for k, e in got["errors"].items()} == {
        k: e["status"] for k, e in want["errors"].items()
    }
    assert got["burst_failed"] in (0, None)
    for name in ("image_out_bin", "image_out_json", "logit_out"):
        a, b = (
            np.load(tmp_path / "image" / f"{name}.npy"),
            np.load(tmp_path / "local" / f"{name}.npy"),
        )
        assert a.dtype == b.dtype and np.array_equal(a, b), name


IMAGES = 256  # per request: the most one may ask for


def test_sigterm_lets_in_flight_requests_finish(built):
    run = start(built["image"], "ecomgan-test-sigterm")
    stop, fresh = threading.Event(), threading.Event()
    # (sent, done, status, images) of each request; 4 clients send back to back.
    calls: list[tuple[float, float, int, int]] = []

    def client(seed: int) -> None:
        while not stop.is_set():
            sent = time.monotonic()
            fresh.set()
            try:
                r = httpx.post(
                    run.url + "/products/generate",
                    json={"category": "Bag", "count": IMAGES, "seed": seed},
                    timeout=60,
                )
                n = len(r.json()["images"]) if r.status_code == 200 else 0
                calls.append((sent, time.monotonic(), r.status_code, n))
            except httpx.HTTPError:
                calls.append((sent, time.monotonic(), 0, 0))  # refused: sent after SIGTERM

    threads = [threading.Thread(target=client, args=(s,)) for s in range(4)]
    try:
        for t in threads:
            t.start()
        time.sleep(1.5)
        # Signal 0.12 s after a request left, so that one is surely in flight (a 256-image
        # request takes longer than that; on a quiet machine a fixed sleep could fall between
        # requests and leave nothing to drain).
        fresh.clear()
        fresh.wait(10)
        time.sleep(0.12)
        killed = time.monotonic()
        podman("kill", "--signal", "TERM", run.name)
        stop.set()
        for t in threads:
            t.join(60)
        exit_code = podman("wait", run.name, timeout=60).stdout.strip()
        stopped_s = time.monotonic() - killed
    finally:
        stop.set()
        podman("rm", "-f", run.name, check=False)
    # Sent well before the signal, so accepted by the server before it.
    before = [c for c in calls if c[0] < killed - 0.1]
    MEASURED["sigterm_request_s"] = round(float(np.median([d - s for s, d, _, _ in before])), 3)
    assert before and all((c[2], c[3]) == (200, IMAGES) for c in before), before
    # Not vacuous: requests sent before SIGTERM were still being answered after it.
    assert any(done > killed for _, done, _, _ in before)
    assert exit_code == "0"
    MEASURED["sigterm_to_exit_s"] = round(stopped_s, 1)


def play(overlay: str, image: str, network: str | None) -> tuple[Path, list[str], str]:
    """Render, transform and `podman kube play` an overlay; (file, volumes, entry URL)."""
    http_port, grpc_port = free_port(), free_port()
    docs = transform(render(overlay), image, {"ecomgan": {3000: http_port, 3001: grpc_port}})
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"ecomgan-play-{overlay}-{os.getpid()}.yaml"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    podman("kube", "down", str(path), check=False)
    args = ["kube", "play", *(["--network", network] if network else []), str(path)]
    podman(*args)
    return path, scratch_volumes(docs), f"http://127.0.0.1:{http_port}"


def unplay(path: Path, volumes: list[str]) -> None:
    podman("kube", "down", str(path), check=False)
    podman("volume", "rm", "-f", *volumes, check=False)
    path.unlink(missing_ok=True)


def test_cpu_overlay_plays_under_podman(built, server):
    t0 = time.monotonic()
    path, volumes, url = play("cpu", built["image"], None)
    try:
        MEASURED["kube_play_cpu_ready_s"] = round(wait_ready(url, "ecomgan-pod-0-ecomgan", t0), 1)
        body = {"category": "Coat", "count": 3, "seed": 77}
        got = httpx.post(url + "/products/generate", json=body, timeout=30)
        assert got.json() == httpx.post(server.url + "/products/generate", json=body).json()
        state = json.loads(podman("inspect", "ecomgan-pod-0-ecomgan").stdout)[0]
        assert state["Config"]["User"] == "10034:10034" and state["HostConfig"]["ReadonlyRootfs"]
    finally:
        unplay(path, volumes)
    assert "ecomgan-pod-0" not in podman("pod", "ps", "--format", "{{.Name}}").stdout


def test_split_overlay_plays_under_podman(built, server):
    # Role pods are found by name: a network with DNS (podman's default network has none).
    network = "ecomgan-test-play"
    podman("network", "rm", "-f", network, check=False)
    podman("network", "create", network)
    t0 = time.monotonic()
    path, volumes, url = play("split", built["image"], network)
    try:
        # The entry's /readyz asks Generator and Discriminator too.
        MEASURED["kube_play_split_ready_s"] = round(wait_ready(url, "ecomgan-pod-0-ecomgan", t0), 1)
        body = {"category": "Dress", "count": 3, "seed": 5}
        got = httpx.post(url + "/products/generate", json=body, timeout=30)
        assert got.json() == httpx.post(server.url + "/products/generate", json=body).json()
        logs = podman("logs", "ecomgan-generator-pod-0-ecomgan").stdout
        logs += podman("logs", "ecomgan-generator-pod-0-ecomgan").stderr
        assert "status=200" in logs  # the entry reached the Generator pod
    finally:
        unplay(path, volumes)
        podman("network", "rm", "-f", network, check=False)


def test_report_measurements(built, capsys):
    with capsys.disabled():
        print(f"\ncontainer measurements: {json.dumps(MEASURED)}")
    assert built["size_bytes"] < 2 * 1024**3
