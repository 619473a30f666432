"""Where the app may listen and who may sign in: the keyword arguments every launch of the page uses.

`launch_options()` pins share=False and refuses a non-loopback bind without a password, so every caller
(launch.py, tests, benchmarks) gets the same safe defaults. The look uses system fonts only, so the page
fetches no stylesheet from a font server or CDN.
"""

from __future__ import annotations

import os
from typing import Any

import gradio as gr
from starlette.middleware import Middleware

from assistant.config import Settings
from assistant.http_guard import LoopbackGuard, bypass_proxy_for_loopback, is_loopback_name
from assistant.login_limit import LoginRateLimit

__all__ = [
    "CSS",
    "MIN_PASSWORD_CHARS",
    "UPLOAD_LIMIT_BYTES",
    "LaunchConfigError",
    "launch_options",
    "offline_theme",
    "parse_auth",
]

MIN_PASSWORD_CHARS = 12
# knowledge.documents.MAX_FILE_BYTES; kept literal so the import stays lazy
UPLOAD_LIMIT_BYTES = 50 * 1024 * 1024
SYSTEM_FONTS = [
    "-apple-system",
    "BlinkMacSystemFont",
    "Segoe UI",
    "Helvetica Neue",
    "Helvetica",
    "Arial",
    "sans-serif",
]
SYSTEM_MONO_FONTS = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "Liberation Mono", "monospace"]
CSS = """
#ollama-status p { margin: 0; }
/* Charts follow dark mode: plotly writes fixed text colours inline; the page's own colours win here. */
.dark .js-plotly-plot .main-svg text { fill: var(--body-text-color) !important; }
.dark .js-plotly-plot .legend .bg { fill: var(--background-fill-secondary) !important; }
.turn-stats { color: var(--body-text-color-subdued); font-size: 0.85em; }
footer { display: none !important; }
"""


class LaunchConfigError(ValueError):
    """A setting combination that must not start the server (e.g. a public bind without auth)."""


def offline_theme() -> gr.themes.Base:
    """Default look with system fonts only: no stylesheet is fetched from fonts.googleapis.com or a CDN."""
    return gr.themes.Default(font=SYSTEM_FONTS, font_mono=SYSTEM_MONO_FONTS)


def parse_auth(value: str | None) -> tuple[str, str] | None:
    """`user:pass` -> (user, pass). The password may contain ':'; both parts must be non-empty."""
    if value is None or value == "":
        return None
    user, sep, password = value.partition(":")
    if not sep or not user.strip() or not password:
        raise LaunchConfigError("--auth / ADVISOR_AUTH must look like user:password (both parts non-empty).")
    if len(password) < MIN_PASSWORD_CHARS:
        raise LaunchConfigError(
            f"--auth / ADVISOR_AUTH: the password must be at least {MIN_PASSWORD_CHARS} characters "
            f"(it has {len(password)}); it is all that stands between the network and your documents."
        )
    return user.strip(), password


def launch_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for `Blocks.launch`, with the security rules applied.

    Raises LaunchConfigError when binding a non-loopback address without auth: the chat can run tools and
    read the user's documents, so exposing it to a network without a password is refused, not warned about.
    """
    # gradio's start-up check (httpx), and any later loopback request in this process (gradio_client...),
    # would otherwise go to HTTP(S)_PROXY. launch.py also hides the proxy variables around app.launch: that
    # is for a SOCKS proxy, which no NO_PROXY entry helps (see launch.serve).
    bypass_proxy_for_loopback()
    # Failed sign-ins are counted per client address. uvicorn takes that address from X-Forwarded-For on
    # loopback connections, so every guess could claim a new one; trust no forwarding header unless the user
    # set FORWARDED_ALLOW_IPS for a reverse proxy of their own.
    os.environ.setdefault("FORWARDED_ALLOW_IPS", "")
    auth = parse_auth(settings.auth)
    if not is_loopback_name(settings.host) and auth is None:
        raise LaunchConfigError(
            f"Refusing to listen on {settings.host}: binding an address other than loopback (127.0.0.1) "
            "makes the chat reachable from other machines, so it needs a password. "
            "Pass --auth user:password (or set ADVISOR_AUTH), or drop --host to stay on 127.0.0.1."
        )
    return {
        "server_name": settings.host,
        "server_port": settings.port or None,
        "share": False,
        "auth": auth,
        "auth_message": "Mac AI Advisor: sign in with the --auth credentials." if auth else None,
        "inbrowser": False,  # launch.py opens the browser itself, after printing the URL
        "prevent_thread_lock": True,
        "show_error": True,
        "quiet": True,
        "ssr_mode": False,  # explicit, so GRADIO_SSR_MODE in the environment cannot turn on a Node proxy
        "pwa": False,
        "mcp_server": False,
        "enable_monitoring": False,
        "footer_links": [],
        # Uploads (Documents & models tab) larger than the knowledge base accepts are refused before they
        # reach the disk, rather than after.
        "max_file_size": UPLOAD_LIMIT_BYTES,
        "theme": offline_theme(),
        "css": CSS,
        # Host/Origin guard (DNS rebinding, cross-site requests): the same check as the MCP server's.
        # Failed sign-ins are rate-limited per client address (brute force against --auth).
        "app_kwargs": {
            "middleware": [
                Middleware(LoopbackGuard, loopback_only=is_loopback_name(settings.host), same_port=True),
                *([Middleware(LoginRateLimit)] if auth else []),
            ]
        },
    }
