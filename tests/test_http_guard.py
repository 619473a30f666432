"""DNS rebinding and cross-site requests against the web UI, over real HTTP against the served app.

A page whose name is re-bound to 127.0.0.1 sends `Host: evil.example:PORT`; a page on another site sends its
own `Origin`. Both must be refused by the UI exactly as by the MCP server (one shared check), while the
browser on 127.0.0.1/localhost and non-browser clients (no Origin) keep working.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest

from assistant.http_guard import check_request, host_is_loopback, is_loopback_name, origin_allowed


@pytest.fixture
def base_url(app_url: str) -> str:
    """The served app's URL (the shared `app_url` fixture) without its trailing slash: tests append paths."""
    return app_url.rstrip("/")


def _client() -> httpx.Client:
    return httpx.Client(timeout=30, trust_env=False)


def _search(url: str, **headers: str) -> httpx.Response:
    """Start the search_knowledge API call, the way a page's script would."""
    with _client() as c:
        return c.post(
            f"{url}/gradio_api/call/search_knowledge", json={"data": ["M4 Pro", 3]}, headers=headers
        )


def test_foreign_host_is_refused_on_every_route(base_url: str) -> None:
    port = urlsplit(base_url).port
    with _client() as c:
        for host in (
            f"evil.example:{port}",
            "evil.example",
            f"0.0.0.0:{port}",
            f"127.0.0.1.evil.example:{port}",
            f"localhost..:{port}",
            f"127.0.0.1..:{port}",
        ):
            for path in ("/", "/config", "/gradio_api/info"):
                r = c.get(base_url + path, headers={"Host": host})
                assert r.status_code == 421, (host, path, r.status_code)
    r = _search(base_url, Host=f"evil.example:{port}")
    assert r.status_code == 421


def test_loopback_hosts_are_served(base_url: str) -> None:
    port = urlsplit(base_url).port
    with _client() as c:
        for host in (
            f"127.0.0.1:{port}",
            f"localhost:{port}",
            "localhost",
            f"[::1]:{port}",
            f"localhost.:{port}",
        ):
            r = c.get(base_url + "/", headers={"Host": host})
            assert r.status_code == 200, (host, r.status_code)
    r = _search(base_url, Origin=f"http://127.0.0.1:{port}")
    assert r.status_code == 200, r.text
    event_id = r.json()["event_id"]
    with _client() as c:
        stream = c.get(f"{base_url}/gradio_api/call/search_knowledge/{event_id}")
    assert "passages" in stream.text


@pytest.mark.parametrize("origin", ["http://evil.example", "https://evil.example:7860", "null", "file://"])
def test_foreign_origin_on_a_post_is_refused(base_url: str, origin: str) -> None:
    r = _search(base_url, Origin=origin)
    assert r.status_code == 403, (origin, r.status_code)
    with _client() as c:
        r = c.post(
            f"{base_url}/gradio_api/queue/join",
            json={"data": ["hi", "", None], "fn_index": 0, "session_hash": "x"},
            headers={"Origin": origin},
        )
    assert r.status_code == 403


def test_a_page_of_another_local_server_is_another_origin(base_url: str) -> None:
    """A page served by another program on loopback (a notebook, a dev server showing untrusted content) is
    cross-origin to the UI: its POSTs are refused too, as are pages on the same name but another port."""
    port = urlsplit(base_url).port
    assert port is not None
    for origin in (
        f"http://127.0.0.1:{port + 1}",
        "http://localhost:8888",
        "http://localhost",
        "http://[::1]",
    ):
        r = _search(base_url, Origin=origin)
        assert r.status_code == 403, (origin, r.status_code)
    for origin in (f"http://localhost:{port}", f"http://[::1]:{port}", f"http://127.0.0.1:{port}"):
        assert _search(base_url, Origin=origin).status_code == 200, origin
    # MCP keeps any loopback port (browser-based MCP clients run on their own port), like the MCP SDK's rule.
    assert origin_allowed("http://localhost:6274", "127.0.0.1:8765", loopback_only=True)
    assert not origin_allowed("https://localhost", "localhost", loopback_only=True, same_port=True)


def test_no_origin_is_a_non_browser_client_and_passes(base_url: str) -> None:
    assert _search(base_url).status_code == 200


def test_check_rules() -> None:
    assert not is_loopback_name("0.0.0.0") and not is_loopback_name("::")
    assert is_loopback_name("127.0.0.2") and is_loopback_name("[::1]") and is_loopback_name("LOCALHOST")
    assert not host_is_loopback("localhost.evil.example:80") and not host_is_loopback(None)
    assert not host_is_loopback("127.0.0.1:notaport") and not host_is_loopback("127.0.0.1@evil.example")
    assert check_request("GET", {"host": "127.0.0.1:1", "origin": "http://evil.example"}) is None
    assert check_request("GET", {"host": "127.0.0.1:1", "origin": "http://evil.example"}, websocket=True)
    # A password-protected LAN bind: any Host, but the Origin must be the page's own host.
    assert origin_allowed("http://192.168.1.5:7860", "192.168.1.5:7860", loopback_only=False)
    assert not origin_allowed("http://evil.example", "192.168.1.5:7860", loopback_only=False)
    assert check_request("POST", {"host": "192.168.1.5:7860"}, loopback_only=False) is None
