"""The stand-in HTTP server: Ollama's REST protocol on 127.0.0.1, scripted per test.

It speaks HTTP/1.1 with keep-alive and chunked NDJSON streams like Ollama's Go server, because the faults
worth testing live at that level: a stream cut without its terminating chunk is only detectable when the
stream is chunked, and a refused connection only happens when the listening socket is really gone.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .embedder import DIMENSION, embed_text
from .models import (
    DEFAULT_INSTALLED,
    DEFAULT_REGISTRY,
    SERVER_BUSY,
    ChatResponder,
    ChatScript,
    Fault,
    ModelSpec,
    RecordedRequest,
    approx_tokens,
    canonical_name,
    split_tokens,
)

DEFAULT_REPLY = (
    "This is the Ollama stand-in. It has no script for this request, so it answers with this text."
)
DEFAULT_VERSION = "0.12.6"


class _Abort(Exception):
    """Unwinds a handler after a fault cut the connection on purpose."""


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # 20-50 concurrent chats must not overflow the listen backlog
    standin: OllamaStandIn


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    server_version = "ollama-standin"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        # Without NODELAY, header+chunk writes hit Nagle/delayed-ACK and add ~40 ms per request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.standin._track(self.connection)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.server.standin._untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002, ARG002 - stdlib signature; no log
        return

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # -- plumbing ----------------------------------------------------------------------------------

    def _dispatch(self, method: str) -> None:
        standin = self.server.standin
        try:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body: Any = None
            bad_json = False
            if raw:
                try:
                    body = json.loads(raw)
                except json.JSONDecodeError:
                    bad_json = True
            path = self.path.split("?", 1)[0]
            headers = {k.lower(): v for k, v in self.headers.items()}
            record = RecordedRequest(method, path, body, headers, time.monotonic())
            standin._record(record)
            fault = standin._take_fault(path)
            if fault is not None and self._apply_fault(fault, streaming=_wants_stream(path, body)):
                return
            if bad_json:
                self.send_json(400, {"error": "invalid character in request body"})
                return
            standin._route(self, record)
        except _Abort:
            self.close_connection = True
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True
        except Exception as exc:  # noqa: BLE001 - a bug in the stand-in must be visible, not a hang
            standin._errors.append(repr(exc))
            with contextlib.suppress(OSError):
                self.send_json(500, {"error": f"stand-in internal error: {exc!r}"})

    def _apply_fault(self, fault: Fault, *, streaming: bool) -> bool:
        """Apply a path-level fault; returns True when the request is fully handled by it."""
        standin = self.server.standin
        if fault.kind == "slow":
            standin._sleep(fault.delay_s)
            return False
        if fault.kind == "http":
            self.send_json(fault.status, {"error": fault.error})
            return True
        if fault.kind == "stream_error":
            if not streaming:
                self.send_json(500, {"error": fault.error})
                return True
            self.start_stream()
            self.stream_line({"error": fault.error})
            self.end_stream()
            return True
        if fault.kind == "close":
            self.cut()
        if fault.kind == "drop":
            if streaming:
                self.start_stream()
                for i in range(fault.after_lines):
                    self.stream_line({"status": f"partial line {i}"})
            self.cut()
        return True

    def send_json(self, status: int, payload: Any) -> None:
        self._send(status, "application/json", json.dumps(payload).encode())

    def send_text(self, status: int, text: str) -> None:
        self._send(status, "text/plain", text.encode())

    def _send(self, status: int, media_type: str, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", f"{media_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def stream_line(self, payload: Any) -> None:
        data = json.dumps(payload).encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")

    def cut(self) -> None:
        """Close the TCP connection without finishing the response."""
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
        raise _Abort


def _wants_stream(path: str, body: Any) -> bool:
    if path not in ("/api/chat", "/api/pull", "/api/generate", "/api/push", "/api/create"):
        return False
    return not (isinstance(body, dict) and body.get("stream") is False)


class OllamaStandIn:
    """A scripted Ollama. See the package docstring for a usage example."""

    def __init__(
        self,
        models: Iterable[ModelSpec] = DEFAULT_INSTALLED,
        *,
        registry: Iterable[ModelSpec] = DEFAULT_REGISTRY,
        version: str = DEFAULT_VERSION,
    ) -> None:
        self._lock = threading.RLock()
        self._arrived = threading.Condition(self._lock)
        self._installed: dict[str, ModelSpec] = {canonical_name(m.name): m for m in models}
        self._registry: dict[str, ModelSpec] = {canonical_name(m.name): m for m in registry}
        self._registry.update(self._installed)
        self.version = version
        self._chat_queue: deque[ChatScript | ChatResponder] = deque()
        self.chat_responder: ChatResponder | None = None
        """Called (with the request) when the chat queue is empty; None → the default deterministic reply."""
        self._faults: dict[str, deque[Fault]] = {}
        self._requests: list[RecordedRequest] = []
        self._errors: list[str] = []
        self._loaded: dict[str, tuple[datetime, int]] = {}
        self.gpu_memory_bytes: int | None = None
        """When set, /api/ps caps size_vram at this (partial offload), like a Mac short of memory."""
        self.max_concurrent_chats: int | None = None
        """When set, a chat arriving while this many are in flight gets 503 "server busy" (a full queue)."""
        self._chats_in_flight = 0
        self._chats_done = threading.Condition(self._lock)
        self.loads: list[tuple[str, int]] = []
        """(model, num_ctx) of every (re)load: Ollama reloads a model when a request changes num_ctx."""
        self.embed_overflow: str = "truncate"
        """Embed input longer than the model's context: "truncate" silently (Ollama's default, truncate=true),
        or "error" (what truncate=false gets, and what some 0.12.x releases sent regardless)."""
        self.think_in_content = False
        """Ollama 0.9-0.11 (think unset) and models without a thinking parser: the reasoning streams inside
        the content as ``<think>...</think>``, the tags cut across chunks."""
        self.pull_steps = 4
        self.pull_step_delay_s = 0.0
        self.pull_gate: threading.Event | None = None
        """When set, a streamed pull stops half-way through its first layer until this event is set, so a
        test can look at the progress shown mid-pull without sleeping."""
        self._connections: set[socket.socket] = set()
        self._aborted_chats: list[RecordedRequest] = []
        self._chat_aborted = threading.Event()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``, the form OLLAMA_HOST usually takes."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> OllamaStandIn:
        self._stopping.clear()
        self._listen()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._close_listener()
        self._close_connections()

    def __enter__(self) -> OllamaStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _listen(self) -> None:
        server = _Server(("127.0.0.1", self.port), _Handler)
        server.standin = self
        self.port = server.server_address[1]
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="ollama-standin", daemon=True
        )
        thread.start()
        self._server, self._thread = server, thread

    def _close_listener(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def _close_connections(self) -> None:
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def _track(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.add(conn)

    def _untrack(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.discard(conn)

    def _wait_gate(self, gate: threading.Event, timeout_s: float = 120.0) -> None:
        """Block until a test opens ``gate`` (or the stand-in stops); the timeout catches a forgotten gate."""
        deadline = time.monotonic() + timeout_s
        while not gate.is_set() and not self._stopping.is_set() and time.monotonic() < deadline:
            gate.wait(0.05)

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)

    def _chat_wait(self, h: _Handler, req: RecordedRequest, seconds: float) -> None:
        """A chat's wait (prompt evaluation, a slow token) that notices the client leaving, as Ollama does:
        it stops generating at once, and the request is recorded as aborted."""
        deadline = time.monotonic() + seconds
        while not self._stopping.is_set() and (left := deadline - time.monotonic()) > 0:
            try:
                readable, _, _ = select.select([h.connection], [], [], min(left, 0.1))
                gone = bool(readable) and h.connection.recv(1, socket.MSG_PEEK) == b""
            except (OSError, ValueError):
                gone = True
            if gone:
                self._chat_was_aborted(req)
                raise _Abort

    def _chat_was_aborted(self, req: RecordedRequest) -> None:
        with self._lock:
            self._aborted_chats.append(req)
        self._chat_aborted.set()

    # -- faults ------------------------------------------------------------------------------------

    def refuse_connections(self) -> None:
        """Ollama quits: the port stops listening (clients get ECONNREFUSED) and open connections are cut."""
        self._close_listener()
        self._close_connections()

    def accept_connections(self) -> None:
        """Ollama comes back on the same port."""
        if self._server is None:
            self._listen()

    @contextlib.contextmanager
    def down(self) -> Iterator[None]:
        """``with standin.down(): ...`` — refused inside the block, back afterwards."""
        self.refuse_connections()
        try:
            yield
        finally:
            self.accept_connections()

    def inject(self, path: str, fault: Fault, times: int = 1) -> None:
        """Apply ``fault`` to the next ``times`` requests to ``path`` ("/api/embed"...), before any script."""
        with self._lock:
            self._faults.setdefault(path, deque()).extend([fault] * times)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            queue = self._faults.get(path)
            return queue.popleft() if queue else None

    # -- scripting ---------------------------------------------------------------------------------

    def script_chat(self, *turns: ChatScript | ChatResponder | str) -> None:
        """Queue replies for successive /api/chat calls; a str is plain text, a callable gets the request."""
        with self._lock:
            for turn in turns:
                self._chat_queue.append(ChatScript(text=turn) if isinstance(turn, str) else turn)

    def pending_scripts(self) -> int:
        with self._lock:
            return len(self._chat_queue)

    def clear_scripts(self) -> None:
        with self._lock:
            self._chat_queue.clear()

    def set_models(self, *models: ModelSpec) -> None:
        """Replace the installed models (they also become pullable)."""
        with self._lock:
            self._installed = {canonical_name(m.name): m for m in models}
            self._registry.update(self._installed)
            self._loaded = {k: v for k, v in self._loaded.items() if k in self._installed}

    def add_model(self, model: ModelSpec) -> None:
        with self._lock:
            self._installed[canonical_name(model.name)] = model
            self._registry[canonical_name(model.name)] = model

    def remove_model(self, name: str) -> None:
        with self._lock:
            self._installed.pop(canonical_name(name), None)
            self._loaded.pop(canonical_name(name), None)

    def add_to_registry(self, model: ModelSpec) -> None:
        """Make ``model`` pullable without installing it."""
        with self._lock:
            self._registry[canonical_name(model.name)] = model

    def installed(self) -> list[str]:
        with self._lock:
            return list(self._installed)

    def set_loaded(self, name: str, context_length: int = 4096, keep_alive_s: float = 300.0) -> None:
        """Mark a model as loaded (as if used recently) so /api/ps lists it."""
        with self._lock:
            self._loaded[canonical_name(name)] = (
                datetime.now(UTC) + timedelta(seconds=keep_alive_s),
                context_length,
            )

    # -- inspection --------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, path: str, method: str | None = None) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path and (method is None or r.method == method)]

    def chat_requests(self) -> list[RecordedRequest]:
        return self.requests_to("/api/chat")

    def embed_requests(self) -> list[RecordedRequest]:
        return self.requests_to("/api/embed")

    def last_chat_request(self) -> RecordedRequest:
        chats = self.chat_requests()
        if not chats:
            raise AssertionError("the stand-in received no /api/chat request")
        return chats[-1]

    def embedded_texts(self) -> list[str]:
        """Every text sent to /api/embed, in order, prefixes included."""
        return [text for r in self.embed_requests() for text in r.inputs]

    def wait_for_request(self, path: str, count: int = 1, hang_s: float = 120.0) -> RecordedRequest:
        """Wait until `count` requests to `path` have arrived (maybe still in flight); return the last one.

        `hang_s` only turns a hang into a failure: a test synchronises on the request's arrival, not on time.
        """
        with self._arrived:
            arrived = self._arrived.wait_for(lambda: len(self.requests_to(path)) >= count, timeout=hang_s)
            if not arrived:
                raise AssertionError(f"no request #{count} to {path} within {hang_s} s")
            return self.requests_to(path)[count - 1]

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()
            self._aborted_chats.clear()
            self._chat_aborted.clear()

    def aborted_chats(self) -> list[RecordedRequest]:
        """Streamed /api/chat requests the client hung up on before the last line (Ollama then stops)."""
        with self._lock:
            return list(self._aborted_chats)

    def wait_chat_aborted(self, timeout_s: float = 30.0) -> bool:
        """Block until a client closes a chat stream early; False on timeout."""
        return self._chat_aborted.wait(timeout_s)

    @property
    def errors(self) -> list[str]:
        """Internal errors of the stand-in itself (should stay empty; a test may assert on it)."""
        return list(self._errors)

    def _record(self, record: RecordedRequest) -> None:
        with self._arrived:
            self._requests.append(record)
            self._arrived.notify_all()

    # -- routing -----------------------------------------------------------------------------------

    def _route(self, h: _Handler, req: RecordedRequest) -> None:
        routes = {
            ("GET", "/"): self._root,
            ("HEAD", "/"): self._root,
            ("GET", "/api/version"): self._version,
            ("GET", "/api/tags"): self._tags,
            ("POST", "/api/show"): self._show,
            ("POST", "/api/chat"): self._chat,
            ("POST", "/api/embed"): self._embed,
            ("POST", "/api/pull"): self._pull,
            ("GET", "/api/ps"): self._ps,
            ("DELETE", "/api/delete"): self._delete,
        }
        handler = routes.get((req.method, req.path))
        if handler is None:
            known = {path for _, path in routes}
            if req.path in known:
                h.send_text(405, "405 method not allowed")
            else:
                h.send_text(404, "404 page not found")
            return
        handler(h, req)

    def _root(self, h: _Handler, _req: RecordedRequest) -> None:
        h.send_text(200, "Ollama is running")

    def _version(self, h: _Handler, _req: RecordedRequest) -> None:
        h.send_json(200, {"version": self.version})

    def _tags(self, h: _Handler, _req: RecordedRequest) -> None:
        with self._lock:
            models = list(self._installed.values())
        h.send_json(
            200,
            {
                "models": [
                    {
                        "name": canonical_name(m.name),
                        "model": canonical_name(m.name),
                        "modified_at": "2025-11-02T10:15:42.123456+01:00",
                        "size": m.size_bytes,
                        "digest": m.digest,
                        "details": m.details(),
                    }
                    for m in models
                ]
            },
        )

    def _require_body(self, h: _Handler, req: RecordedRequest) -> dict[str, Any] | None:
        if not isinstance(req.json, dict):
            h.send_json(400, {"error": "missing request body"})
            return None
        return req.json

    def _installed_model(self, name: Any) -> ModelSpec | None:
        if not isinstance(name, str) or not name:
            return None
        with self._lock:
            return self._installed.get(canonical_name(name))

    def _show(self, h: _Handler, req: RecordedRequest) -> None:
        body = self._require_body(h, req)
        if body is None:
            return
        name = body.get("model") or body.get("name")
        spec = self._installed_model(name)
        if spec is None:
            h.send_json(404, {"error": f"model '{name}' not found"})
            return
        h.send_json(
            200,
            {
                "license": "",
                "modelfile": f"# Modelfile generated by the stand-in\nFROM {spec.name}\n",
                "parameters": 'stop "<|im_end|>"',
                "template": "{{ .Prompt }}",
                "details": spec.details(),
                "model_info": spec.model_info(),
                "tensors": [{"name": n, "type": t, "shape": list(shape)} for n, t, shape in spec.tensors]
                if body.get("verbose")
                else [],
                "capabilities": list(spec.capabilities),
                "modified_at": "2025-11-02T10:15:42.123456+01:00",
            },
        )

    def _ps(self, h: _Handler, _req: RecordedRequest) -> None:
        now = datetime.now(UTC)
        with self._lock:
            self._loaded = {k: v for k, v in self._loaded.items() if v[0] > now}
            loaded = [(self._installed[k], v) for k, v in self._loaded.items() if k in self._installed]
            cap = self.gpu_memory_bytes
        models = []
        for spec, (expires, ctx) in loaded:
            size = spec.size_bytes + spec.kv_cache_bytes(ctx) + 300_000_000
            vram = size if cap is None else min(size, cap)
            models.append(
                {
                    "name": canonical_name(spec.name),
                    "model": canonical_name(spec.name),
                    "size": size,
                    "digest": spec.digest,
                    "details": spec.details(),
                    "expires_at": expires.isoformat().replace("+00:00", "Z"),
                    "size_vram": vram,
                    "context_length": ctx,
                }
            )
        h.send_json(200, {"models": models})

    def _delete(self, h: _Handler, req: RecordedRequest) -> None:
        body = self._require_body(h, req)
        if body is None:
            return
        name = body.get("model") or body.get("name")
        if self._installed_model(name) is None:
            h.send_json(404, {"error": f"model '{name}' not found"})
            return
        self.remove_model(str(name))
        h.send_json(200, {})

    def _load(self, spec: ModelSpec, body: dict[str, Any]) -> bool:
        """Track the model in /api/ps like Ollama's scheduler; returns True when it was not loaded before."""
        key = canonical_name(spec.name)
        keep_alive = body.get("keep_alive")
        seconds = _keep_alive_seconds(keep_alive)
        ctx = int((body.get("options") or {}).get("num_ctx") or 4096)
        with self._lock:
            now = datetime.now(UTC)
            current = self._loaded.get(key)
            # A model whose keep-alive ran out, or one loaded with another num_ctx, is (re)loaded: Ollama's
            # scheduler restarts the runner to allocate the new KV cache.
            cold = current is None or current[0] <= now or current[1] != ctx
            if cold:
                self.loads.append((key, ctx))
            if seconds == 0:
                self._loaded.pop(key, None)
            else:
                self._loaded[key] = (now + timedelta(seconds=seconds), ctx)
        return cold

    def _embed(self, h: _Handler, req: RecordedRequest) -> None:
        body = self._require_body(h, req)
        if body is None:
            return
        spec = self._installed_model(body.get("model"))
        if spec is None:
            h.send_json(404, {"error": f'model "{body.get("model")}" not found, try pulling it first'})
            return
        value = body.get("input")
        inputs = [value] if isinstance(value, str) else value
        if not isinstance(inputs, list) or not all(isinstance(t, str) for t in inputs):
            h.send_json(400, {"error": "invalid input type"})
            return
        limit_tokens = spec.context_length
        too_long = [t for t in inputs if approx_tokens(t) > limit_tokens]
        if too_long:
            if body.get("truncate") is False or self.embed_overflow == "error":
                h.send_json(400, {"error": "the input length exceeds the context length"})
                return
            # Silently keep only what fits the context, as Ollama does with truncate=true.
            inputs = [t[: limit_tokens * 4] for t in inputs]
        dims = body.get("dimensions")
        vectors = [embed_text(text) for text in inputs]
        if isinstance(dims, int) and 0 < dims < DIMENSION:
            vectors = [_renormalise(v[:dims]) for v in vectors]
        cold = self._load(spec, body)
        tokens = sum(approx_tokens(t) for t in inputs)
        h.send_json(
            200,
            {
                "model": body["model"],
                "embeddings": vectors,
                "total_duration": 14_000_000 + tokens * 200_000,
                "load_duration": 900_000_000 if cold else 4_000_000,
                "prompt_eval_count": tokens,
            },
        )

    def _pull(self, h: _Handler, req: RecordedRequest) -> None:
        body = self._require_body(h, req)
        if body is None:
            return
        name = str(body.get("model") or body.get("name") or "")
        with self._lock:
            spec = self._registry.get(canonical_name(name)) if name else None
        stream = body.get("stream") is not False
        if spec is None:
            error = "pull model manifest: file does not exist"
            if not stream:
                h.send_json(500, {"error": error})
                return
            h.start_stream()
            h.stream_line({"status": "pulling manifest"})
            h.stream_line({"error": error})
            h.end_stream()
            return
        if stream:
            h.start_stream()
            h.stream_line({"status": "pulling manifest"})
            layers = [(spec.digest, spec.size_bytes), (spec.digest[::-1], 11_357)]
            for digest, total in layers:
                steps = max(self.pull_steps, 1)
                for step in range(steps + 1):
                    self._sleep(self.pull_step_delay_s if step else 0.0)
                    if self.pull_gate is not None and digest == spec.digest and step == steps // 2 + 1:
                        self._wait_gate(self.pull_gate)
                    h.stream_line(
                        {
                            "status": f"pulling {digest[:12]}",
                            "digest": f"sha256:{digest}",
                            "total": total,
                            "completed": total * step // steps,
                        }
                    )
            for status in ("verifying sha256 digest", "writing manifest", "success"):
                h.stream_line({"status": status})
            h.end_stream()
        else:
            h.send_json(200, {"status": "success"})
        self.add_model(spec)

    # -- chat --------------------------------------------------------------------------------------

    def _next_script(self, req: RecordedRequest) -> ChatScript:
        with self._lock:
            item = self._chat_queue.popleft() if self._chat_queue else self.chat_responder
        if item is None:
            return ChatScript(text=DEFAULT_REPLY)
        if isinstance(item, ChatScript):
            return item
        produced = item(req)
        if produced is None:
            return ChatScript(text=DEFAULT_REPLY)
        return ChatScript(text=produced) if isinstance(produced, str) else produced

    def _chat(self, h: _Handler, req: RecordedRequest) -> None:
        body = self._require_body(h, req)
        if body is None:
            return
        name = body.get("model")
        spec = self._installed_model(name)
        if spec is None:
            h.send_json(404, {"error": f'model "{name}" not found, try pulling it first'})
            return
        if "completion" not in spec.capabilities:
            h.send_json(400, {"error": f'"{name}" does not support chat'})
            return
        if body.get("tools") and "tools" not in spec.capabilities:
            h.send_json(400, {"error": f"registry.ollama.ai/library/{name} does not support tools"})
            return
        if body.get("think") and "thinking" not in spec.capabilities:
            h.send_json(400, {"error": f'"{name}" does not support thinking'})
            return
        with self._lock:
            busy = (
                self.max_concurrent_chats is not None and self._chats_in_flight >= self.max_concurrent_chats
            )
            if not busy:
                self._chats_in_flight += 1
        if busy:
            h.send_json(503, {"error": SERVER_BUSY})
            return
        try:
            self._chat_reply(h, req, body, spec)
        finally:
            with self._lock:
                self._chats_in_flight -= 1
                self._chats_done.notify_all()

    def wait_chats_idle(self, timeout_s: float = 60.0) -> bool:
        """Block until no /api/chat handler is running (a client may see the last line before that)."""
        with self._chats_done:
            return self._chats_done.wait_for(lambda: self._chats_in_flight == 0, timeout_s)

    def _chat_reply(self, h: _Handler, req: RecordedRequest, body: dict[str, Any], spec: ModelSpec) -> None:
        script = self._next_script(req)
        stream = body.get("stream") is not False
        if script.fault is not None and self._fault_before_reply(h, req, script.fault, stream=stream):
            return
        cold = self._load(spec, body)
        reply = _Reply.of(script, body, spec, think_in_content=self.think_in_content)
        final = reply.final_line(script, body, cold=cold)
        if stream:
            self._stream_reply(h, req, script, reply, final)
            return
        message: dict[str, Any] = {"role": "assistant", "content": "".join(reply.content)}
        if reply.thinking:
            message["thinking"] = "".join(reply.thinking)
        if reply.calls:
            message["tool_calls"] = reply.calls
        self._sleep(script.token_delay_s * (len(reply.content) + len(reply.thinking)))
        h.send_json(200, {**final, "message": message})

    def _fault_before_reply(self, h: _Handler, req: RecordedRequest, fault: Fault, *, stream: bool) -> bool:
        """A scripted fault that strikes before the first line; True when it answered the request."""
        if fault.kind == "slow":
            self._chat_wait(h, req, fault.delay_s)
        elif fault.kind == "http":
            h.send_json(fault.status, {"error": fault.error})
            return True
        elif fault.kind == "close" or (fault.kind == "drop" and not stream):
            h.cut()
        elif fault.kind == "stream_error" and not stream:
            h.send_json(500, {"error": fault.error})
            return True
        return False

    def _stream_reply(
        self, h: _Handler, req: RecordedRequest, script: ChatScript, reply: _Reply, final: dict[str, Any]
    ) -> None:
        name, fault = final["model"], script.fault
        h.start_stream()
        try:
            for index, message in enumerate(reply.stream_messages(split_calls=script.split_tool_calls)):
                if fault is not None and index >= fault.after_lines:
                    self._stream_fault(h, fault)
                if index and script.token_delay_s:
                    self._chat_wait(h, req, script.token_delay_s)
                h.stream_line({"model": name, "created_at": _now(), "message": message, "done": False})
            if fault is not None:
                self._stream_fault(h, fault)
            h.stream_line(final)
            h.end_stream()
        except _StreamEnded:
            return
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            # The client closed the stream: like Ollama, stop generating, and remember it for the tests.
            self._chat_was_aborted(req)
            raise

    @staticmethod
    def _stream_fault(h: _Handler, fault: Fault) -> None:
        """A fault due at this point of a stream: cut it (``drop``), or end it with an error line."""
        if fault.kind == "drop":
            h.cut()
        if fault.kind == "stream_error":
            h.stream_line({"error": fault.error})
            h.end_stream()
            raise _StreamEnded


class _StreamEnded(Exception):
    """A scripted error line ended the chat stream early (the handler has nothing more to send)."""


@dataclass
class _Reply:
    """What one scripted chat reply streams: thinking, content and tool calls, as the request shapes them."""

    content: list[str]
    thinking: list[str]
    calls: list[Any]
    done_reason: str

    @classmethod
    def of(
        cls, script: ChatScript, body: dict[str, Any], spec: ModelSpec, *, think_in_content: bool
    ) -> _Reply:
        content = script.content_tokens()
        think = body.get("think")
        # Ollama >= 0.12: think unset on a thinking-capable model means it thinks (and says so in `thinking`).
        thinks = bool(think) or (think is None and "thinking" in spec.capabilities)
        thinking = split_tokens(script.thinking) if script.thinking and thinks else []
        if thinking and think_in_content and think is None:
            content = ["<th", "ink>", *thinking, "</", "think>\n", "\n", *content]
            thinking = []
        done_reason = script.done_reason
        limit = (body.get("options") or {}).get("num_predict")
        if isinstance(limit, int) and limit > 0 and len(content) > limit:
            content, done_reason = content[:limit], "length"
        calls = [call.wire(i) for i, call in enumerate(script.tool_call_scripts())]
        return cls(content, thinking, calls, done_reason)

    def final_line(self, script: ChatScript, body: dict[str, Any], *, cold: bool) -> dict[str, Any]:
        """The closing ``done`` line with its counts: the script's, or plausible ones from the reply."""
        eval_count = script.eval_count
        if eval_count is None:
            eval_count = max(1, len(self.content) + len(self.thinking) + 12 * len(self.calls))
        eval_ns = script.eval_duration_ns
        if eval_ns is None:
            eval_ns = int(eval_count / script.tokens_per_second * 1e9)
        prompt_count = script.prompt_eval_count
        if prompt_count is None:
            prompt_count = approx_tokens(body.get("messages") or []) + approx_tokens(body.get("tools") or [])
        prompt_ns = script.prompt_eval_duration_ns
        if prompt_ns is None:
            prompt_ns = int(prompt_count / 400.0 * 1e9)
        load_ns = script.load_duration_ns
        if load_ns is None:
            load_ns = 1_800_000_000 if cold else 18_000_000
        return {
            "model": body.get("model"),
            "created_at": _now(),
            "message": {"role": "assistant", "content": ""},
            "done_reason": self.done_reason,
            "done": True,
            "total_duration": load_ns + prompt_ns + eval_ns + 3_000_000,
            "load_duration": load_ns,
            "prompt_eval_count": prompt_count,
            "prompt_eval_duration": prompt_ns,
            "eval_count": eval_count,
            "eval_duration": eval_ns,
        }

    def stream_messages(self, *, split_calls: bool) -> list[dict[str, Any]]:
        lines: list[dict[str, Any]] = [
            {"role": "assistant", "content": "", "thinking": token} for token in self.thinking
        ]
        lines += [{"role": "assistant", "content": token} for token in self.content]
        if self.calls and split_calls:
            lines += [{"role": "assistant", "content": "", "tool_calls": [call]} for call in self.calls]
        elif self.calls:
            lines.append({"role": "assistant", "content": "", "tool_calls": self.calls})
        return lines


def _keep_alive_seconds(value: Any) -> float:
    """Ollama's keep_alive: number of seconds, or a Go duration like "5m"/"30s"/"1h"; negative = forever."""
    if value is None:
        return 300.0
    if isinstance(value, int | float):
        return float(value) if value >= 0 else 10.0**9
    text = str(value).strip()
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for suffix in ("ms", "s", "m", "h"):
        if text.endswith(suffix):
            try:
                seconds = float(text[: -len(suffix)]) * units[suffix]
            except ValueError:
                return 300.0
            return seconds if seconds >= 0 else 10.0**9
    try:
        seconds = float(text)
    except ValueError:
        return 300.0
    return seconds if seconds >= 0 else 10.0**9


def _renormalise(vector: list[float]) -> list[float]:
    norm = sum(v * v for v in vector) ** 0.5 or 1.0
    return [v / norm for v in vector]
