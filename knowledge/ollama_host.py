"""The one reading of an Ollama address (OLLAMA_HOST, --ollama-host), for the app's Settings and the
knowledge CLI.

Ollama's own forms are accepted (``127.0.0.1:11434``, ``0.0.0.0``, ``http://host:port``); an address a client
cannot be built for (a port that is not a number, spaces) is refused with a sentence, not left to fail later
inside the ollama client with a traceback.
"""

from __future__ import annotations

from urllib.parse import urlsplit

DEFAULT_HOST = "http://127.0.0.1:11434"


def normalise_ollama_host(value: str) -> str:
    """``value`` as an http(s) URL without a trailing slash; ValueError if no client could reach it."""
    value = value.strip()
    if not value.startswith(("http://", "https://")):
        value = "http://" + value
    value = value.rstrip("/")
    parts = urlsplit(value)
    try:
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        port_ok = False
    if not port_ok or any(c.isspace() for c in value) or not parts.netloc:
        raise ValueError(f"not an address Ollama can be reached at (e.g. {DEFAULT_HOST})")
    return value
