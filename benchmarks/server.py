"""Start and stop a bento of this repo (shipped models, temporary BENTOML_HOME), read its metrics.

The benchmarks and the integration tests (through ``tests/conftest.py``) both use these helpers;
they need neither torch nor pytest.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

_BUCKET = re.compile(r"(?P<metric>\w+)_bucket\{(?P<labels>[^}]*)\} (?P<v>\S+)")


class ServerError(RuntimeError):
    """A started server exited, or did not become ready in time."""


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    """Poll `url/readyz` until 200.

    Raises:
        ServerError: With the end of the server's log, if it exits or is not ready in time.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerError(
                f"server exited {proc.returncode}:\n{log.read_text(errors='replace')[-4000:]}"
            )
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise ServerError(
        f"server not ready after {timeout}s:\n{log.read_text(errors='replace')[-4000:]}"
    )


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


@contextlib.contextmanager
def bento(
    url: str | None = None,
    grpc_target: str | None = None,
    env: dict[str, str] | None = None,
    home: Path | None = None,
) -> Iterator[tuple[str, str, object]]:
    """Yield (http_url, grpc_target, server or None); start a server unless `url` is given.

    Args:
        url: An already running server's HTTP URL (then nothing is started).
        grpc_target: Its OIP gRPC host:port.
        env: Extra environment of the started server (e.g. batching knobs).
        home: A BENTOML_HOME holding registered models (see `registered_home`); a fresh one
            is registered when None.
    """
    if url:
        yield url, grpc_target or "127.0.0.1:3001", None
        return
    own_home = home is None
    home = home or registered_home()
    log = Path(tempfile.mkdtemp(prefix="ecomgan-bench-log-")) / "serve.log"
    try:
        server = start_server(home, log, env)
        try:
            yield server.url, server.grpc_target, server
        finally:
            stop_server(server)
    finally:
        shutil.rmtree(log.parent, ignore_errors=True)  # its model copy; failures carry the log
        if own_home:
            shutil.rmtree(home, ignore_errors=True)


def registered_home() -> Path:
    """A temporary BENTOML_HOME with the shipped models registered by `ecomgan register`."""
    home = Path(tempfile.mkdtemp(prefix="ecomgan-bench-"))
    subprocess.run(
        [sys.executable, "-m", "ecomgan.cli", "register"],
        cwd=REPO,
        env=base_env(home),
        check=True,
        capture_output=True,
    )
    return home


def server_pids(server) -> list[int]:
    """The `bentoml serve` process and all its descendants."""
    return [pid for pid, _ in process_tree(server.proc.pid)]


def machine() -> str:
    import platform

    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    cpus = os.cpu_count()
    return f"{model or platform.processor()}, {cpus} CPUs, Python {platform.python_version()}"
