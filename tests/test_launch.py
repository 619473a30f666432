"""launch.py through its real command line: flags, security refusals, degraded start, clean Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import launch
from assistant.config import Settings
from tests.harness import HANG_S, free_port, launch_py

ROOT = Path(__file__).resolve().parents[1]
READY = re.compile(r"ready: (http://\S+)")


class LaunchedProcess:
    """launch.py in a subprocess with its output collected line by line (so a test can wait for "ready")."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "launch.py"), *args],
            cwd=ROOT,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:  # end of output: the process is exiting
            self._changed.notify_all()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for_line(self, pattern: re.Pattern[str], hang_s: float = HANG_S) -> re.Match[str]:
        """Wait until a line of output matches (or the process ends); `hang_s` only catches a hang."""
        found: list[re.Match[str]] = []

        def ready() -> bool:
            match = pattern.search(self.output)
            if match:
                found.append(match)
            return bool(match) or not self._reader.is_alive()

        with self._changed:
            self._changed.wait_for(ready, timeout=hang_s)
        if found:
            return found[0]
        if not self._reader.is_alive():
            self.proc.wait(HANG_S)
            raise AssertionError(f"launch.py exited early ({self.proc.returncode}):\n{self.output}")
        raise AssertionError(
            f"launch.py printed no {pattern.pattern!r} within {hang_s} s (hung?):\n{self.output}"
        )

    def wait_for_url(self) -> str:
        return self.wait_for_line(READY).group(1)

    def interrupt(self, timeout_s: float = HANG_S) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.wait_exit(timeout_s)

    def wait_exit(self, timeout_s: float = HANG_S) -> int:
        """The exit code; a process still running after `timeout_s` (a hang) is killed."""
        try:
            code = self.proc.wait(timeout_s)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        self._reader.join(2)
        return code


@pytest.fixture
def run_launch() -> Iterator[type[LaunchedProcess]]:
    started: list[LaunchedProcess] = []

    class _Tracked(LaunchedProcess):
        def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
            super().__init__(*args, env=env)
            started.append(self)

    yield _Tracked
    for p in started:
        if p.proc.poll() is None:
            p.proc.kill()
            p.proc.wait(HANG_S)


# ------------------------------------------------------------------------------------------------ flags
def test_help_documents_every_settings_flag() -> None:
    out = launch_py("--help")
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())
    for flag in (
        "--ollama-host",
        "--chat-model",
        "--embed-model",
        "--data-dir",
        "--host",
        "--port",
        "--auth",
        "--num-ctx",
        "--no-browser",
        "--add-docs",
        "--no-pull",
    ):
        assert flag in text, flag
    for env in ("OLLAMA_HOST", "ADVISOR_CHAT_MODEL", "ADVISOR_AUTH", "ADVISOR_PORT"):
        assert env in text, env


def test_flags_override_env_and_env_fills_the_rest(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ADVISOR_CHAT_MODEL", "llama3.1:8b")
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:9999")
    monkeypatch.setenv("ADVISOR_NUM_CTX", "4096")
    args = launch.build_parser().parse_args(
        ["--num-ctx", "16384", "--data-dir", str(tmp_path), "--no-browser"]
    )
    s = launch.settings_from_args(args)
    assert s.chat_model == "llama3.1:8b" and s.ollama_host == "http://127.0.0.1:9999"
    assert s.num_ctx == 16384 and s.data_dir == tmp_path
    assert args.no_browser is True and not hasattr(args, "no_pull")


def test_invalid_flag_value_is_a_clear_message() -> None:
    args = launch.build_parser().parse_args(["--port", "70000"])
    with pytest.raises(launch.StartupError, match="--port"):
        launch.settings_from_args(args)


def _launch_to_exit(env: dict[str, str], args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`launch.py` run as a user would, for start-ups expected to stop before serving."""
    return subprocess.run(
        [sys.executable, str(ROOT / "launch.py"), "--no-browser", "--data-dir", str(tmp_path), *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=HANG_S,
    )


@pytest.mark.parametrize(
    ("env", "args", "source", "got"),
    [
        ({"ADVISOR_NUM_CTX": "bogus"}, [], "ADVISOR_NUM_CTX", "'bogus'"),
        ({"ADVISOR_NUM_CTX": "512"}, [], "ADVISOR_NUM_CTX", "'512'"),
        ({"ADVISOR_NUM_CTX": "auto"}, ["--num-ctx", "512"], "--num-ctx", "512"),
    ],
)
def test_invalid_num_ctx_names_where_it_came_from_and_what_is_accepted(
    env: dict[str, str], args: list[str], source: str, got: str, tmp_path: Path
) -> None:
    """The error names the env variable or the flag the user actually set, and says 'auto' is accepted."""
    out = _launch_to_exit(env, args, tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.splitlines() == [
        f"error: Invalid setting(s): {source}: expected a number of tokens (1024 to 262144) or 'auto', "
        f"got {got}"
    ]


@pytest.mark.parametrize(
    ("env", "args", "source"),
    [
        ({"OLLAMA_HOST": "http://127.0.0.1: 11434"}, [], "OLLAMA_HOST"),
        ({"OLLAMA_HOST": "127.0.0.1:11434"}, ["--ollama-host", "localhost:abc"], "--ollama-host"),
    ],
)
def test_an_ollama_address_no_client_can_use_is_one_line(
    env: dict[str, str], args: list[str], source: str, tmp_path: Path
) -> None:
    """A port that is not a number (or a stray space) used to end in a traceback from inside `import ollama`,
    whose default client parses OLLAMA_HOST, or from the first client built with it."""
    out = _launch_to_exit(env, args, tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    (line,) = out.stderr.splitlines()
    assert line.startswith(f"error: Invalid setting(s): {source}: not an address Ollama can be reached at")


def test_check_security_warns_for_authenticated_public_bind() -> None:
    import assistant.ui as ui

    assert launch.check_security(Settings(host="127.0.0.1"), ui) == []
    warnings = launch.check_security(Settings(host="0.0.0.0", auth="me:a-long-passphrase"), ui)
    assert warnings and "reachable from other machines" in warnings[0]
    with pytest.raises(launch.StartupError, match="--auth"):
        launch.check_security(Settings(host="0.0.0.0"), ui)
    with pytest.raises(launch.StartupError, match="user:password"):
        launch.check_security(Settings(host="0.0.0.0", auth="nopassword"), ui)


def test_public_bind_without_auth_refuses_to_start(run_launch: type[LaunchedProcess], tmp_path: Path) -> None:
    env = {"ADVISOR_AUTH": ""}
    p = run_launch(
        "--host", "0.0.0.0", "--no-browser", "--data-dir", str(tmp_path), "--port", str(free_port()), env=env
    )
    assert p.proc.wait(HANG_S) == 2
    p._reader.join(2)
    assert "Refusing to listen on 0.0.0.0" in p.output and "--auth" in p.output
    assert "ready" not in p.output


def test_data_dir_that_cannot_be_created_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    data_dir = blocker / "data"
    out = launch_py("--no-browser", "--data-dir", str(data_dir), "--ollama-host", f"127.0.0.1:{free_port()}")
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    assert f"cannot create the data directory {data_dir}" in out.stderr and "--data-dir" in out.stderr


# ---------------------------------------------------------------------------------------- degraded start
def test_starts_without_ollama_explains_and_stops_cleanly(
    run_launch: type[LaunchedProcess], tmp_path: Path
) -> None:
    dead_ollama = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    port = free_port()
    p = run_launch(
        "--no-browser", "--port", str(port), "--data-dir", str(tmp_path), "--ollama-host", dead_ollama
    )
    url = p.wait_for_url()
    assert url == f"http://127.0.0.1:{port}/"
    assert "Ollama is not answering" in p.output and "ollama serve" in p.output
    page = httpx.get(url, timeout=60)
    assert page.status_code == 200 and "Mac AI Advisor" in page.text
    config = httpx.get(url + "config", timeout=60).json()
    assert any("not reachable" in str(c.get("props", {}).get("value", "")) for c in config["components"])
    assert p.interrupt() == 0
    assert "Stopped." in p.output and "Traceback" not in p.output
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, timeout=2)


def test_hung_ollama_does_not_stall_start_up_on_the_embedder(
    run_launch: type[LaunchedProcess], standin: Any, tmp_path: Path
) -> None:
    """An Ollama that accepts connections but never answers: after the health probe's timeout, start-up says
    in one line that it does not wait for the embedder and what search does instead, and comes up without
    sending an embedding request (which would wait out the 30 s embedding timeout, silently)."""
    from tests.ollama_standin import Fault

    for path in ("/api/version", "/api/tags", "/api/show", "/api/ps", "/api/embed"):
        standin.inject(path, Fault.slow(HANG_S), times=50)  # hung: every request waits until the test ends
    where = ["--port", str(free_port()), "--data-dir", str(tmp_path), "--ollama-host", standin.url]
    p = run_launch("--no-browser", "--probe-timeout-s", "1", *where)
    p.wait_for_url()
    assert "did not answer within 1 s" in p.output
    waiting = [line for line in p.output.splitlines() if "Ollama's embedder" in line]
    assert waiting == [
        "Not waiting for Ollama's embedder (nomic-embed-text): search starts with keywords only (BM25) and "
        "adds vector search by itself once Ollama answers."
    ], p.output
    assert "mode lexical" in p.output
    assert not standin.embed_requests(), "start-up waited on the hung embedder"
    assert p.interrupt() == 0, p.output


def test_a_burst_of_signals_still_stops_cleanly(run_launch: type[LaunchedProcess], tmp_path: Path) -> None:
    """Ctrl-C pressed repeatedly (or uv forwarding one SIGINT while the terminal sends another) must stop the
    app, not deadlock its signal handler against the main thread's wait."""
    nothing_there = f"http://127.0.0.1:{free_port()}"
    where = ["--port", str(free_port()), "--data-dir", str(tmp_path), "--ollama-host", nothing_there]
    p = run_launch("--no-browser", *where)
    p.wait_for_url()
    deadline = time.monotonic() + 3.0
    while "Stopping" not in p.output and time.monotonic() < deadline:
        # A tight stream, so that a signal lands while the previous handler is still running.
        p.proc.send_signal(signal.SIGINT)
    code = p.wait_exit()
    assert code == 0, p.output
    assert "Stopped." in p.output and "Traceback" not in p.output


def test_pulls_missing_model_with_progress_and_adds_documents(
    run_launch: type[LaunchedProcess], standin: Any, tmp_path: Path
) -> None:
    standin.remove_model("qwen2.5:7b")  # in the stand-in's registry, so /api/pull can fetch it
    note = tmp_path / "my-mac.md"
    note.write_text("# My Mac setup\n\nThe studio in the office has an M2 Ultra with 192 GB of memory.\n")
    p = run_launch(
        "--no-browser",
        "--port",
        str(free_port()),
        "--data-dir",
        str(tmp_path / "data"),
        "--ollama-host",
        standin.url,
        "--chat-model",
        "qwen2.5:7b",
        "--add-docs",
        str(note),
    )
    url = p.wait_for_url()
    out = p.output
    assert "qwen2.5:7b: pulling" in out and "100%" in out  # progress lines (no TTY: plain text)
    assert "pulled: qwen2.5:7b" in out
    assert "+ My Mac setup (markdown" in out
    assert "qwen2.5:7b" in standin.installed()
    from gradio_client import Client

    found = Client(url, analytics_enabled=False, verbose=False, httpx_kwargs={"timeout": HANG_S}).predict(
        "M2 Ultra office studio 192 GB", 3, api_name="/search_knowledge"
    )
    assert "My Mac setup" in found and "user" in found  # the added document is searchable at once
    assert p.interrupt() == 0
