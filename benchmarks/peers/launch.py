"""Start the two peer servers on loopback, and the KServe peer's own venv on first use."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from benchmarks.machine import REPO, ort_threads

KSERVE_VENV = REPO / ".bench" / "kserve-venv"
REQUIREMENTS = Path(__file__).with_name("requirements-kserve.txt")
GENERATOR = REPO / "models" / "products" / "generator.onnx"


@dataclass
class Peer:
    """A running peer: where to reach it and its process (for CPU accounting)."""

    name: str
    url: str
    grpc_target: str
    proc: subprocess.Popen


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kserve_python(create: bool) -> Path | None:
    """The KServe venv's interpreter; created from `requirements-kserve.txt` if `create`.

    Returns None when the venv is absent and `create` is False.
    """
    python = KSERVE_VENV / "bin" / "python"
    if python.exists():
        return python
    if not create:
        return None
    base = getattr(sys, "_base_executable", sys.executable)
    print(f"creating {KSERVE_VENV} (once) from {REQUIREMENTS.name} ...", flush=True)
    subprocess.run([base, "-m", "venv", str(KSERVE_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)], check=True)
    return python


def kserve_version(python: Path) -> str:
    out = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('kserve'))"],
        capture_output=True,
        text=True,
    )
    return out.stdout.strip() or "unknown"


def _wait_ready(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"peer exited {proc.returncode}: {log.read_text(errors='replace')[-3000:]}"
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                return
        time.sleep(0.3)
    raise RuntimeError(f"peer not ready after {timeout:.0f}s: {log.read_text(errors='replace')}")


@contextlib.contextmanager
def peer(name: str, log_dir: Path, model_name: str, timeout: float = 120) -> Iterator[Peer]:
    """Run peer `name` ("starlette" or "kserve") serving the generator until the block exits.

    Raises:
        ValueError: unknown peer name.
        RuntimeError: the KServe venv is missing, or the peer did not become ready.
    """
    http, grpc_port = _free_port(), _free_port()
    common = ["--model", str(GENERATOR), "--name", model_name, "--threads", str(ort_threads())]
    if name == "starlette":
        cmd = [sys.executable, "-m", "benchmarks.peers.starlette_ort", "--port", str(http)]
    elif name == "kserve":
        python = kserve_python(create=False)
        if python is None:
            raise RuntimeError(f"no KServe venv at {KSERVE_VENV}; run without --smoke once")
        script = Path(__file__).with_name("kserve_ort.py")
        ports = ["--http_port", str(http), "--grpc_port", str(grpc_port)]
        cmd = [str(python), str(script), *ports]
    else:
        raise ValueError(f"unknown peer {name!r}; use 'starlette' or 'kserve'")
    log = log_dir / f"peer-{name}.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*cmd, *common],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{http}"
    try:
        _wait_ready(url, proc, log, timeout)
        yield Peer(name, url, f"127.0.0.1:{grpc_port}", proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
