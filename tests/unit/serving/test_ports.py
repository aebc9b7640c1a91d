"""Port-clash checks: a server's workers may share a port, nothing else may join it."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from serving.ports import PortInUseError, check_free, check_shared_port, listening_inodes

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc (Linux)")


def _listen() -> socket.socket:
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("::", 0))
    s.listen()
    return s


def test_a_port_held_by_this_process_counts_as_a_sibling():
    with _listen() as s:
        port = s.getsockname()[1]
        assert listening_inodes(port)
        check_shared_port(port, "--grpc-port")  # our own socket: the same parent as us


def test_a_port_held_by_another_process_is_refused_with_its_pid():
    code = (
        "import socket, sys, time; s = socket.socket(socket.AF_INET6); "
        "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1); s.bind(('::', 0)); "
        "s.listen(); print(s.getsockname()[1], flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        with pytest.raises(PortInUseError) as err:
            check_shared_port(port, "ECOMGAN_GRPC_PORT")
        assert f"port {port} is already in use by another server (pid {proc.pid})" in str(err.value)
        assert "ECOMGAN_GRPC_PORT" in str(err.value)
        with pytest.raises(PortInUseError, match=f"port {port} on 0.0.0.0 is in use; choose"):
            check_free(port, "0.0.0.0", "--grpc-port")
    finally:
        proc.kill()
        proc.wait()
    check_free(port, "0.0.0.0", "--grpc-port")  # free again
