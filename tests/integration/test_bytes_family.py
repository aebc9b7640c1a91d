"""OIP BYTES tensors end to end: a family whose models take and return text (registered from
outside `ecomgan/families.py`) served by a real `bentoml serve`, called with tritonclient over
OIP HTTP (JSON and binary data) and gRPC, and through its JSON API."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest

from tests.conftest import REPO, base_env, run_cli, start_server, stop_server
from tests.textfamily.oip_client import TEXTS

pytestmark = pytest.mark.integration
ENTRY = {"ECOMGAN_FAMILIES": "tests.textfamily:FAMILY"}


def test_bytes_tensors_round_trip_over_both_protocols(tmp_path):
    home = tmp_path / "bentoml"
    env = {**base_env(home), **ENTRY}
    run_cli("register", env=env)  # the built-in families' shipped models
    folder = tmp_path / "echo"
    build = (
        "import sys; from pathlib import Path; from tests.textfamily.models import build; "
        "from export.pipeline import register_folder; "
        "print(register_folder('echo', build(Path(sys.argv[1]))))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", build, str(folder)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    srv = start_server(home, tmp_path / "serve.log", {**ENTRY, "ECOMGAN_SKIP_SHIPPED": "1"})
    try:
        r = httpx.post(f"{srv.url}/echo/echo", json={"texts": TEXTS}, timeout=30)
        assert r.status_code == 200 and r.json() == {"texts": TEXTS}
        for protocol, url in (("http", srv.url.removeprefix("http://")),
                              ("grpc", srv.grpc_target)):  # fmt: skip
            proc = subprocess.run(
                [sys.executable, str(REPO / "tests/textfamily/oip_client.py"), protocol, url],
                cwd=REPO, capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            assert proc.returncode == 0, proc.stdout + proc.stderr
            got = json.loads(proc.stdout)
            assert got["meta"] == "BYTES"
            assert got["json"] == TEXTS and got["binary"] == TEXTS, (protocol, got)
            status, message = got["error"]
            assert status in ("400", "StatusCode.INVALID_ARGUMENT"), got["error"]
            assert "not UTF-8" in message
        assert "[ERROR]" not in srv.log_text()
    finally:
        stop_server(srv)
