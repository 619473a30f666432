"""A socket-level guard: record, and refuse, any connection or name lookup that would leave the machine.

Used in-process by the tests and, through `sitecustomize.py` in a folder put on PYTHONPATH, inside the
subprocesses they start (the MCP server). Loopback (127.0.0.0/8, ::1, localhost) and Unix sockets pass.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", ""}


def is_loopback(host: Any) -> bool:
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    host = str(host).strip("[]").lower()
    if host in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _is_ip_literal(host: Any) -> bool:
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    try:
        ipaddress.ip_address(str(host).strip("[]").split("%")[0])
    except ValueError:
        return False
    return True


class EgressGuard:
    def __init__(self, log_path: str | None = None) -> None:
        self.attempts: list[str] = []
        self._lock = threading.Lock()
        self._log_path = log_path
        self._saved: dict[str, Any] = {}

    def _record(self, what: str) -> None:
        with self._lock:
            self.attempts.append(what)
            if self._log_path:
                with open(self._log_path, "a", encoding="utf-8") as handle:
                    handle.write(what + "\n")

    def install(self) -> None:
        guard = self
        real_connect = socket.socket.connect
        real_connect_ex = socket.socket.connect_ex
        real_getaddrinfo = socket.getaddrinfo
        self._saved = {
            "connect": real_connect,
            "connect_ex": real_connect_ex,
            "getaddrinfo": real_getaddrinfo,
        }

        def _check(sock: socket.socket, address: Any) -> None:
            inet = sock.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple)
            if inet and not is_loopback(address[0]):
                guard._record(f"connect {address[0]}:{address[1]}")
                raise ConnectionRefusedError(f"egress blocked by the test guard: {address[0]}")

        def connect(sock: socket.socket, address: Any) -> Any:
            _check(sock, address)
            return real_connect(sock, address)

        def connect_ex(sock: socket.socket, address: Any) -> Any:
            _check(sock, address)
            return real_connect_ex(sock, address)

        def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
            # An IP literal needs no lookup (the connect check catches it); a name would ask DNS.
            if host is not None and not is_loopback(host) and not _is_ip_literal(host):
                guard._record(f"resolve {host}")
                raise socket.gaierror(socket.EAI_NONAME, f"name lookup blocked by the test guard: {host}")
            return real_getaddrinfo(host, *args, **kwargs)

        socket.socket.connect = connect  # type: ignore[method-assign, assignment]
        socket.socket.connect_ex = connect_ex  # type: ignore[method-assign, assignment]
        socket.getaddrinfo = getaddrinfo

    def uninstall(self) -> None:
        if self._saved:
            socket.socket.connect = self._saved["connect"]  # type: ignore[method-assign]
            socket.socket.connect_ex = self._saved["connect_ex"]  # type: ignore[method-assign]
            socket.getaddrinfo = self._saved["getaddrinfo"]
            self._saved = {}


@contextmanager
def egress_blocked() -> Iterator[EgressGuard]:
    guard = EgressGuard()
    guard.install()
    try:
        yield guard
    finally:
        guard.uninstall()


def install_from_environment() -> None:
    """Entry point for sitecustomize in subprocesses: ADVISOR_TEST_EGRESS_LOG names the attempts file."""
    log_path = os.environ.get("ADVISOR_TEST_EGRESS_LOG")
    if log_path:
        EgressGuard(log_path).install()
