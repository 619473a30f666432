"""Command line of the MCP server: settings, start-up of the toolset, and the two transports."""

from __future__ import annotations

import argparse
import logging
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
from pydantic import ValidationError

from assistant.config import Settings, invalid_settings
from assistant.http_guard import loopback_security
from assistant.mcp.runtime import LazyRuntime
from assistant.mcp.server import DEFAULT_HTTP_PORT, build_server

log = logging.getLogger("assistant.mcp")

LOOPBACK = "127.0.0.1"  # the HTTP transport listens here only


async def _serve_http(server: Any, port: int) -> None:
    """Streamable HTTP on loopback behind the shared Host/Origin guard (the one the web UI uses too)."""
    import uvicorn

    from assistant.http_guard import LoopbackGuard

    app = server.streamable_http_app(host=LOOPBACK, transport_security=loopback_security())
    config = uvicorn.Config(LoopbackGuard(app), host=LOOPBACK, port=port, log_level="warning")
    await uvicorn.Server(config).serve()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m assistant.mcp",
        description="Serve the mac-ai-advisor tools (speed, memory fit, benchmarks, recommendations, "
        "knowledge search) over the Model Context Protocol.",
    )
    p.add_argument(
        "--transport",
        choices=["stdio", "http"],
        default="stdio",
        help="stdio (default; what desktop clients launch) or streamable HTTP on 127.0.0.1.",
    )
    p.add_argument(
        "--port",
        type=int,
        default=DEFAULT_HTTP_PORT,
        help=f"HTTP port on 127.0.0.1 (default {DEFAULT_HTTP_PORT}); the endpoint is /mcp.",
    )
    p.add_argument("--data-dir", type=Path, default=None, help="Index directory (env ADVISOR_DATA_DIR).")
    p.add_argument("--ollama-host", default=None, help="Ollama URL (env OLLAMA_HOST).")
    p.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def _settings(args: argparse.Namespace) -> Settings:
    """Raises ValueError with one line naming each bad setting as it was given (flag or env variable)."""
    overrides: dict[str, object] = {}
    if args.data_dir is not None:
        overrides["data_dir"] = args.data_dir
    if args.ollama_host is not None:
        overrides["ollama_host"] = args.ollama_host
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as err:
        raise ValueError(invalid_settings(err, overrides)) from None


def _port_problem(port: int) -> str | None:
    """Check the port before the server starts so a clash is one clear line, not a uvicorn traceback."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((LOOPBACK, port))
        except OSError as exc:
            return f"cannot listen on {LOOPBACK}:{port} ({exc.strerror or exc}); pick another --port"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    started = time.perf_counter()
    args = _parser().parse_args(argv)
    # Everything we (or a library) print must stay off stdout: on stdio, stdout *is* the protocol.
    logging.basicConfig(level=args.log_level, stream=sys.stderr, format="%(name)s: %(message)s")
    if not 1 <= args.port <= 65535:
        print(f"error: --port must be between 1 and 65535, got {args.port}", file=sys.stderr)
        return 2
    try:
        settings = _settings(args)
    except ValueError as exc:
        print(f"error: invalid settings: {exc}", file=sys.stderr)
        return 2
    if args.transport == "http":
        problem = _port_problem(args.port)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return 1

    # The handshake is answered before anything heavy is imported: the tool list is built on the first
    # tools/list, and the knowledge base (Chroma, BM25) and the Ollama client load after that (LazyRuntime).
    runtime = LazyRuntime(settings)
    server = build_server(runtime.registry)
    print(
        f"mac-ai-advisor MCP on {args.transport}: tools load on the first request, the knowledge base after "
        f"that [{time.perf_counter() - started:.2f}s]",
        file=sys.stderr,
    )
    try:
        if args.transport == "stdio":
            anyio.run(server.run_stdio_async)
        else:
            print(f"listening on http://{LOOPBACK}:{args.port}/mcp", file=sys.stderr)
            anyio.run(_serve_http, server, args.port)
    except KeyboardInterrupt:
        pass
    finally:
        runtime.close()
    return 0
