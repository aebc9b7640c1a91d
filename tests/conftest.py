"""Shared fixtures: dataset location, temporary BentoML homes and real `bentoml serve` processes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The server helpers live in benchmarks.server (benchmarks must not import tests); the
# integration tests import them from here as before.
from benchmarks.server import (  # noqa: F401
    REPO,
    Server,
    ServerError,
    base_env,
    batch_histogram,
    free_port,
    process_tree,
    shared_data_dir,
    start_server,
    stop_server,
    wait_ready,
)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = shared_data_dir()
    if not (path / "fashion-mnist").is_dir():
        pytest.fail(f"test data not found at {path}; set ECOMGAN_DATA_DIR")
    return path


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
