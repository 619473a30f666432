"""--auth against brute force, over real HTTP against the served app: failed sign-ins are rate-limited per
client, short passwords are refused at start-up, and the plain-HTTP warning stays."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import httpx
import pytest

import launch
from assistant.config import Settings
from assistant.ui import MIN_PASSWORD_CHARS, LaunchConfigError, parse_auth
from tests.harness import serve_app
from tests.ollama_standin import OllamaStandIn

PASSWORD = "correct-horse-battery"


def test_failed_logins_are_rate_limited_per_client(standin: OllamaStandIn, tmp_path: Path) -> None:
    with (
        serve_app(standin.url, tmp_path, auth=f"ann:{PASSWORD}") as app,
        httpx.Client(timeout=30, trust_env=False) as client,
    ):
        ok = client.post(app.url + "login", data={"username": "ann", "password": PASSWORD})
        assert ok.status_code == 200, ok.text
        statuses = Counter(
            client.post(app.url + "login", data={"username": "ann", "password": f"guess-{i}"}).status_code
            for i in range(300)
        )
        assert statuses[400] <= 5 and statuses[429] >= 295, statuses
        locked = client.post(app.url + "login", data={"username": "ann", "password": PASSWORD})
        assert locked.status_code == 429 and "try again" in locked.text
        assert int(locked.headers["retry-after"]) > 0


def test_a_forged_forwarded_for_does_not_make_a_new_client(standin: OllamaStandIn, tmp_path: Path) -> None:
    """uvicorn believes X-Forwarded-For from loopback peers: each guess claiming a new address was checked."""
    with (
        serve_app(standin.url, tmp_path, auth=f"ann:{PASSWORD}") as app,
        httpx.Client(timeout=30, trust_env=False) as client,
    ):
        statuses = Counter(
            client.post(
                app.url + "login",
                data={"username": "ann", "password": f"guess-{i}"},
                headers={"X-Forwarded-For": f"10.0.0.{i + 1}"},
            ).status_code
            for i in range(50)
        )
    assert statuses[400] <= 5 and statuses[429] >= 45, statuses


def test_short_password_is_refused() -> None:
    with pytest.raises(LaunchConfigError, match=f"at least {MIN_PASSWORD_CHARS} characters"):
        parse_auth("ann:hunter2")
    assert parse_auth(f"ann:{PASSWORD}") == ("ann", PASSWORD)


def test_public_bind_still_warns_that_traffic_is_plain_http() -> None:
    import assistant.ui as ui

    (warning,) = launch.check_security(Settings(host="0.0.0.0", auth=f"ann:{PASSWORD}"), ui)
    assert "plain HTTP" in warning
