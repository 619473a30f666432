"""Helpers shared by the integration tests: free ports, the real app served against the stand-in, stopping
a server subprocess, and hand-built PDF files."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HANG_S = 300.0
"""How long a test waits before calling something hung: generous, because CI runs on a busy 2-core machine."""


ROOT = Path(__file__).resolve().parents[1]


def launch_py(*args: str) -> subprocess.CompletedProcess[str]:
    """`python launch.py ARGS` in the repository, as a user runs it; its output captured as text."""
    import sys

    return subprocess.run(
        [sys.executable, str(ROOT / "launch.py"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=HANG_S,
    )


def standin_embedder(standin: Any, batch_size: int = 8) -> Any:
    """The production embedder (knowledge.embedding.OllamaEmbedder) on the real ollama client, pointed at the
    stand-in; HANG_S only catches a hang."""
    import ollama

    from knowledge.embedding import OllamaEmbedder

    client = ollama.Client(host=standin.url, timeout=HANG_S)
    return OllamaEmbedder(client, "nomic-embed-text", batch_size=batch_size)


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1 (the usual small race is acceptable in tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServedApp:
    url: str
    services: Any  # launch.Services


@contextmanager
def serve_app(
    ollama_host: str, data_dir: Path, port: int | None = None, **settings: Any
) -> Iterator[ServedApp]:
    """The real app (launch.prepare + ui.build_app) on 127.0.0.1, as `uv run launch.py` would serve it.
    `port`: a fixed one, so that a restart keeps the browser's origin (and its storage); else a free one."""
    import assistant.ui as ui
    import launch
    from assistant.config import Settings

    config = Settings(ollama_host=ollama_host, data_dir=data_dir, port=port or free_port(), **settings)
    services = launch.prepare(config, pull=False)
    app = launch.build_ui(services, ui)
    app.launch(**ui.launch_options(config))
    try:
        yield ServedApp(f"http://127.0.0.1:{app.server_port}/", services)
    finally:
        app.close(verbose=False)
        services.close()


def chat_client(url: str) -> Any:
    """A gradio_client on the UI's API; every client is its own browser session (its own conversation)."""
    from gradio_client import Client

    # gradio_client's httpx default (5 s) fails a healthy app on a busy 2-core machine; the tests check what
    # comes back, not how fast, so the bound here only turns a hang into a failure.
    return Client(url, analytics_enabled=False, verbose=False, httpx_kwargs={"timeout": HANG_S})


DOCS_SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


def save_screenshot(page: Any, name: str, **options: Any) -> Path:
    """A browser test's picture of the page: under tests/artifacts/, and also under docs/screenshots/ (the
    README's pictures) when ADVISOR_DOCS_SCREENSHOTS=1, so a normal test run leaves the checkout clean."""
    import os
    import shutil

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(shot), **options)
    if os.environ.get("ADVISOR_DOCS_SCREENSHOTS") == "1":
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOCS_SCREENSHOTS / f"{name}.png")
    return shot


def stop_process(proc: subprocess.Popen[Any]) -> None:
    """Stop a server subprocess: SIGTERM, then SIGKILL if it has not exited within a minute."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=60)


def pdf_stream(data: bytes) -> bytes:
    """A PDF stream object's body around `data`."""
    return f"<< /Length {len(data)} >>\nstream\n".encode() + data + b"\nendstream"


def one_page_pdf(
    content: bytes, *, font: bytes = b"", more: Sequence[bytes] = (), version: str = "1.7"
) -> bytes:
    """A valid one-page PDF built by hand, with a correct xref table.

    `content` is the page's content stream, drawn with Helvetica as /F1 (objects 1-5); `font` adds entries to
    the font's dictionary (e.g. ``b" /ToUnicode 6 0 R"``) and `more` appends objects numbered from 6.
    """
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        pdf_stream(content),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica" + font + b" >>",
        *more,
    ]
    out = bytearray(f"%PDF-{version}\n".encode())
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)
