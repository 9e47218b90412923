"""The panel's static files and the security headers on every answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from fakes import RunningApp, running_app

from quart_dl.web.panel import PanelFiles, panel_dir

FRAME_ANCESTORS = "'self' https://ha.lan:8123"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
async def served() -> AsyncIterator[RunningApp]:
    async with running_app(frame_ancestors=FRAME_ANCESTORS) as running:
        yield running


def test_panel_dir_holds_the_same_panel_as_the_source_tree() -> None:
    # Installed (tox installs the wheel): quart_dl/panel; from a checkout: ./panel.
    found = panel_dir()
    assert found.name == "panel"
    assert (found / "index.html").read_bytes() == (REPO / "panel" / "index.html").read_bytes()


async def test_index_is_the_panel(served: RunningApp) -> None:
    response = await served.client.get("/")
    assert response.status_code == 200
    assert response.content_type.startswith("text/html")
    body = await response.get_data()
    assert body == (panel_dir() / "index.html").read_bytes()
    assert response.headers["Cache-Control"] == "no-cache"


async def test_assets_are_served_with_their_types(served: RunningApp) -> None:
    response = await served.client.get("/app.js")
    assert response.status_code == 200
    assert "javascript" in response.content_type
    assert await response.get_data() == (panel_dir() / "app.js").read_bytes()
    svg = await served.client.get("/icon.svg")
    assert svg.status_code == 200
    assert svg.content_type.startswith("image/svg+xml")


async def test_security_headers_on_the_panel(served: RunningApp) -> None:
    response = await served.client.get("/")
    csp = response.headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["frame-ancestors"] == FRAME_ANCESTORS
    assert directives["default-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    # X-Frame-Options would forbid what frame-ancestors allows (Home Assistant's iframe)
    assert "X-Frame-Options" not in response.headers


def directives(response: Any) -> dict[str, str]:
    csp = response.headers["Content-Security-Policy"]
    assert isinstance(csp, str)
    return dict(d.strip().split(" ", 1) for d in csp.split(";"))


async def test_explicit_frame_ancestors_applies_to_every_page(served: RunningApp) -> None:
    for path in ["/", "/index.html", "/app.js", "/nothing"]:
        assert directives(await served.client.get(path))["frame-ancestors"] == FRAME_ANCESTORS, path


async def test_default_frame_ancestors_is_self_loopback_and_cors_origins() -> None:
    async with running_app(cors_origins="https://ha.lan:8123") as served:
        ancestors = directives(await served.client.get("/"))["frame-ancestors"].split()
    assert ancestors[:2] == ["'self'", "https://ha.lan:8123"]
    assert "http://localhost:*" in ancestors
    assert "http://127.0.0.1:*" in ancestors
    assert "*" not in ancestors


TOKEN = "correct-horse-battery-staple-42"


async def test_default_frame_ancestors_with_a_token() -> None:
    """``auto``: the sign-in page is never framed; a panel whose own address carries a valid
    token (only its holder can have put it in a frame: Home Assistant's panel) may be framed
    by anyone; one opened with the cookie only by this origin, loopback and CORS origins."""
    async with running_app(access_token=TOKEN) as served:
        framed = {"Sec-Fetch-Dest": "iframe", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Site": "cross-site"}
        sign_in = await served.client.get("/", headers=framed)
        assert sign_in.status_code == 401
        assert directives(sign_in)["frame-ancestors"] == "'none'"
        guess = await served.client.get("/?token=wrong-horse-battery-staple-4242", headers=framed)
        assert guess.status_code == 401
        assert directives(guess)["frame-ancestors"] == "'none'"
        panel = await served.client.get(f"/?token={TOKEN}", headers=framed)
        assert panel.status_code == 200
        assert directives(panel)["frame-ancestors"] == "*"
        top = await served.client.get(f"/?token={TOKEN}")
        assert top.status_code == 303
        cookie = top.headers["Set-Cookie"].split(";")[0]
        by_cookie = await served.client.get("/", headers={"Cookie": cookie})
        assert by_cookie.status_code == 200
        assert directives(by_cookie)["frame-ancestors"].split()[0] == "'self'"
        assert "*" not in directives(by_cookie)["frame-ancestors"].split()


async def test_csp_limits_base_forms_and_plugins(served: RunningApp) -> None:
    for path in ["/", "/nothing"]:
        found = directives(await served.client.get(path))
        assert found["base-uri"] == "'none'"
        assert found["form-action"] == "'self'"
        assert found["object-src"] == "'none'"


@pytest.mark.parametrize("path", ["/api/status", "/healthz", "/metrics", "/api/nope"])
async def test_api_answers_have_nosniff_but_no_csp(served: RunningApp, path: str) -> None:
    response = await served.client.get(path)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" not in response.headers
    assert "X-Frame-Options" not in response.headers


def test_a_panel_file_is_read_once_while_unchanged_and_again_once_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "app.js").write_text("export const a = 1;\n")
    reads: list[Path] = []
    read_bytes = Path.read_bytes

    def counted(path: Path) -> bytes:
        reads.append(path)
        return read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", counted)
    files = PanelFiles()
    first = files.get(tmp_path, "app.js")
    assert first is not None
    assert files.get(tmp_path, "app.js") is first
    assert len(reads) == 1
    assert first.mimetype in ("text/javascript", "application/javascript")
    (tmp_path / "app.js").write_text("export const a = 22;\n")  # an edit in a checkout
    changed = files.get(tmp_path, "app.js")
    assert changed is not None
    assert changed.body == b"export const a = 22;\n"
    assert changed.etag != first.etag
    assert len(reads) == 2


def test_panel_files_are_only_regular_files_inside_the_folder(tmp_path: Path) -> None:
    (tmp_path / "panel").mkdir()
    (tmp_path / "panel" / "modules").mkdir()
    (tmp_path / "secret.txt").write_text("no")
    files = PanelFiles()
    assert files.get(tmp_path / "panel", "modules") is None
    assert files.get(tmp_path / "panel", "../secret.txt") is None
    assert files.get(tmp_path / "panel", "missing.js") is None
    assert files.get(tmp_path / "panel", "a\x00b.js") is None


async def test_a_revalidated_panel_file_is_a_304_tagged_by_its_contents(served: RunningApp) -> None:
    # The panel is sent with no-cache: the browser asks again on every load, and what it
    # already has costs a 304. The tag is the contents' hash, the same after a restart.
    first = await served.client.get("/detail.js")
    tag = first.headers["ETag"]
    stored = PanelFiles().get(panel_dir(), "detail.js")
    assert stored is not None
    assert tag.strip('"') == stored.etag
    again = await served.client.get("/detail.js", headers={"If-None-Match": tag})
    assert again.status_code == 304
    assert await again.get_data() == b""
    modified = first.headers["Last-Modified"]
    since = await served.client.get("/detail.js", headers={"If-Modified-Since": modified})
    assert since.status_code == 304
    part = await served.client.get("/detail.js", headers={"Range": "bytes=0-9"})
    assert part.status_code == 206
    assert await part.get_data() == (panel_dir() / "detail.js").read_bytes()[:10]


async def test_missing_panel_file_is_a_json_404(served: RunningApp) -> None:
    response = await served.client.get("/nothing.js")
    assert response.status_code == 404
    assert (await response.get_json())["error"] == "not_found"


@pytest.mark.parametrize(
    "path",
    [
        "/../setup.cfg",
        "/%2e%2e/setup.cfg",
        "/%2E%2E/setup.cfg",
        "/..%2fsetup.cfg",
        "/%2e%2e%2fsetup.cfg",
        "/panel/../../setup.cfg",
        "/./../setup.cfg",
        "/..\\setup.cfg",
        "/%2e%2e%5csetup.cfg",
        f"/{REPO / 'setup.cfg'}",
        "/../quart_dl/settings.py",
        "/%00../setup.cfg",
    ],
)
async def test_static_files_cannot_escape_the_panel_folder(served: RunningApp, path: str) -> None:
    assert (REPO / "setup.cfg").is_file()
    response = await served.client.get(path)
    assert response.status_code in (400, 404)
    body = await response.get_data(as_text=True)
    assert "[metadata]" not in body
    assert "SettingsError" not in body
