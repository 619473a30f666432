"""The project's conventions, checked where CI will notice: ruff clean and formatted.

mypy runs once in `.ci/run` (before the suite), not here: it is the slowest check on a busy 2-core machine.
`test_ci_checks_types` keeps that step from being dropped silently.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["tools", "knowledge", "assistant", "launch.py", "bench", "tests"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_ruff_lint_clean() -> None:
    result = _run("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_clean() -> None:
    result = _run("ruff", "format", "--check", "--exclude", "*.md", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_checks_types() -> None:
    """CI runs mypy over every package before the suite; a package left out would go unchecked."""
    ci = (ROOT / ".ci" / "run").read_text()
    mypy_lines = [line.split() for line in ci.splitlines() if line.startswith("uv run mypy")]
    assert mypy_lines, ".ci/run no longer type-checks"
    assert set(PACKAGES) <= set(mypy_lines[0]), f"mypy skips {set(PACKAGES) - set(mypy_lines[0])}"
    assert ci.index("uv run mypy") < ci.index("uv run pytest")
