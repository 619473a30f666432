"""Brute-force limit for the password prompt (`--auth`): failed sign-ins are counted per client address.

Gradio's /login checks the password as fast as it is asked (300 wrong guesses took one second), so this ASGI
middleware sits in front of it: after `max_failures` failed sign-ins within `window_s` from one address,
further sign-in attempts from that address get 429 until the oldest failure leaves the window. Only the
login route is touched; a success clears the address's record.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from assistant.http_guard import ASGIApp, Message, Receive, Scope, Send

__all__ = ["LOGIN_PATHS", "LoginRateLimit"]

LOGIN_PATHS = frozenset({"/login", "/login/"})
MAX_FAILURES = 5
WINDOW_S = 60.0


class LoginRateLimit:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_failures: int = MAX_FAILURES,
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.max_failures = max_failures
        self.window_s = window_s
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float]:
        times = self._failures.setdefault(client, deque())
        while times and now - times[0] > self.window_s:
            times.popleft()
        return times

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope.get("type") != "http"
            or scope.get("method") != "POST"
            or scope.get("path") not in LOGIN_PATHS
        ):
            await self.app(scope, receive, send)
            return
        client = str((scope.get("client") or ("unknown", 0))[0])
        with self._lock:
            now = self.clock()
            times = self._recent(client, now)
            wait_s = self.window_s - (now - times[0]) if len(times) >= self.max_failures else 0.0
            if not times:
                self._failures.pop(client, None)  # keep the table as small as the set of recent failers
        if wait_s > 0:
            body = f"Too many failed sign-ins from this address; try again in {int(wait_s) + 1} s.".encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 429,
                    "headers": [
                        (b"content-type", b"text/plain; charset=utf-8"),
                        (b"retry-after", str(int(wait_s) + 1).encode()),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                status = int(message["status"])
                with self._lock:
                    if 400 <= status < 500:
                        self._recent(client, self.clock()).append(self.clock())
                    elif status < 400:
                        self._failures.pop(client, None)
            await send(message)

        await self.app(scope, receive, watch)
