"""`import ollama` with the proxy variables hidden, wherever it first happens.

The ollama package builds a default client when it is imported (`ollama._client`), and that client reads
HTTP_PROXY/HTTPS_PROXY/ALL_PROXY. We never use it (every client of ours sets `trust_env=False`), but with a
SOCKS proxy in those variables (`ALL_PROXY=socks5://127.0.0.1:7890`, common with proxy tools on macOS) its
construction raises ImportError (httpx without `socksio`), so `launch.py`, `python -m knowledge` and the MCP
server's tools died with a traceback before talking to anyone. An import hook, installed by `knowledge` and
`assistant` (so that the import itself stays lazy), runs ollama's import with those variables (and
OLLAMA_HOST, which that client parses too) set aside and puts them back afterwards.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType

__all__ = ["PROXY_VARIABLES", "hidden", "install"]

PROXY_VARIABLES = frozenset({"http_proxy", "https_proxy", "all_proxy"})
_HIDDEN_FOR = frozenset({"ollama", "gradio", "gradio_client"})


@contextmanager
def hidden() -> Iterator[None]:
    """The proxy variables set aside for the duration (also for gradio's start-up check of its own URL)."""
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.lower() in PROXY_VARIABLES}
    try:
        yield
    finally:
        os.environ.update(saved)


class _ProxylessLoader(importlib.abc.Loader):
    def __init__(self, inner: importlib.abc.Loader) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> object:  # get_resource_reader, is_package...: the real loader's
        return getattr(self.inner, name)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        with hidden(), _default_client_host(module.__name__):
            self.inner.exec_module(module)


@contextmanager
def _default_client_host(module: str) -> Iterator[None]:
    """OLLAMA_HOST set aside while the ollama package builds its unused default client: a malformed value
    (a port that is not a number) made that import raise, so the app died with a traceback before it could
    say which setting was wrong. Our clients are always given their host explicitly."""
    saved = os.environ.pop("OLLAMA_HOST", None) if module == "ollama" else None
    try:
        yield
    finally:
        if saved is not None:
            os.environ["OLLAMA_HOST"] = saved


class _ProxylessFinder(importlib.abc.MetaPathFinder):
    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,  # noqa: ARG002
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in _HIDDEN_FOR:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _ProxylessLoader(spec.loader)
        return spec


def install() -> None:
    """Idempotent. Gradio builds its module-level httpx clients the same way, so it is covered too."""
    if any(isinstance(f, _ProxylessFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _ProxylessFinder())
