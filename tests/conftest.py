"""Shared fixtures: dataset location, temporary BentoML homes and real `bentoml serve` processes."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
_BUCKET = re.compile(r"(?P<metric>\w+)_bucket\{(?P<labels>[^}]*)\} (?P<v>\S+)")


def batch_histogram(metrics: str, model: str) -> dict[float, float]:
    """Batches per size bucket (non-cumulative) of one model, from a /metrics text.

    Reads ``ecomgan_batch_size`` (in-process batcher, colocated topology) and BentoML's
    ``bentoml_service_adaptive_batch_size`` (role services, split topology; its
    ``method_name`` is the family and its ``runner_name`` the role service).
    """
    family, _, role = model.rpartition("-")
    cumulative: dict[float, float] = {}
    for m in _BUCKET.finditer(metrics):
        labels = dict(kv.split("=", 1) for kv in m["labels"].split(","))
        labels = {k: v.strip('"') for k, v in labels.items()}
        if m["metric"] == "ecomgan_batch_size":
            ours = labels.get("model") == model
        elif m["metric"] == "bentoml_service_adaptive_batch_size":
            ours = (labels.get("runner_name"), labels.get("method_name")) == (role.title(), family)
        else:
            continue
        if ours:
            le = float(labels["le"]) if labels["le"] != "+Inf" else float("inf")
            cumulative[le] = cumulative.get(le, 0) + float(m["v"])
    out, prev = {}, 0.0
    for le in sorted(cumulative):
        out[le] = cumulative[le] - prev
        prev = cumulative[le]
    return out


def shared_data_dir() -> Path:
    """`$ECOMGAN_DATA_DIR`, else the `shared/data` folder beside the checkout."""
    env = os.environ.get("ECOMGAN_DATA_DIR")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = shared_data_dir()
    if not (path / "fashion-mnist").is_dir():
        pytest.fail(f"test data not found at {path}; set ECOMGAN_DATA_DIR")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cli(*args: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `ecomgan ...` in a subprocess; fail the test with its output on a non-zero exit."""
    proc = subprocess.run(
        [sys.executable, "-m", "ecomgan.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        pytest.fail(
            f"ecomgan {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def base_env(bentoml_home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        BENTOML_HOME=str(bentoml_home),
        BENTOML_DO_NOT_TRACK="true",
        ECOMGAN_DATA_DIR=str(shared_data_dir()),
        PYTHONUNBUFFERED="1",
    )
    return env


@dataclass
class Server:
    """A running `bentoml serve` of this repo's bento."""

    url: str
    grpc_target: str
    proc: subprocess.Popen
    log: Path
    env: dict[str, str]

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def start_server(
    home: Path, log: Path, extra_env: dict[str, str] | None = None, timeout: float = 120
) -> Server:
    """Start `bentoml serve service:EcomGAN` on free loopback ports and wait until ready.

    The server gets its own BENTOML_HOME holding a copy of `home`'s models: BentoML empties
    `$BENTOML_HOME/prometheus_multiproc_dir` at start, which would wipe the metrics of any
    other server sharing the home.
    """
    http_port, grpc_port = free_port(), free_port()
    own_home = log.parent / f"bentoml-{http_port}"
    shutil.copytree(home / "models", own_home / "models", symlinks=True)
    env = base_env(own_home)
    env.update(ECOMGAN_GRPC_PORT=str(grpc_port), **(extra_env or {}))
    out = log.open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bentoml",
            "serve",
            "service:EcomGAN",
            "--host",
            "127.0.0.1",
            "--port",
            str(http_port),
        ],
        cwd=REPO,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = Server(f"http://127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}", proc, log, env)
    try:
        wait_ready(server.url, proc, log, timeout)
    except BaseException:
        stop_server(server)
        raise
    return server


def wait_ready(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    """Poll `url/readyz` until 200; fail with the server's log if it exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(
                f"server exited {proc.returncode}:\n{log.read_text(errors='replace')[-4000:]}"
            )
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail(f"server not ready after {timeout}s:\n{log.read_text(errors='replace')[-4000:]}")


def process_tree(root: int) -> list[tuple[int, str]]:
    """(pid, command line) of `root` and all its descendants (BentoML workers get their own
    process groups, so a process-group lookup would miss them)."""
    table = subprocess.run(["ps", "-ww", "-eo", "pid=,ppid=,args="], capture_output=True, text=True)
    children: dict[int, list[tuple[int, str]]] = {}
    for line in table.stdout.splitlines():
        pid, ppid, *args = line.split(None, 2)
        children.setdefault(int(ppid), []).append((int(pid), " ".join(args)))
    found, todo = [], [(root, "")]
    while todo:
        pid, args = todo.pop()
        found.append((pid, args))
        todo.extend(children.get(pid, []))
    return found


def stop_server(server: Server) -> None:
    if server.proc.poll() is None:
        os.killpg(server.proc.pid, signal.SIGTERM)
        try:
            server.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.proc.pid, signal.SIGKILL)
            server.proc.wait()


@pytest.fixture(scope="session")
def shipped_home(tmp_path_factory) -> Path:
    """A fresh BentoML home holding the shipped default models, registered by the CLI."""
    home = tmp_path_factory.mktemp("bentoml-shipped")
    run_cli("register", env=base_env(home))
    return home


@pytest.fixture(scope="session")
def server(shipped_home: Path, tmp_path_factory) -> Iterator[Server]:
    """The bento serving the shipped defaults, shared by the integration tests."""
    srv = start_server(shipped_home, tmp_path_factory.mktemp("logs") / "serve.log")
    yield srv
    stop_server(srv)
