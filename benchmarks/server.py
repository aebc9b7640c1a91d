"""Start and stop a bento of this repo for a benchmark (shipped models, temporary BENTOML_HOME)."""

from __future__ import annotations

import contextlib
import os
import re
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
    url: str | None = None, grpc_target: str | None = None, env: dict[str, str] | None = None
) -> Iterator[tuple[str, str, object]]:
    """Yield (http_url, grpc_target, server or None); start a server unless `url` is given."""
    if url:
        yield url, grpc_target or "127.0.0.1:3001", None
        return
    from tests.conftest import base_env, start_server, stop_server

    home = Path(tempfile.mkdtemp(prefix="ecomgan-bench-"))
    subprocess.run(
        [sys.executable, "-m", "ecomgan.cli", "register"],
        cwd=REPO,
        env=base_env(home),
        check=True,
        capture_output=True,
    )
    server = start_server(home, home / "serve.log", env)
    try:
        yield server.url, server.grpc_target, server
    finally:
        stop_server(server)


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


def batch_histogram(metrics: str, service: str, method: str) -> dict[float, float]:
    """Count of observed batches per size bucket (non-cumulative) from /metrics."""
    pattern = re.compile(
        r"bentoml_service_adaptive_batch_size_bucket\{(?P<labels>[^}]*)\} (?P<v>\S+)"
    )
    cumulative = {}
    for m in pattern.finditer(metrics):
        labels = dict(kv.split("=", 1) for kv in m["labels"].split(","))
        labels = {k: v.strip('"') for k, v in labels.items()}
        if labels.get("runner_name") != service or labels.get("method_name") != method:
            continue
        le = float(labels["le"]) if labels["le"] != "+Inf" else float("inf")
        cumulative[le] = cumulative.get(le, 0) + float(m["v"])
    out, prev = {}, 0.0
    for le in sorted(cumulative):
        out[le] = cumulative[le] - prev
        prev = cumulative[le]
    return out
