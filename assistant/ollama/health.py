"""Is a usable Ollama answering, and if not, what should the user do? One type for the answer: `Health`."""

from __future__ import annotations

import ipaddress
import re
import shutil
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import httpx
import ollama
from pydantic import BaseModel, Field

from assistant.http_guard import is_loopback_name

__all__ = ["MIN_VERSION", "Health", "HealthKind", "ollama_installed", "probe_health", "unreachable_health"]

MIN_VERSION = (0, 8, 0)
"""Oldest Ollama we accept. 0.8.0 is the release that streams responses while tools are passed (earlier
ones buffered the whole reply whenever ``tools`` was set, so the chat would sit silent, then dump it), and by
then ``/api/show`` reports ``capabilities``, which is how we refuse chat models that cannot call tools."""

HealthKind = Literal["ok", "not_installed", "not_running", "wrong_host", "timeout", "not_ollama", "too_old"]


class Health(BaseModel):
    """Is a usable Ollama answering: ``problem`` says what is wrong, ``advice`` what to do.

    The one status type: `OllamaLayer.health` fills the diagnosis; the UI's status probe adds the installed
    models and when it looked.
    """

    ok: bool
    host: str
    kind: HealthKind | None = Field(default=None, description="None: not diagnosed (e.g. no client).")
    version: str | None = None
    problem: str | None = None
    advice: str | None = None
    chat_models: list[str] = Field(default_factory=list, description="Installed models with 'tools'.")
    other_models: list[str] = Field(default_factory=list)
    checked_at: float = 0.0
    was_ok: bool = Field(default=False, description="Not ok now, but answered earlier in this process.")

    @property
    def message(self) -> str:
        if self.ok:
            return f"Ollama {self.version or ''} is running at {self.host}.".replace("  ", " ")
        return f"{self.problem}: {self.advice}" if self.advice else str(self.problem)


def _down(*, host: str, kind: HealthKind, problem: str, advice: str, version: str | None = None) -> Health:
    return Health(ok=False, host=host, kind=kind, problem=problem, advice=advice, version=version)


def probe_health(version: Callable[[], str], host: str, timeout_s: float) -> Health:
    """Is a usable Ollama answering at ``host``? ``version`` asks it (/api/version). Never raises; the
    diagnosis says what to do."""
    try:
        found = version()
    except ConnectionError as exc:
        return unreachable_health(exc, host)
    except httpx.TimeoutException:
        return _down(
            host=host,
            kind="timeout",
            problem=f"Ollama at {host} did not answer within {timeout_s:g} s",
            advice="It may be busy loading a large model: wait a moment and retry. If it persists, "
            "check OLLAMA_HOST (a firewalled or wrong address also looks like this).",
        )
    except ollama.ResponseError as exc:
        return _down(
            host=host,
            kind="not_ollama",
            problem=f"Something answers at {host}, but it is not Ollama "
            f"(HTTP {exc.status_code} for /api/version)",
            advice="Check the address and port: Ollama listens on http://127.0.0.1:11434 by default.",
        )
    except (ValueError, KeyError, TypeError, httpx.HTTPError, OSError) as exc:
        return _down(
            host=host,
            kind="not_ollama",
            problem=f"Something answers at {host}, but not like Ollama ({type(exc).__name__}: {exc})",
            advice="Check the address and port: Ollama listens on http://127.0.0.1:11434 by default.",
        )
    parsed = _parse_version(found)
    if parsed is not None and parsed != (0, 0, 0) and parsed < MIN_VERSION:
        minimum = ".".join(map(str, MIN_VERSION))
        return _down(
            host=host,
            kind="too_old",
            version=found,
            problem=f"Ollama {found} at {host} is too old; {minimum} or newer is needed",
            advice="Update Ollama (the app updates itself from its menu, or download it again from "
            f"https://ollama.com/download, or `brew upgrade ollama`). Before {minimum} replies were not "
            "streamed when tools are used.",
        )
    return Health(ok=True, host=host, kind="ok", version=found)


def unreachable_health(exc: BaseException, host: str) -> Health:
    """Why nothing answered at ``host``: not installed, not running, a wrong address."""
    chain = _exception_chain(exc)
    if any(isinstance(e, socket.gaierror) for e in chain):
        detail = next(str(e) for e in chain if isinstance(e, socket.gaierror))
        return _down(
            host=host,
            kind="wrong_host",
            problem=f"The Ollama host in {host} cannot be resolved ({detail})",
            advice="Check OLLAMA_HOST / --ollama-host; Ollama on this Mac is http://127.0.0.1:11434.",
        )
    refused = any(isinstance(e, ConnectionRefusedError) for e in chain)
    if refused and _is_this_machine(urlsplit(host).hostname or ""):
        if not ollama_installed():
            return _down(
                host=host,
                kind="not_installed",
                problem=f"Ollama does not seem to be installed (no `ollama` command, no Ollama.app) "
                f"and nothing answers at {host}",
                advice="Install it from https://ollama.com/download (or `brew install ollama`), "
                "then start the Ollama app or run `ollama serve`.",
            )
        return _down(
            host=host,
            kind="not_running",
            problem=f"Ollama is not running at {host}",
            advice="start the Ollama app or run `ollama serve` in a terminal"
            + (" (or check the port in OLLAMA_HOST)" if not host.endswith(":11434") else ""),
        )
    if refused:
        return _down(
            host=host,
            kind="not_running",
            problem=f"Nothing accepts connections at {host}",
            advice="Check that Ollama runs on that machine and listens on that address "
            "(OLLAMA_HOST=0.0.0.0 there) and that the port is right.",
        )
    detail = next((str(e) for e in reversed(chain) if str(e)), type(exc).__name__)
    return _down(
        host=host,
        kind="wrong_host",
        problem=f"Cannot connect to {host} ({detail})",
        advice="Check OLLAMA_HOST / --ollama-host; Ollama on this Mac is http://127.0.0.1:11434.",
    )


def _is_this_machine(hostname: str) -> bool:
    """Loopback, or the "any" address (0.0.0.0, ::): OLLAMA_HOST=0.0.0.0 makes Ollama listen everywhere, and
    as an address to connect to it means this machine (unlike a bind address, see http_guard)."""
    if is_loopback_name(hostname):
        return True
    try:
        return ipaddress.ip_address(hostname.strip("[]")).is_unspecified
    except ValueError:
        return False


def ollama_installed() -> bool:
    """Is Ollama installed on this machine (for advice only: it may run elsewhere)?"""
    if shutil.which("ollama"):
        return True
    if sys.platform == "darwin":
        return any(
            p.exists() for p in (Path("/Applications/Ollama.app"), Path.home() / "Applications/Ollama.app")
        )
    return False


def _exception_chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")


def _parse_version(text: str) -> tuple[int, int, int] | None:
    match = _VERSION.match(text.strip().lstrip("v"))
    if match is None:
        return None
    major, minor, patch = (int(g) for g in match.groups())
    return major, minor, patch
