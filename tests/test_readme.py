"""The README's command examples are the real interface: run the ones that need no Ollama and no server."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _commands(prefix: str) -> list[str]:
    lines = [line.split("  #")[0].strip() for line in README.splitlines()]
    return [line for line in lines if line.startswith(prefix)]


TOOL_COMMANDS = _commands("uv run python -m tools ")


def test_readme_documents_the_two_setup_commands() -> None:
    assert "uv run launch.py" in README and "uv run pytest" in README


@pytest.mark.parametrize("command", TOOL_COMMANDS)
def test_readme_tool_command_runs(command: str) -> None:
    argv = shlex.split(command)[2:]  # drop "uv run": we are already inside the project environment
    argv[0] = sys.executable
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip(), "prints a result"
    assert "Traceback" not in result.stderr


def test_readme_lists_tool_commands() -> None:
    assert len(TOOL_COMMANDS) >= 5


def test_readme_knowledge_search_works_offline(tmp_path: Path) -> None:
    env = {**os.environ, "ADVISOR_DATA_DIR": str(tmp_path), "OLLAMA_HOST": "http://127.0.0.1:9"}
    command = next(c for c in _commands("uv run python -m knowledge search"))
    argv = [sys.executable, *shlex.split(command)[3:]]
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    assert "neural" in result.stdout.lower()


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_readme_python_snippets_compile() -> None:
    blocks = _python_blocks()
    assert len(blocks) >= 4
    for block in blocks:
        compile(block, "README.md", "exec")


def test_readme_plain_python_tool_example_runs() -> None:
    """`from tools import check_memory_fit`: the tools as typed functions, run exactly as printed."""
    (block,) = [b for b in _python_blocks() if b.startswith("from tools import")]
    result = subprocess.run(
        [sys.executable, "-c", block], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.strip().splitlines()
    # 70B at 16k on a 48 GB M4 Pro: ~48 GB needed against a ~39 GB GPU budget, and no context makes it fit.
    verdict, total, _, _, budget, _ = first.split()  # "does_not_fit 48.17 GB of 38.65 GB"
    assert verdict == "does_not_fit" and float(total) > float(budget)
    assert second == "largest context that fits: 0"
