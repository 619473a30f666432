"""MCP stdio start-up: spawn -> `initialize` answered, as a ratio to `python -c "import mcp"` in the same run.

    uv run python bench/mcp_startup.py [--reps 5] [--json bench/out/mcp_startup.json]

The server is started as `python -m assistant.mcp` (stdio) with an empty data dir and OLLAMA_HOST pointing at
a closed local port; the bench writes the JSON-RPC `initialize` request to its stdin at once (as clients do)
and stops the clock when the response line arrives. It then sends `tools/list` and records when that is
answered too. The baseline (`python -c "import mcp"`) and the server runs alternate, so both see the same disk
cache and machine load; medians are compared. Target: ratio <= 1.5.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 1.5
TIMEOUT_S = 120.0


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    return f"http://127.0.0.1:{port}"


def time_import_mcp() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import mcp"], check=True, cwd=ROOT)
    return time.perf_counter() - start


def _request(ident: int, method: str, params: dict[str, Any] | None = None) -> bytes:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": ident, "method": method}
    if params is not None:
        body["params"] = params
    return (json.dumps(body) + "\n").encode()


def _read_response(proc: subprocess.Popen[bytes], ident: int) -> dict[str, Any]:
    assert proc.stdout is not None
    while True:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"server closed stdout (exit {proc.poll()})")
        message = json.loads(line)
        if message.get("id") == ident:
            return dict(message)


def time_server(data_dir: Path, ollama_url: str) -> tuple[float, float, int]:
    """(seconds to `initialize` answered, seconds to `tools/list` answered, tools listed)."""
    from mcp_types.version import LATEST_HANDSHAKE_VERSION

    env = {
        **os.environ,
        "ADVISOR_DATA_DIR": str(data_dir),
        "OLLAMA_HOST": ollama_url,
        "ANONYMIZED_TELEMETRY": "False",
    }
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "assistant.mcp"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdin is not None
    try:
        init = {
            "protocolVersion": LATEST_HANDSHAKE_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "bench", "version": "0"},
        }
        proc.stdin.write(_request(1, "initialize", init))
        proc.stdin.flush()
        answer = _read_response(proc, 1)
        initialized = time.perf_counter() - start
        assert "result" in answer, answer
        proc.stdin.write(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
        proc.stdin.write(_request(2, "tools/list", {}))
        proc.stdin.flush()
        listed = _read_response(proc, 2)
        listed_s = time.perf_counter() - start
        return initialized, listed_s, len(listed["result"]["tools"])
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None, help="Also write the figures to this file.")
    args = parser.parse_args()
    ollama_url = closed_port_url()
    base: list[float] = []
    init: list[float] = []
    listed: list[float] = []
    n_tools = 0
    with tempfile.TemporaryDirectory() as tmp:
        time_import_mcp()  # warm the disk cache for both sides
        for _ in range(args.reps):
            base.append(time_import_mcp())
            i, t, n_tools = time_server(Path(tmp) / "data", ollama_url)
            init.append(i)
            listed.append(t)
    result = {
        "import_mcp_s": round(statistics.median(base), 3),
        "initialize_s": round(statistics.median(init), 3),
        "tools_list_s": round(statistics.median(listed), 3),
        "tools_listed": n_tools,
        "ratio_initialize": round(statistics.median(init) / statistics.median(base), 3),
        "ratio_tools_list": round(statistics.median(listed) / statistics.median(base), 3),
        "target_ratio": TARGET_RATIO,
        "reps": args.reps,
    }
    print(json.dumps(result, indent=2))
    ok = result["ratio_initialize"] <= TARGET_RATIO
    print(
        f"spawn -> initialize answered: {result['initialize_s']:.2f}s = {result['ratio_initialize']:.2f}x "
        f'`python -c "import mcp"` ({result["import_mcp_s"]:.2f}s); tools/list after '
        f"{result['tools_list_s']:.2f}s ({result['ratio_tools_list']:.2f}x). Target <= {TARGET_RATIO}x: "
        f"{'met' if ok else 'NOT met'}"
    )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
