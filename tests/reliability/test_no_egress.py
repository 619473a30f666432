"""A whole session with every outbound connection blocked except loopback: none may even be attempted.

Knowledge sync and search (embeddings via the stand-in), agent turns with tool calls, the web UI served and
used through its API, an MCP tool call over stdio, the knowledge CLI and `launch.py` in subprocesses that
carry the same guard. All of it runs with HTTP(S)_PROXY/ALL_PROXY pointing at a (blocked) non-loopback
proxy: a client of ours that honoured them would send Ollama traffic, document text or the app's own
start-up check there, and the guard would record the attempt.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from assistant.events import DoneEvent, ToolResultEvent
from tests.harness import chat_client, serve_app
from tests.ollama_standin import OllamaStandIn
from tests.reliability.common import echo_tag_responder, final, launch_then_stop, make_agent
from tests.reliability.egress_guard import egress_blocked
from tools.fit import check_memory_fit
from tools.schemas import CheckMemoryFitInput

ROOT = Path(__file__).resolve().parents[2]
PROXY = "http://192.0.2.1:3128"  # TEST-NET-1: never a real host, and blocked by the guard anyway
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture
def proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Proxy variables set, NO_PROXY empty (restored afterwards even if the app adds loopback to it)."""
    for name in PROXY_VARS:
        monkeypatch.setenv(name, PROXY)
    monkeypatch.setenv("NO_PROXY", "")
    monkeypatch.setenv("no_proxy", "")


@pytest.fixture
def guard_dir(tmp_path: Path) -> Path:
    """A folder for PYTHONPATH whose sitecustomize installs the guard in every Python subprocess."""
    folder = tmp_path / "guard"
    folder.mkdir()
    shutil.copy(Path(__file__).with_name("egress_guard.py"), folder / "advisor_egress_guard.py")
    (folder / "sitecustomize.py").write_text(
        "import advisor_egress_guard\nadvisor_egress_guard.install_from_environment()\n", encoding="utf-8"
    )
    return folder


def test_guard_really_blocks_and_records_in_subprocesses_too(guard_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "egress.log"
    code = (
        "import socket\ntry:\n    socket.create_connection(('192.0.2.1', 80), 1)\nexcept OSError:\n    pass\n"
    )
    env = {**os.environ, "PYTHONPATH": str(guard_dir), "ADVISOR_TEST_EGRESS_LOG": str(log)}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=300)
    assert log.read_text(encoding="utf-8").splitlines() == ["connect 192.0.2.1:80"]


def test_guard_really_blocks_and_records() -> None:
    import socket

    with egress_blocked() as guard:
        with pytest.raises(OSError), socket.create_connection(("192.0.2.1", 80), timeout=1):
            pass
        with pytest.raises(OSError):
            socket.getaddrinfo("example.com", 443)
    assert guard.attempts == ["connect 192.0.2.1:80", "resolve example.com"]


def _guarded_env(guard_dir: Path, log: Path, data_dir: Path, ollama_url: str) -> dict[str, str]:
    """The environment of a guarded subprocess: the guard on PYTHONPATH, logging to `log`; no NO_PROXY."""
    # Without the switches tests/conftest.py sets for the in-process gradio_client: the app needs none.
    quiet = ("GRADIO_ANALYTICS_ENABLED", "HF_HUB_OFFLINE", "HF_HUB_DISABLE_TELEMETRY")
    return {
        **{k: v for k, v in os.environ.items() if k not in quiet},
        "PYTHONPATH": f"{guard_dir}{os.pathsep}{ROOT}",
        "ADVISOR_TEST_EGRESS_LOG": str(log),
        "ADVISOR_DATA_DIR": str(data_dir),
        "OLLAMA_HOST": ollama_url,
        "NO_PROXY": "",
        "no_proxy": "",
    }


def _mcp_tool(env: dict[str, str], tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """One tool call to `python -m assistant.mcp` over stdio; the call must succeed."""
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(
        command=sys.executable, args=["-m", "assistant.mcp"], env=env, cwd=str(ROOT)
    )

    async def run() -> dict[str, Any]:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            result = await session.call_tool(tool, arguments)
            assert not result.is_error, result
            return dict(result.structured_content or {})

    return asyncio.run(asyncio.wait_for(run(), timeout=300))


def _knowledge_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m knowledge ARGS` in a guarded subprocess; it must exit 0."""
    done = subprocess.run(
        [sys.executable, "-m", "knowledge", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.mark.usefixtures("proxy_env")
def test_whole_session_makes_no_outbound_connection(
    standin: OllamaStandIn, tmp_path: Path, guard_dir: Path
) -> None:
    subprocess_log = tmp_path / "egress.log"
    standin.chat_responder = echo_tag_responder

    with egress_blocked() as guard:
        # The app as launch.py serves it: index sync with embeddings, the UI, a chat through its API.
        with serve_app(standin.url, tmp_path / "data") as app:
            assert app.services.knowledge.search("neural engine", 3).mode == "hybrid"
            answer, summary = chat_client(app.url).predict("How fast? tag-ui-1", "", api_name="/chat")
            assert answer.startswith("Answer for tag-ui-1") and summary["tool_calls"]
        # The agent directly, with a tool round.
        events = list(make_agent(standin).new_conversation().turn("How fast? tag-agent-1"))
        assert isinstance(final(events), DoneEvent) and any(isinstance(e, ToolResultEvent) for e in events)
        # The MCP server in a subprocess, guarded the same way.
        mcp_env = _guarded_env(guard_dir, subprocess_log, tmp_path / "mcp-data", standin.url)
        fit = _mcp_tool(
            mcp_env, "check_memory_fit", {"chip": "M4 Pro", "memory_gb": 48, "model": "llama3.3:70b"}
        )
        # What the tool computes in-process for the same question, down to the memory breakdown.
        expected = check_memory_fit(CheckMemoryFitInput(chip="M4 Pro", memory_gb=48, model="llama3.3:70b"))
        assert (fit["verdict"], fit["fits_on_gpu"]) == ("partial_offload", False)
        assert fit["verdict"] == expected.verdict
        assert fit["breakdown"] == expected.breakdown.model_dump(mode="json")
        # The knowledge CLI: a query and a document's text would go to the proxy if its client trusted env.
        note = tmp_path / "secret-note.md"
        note.write_text("# Private note\n\nThe office M2 Ultra has 192 GB of memory.\n", encoding="utf-8")
        cli_env = _guarded_env(guard_dir, subprocess_log, tmp_path / "cli-data", standin.url)
        _knowledge_cli("add", str(note), env=cli_env)
        assert "mode: hybrid" in _knowledge_cli("search", "office", "M2", "Ultra", env=cli_env).stdout
        # launch.py: gradio's start-up check of its own URL must not go to the proxy (it died there).
        launch_then_stop(
            standin.url, env=_guarded_env(guard_dir, subprocess_log, tmp_path / "launch-data", standin.url)
        )

    leaked = subprocess_log.read_text(encoding="utf-8").splitlines() if subprocess_log.exists() else []
    assert guard.attempts == [], f"outbound attempts in the app: {guard.attempts}"
    assert leaked == [], f"outbound attempts in the MCP server: {leaked}"
    assert standin.chat_requests() and standin.embed_requests(), "the session really talked to 'Ollama'"


SOCKS_PROXY = (
    "socks5://192.0.2.1:1080"  # what proxy tools on macOS set; httpx needs `socksio` to even build it
)


def test_a_socks_proxy_in_the_environment_breaks_nothing(
    standin: OllamaStandIn, tmp_path: Path, guard_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`import ollama` (and gradio) build default httpx clients from the proxy variables; with a SOCKS proxy
    that raised ImportError, so launch.py, `python -m knowledge` and the MCP server's tools died with a
    traceback. Each must work, and still contact nothing but loopback."""
    for name in PROXY_VARS:
        monkeypatch.setenv(name, SOCKS_PROXY)
    log = tmp_path / "egress.log"
    done = _knowledge_cli(
        "search", "M4", "Pro", env=_guarded_env(guard_dir, log, tmp_path / "cli-data", standin.url)
    )
    assert "Traceback" not in done.stderr, done.stdout + done.stderr
    assert "mode: hybrid" in done.stdout

    mcp_env = _guarded_env(guard_dir, log, tmp_path / "mcp-data", standin.url)
    assert "passages" in str(_mcp_tool(mcp_env, "search_knowledge", {"query": "M4 Pro bandwidth"}))

    launch_then_stop(standin.url, env=_guarded_env(guard_dir, log, tmp_path / "launch-data", standin.url))
    leaked = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    assert leaked == [], leaked
