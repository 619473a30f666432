"""Shared fixtures: the Ollama stand-in for every integration test, the served app and a browser page for
the browser tests, and a real Ollama for `live` tests.

The repository root is put on sys.path so that the stand-in imports as ``tests.ollama_standin`` no matter
how pytest was started (``uv run pytest`` does not add the working directory itself).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The tests drive the app through gradio_client in this process. The app itself needs no environment (it
# builds Blocks with analytics off and makes no outbound connection), but the *client* phones home unless
# told so before huggingface_hub is imported: a telemetry thread (gradio_client 2.x ignores
# analytics_enabled=False: `analytics_enabled or env == "True"`) and an agent-registry fetch from the Hub.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import ollama  # noqa: E402

from tests.ollama_standin import OllamaStandIn  # noqa: E402


@pytest.fixture
def standin() -> Iterator[OllamaStandIn]:
    """A running stand-in on a random port with the default models installed; fresh for every test."""
    with OllamaStandIn() as server:
        yield server
        assert not server.errors, f"the stand-in itself failed: {server.errors}"


@pytest.fixture
def served(standin: OllamaStandIn, tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """(URL, launch.Services) of the real app (launch.prepare + ui.build_app) served on 127.0.0.1 with the
    stand-in as Ollama and `tmp_path / "data"` as its data directory."""
    from tests.harness import serve_app

    with serve_app(standin.url, tmp_path / "data") as app:
        yield app.url, app.services


@pytest.fixture
def app_url(served: tuple[str, Any]) -> str:
    """The served app's URL (see `served`)."""
    return served[0]


@pytest.fixture
def browser_page(tmp_path: Path) -> Iterator[tuple[Any, list[str]]]:
    """(page, URLs it requested) in headless Debian Chromium; see tests/browser_support.py."""
    from tests.browser_support import chromium_page

    with chromium_page(tmp_path / "chromium-profile") as page_and_requests:
        yield page_and_requests


def live_host() -> str:
    """Where a real Ollama would answer: OLLAMA_HOST like Ollama itself, else its default address."""
    return os.environ.get("OLLAMA_HOST") or "http://127.0.0.1:11434"


@pytest.fixture(scope="session")
def live_ollama() -> str:
    """The host of a real, answering Ollama; skips the test with the reason when there is none.

    Only ``live``-marked tests should use it: probing a host is a network request that the offline suite must
    not make (``-m 'not live'`` is the default in pyproject.toml).
    """
    host = live_host()
    try:
        with ollama.Client(host=host, timeout=3.0) as client:
            client.list()
    except Exception as exc:  # noqa: BLE001 - any failure means "no usable Ollama here": a reason to skip
        pytest.skip(
            f"no Ollama answers at {host} ({type(exc).__name__}: {exc}); start one or set OLLAMA_HOST"
        )
    return host
