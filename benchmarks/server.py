"""Start and stop a bento of this repo for a benchmark (shipped models, temporary BENTOML_HOME)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


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
    from tests.conftest import start_server, stop_server

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
    from tests.conftest import base_env

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
    from tests.conftest import process_tree

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
