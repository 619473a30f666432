"""The stdio server answers the handshake before loading Chroma, Ollama's client or the knowledge base.

Clients give `initialize` a few seconds (pydantic-ai: 5 s) on what may be a busy laptop, so the heavy imports
wait for the first request that needs them. Checked through the real interface: the server runs under
``python -X importtime`` (every import is logged on stderr), answers a JSON-RPC `initialize`, and its log then
shows which modules it had loaded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from mcp_types.version import LATEST_HANDSHAKE_VERSION

from tests.harness import free_port

REPO = Path(__file__).resolve().parents[1]
HEAVY = (
    "chromadb",
    "ollama",
    "bm25s",
    "knowledge.search",
    "knowledge.index",
    "tools.data_files",
    "tools.chips",
    "tools.models",
    "tools.quants",
    "tools.sizes",
)


def _line(ident: int, method: str, params: dict[str, Any]) -> bytes:
    return (json.dumps({"jsonrpc": "2.0", "id": ident, "method": method, "params": params}) + "\n").encode()


def _imported(importtime_log: str) -> set[str]:
    return {
        line.rsplit("|", 1)[1].strip()
        for line in importtime_log.splitlines()
        if line.startswith("import time:")
    }


def _serve(tmp_path: Path, *requests: bytes) -> tuple[list[dict[str, Any]], set[str]]:
    env = {
        **os.environ,
        "ADVISOR_DATA_DIR": str(tmp_path / "data"),
        "OLLAMA_HOST": f"http://127.0.0.1:{free_port()}",
    }
    log = tmp_path / "importtime.log"  # a file, not a pipe: the import log outgrows a pipe's buffer
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-X", "importtime", "-m", "assistant.mcp"],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
        )
    assert proc.stdin is not None and proc.stdout is not None
    answers = []
    for ident, request in enumerate(requests, 1):
        proc.stdin.write(request)
        proc.stdin.flush()
        while True:
            line = proc.stdout.readline()
            assert line, "server closed stdout"
            message = json.loads(line)
            if message.get("id") == ident:
                answers.append(message)
                break
    proc.communicate(timeout=60)  # closing stdin ends the stdio server
    return answers, _imported(log.read_text(errors="replace"))


INIT = _line(
    1,
    "initialize",
    {
        "protocolVersion": LATEST_HANDSHAKE_VERSION,
        "capabilities": {},
        "clientInfo": {"name": "startup-test", "version": "0"},
    },
)


def test_initialize_is_answered_without_the_heavy_imports(tmp_path: Path) -> None:
    (answer,), imported = _serve(tmp_path, INIT)
    assert answer["result"]["serverInfo"]["name"] == "mac-ai-advisor"
    assert "mcp" in imported
    loaded = sorted(m for m in imported if m.startswith(HEAVY))
    assert not loaded, f"imported before initialize was answered: {loaded}"


def test_tools_list_needs_no_chroma_and_the_calls_then_work(tmp_path: Path) -> None:
    listed = _line(2, "tools/list", {})
    call = _line(3, "tools/call", {"name": "search_knowledge", "arguments": {"query": "unified memory"}})
    (_, tools, result), imported = _serve(tmp_path, INIT, listed, call)
    names = [t["name"] for t in tools["result"]["tools"]]
    assert "search_knowledge" in names and "estimate_speed" in names and "measure_speed" not in names
    assert not result["result"].get("isError"), result
    assert result["result"]["structuredContent"]["passages"]
    assert "chromadb" in imported  # loaded, but only once a tool needed it
