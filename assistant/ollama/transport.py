"""The HTTP transport under the ollama client: tool-call argument repair, and Stop that aborts at once.

Two things the official client cannot do by itself, done one level down in httpx/httpcore:
- decode ``tool_calls[].function.arguments`` sent as a JSON *string* before the client's model rejects it;
- let a `ChatCancel` shut the request's socket down from another thread (closing an httpx response does not
  wake a blocked ``recv``). This is the one place that reaches into httpx's private API: httpx has no public
  way to give its pool a network backend, and the client gives no access to its request (see `cancellable`).
  (The ollama client's own private calls, `_request_raw` and the normalised host, are in layer.py and
  facts.py, each with its reason.)
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import httpcore
import httpx
import ollama

from assistant.chat_model import ChatCancel
from assistant.safe_json import decode_object

__all__ = ["cancellable", "repairing_transport"]


def repairing_transport() -> httpx.BaseTransport:
    """httpx's default transport, with argument repair and sockets a ChatCancel can shut down."""
    return _ToolArgumentsTransport(_cancellable_transport())


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)


_CANCEL: ContextVar[ChatCancel | None] = ContextVar("ollama_chat_cancel", default=None)
"""The ChatCancel of the request being sent on this thread (see cancellable, _CancellableStream)."""


class _ToolArgumentsTransport(httpx.BaseTransport):
    """Decodes ``tool_calls[].function.arguments`` sent as a JSON *string* before the client parses the line.

    Ollama itself sends an object, but OpenAI-style proxies and some servers send the string form, and the
    client's pydantic model rejects it — killing the whole answer over a detail the agent can handle. An
    undecodable string is kept verbatim as ``{"_raw": text}`` (the agent's convention), so its validation
    error can go back to the model for a retry. Lines without tool calls pass through untouched.
    """

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self._inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        if not request.url.path.endswith("/api/chat") or response.status_code != 200:
            return response
        headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() != "content-length"]
        return httpx.Response(
            status_code=response.status_code,
            headers=headers,
            stream=_RepairingStream(response.stream),
            extensions=response.extensions,
            request=request,
        )

    def close(self) -> None:
        self._inner.close()


def _cancellable_transport() -> httpx.HTTPTransport:
    """httpx's transport with httpx's defaults, whose connections report their socket to a ChatCancel.

    httpx has no public way to give its connection pool a network backend (httpcore's documented extension
    point), so the pool is rebuilt with one; the Stop tests fail if a future httpx ignores it.
    """
    transport = httpx.HTTPTransport()
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)
    transport._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=_CancellableBackend(),
    )
    return transport


class _CancellableBackend(httpcore.NetworkBackend):
    """httpcore's sync backend; its streams tell the ChatCancel of the request being written their socket."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        return _CancellableStream(self._inner.connect_tcp(host, port, timeout, local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        return _CancellableStream(self._inner.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _CancellableStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        cancel = _CANCEL.get()  # set only while a cancellable request is being sent, on its thread
        if cancel is not None:
            sock = self._inner.get_extra_info("socket")
            if isinstance(sock, socket.socket):
                cancel.attach(id(sock), lambda: _shutdown(sock))
        self._inner.write(buffer, timeout)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        return _CancellableStream(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


def cancellable(stream: Iterator[ollama.ChatResponse], cancel: ChatCancel) -> Iterator[ollama.ChatResponse]:
    """Iterate a client chat stream whose request (sent by the first ``next``) is tied to ``cancel``.

    The official client gives no access to its httpx request, so the ChatCancel reaches the connection
    (_CancellableStream) through a context variable set only while the request is sent, on that thread.
    """
    chunks = iter(stream)
    token = _CANCEL.set(cancel)
    try:
        first = next(chunks, None)
    finally:
        _CANCEL.reset(token)
    if first is None:
        return
    yield first
    yield from chunks


class _RepairingStream(httpx.SyncByteStream):
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __iter__(self) -> Iterator[bytes]:
        pending = b""
        for chunk in self._inner:
            if not pending and b"tool_calls" not in chunk:
                yield chunk
                continue
            pending += chunk
            if b"\n" not in pending:
                continue
            complete, _, pending = pending.rpartition(b"\n")
            yield b"\n".join(_repair_line(line) for line in complete.split(b"\n")) + b"\n"
        if pending:
            yield _repair_line(pending)

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()


def _repair_line(line: bytes) -> bytes:
    if b"tool_calls" not in line:
        return line
    try:
        data = json.loads(line)
    except ValueError:
        return line
    message = data.get("message") if isinstance(data, dict) else None
    calls = message.get("tool_calls") if isinstance(message, dict) else None
    if not isinstance(calls, list):
        return line
    changed = False
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and isinstance(function.get("arguments"), str):
            text = function["arguments"]
            decoded = decode_object(text)
            function["arguments"] = {"_raw": text} if decoded is None else decoded
            changed = True
    return json.dumps(data).encode() if changed else line
