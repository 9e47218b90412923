"""quart_dl.web.cors: off unless origins are listed; then exactly those origins, with credentials."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fakes import RunningApp, StreamReader, running_app

from quart_dl.settings import SettingsError, load_settings

HA = "https://ha.lan:8123"
EVIL = "https://evil.example"
TOKEN = "correct-horse-battery-staple-42"


@pytest.fixture
async def served() -> AsyncIterator[RunningApp]:
    async with running_app(cors_origins=f"{HA}, http://dash.lan", access_token=TOKEN) as running:
        yield running


def test_origins_are_parsed_and_checked() -> None:
    settings = load_settings(
        cli={"cors_origins": "https://HA.lan:8123/ http://dash.lan,http://dash.lan"}, environ={}
    )
    assert settings.cors_origins == ("https://ha.lan:8123", "http://dash.lan")
    for bad in ("*", "ha.lan", "https://ha.lan/path", "ftp://ha.lan", "https://ha.lan:99999"):
        with pytest.raises(SettingsError, match="cors_origins"):
            load_settings(cli={"cors_origins": bad}, environ={})
    assert load_settings(environ={}).cors_origins == ()


async def test_cors_is_off_by_default() -> None:
    async with running_app() as served:
        for path in ("/api/status", "/metrics", "/"):
            response = await served.client.get(path, headers={"Origin": HA})
            assert "Access-Control-Allow-Origin" not in response.headers
        preflight = await served.client.options(
            "/api/status", headers={"Origin": HA, "Access-Control-Request-Method": "GET"}
        )
        assert "Access-Control-Allow-Origin" not in preflight.headers


async def test_listed_origin_may_read_the_api_with_credentials(served: RunningApp) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    response = await served.client.get("/api/status", headers={"Origin": HA, **auth})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == HA
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    assert "Origin" in response.headers["Vary"]
    async with served.client.request("/api/events", headers={"Origin": "http://dash.lan", **auth}) as conn:
        await StreamReader(conn).next_frame()
        assert conn.headers["Access-Control-Allow-Origin"] == "http://dash.lan"
        await conn.disconnect()


async def test_a_401_is_readable_by_a_listed_origin(served: RunningApp) -> None:
    response = await served.client.get("/api/status", headers={"Origin": HA})
    assert response.status_code == 401
    assert response.headers["Access-Control-Allow-Origin"] == HA


async def test_other_origins_and_the_panel_get_nothing(served: RunningApp) -> None:
    response = await served.client.get("/api/status", headers={"Origin": EVIL})
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Origin" in response.headers["Vary"]
    page = await served.client.get("/app.js", headers={"Origin": HA})
    assert "Access-Control-Allow-Origin" not in page.headers


async def test_preflight_is_answered_before_access_control(served: RunningApp) -> None:
    headers = {
        "Origin": HA,
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization",
    }
    response = await served.client.options("/api/events", headers=headers)
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == HA
    assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
    assert "Last-Event-ID" in response.headers["Access-Control-Allow-Headers"]
    assert "GET" in response.headers["Access-Control-Allow-Methods"]
    evil = await served.client.options("/api/events", headers={**headers, "Origin": EVIL})
    assert "Access-Control-Allow-Origin" not in evil.headers
