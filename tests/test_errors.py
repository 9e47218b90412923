"""Every failure is a clear JSON answer: unknown routes, wrong methods, unexpected errors."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fakes import RunningApp, running_app
from quart import Quart

from quart_dl.web.errors import api_error, install_error_handlers

PASSWORD = "hunter2-s3cret"


@pytest.fixture
async def served() -> AsyncIterator[RunningApp]:
    async with running_app(qbt_password=PASSWORD) as running:
        yield running


async def test_api_error_body_and_status() -> None:
    app = Quart(__name__)
    async with app.app_context():
        response = api_error(400, "invalid_parameter", "order must be 'asc' or 'desc'", "order")
        assert response.status_code == 400
        assert await response.get_json() == {
            "error": "invalid_parameter",
            "message": "order must be 'asc' or 'desc'",
            "field": "order",
        }
        plain = api_error(404, "not_found", "nothing here")
        assert await plain.get_json() == {"error": "not_found", "message": "nothing here"}


@pytest.mark.parametrize("path", ["/api/nope", "/api/torrents/abc/def", "/nope.txt", "/api/"])
async def test_unknown_route_is_a_json_404(served: RunningApp, path: str) -> None:
    response = await served.client.get(path)
    assert response.status_code == 404
    assert response.content_type == "application/json"
    body = await response.get_json()
    assert body["error"] == "not_found"
    assert body["message"]


@pytest.mark.parametrize("path", ["/api/torrents", "/api/status", "/healthz", "/api/events"])
async def test_wrong_method_is_a_json_405(served: RunningApp, path: str) -> None:
    response = await served.client.post(path, data=b"{}")
    assert response.status_code == 405
    assert response.content_type == "application/json"
    body = await response.get_json()
    assert body == {"error": "method_not_allowed", "message": f"POST is not allowed on {path}"}
    assert "GET" in response.headers["Allow"]


async def test_unexpected_exception_is_a_json_500_without_details(
    served: RunningApp, caplog: pytest.LogCaptureFixture
) -> None:
    app: Quart = served.app

    @app.get("/boom")
    async def boom() -> str:
        raise RuntimeError(f"secret detail {PASSWORD}")

    response = await served.client.get("/boom")
    assert response.status_code == 500
    assert response.content_type == "application/json"
    text = await response.get_data(as_text=True)
    assert "Traceback" not in text
    assert PASSWORD not in text
    assert "secret detail" not in text
    assert (await response.get_json()) == {
        "error": "internal_error",
        "message": "the server hit an unexpected error; see its log",
    }
    assert any("unexpected error on GET /boom" in r.getMessage() for r in caplog.records)


async def test_handlers_on_a_bare_app() -> None:
    app = Quart(__name__)
    install_error_handlers(app)

    @app.get("/only-get")
    async def only_get() -> str:
        return "ok"

    client = app.test_client()
    missing = await client.get("/missing")
    assert missing.status_code == 404
    assert (await missing.get_json())["message"] == "nothing at /missing"
    wrong = await client.delete("/only-get")
    assert wrong.status_code == 405
    assert (await wrong.get_json())["error"] == "method_not_allowed"


async def test_too_large_body_is_a_json_413(served: RunningApp) -> None:
    app: Quart = served.app

    @app.post("/upload")
    async def upload() -> str:
        from quart import request

        await request.get_data()
        return "ok"

    response = await served.client.post("/upload", data=b"x" * (65 * 1024))
    assert response.status_code == 413
    assert (await response.get_json())["error"] == "too_large"
