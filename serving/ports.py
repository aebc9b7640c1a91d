"""Who holds a TCP port: clear errors for port clashes instead of silent sharing.

Every entry worker of one server binds the gRPC port with SO_REUSEPORT, so that the kernel
spreads connections over them. The same option would let an unrelated second server join that
port and take a share of its clients. Workers of one server are siblings (children of one
BentoML supervisor), so a worker refuses a port that a non-sibling process listens on.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
from pathlib import Path

_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's `st` column


class PortInUseError(RuntimeError):
    """The port is taken; the message names it and the setting that changes it."""


def listening_inodes(port: int, proc: Path = Path("/proc")) -> set[int] | None:
    """Socket inodes listening on TCP `port` (IPv4 and IPv6), or None where /proc has no
    network tables (not Linux)."""
    found: set[int] = set()
    tables = [proc / "net" / name for name in ("tcp", "tcp6")]
    if not any(t.exists() for t in tables):
        return None
    for table in tables:
        try:
            lines = table.read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == _LISTEN and int(local.rsplit(":", 1)[1], 16) == port:
                found.add(int(inode))
    return found


def socket_owners(inodes: set[int], proc: Path = Path("/proc")) -> dict[int, int]:
    """Socket inode -> pid of a process holding it, for the processes this user can see."""
    wanted = {f"socket:[{i}]": i for i in inodes}
    owners: dict[int, int] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:  # gone, or another user's process
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target in wanted:
                owners[wanted[target]] = int(entry.name)
    return owners


def parent_pid(pid: int, proc: Path = Path("/proc")) -> int | None:
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after its last ')'.
    return int(stat.rsplit(")", 1)[1].split()[1])


def check_shared_port(port: int, setting: str) -> None:
    """Refuse to join `port` unless only this process's siblings listen on it.

    Args:
        port: The TCP port about to be bound with SO_REUSEPORT.
        setting: How the user picks another port, for the message.

    Raises:
        PortInUseError: Another server (or a process this user cannot see) listens on it.
    """
    inodes = listening_inodes(port)
    if not inodes:
        return
    owners = socket_owners(inodes)
    mine = os.getppid()
    foreign = sorted(
        {pid for pid in owners.values() if parent_pid(pid) != mine}
        | ({-1} if set(owners) != inodes else set())
    )
    if foreign:
        who = ", ".join(f"pid {p}" for p in foreign if p > 0) or "a process of another user"
        raise PortInUseError(
            f"port {port} is already in use by another server ({who}); "
            f"choose another with {setting}"
        )


def check_free(port: int, host: str, setting: str) -> None:
    """Raise PortInUseError if nothing can bind `host:port` now (checked without SO_REUSEPORT,
    so a port that a server shares among its workers counts as taken)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                reason = "in use" if exc.errno == errno.EADDRINUSE else "not allowed"
                raise PortInUseError(
                    f"port {port} on {host} is {reason}; choose another with {setting}"
                ) from None
            raise


def check_before_serving(grpc_on: bool, grpc_port: int) -> None:
    """In the supervisor of `bentoml serve`, before any worker exists: exit with one line and
    status 2 if the gRPC port is taken, rather than start workers that must refuse it.

    `bentoml serve` imports the service module in its supervisor process (argv[1] is
    ``serve``); workers and `bentoml build` import it too, with other arguments, and skip this.
    """
    if not grpc_on or sys.argv[1:2] != ["serve"]:
        return
    try:
        check_free(grpc_port, "0.0.0.0", "ECOMGAN_GRPC_PORT (ecomgan serve --grpc-port)")
    except PortInUseError as exc:
        print(f"bentoml serve: gRPC {exc}", file=sys.stderr)
        raise SystemExit(2) from None
