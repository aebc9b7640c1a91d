"""Faults: a killed model worker under load, and missing or corrupt model files at start."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import httpx
import pytest

from tests.conftest import REPO, base_env, process_tree, start_server, stop_server

pytestmark = pytest.mark.integration


def _worker_pid(server, service: str) -> int:
    for pid, args in process_tree(server.proc.pid):
        if f"--service-name {service} " in args + " ":
            return pid
    raise AssertionError(f"no {service} worker under pid {server.proc.pid}")


def test_killed_generator_worker_is_restarted_under_load(shipped_home, tmp_path):
    """Split topology: the entry retries while the supervisor restarts the Generator worker."""
    srv = start_server(shipped_home, tmp_path / "serve.log", {"ECOMGAN_TOPOLOGY": "split"})
    results: list[tuple[float, float, int | str]] = []
    stop_at = time.monotonic() + 25

    def client(i: int) -> None:
        with httpx.Client(timeout=60) as c:
            while time.monotonic() < stop_at:
                t0 = time.monotonic()
                try:
                    status = c.post(
                        f"{srv.url}/products/generate",
                        json={"category": "Bag", "count": 1, "seed": i},
                    ).status_code
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                results.append((t0, time.monotonic(), status))
                i += 16

    try:
        threads = [threading.Thread(target=client, args=(k,)) for k in range(16)]
        for t in threads:
            t.start()
        time.sleep(4)
        killed_at = time.monotonic()
        os.kill(_worker_pid(srv, "Generator"), signal.SIGKILL)
        for t in threads:
            t.join()
        statuses = Counter(s for _, _, s in results)
        failed = sum(n for s, n in statuses.items() if s != 200)
        assert set(statuses) <= {200, 503}, statuses  # failures are clear 503s, never 500s
        assert failed / len(results) < 0.01, statuses
        recovered = [t1 - killed_at for t0, t1, s in results if s == 200 and t0 > killed_at]
        assert recovered, "no request succeeded after the kill"
        print(
            f"requests {len(results)}, failed {failed}, first success after kill "
            f"{min(recovered):.1f}s, max latency {max(t1 - t0 for t0, t1, _ in results):.1f}s"
        )
        assert httpx.get(f"{srv.url}/readyz", timeout=30).status_code == 200
    finally:
        stop_server(srv)


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_refuses_to_start_on_bad_model_file(shipped_home, tmp_path, damage):
    home = tmp_path / "bentoml"
    shutil.copytree(shipped_home, home, ignore=shutil.ignore_patterns("bentos"))
    gen = home / "models" / "products-generator"
    path = gen / (gen / "latest").read_text().strip() / "model.onnx"
    if damage == "missing":
        path.unlink()
    else:
        path.write_bytes(path.read_bytes()[:1000])
    env = base_env(home)
    proc = subprocess.run(
        [sys.executable, "-m", "bentoml", "serve", "service:EcomGAN", "--port", "0"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert str(path) in out and damage in out and "ecomgan register --force" in out, out[-2000:]
