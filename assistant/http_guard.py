"""The one Host/Origin check for everything we serve over HTTP (the web UI and MCP over HTTP).

Why: a web page can make the browser send requests to 127.0.0.1, and a page whose name is re-bound to
127.0.0.1 (DNS rebinding) is even same-origin to us. Two headers give such requests away:
- `Host` carries the attacker's name (`evil.example:7860`), so a server bound to loopback refuses any Host
  that is not a loopback name or address (421 Misdirected Request);
- `Origin` carries the page's site on cross-site requests, so a request that can change state (anything
  but GET/HEAD/OPTIONS, and every WebSocket handshake) from a foreign origin is refused (403).
Requests without an Origin (curl, gradio_client, MCP SDK clients) are not from a browser page and pass.

When the server is bound to a non-loopback address (which requires a password), the Host check cannot name
the machine's addresses, so only the cross-site check applies: the Origin must be the page's own Host.

Also here: the `NO_PROXY` entries that keep our own loopback traffic away from a configured HTTP proxy.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "LOOPBACK_NAMES",
    "LoopbackGuard",
    "bypass_proxy_for_loopback",
    "check_request",
    "host_is_loopback",
    "is_loopback_name",
    "loopback_security",
    "origin_allowed",
]

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def is_loopback_name(name: str) -> bool:
    """127.0.0.0/8, ::1 and `localhost` (with or without brackets). 0.0.0.0 and :: are *not* loopback."""
    name = name.strip().strip("[]").lower()
    name = (
        name[:-1] if name.endswith(".") else name
    )  # one trailing dot is the root; "localhost.." is not a name
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name.split("%")[0]).is_loopback
    except ValueError:
        return False


def _hostname(authority: str) -> str | None:
    """The host part of a `Host` header value (`name`, `name:port`, `[v6]:port`); None if malformed."""
    authority = authority.strip()
    if not authority or any(c in authority for c in "/@?#\\ \t"):
        return None
    try:
        parts = urlsplit("//" + authority)
        _ = parts.port  # raises ValueError for a port that is not a number
    except ValueError:
        return None
    return parts.hostname


def host_is_loopback(host_header: str | None) -> bool:
    """True when a `Host` header names this machine's loopback interface."""
    if host_header is None:
        return False
    name = _hostname(host_header)
    return name is not None and is_loopback_name(name)


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _port_of(authority: str | None, default: int) -> int | None:
    """The port a `Host` value names (`default` when it names none); None if malformed."""
    if authority is None:
        return None
    try:
        return urlsplit("//" + authority.strip()).port or default
    except ValueError:
        return None


def origin_allowed(
    origin: str | None, host_header: str | None, *, loopback_only: bool, same_port: bool = False
) -> bool:
    """Is a request with this `Origin` allowed to change state?

    No Origin: not a browser page, allowed. `null` (sandboxed frames, file:// pages): refused. Otherwise the
    origin must be a loopback page (loopback bind) or the very host the request was sent to (other binds).
    With `same_port` (the web UI, whose only page is its own), a loopback page must also be on the port the
    request was sent to: another local web server's page (`http://127.0.0.1:8888`) is another origin.
    """
    if origin is None:
        return True
    origin = origin.strip()
    try:
        parts = urlsplit(origin)
        _ = parts.port
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    if loopback_only:
        if not is_loopback_name(parts.hostname):
            return False
        if not same_port:
            return True
        origin_port = parts.port or _DEFAULT_PORTS[parts.scheme]
        return origin_port == _port_of(host_header, 80)  # we serve plain HTTP: no port in Host means 80
    return host_header is not None and parts.netloc.lower() == host_header.strip().lower()


def check_request(
    method: str,
    headers: dict[str, str],
    *,
    loopback_only: bool = True,
    websocket: bool = False,
    same_port: bool = False,
) -> tuple[int, str] | None:
    """(status, reason) when the request must be refused, None when it may pass. `headers` lower-cased."""
    host = headers.get("host")
    if loopback_only and not host_is_loopback(host):
        return 421, f"Refused: Host {host!r} is not this machine's loopback address (DNS rebinding?)."
    if (websocket or method.upper() not in SAFE_METHODS) and not origin_allowed(
        headers.get("origin"), host, loopback_only=loopback_only, same_port=same_port
    ):
        return 403, f"Refused: cross-site request from Origin {headers.get('origin')!r}."
    return None


class LoopbackGuard:
    """ASGI middleware applying `check_request` to every HTTP request and WebSocket handshake."""

    def __init__(self, app: ASGIApp, *, loopback_only: bool = True, same_port: bool = False) -> None:
        self.app = app
        self.loopback_only = loopback_only
        self.same_port = same_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope.get("headers") or []:
            name = raw_name.decode("latin-1").lower()
            if name in ("host", "origin") and name in headers:  # two Host headers: refuse, not guess
                headers[name] = "\x00duplicate"
            else:
                headers[name] = raw_value.decode("latin-1")
        refusal = check_request(
            str(scope.get("method", "GET")),
            headers,
            loopback_only=self.loopback_only,
            websocket=kind == "websocket",
            same_port=self.same_port,
        )
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, reason = refusal
        if kind == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": reason[:120]})
            return
        body = reason.encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def loopback_security() -> Any:
    """The MCP SDK's own DNS-rebinding settings, from the same loopback names (defence in depth for MCP)."""
    from mcp.server.transport_security import TransportSecuritySettings

    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[*LOOPBACK_NAMES, *(f"{h}:*" for h in LOOPBACK_NAMES)],
        allowed_origins=[
            f"{scheme}://{h}{port}"
            for scheme in ("http", "https")
            for h in LOOPBACK_NAMES
            for port in ("", ":*")
        ],
    )


def bypass_proxy_for_loopback(environ: MutableMapping[str, str] | None = None) -> None:
    """Add loopback to NO_PROXY/no_proxy so that libraries honouring proxy variables (httpx in gradio's
    start-up check, gradio_client) talk to 127.0.0.1 directly instead of through a proxy."""
    env = os.environ if environ is None else environ
    wanted = ["127.0.0.1", "localhost", "::1"]
    for key in ("NO_PROXY", "no_proxy"):
        current = [x.strip() for x in env.get(key, "").split(",") if x.strip()]
        if "*" in current:
            continue
        env[key] = ",".join(current + [w for w in wanted if w not in current])
