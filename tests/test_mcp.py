"""The MCP server through real transports, driven by the official MCP client.

One server process per transport for the whole module (stdio via ``mcp.client.stdio``, streamable HTTP via
``mcp.client.streamable_http``), each launched with exactly the command the README tells users to configure.
The stdio server talks to the Ollama stand-in (hybrid search, ``measure_speed`` offered); the HTTP server is
pointed at a closed local port, which is also the "Ollama is not running" start-up path. Neither touches the
user's home: ``ADVISOR_DATA_DIR`` is a temporary directory.

The client side is async; a blocking portal (an event loop in a thread) owns each session so that the
module-scoped fixtures enter and leave the client context managers in one task, and tests stay plain
functions.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import httpx
import jsonschema
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, get_default_environment, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, TextContent
from mcp_types import Tool as MCPToolInfo
from mcp_types.version import LATEST_HANDSHAKE_VERSION

from tests.harness import free_port, stop_process
from tools import REGISTRY
from tools.registry import Registry

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
SECTION = "## Use the tools from other agents (MCP)"
PLACEHOLDER = "/path/to/mac-ai-advisor"
START_TIMEOUT_S = 300.0  # catches a server that never listens, not a slow start

# One valid call per public tool. Every tool the server lists must have an entry (see test below), so a tool
# added to the registry without MCP coverage fails here instead of going untested.
VALID_CALLS: dict[str, dict[str, Any]] = {
    "estimate_speed": {"chip": "M3 Max", "model": "qwen2.5:32b", "context_tokens": 4096},
    "check_memory_fit": {"model": "llama3.3:70b", "chip": "M4 Pro", "memory_gb": 48, "context_tokens": 16384},
    "lookup_benchmarks": {"query": "m4 pro 70b"},
    "recommend_machine": {"budget_usd": 1500, "workload": "llm"},
    "search_knowledge": {"query": "why does memory bandwidth limit tokens per second", "k": 3},
    "measure_speed": {"model": "qwen2.5:7b"},
}


# --------------------------------------------------------------------------------------------- README parsing


def readme_section() -> str:
    text = README.read_text(encoding="utf-8")
    assert SECTION in text, f"README lacks the section {SECTION!r}"
    body = text.split(SECTION, 1)[1]
    return re.split(r"\n## ", body, maxsplit=1)[0]


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", readme_section(), flags=re.S)


def _fill(value: str) -> str:
    return value.replace(PLACEHOLDER, str(REPO))


def readme_stdio_server() -> dict[str, Any]:
    """The Claude Desktop / Cursor entry, path filled in."""
    for block in code_blocks("json"):
        entry = json.loads(block)["mcpServers"]["mac-ai-advisor"]
        if "command" in entry:
            return {"command": entry["command"], "args": [_fill(a) for a in entry["args"]]}
    raise AssertionError("README has no stdio mcpServers entry")


def readme_http_url() -> str:
    for block in code_blocks("json"):
        entry = json.loads(block)["mcpServers"]["mac-ai-advisor"]
        if "url" in entry:
            return str(entry["url"])
    raise AssertionError("README has no HTTP mcpServers entry")


def readme_http_command() -> list[str]:
    for block in code_blocks("bash"):
        if "--transport http" in block:
            return [_fill(a) for a in shlex.split(block.strip())]
    raise AssertionError("README has no command starting the HTTP server")


def readme_python_example() -> str:
    blocks = [b for b in code_blocks("python") if "ClientSession" in b]
    assert len(blocks) == 1, "README should have exactly one Python MCP client example"
    return _fill(blocks[0])


def with_port(command: list[str], port: int) -> list[str]:
    i = command.index("--port")
    return [*command[: i + 1], str(port), *command[i + 2 :]]


# ------------------------------------------------------------------------------------------- process helpers


def server_env(data_dir: Path, ollama_host: str) -> dict[str, str]:
    """What a desktop client gives the server: the SDK's minimal safe environment plus our variables.

    UV_NO_SYNC keeps `uv run` from re-resolving (no network; the test venv is already synced).
    """
    env = get_default_environment()
    env.update({k: v for k, v in os.environ.items() if k.startswith("UV_")})
    env.update(
        {
            "ADVISOR_DATA_DIR": str(data_dir),
            "OLLAMA_HOST": ollama_host,
            "UV_NO_SYNC": "1",
            "ANONYMIZED_TELEMETRY": "False",
            "HF_HUB_OFFLINE": "1",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }
    )
    return env


def wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"HTTP server exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"HTTP server did not listen within {START_TIMEOUT_S}s:\n{log.read_text()}")


# ------------------------------------------------------------------------------------------- client plumbing


class SyncSession:
    """Blocking facade over a ClientSession living in a portal's event loop."""

    def __init__(self, portal: BlockingPortal, session: ClientSession, transport: str) -> None:
        self._portal = portal
        self._session = session
        self.transport = transport

    def list_tools(self) -> list[MCPToolInfo]:
        return list(self._portal.call(self._session.list_tools).tools)

    def call(self, name: str, arguments: dict[str, Any]) -> CallToolResult:
        result = self._portal.call(partial(self._session.call_tool, name, arguments))
        assert isinstance(result, CallToolResult)
        return result

    def call_concurrently(self, calls: list[tuple[str, dict[str, Any]]]) -> list[CallToolResult]:
        """All calls in flight at once on the one session (JSON-RPC multiplexes them)."""
        results: list[Any] = [None] * len(calls)

        async def one(i: int, name: str, arguments: dict[str, Any]) -> None:
            results[i] = await self._session.call_tool(name, arguments)

        async def run_all() -> None:
            async with anyio.create_task_group() as tg:
                for i, (name, arguments) in enumerate(calls):
                    tg.start_soon(one, i, name, arguments)

        self._portal.call(run_all)
        return results


@asynccontextmanager
async def stdio_session(params: StdioServerParameters, errlog: Any) -> AsyncIterator[ClientSession]:
    async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


@asynccontextmanager
async def http_session(url: str) -> AsyncIterator[ClientSession]:
    async with streamable_http_client(url) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal() as p:
        yield p


@pytest.fixture(scope="module")
def standin_url() -> Iterator[str]:
    from tests.ollama_standin import OllamaStandIn

    with OllamaStandIn() as standin:
        yield standin.url
        assert not standin.errors, f"the stand-in itself failed: {standin.errors}"


@pytest.fixture(scope="module")
def closed_ollama_url() -> str:
    """A local port nothing listens on: Ollama "not running", refused at once, never the user's Ollama."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="module")
def stdio_client_session(
    portal: BlockingPortal, standin_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SyncSession]:
    tmp = tmp_path_factory.mktemp("mcp-stdio")
    server = readme_stdio_server()
    params = StdioServerParameters(
        command=server["command"], args=server["args"], env=server_env(tmp / "data", standin_url)
    )
    with (
        open(tmp / "server.log", "w", encoding="utf-8") as errlog,
        portal.wrap_async_context_manager(stdio_session(params, errlog)) as session,
    ):
        yield SyncSession(portal, session, "stdio")


@pytest.fixture(scope="module")
def http_server(closed_ollama_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The README's HTTP command on a free port; yields the endpoint URL the README's client config uses."""
    tmp = tmp_path_factory.mktemp("mcp-http")
    readme_cmd = readme_http_command()
    readme_port = int(readme_cmd[readme_cmd.index("--port") + 1])
    assert readme_http_url() == f"http://127.0.0.1:{readme_port}/mcp", "README URL and command disagree"
    port = free_port()
    log = tmp / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            with_port(readme_cmd, port),
            env=server_env(tmp / "data", closed_ollama_url),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, proc, log)
        yield readme_http_url().replace(f":{readme_port}/", f":{port}/")
    finally:
        stop_process(proc)


@pytest.fixture(scope="module")
def http_client_session(portal: BlockingPortal, http_server: str) -> Iterator[SyncSession]:
    with portal.wrap_async_context_manager(http_session(http_server)) as session:
        yield SyncSession(portal, session, "http")


@pytest.fixture(scope="module", params=["stdio", "http"])
def session(request: pytest.FixtureRequest) -> SyncSession:
    return request.getfixturevalue(f"{request.param}_client_session")


def expected_registry(transport: str, tmp: Path, standin_url: str | None) -> Registry:
    """The toolset the server should publish, built in-process the way the server builds it."""
    from assistant.ollama import OllamaLayer
    from assistant.toolset import build_toolset
    from knowledge.search import KnowledgeBase

    ollama = OllamaLayer(standin_url) if transport == "stdio" and standin_url else None
    return build_toolset(KnowledgeBase(tmp, None), ollama)


@pytest.fixture(scope="module")
def registries(tmp_path_factory: pytest.TempPathFactory, standin_url: str) -> dict[str, Registry]:
    return {
        t: expected_registry(t, tmp_path_factory.mktemp(f"expected-{t}"), standin_url)
        for t in ("stdio", "http")
    }


# ------------------------------------------------------------------------------------------------------ tests


def text_of(result: CallToolResult) -> str:
    """The one text block every result of this server carries (the JSON, or the error message)."""
    assert len(result.content) == 1
    block = result.content[0]
    assert isinstance(block, TextContent), block
    return block.text


def test_lists_every_registry_tool_with_its_schemas(
    session: SyncSession, registries: dict[str, Registry]
) -> None:
    registry = registries[session.transport]
    listed = session.list_tools()
    assert [t.name for t in listed] == registry.names()
    assert set(REGISTRY.names()) <= {t.name for t in listed}
    assert "search_knowledge" in {t.name for t in listed}
    for info in listed:
        tool = registry.get(info.name)
        assert info.description == tool.description
        assert info.input_schema == tool.input_schema()
        assert info.output_schema == tool.output_schema()


def test_schema_export_matches_what_the_server_lists(http_client_session: SyncSession) -> None:
    """`python -m tools schema --format mcp` (for static configs) and the live server say the same thing."""
    done = subprocess.run(
        [sys.executable, "-m", "tools", "schema", "--format", "mcp"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    exported = {entry["name"]: entry for entry in json.loads(done.stdout)}
    listed = {t.name: t for t in http_client_session.list_tools()}
    assert set(exported) == set(REGISTRY.names())
    for name, entry in exported.items():
        assert listed[name].input_schema == entry["inputSchema"]
        assert listed[name].output_schema == entry["outputSchema"]
        assert listed[name].description == entry["description"]


def test_measure_speed_only_offered_when_ollama_answers(session: SyncSession) -> None:
    names = {t.name for t in session.list_tools()}
    assert ("measure_speed" in names) == (session.transport == "stdio")


def test_every_listed_tool_has_a_valid_example(session: SyncSession) -> None:
    missing = [t.name for t in session.list_tools() if t.name not in VALID_CALLS]
    assert not missing, f"add a valid call for {missing} to VALID_CALLS"


@pytest.mark.parametrize("name", list(VALID_CALLS))
def test_valid_call_returns_structured_result_of_the_output_model(
    session: SyncSession, registries: dict[str, Registry], name: str
) -> None:
    registry = registries[session.transport]
    if name not in registry:
        # Not offered without Ollama (measure_speed over HTTP with Ollama: test_measure_speed_over_http_...);
        # a client that calls it anyway gets a tool error naming it, not a crash.
        refused = session.call(name, VALID_CALLS[name])
        assert refused.is_error and name in text_of(refused)
        return
    result = session.call(name, VALID_CALLS[name])
    assert not result.is_error, result.content
    # The SDK client already checked structuredContent against outputSchema (jsonschema); this checks it
    # against the pydantic output model itself.
    out = registry.get(name).output_model.model_validate(result.structured_content)
    assert isinstance(getattr(out, "assumptions", None), list) and isinstance(
        getattr(out, "sources", None), list
    )
    assert json.loads(text_of(result)) == result.structured_content


@pytest.mark.parametrize("name", list(VALID_CALLS))
def test_invalid_input_is_a_tool_error_and_the_server_keeps_serving(
    session: SyncSession, registries: dict[str, Registry], name: str
) -> None:
    if name not in registries[session.transport]:
        refused = session.call(name, {**VALID_CALLS[name], "bogus_field": 1})
        assert refused.is_error and name in text_of(refused)
        assert not session.call("estimate_speed", VALID_CALLS["estimate_speed"]).is_error  # still serving
        return
    bad = session.call(name, {**VALID_CALLS[name], "bogus_field": 1})
    assert bad.is_error
    assert bad.structured_content is None
    message = text_of(bad)
    assert "bogus_field" in message and name in message
    good = session.call(name, VALID_CALLS[name])
    assert not good.is_error, good.content


def test_type_error_names_the_field(session: SyncSession) -> None:
    bad = session.call("check_memory_fit", {**VALID_CALLS["check_memory_fit"], "context_tokens": "lots"})
    assert bad.is_error
    assert "context_tokens" in text_of(bad)


def test_domain_error_comes_back_as_tool_error(session: SyncSession) -> None:
    bad = session.call("estimate_speed", {"chip": "M9 Hyper", "model": "qwen2.5:32b"})
    assert bad.is_error
    assert "chip" in text_of(bad).lower()


def test_nested_object_sent_as_json_string_is_accepted(session: SyncSession) -> None:
    """Some desktop clients send nested objects as JSON text; the server decodes them per the schema."""
    arch = {"params_billion": 8.0, "n_layers": 32, "n_kv_heads": 8, "head_dim": 128, "native_context": 131072}
    as_object = session.call("check_memory_fit", {"chip": "M4 Pro", "memory_gb": 24, "architecture": arch})
    as_text = session.call(
        "check_memory_fit", {"chip": "M4 Pro", "memory_gb": 24, "architecture": json.dumps(arch)}
    )
    assert not as_object.is_error, as_object.content
    assert not as_text.is_error, as_text.content
    assert as_text.structured_content == as_object.structured_content


def test_concurrent_calls_each_get_their_own_answer(session: SyncSession) -> None:
    names = [n for n in VALID_CALLS if n != "measure_speed"]
    calls = [(n, VALID_CALLS[n]) for n in names] * 3 + [
        ("estimate_speed", {"chip": "M3 Max", "bogus": 1})
    ] * 3
    results = session.call_concurrently(calls)
    for (name, arguments), result in zip(calls, results, strict=True):
        if "bogus" in arguments:
            assert result.is_error and "bogus" in text_of(result)
        else:
            assert not result.is_error, (name, result.content)
            assert json.loads(text_of(result)) == result.structured_content


def test_unknown_tool_is_an_error_not_a_crash(session: SyncSession) -> None:
    bad = session.call("rm_rf", {})
    assert bad.is_error
    assert not session.call("lookup_benchmarks", {"query": "flux"}).is_error


def test_knowledge_mode_follows_ollama(session: SyncSession) -> None:
    """Hybrid once the background sync with the stand-in's embeddings is done; lexical without Ollama."""
    wanted = "hybrid" if session.transport == "stdio" else "lexical"
    deadline = time.monotonic() + 240  # only catches a sync that never finishes
    while True:
        out = session.call("search_knowledge", VALID_CALLS["search_knowledge"]).structured_content
        assert out is not None and out["passages"]
        if out["mode"] == wanted or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert out["mode"] == wanted, out["assumptions"]


# ------------------------------------------------------------------------------------------ HTTP specifics


def _initialize_body() -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": LATEST_HANDSHAKE_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "origin-test", "version": "0"},
        },
    }


def _post(url: str, **headers: str) -> httpx.Response:
    base = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    with httpx.Client(timeout=60, trust_env=False) as client:
        return client.post(url, json=_initialize_body(), headers={**base, **headers})


@pytest.mark.parametrize(
    "origin", ["http://evil.example", "https://attacker.test:8765", "http://127.0.0.1.evil.example", "null"]
)
def test_foreign_origin_is_refused(http_server: str, origin: str) -> None:
    response = _post(http_server, Origin=origin)
    assert response.status_code == 403


def test_foreign_host_header_is_refused(http_server: str) -> None:
    """DNS rebinding: evil.example resolving to 127.0.0.1 still carries its own Host header."""
    response = _post(http_server, Host="evil.example")
    assert response.status_code in (403, 421)


def test_loopback_origin_and_no_origin_are_served(http_server: str) -> None:
    port = http_server.split(":")[2].split("/")[0]
    for headers in ({}, {"Origin": f"http://localhost:{port}"}, {"Origin": f"http://127.0.0.1:{port}"}):
        response = _post(http_server, **headers)
        assert response.status_code == 200, (headers, response.text)


def _primary_ipv4() -> str | None:
    """This machine's outward IPv4 address. A UDP connect only picks a route; no packet is sent."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.254.254.254", 1))
        except OSError:
            return None
        address = str(s.getsockname()[0])
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def test_http_listens_on_loopback_only(http_server: str) -> None:
    port = int(http_server.split(":")[2].split("/")[0])
    address = _primary_ipv4()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to probe")
    with socket.socket() as s:
        s.settimeout(1)
        assert s.connect_ex((address, port)) != 0, f"server reachable on {address}:{port}"


def test_busy_port_gives_a_clear_message(http_server: str, closed_ollama_url: str, tmp_path: Path) -> None:
    port = int(http_server.split(":")[2].split("/")[0])
    cmd = with_port(readme_http_command(), port)
    done = subprocess.run(
        cmd, env=server_env(tmp_path, closed_ollama_url), capture_output=True, text=True, timeout=300
    )
    assert done.returncode != 0
    assert f"127.0.0.1:{port}" in done.stderr and "Traceback" not in done.stderr


# --------------------------------------------------------------------------------------- README's example


def test_readme_other_client_configs_match_the_tested_ones() -> None:
    """Claude Code and LangChain snippets are not launched by a test: they must match the tested ones."""
    server = readme_stdio_server()
    stdio_cmd = [server["command"], *server["args"]]
    section = _fill(readme_section())
    claude_stdio = [
        line for line in code_blocks("bash") if line.startswith("claude mcp add") and " -- " in line
    ]
    assert len(claude_stdio) == 1
    assert shlex.split(_fill(claude_stdio[0]).split(" -- ", 1)[1]) == stdio_cmd
    url = readme_http_url()
    assert f"claude mcp add --transport http mac-ai-advisor {url}" in section
    langchain = "".join(b for b in code_blocks("python") if "langchain_mcp_adapters" in b)
    assert json.dumps(server["args"]) in _fill(langchain)
    assert f'"url": "{url}"' in langchain
    pydantic_ai = "".join(b for b in code_blocks("python") if "pydantic_ai" in b)
    assert f'"uv", args={json.dumps(server["args"])}' in _fill(pydantic_ai)
    http_cmd = readme_http_command()
    assert http_cmd[: len(stdio_cmd)] == stdio_cmd and http_cmd[len(stdio_cmd) :][:2] == [
        "--transport",
        "http",
    ]


def test_readme_framework_snippets_compile_and_keep_one_session() -> None:
    """The LangChain and pydantic-ai snippets need packages this project does not install: compile them, and
    check they keep one server process per session and use current constructors."""
    blocks = code_blocks("python")
    for block in blocks:
        compile(block, "README.md", "exec")
    langchain = next(b for b in blocks if "langchain_mcp_adapters" in b)
    assert "async with client.session(" in langchain and "load_mcp_tools(session)" in langchain
    assert "get_tools()" not in langchain.split("#")[0] and "create_react_agent" not in langchain
    assert "from langchain.agents import create_agent" in langchain
    pydantic_ai = next(b for b in blocks if "pydantic_ai" in b)
    assert "toolsets=[advisor]" in pydantic_ai and "async with agent" in pydantic_ai


def test_readme_python_example_runs(standin_url: str, tmp_path: Path) -> None:
    code = readme_python_example()
    env = server_env(tmp_path / "data", standin_url)
    # The example's server would inherit only the SDK's default environment; hand it the test's instead so it
    # never reads the user's index or Ollama. The command and args stay exactly the README's.
    assert code.count("StdioServerParameters(\n") == 1
    code = code.replace("StdioServerParameters(\n", f"StdioServerParameters(\n    env={env!r},\n")
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert "check_memory_fit" in lines[0]
    # The example asks about a 70B model at 16k on a 48 GB M4 Pro: exactly what the tool says in-process.
    from tools.fit import check_memory_fit
    from tools.schemas import CheckMemoryFitInput

    expected = check_memory_fit(
        CheckMemoryFitInput(model="llama3.3:70b", chip="M4 Pro", memory_gb=48, context_tokens=16384)
    )
    b = expected.breakdown
    assert lines[-1] == f"{expected.verdict} {b.total_gb} GB of {b.gpu_budget_gb} GB"
    assert expected.verdict == "does_not_fit"


# ------------------------------------------------------------------------------------- in-process details


def test_json_string_decoding_touches_only_object_and_array_fields() -> None:
    from assistant.mcp.server import _preparse_json_arguments

    schema = REGISTRY.get("check_memory_fit").input_schema()
    arch = {"params_billion": 8.0, "n_layers": 32}
    out = _preparse_json_arguments(
        {"model": '{"not": "decoded"}', "architecture": json.dumps(arch), "chip": "M4 Pro"}, schema
    )
    assert out == {"model": '{"not": "decoded"}', "architecture": arch, "chip": "M4 Pro"}
    # Not JSON, or JSON of the wrong shape: left for validation to reject with its own message.
    assert _preparse_json_arguments({"architecture": "big"}, schema) == {"architecture": "big"}
    assert _preparse_json_arguments({"architecture": "7"}, schema) == {"architecture": "7"}


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("ADVISOR_NUM_CTX", "bogus", "expected a number of tokens (1024 to 262144) or 'auto'"),
        # A port that is not a number used to crash `import ollama` (its default client parses OLLAMA_HOST).
        (
            "OLLAMA_HOST",
            "127.0.0.1:abc",
            "not an address Ollama can be reached at (e.g. http://127.0.0.1:11434)",
        ),
    ],
)
def test_an_invalid_env_setting_is_one_line_naming_the_variable(
    tmp_path: Path, variable: str, value: str, says: str
) -> None:
    env = {**server_env(tmp_path / "data", "http://127.0.0.1:9"), variable: value}
    done = subprocess.run(
        [sys.executable, "-m", "assistant.mcp"],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [f"error: invalid settings: {variable}: {says}, got {value!r}"]


def test_server_start_up_asks_ollama_once(portal: BlockingPortal, standin: Any, tmp_path: Path) -> None:
    """The probe that decides the tool list (measure_speed) is also the one the runtime (knowledge base,
    Ollama client) is built on: start-up asks /api/version once, and both agree."""
    server = readme_stdio_server()
    params = StdioServerParameters(
        command=server["command"], args=server["args"], env=server_env(tmp_path / "data", standin.url)
    )
    with (
        open(tmp_path / "server.log", "w", encoding="utf-8") as errlog,
        portal.wrap_async_context_manager(stdio_session(params, errlog)) as client,
    ):
        session = SyncSession(portal, client, "stdio")
        assert "measure_speed" in {t.name for t in session.list_tools()}
        # The first knowledge search waits for the runtime, so every start-up probe has been made after it.
        found = session.call("search_knowledge", VALID_CALLS["search_knowledge"])
        assert not found.is_error, found.content
    assert len(standin.requests_to("/api/version")) == 1, [r.path for r in standin.requests]


@pytest.mark.parametrize("case", ["too_old", "not_running", "not_ollama"])
def test_the_start_up_probe_gets_the_same_diagnosis_as_a_fresh_health_check(
    case: str, standin: Any, tmp_path: Path
) -> None:
    """The runtime is built on the tool list's probe (not a second request), and says why Ollama is not
    usable exactly as a health check of its own would: too old, not running / not installed, not Ollama."""
    from assistant.config import Settings
    from assistant.mcp.runtime import build_runtime, probe_ollama

    host = standin.url
    if case == "too_old":
        standin.version = "0.5.0"
    elif case == "not_running":
        host = f"http://127.0.0.1:{free_port()}"
    else:
        host = standin.url + "/not-ollama"  # answers, with a 404 for /api/version
    settings = Settings(data_dir=tmp_path, ollama_host=host)  # type: ignore[call-arg]
    probed = build_runtime(
        settings, background_sync=False, probe=probe_ollama(host, settings.probe_timeout_s)
    )
    own = build_runtime(settings, background_sync=False)
    try:
        assert probed.mode == own.mode == "lexical"
        assert probed.notes == own.notes and len(probed.notes) == 1
        expected = {"too_old": "0.5.0", "not_running": "", "not_ollama": "not Ollama"}[case]
        assert expected in probed.notes[0]
        assert "Error" not in probed.notes[0]  # a sentence, not an exception's repr
    finally:
        probed.close()
        own.close()


def test_runtime_without_embedding_model_is_lexical_and_says_how_to_fix(standin: Any, tmp_path: Path) -> None:
    from assistant.config import Settings
    from assistant.mcp.runtime import build_runtime

    standin.remove_model("nomic-embed-text:latest")
    runtime = build_runtime(
        Settings(data_dir=tmp_path, ollama_host=standin.url),
        background_sync=False,  # type: ignore[call-arg]
    )
    try:
        assert runtime.mode == "lexical"
        assert "measure_speed" in runtime.registry  # Ollama answers, so measuring is still offered
        assert any("ollama pull nomic-embed-text" in note for note in runtime.notes)
        out = runtime.registry.get("search_knowledge").run({"query": "unified memory"})
        assert out.mode == "lexical"  # type: ignore[attr-defined]
        assert not standin.embed_requests()
    finally:
        runtime.close()


# ------------------------------------------------------------------------- measure_speed over streamable HTTP


def test_measure_speed_over_http_with_ollama_running(portal: BlockingPortal, tmp_path: Path) -> None:
    """With an Ollama that answers, the HTTP server offers measure_speed and measures through the client."""
    from assistant.toolset import MeasureSpeedOutput
    from tests.ollama_standin import ChatScript, OllamaStandIn

    with OllamaStandIn() as standin:
        readme_cmd = readme_http_command()
        port = free_port()
        log = tmp_path / "server.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                with_port(readme_cmd, port),
                env=server_env(tmp_path / "data", standin.url),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_for_port(port, proc, log)
            url = f"http://127.0.0.1:{port}/mcp"
            with portal.wrap_async_context_manager(http_session(url)) as client:
                session = SyncSession(portal, client, "http")
                listed = {t.name: t for t in session.list_tools()}
                assert "measure_speed" in listed
                standin.script_chat(
                    ChatScript(text="word " * 50, eval_count=96, eval_duration_ns=2_000_000_000)
                )
                result = session.call("measure_speed", {"model": "qwen2.5:7b"})
                assert not result.is_error, result.content
                # The contract test's check for the one tool its HTTP server (no Ollama) cannot offer.
                published = listed["measure_speed"].output_schema
                assert published is not None
                jsonschema.Draft202012Validator(published).validate(result.structured_content)
                measured = MeasureSpeedOutput.model_validate(result.structured_content)
                assert measured.measured_tokens_per_second == pytest.approx(48.0)  # 96 tokens in 2 s
                assert (
                    measured.estimated_tokens_per_second is None or measured.estimated_tokens_per_second > 0
                )
                request = standin.last_chat_request()
                assert request.model == "qwen2.5:7b" and request.options["num_ctx"] == 8192
                missing = session.call("measure_speed", {"model": "mistral:7b"})
                assert missing.is_error and "ollama pull mistral:7b" in text_of(missing)
                with standin.down():
                    down = session.call("measure_speed", {"model": "qwen2.5:7b"})
                assert down.is_error and "ollama serve" in text_of(down)  # says how to start it
                again = session.call("measure_speed", {"model": "qwen2.5:7b"})
                assert not again.is_error, again.content
        finally:
            stop_process(proc)
        assert not standin.errors
