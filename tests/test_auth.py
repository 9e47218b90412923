"""quart_dl.web.auth: the access token, the panel's session cookie, and the limit on wrong tokens.

Unit tests go through the real app with Quart's test client; the last section runs a real
server process with a real qBittorrent and a known password and token, hits every route,
and searches everything that came back (bodies, headers, the stream, the log) for both.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import json
import logging
import re
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from fakes import (
    H1,
    RunningApp,
    StreamReader,
    full_update,
    raw_torrent,
    running_app,
)

from quart_dl.lab.qbittorrent_nox import QbtInstance, free_port
from quart_dl.lab.server_process import ServerProcess
from quart_dl.lab.sse_reader import SSEReader
from quart_dl.lab.wait import wait_for_async
from quart_dl.qbittorrent.fake import FakeSession
from quart_dl.server.serve import serve
from quart_dl.settings import Secret, SettingsError, load_settings
from quart_dl.web.auth import SESSION_COOKIE, FailureLimiter, open_bind_warning, same_page

TOKEN = "correct-horse-battery-staple-42"
WRONG = "wrong-horse-battery-staple-4242"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
PROTECTED_API = [
    "/api/status",
    "/api/torrents",
    f"/api/torrents/{H1}",
    "/api/history",
    "/metrics",
    "/openapi.json",  # regression: a program got the HTML sign-in page instead of JSON
    "/api/nope",
]


@pytest.fixture
async def served() -> AsyncIterator[RunningApp]:
    qbt = FakeSession([full_update({H1: raw_torrent("one")})])
    async with running_app(qbt, access_token=TOKEN) as running:
        await wait_for_async(lambda: H1 in running.runtime.hub.torrents, what="the torrent")
        running.client.cookie_jar = None  # each test sends exactly the cookies it means to
        yield running


def limiter(served: RunningApp) -> FailureLimiter:
    found = served.app.extensions["quart_dl.web.auth"]
    assert isinstance(found, FailureLimiter)
    return found


def scope(remote: str = "10.0.0.5", scheme: str = "http") -> dict[str, Any]:
    return {"client": (remote, 4321), "scheme": scheme}


async def get(served: RunningApp, path: str, remote: str = "10.0.0.5", **kwargs: Any) -> Any:
    return await served.client.get(path, scope_base=scope(remote), **kwargs)


async def assert_unauthorized_json(response: Any) -> None:
    assert response.status_code == 401
    body = await response.get_json()
    assert body["error"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.headers["Cache-Control"] == "no-store"


# -- settings ----------------------------------------------------------------------------------


def test_token_is_a_secret_everywhere_settings_show() -> None:
    settings = load_settings(cli={"access_token": TOKEN}, environ={})
    assert isinstance(settings.access_token, Secret)
    assert settings.access_token.reveal() == TOKEN
    assert TOKEN not in repr(settings)
    assert TOKEN not in str(settings)


def test_token_from_environment_and_file(tmp_path: Path) -> None:
    assert load_settings(environ={"QUART_DL_ACCESS_TOKEN": TOKEN}).access_token.reveal() == TOKEN
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    settings = load_settings(cli={"access_token_file": str(path)}, environ={})
    assert settings.access_token.reveal() == TOKEN
    with pytest.raises(SettingsError, match="not both"):
        load_settings(cli={"access_token_file": str(path), "access_token": TOKEN}, environ={})
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(cli={"access_token_file": str(tmp_path / "none")}, environ={})


@pytest.mark.parametrize(
    "bad", ["short-token", "has a space in the middle", "tab\tinside-the-token-value", "é" * 20]
)
def test_bad_tokens_are_refused_without_repeating_them(bad: str, tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(cli={"access_token": bad}, environ={})
    assert bad not in str(caught.value)
    assert str(caught.value).startswith("access_token:")
    path = tmp_path / "token"
    path.write_text(bad)
    with pytest.raises(SettingsError) as caught:
        load_settings(cli={"access_token_file": str(path)}, environ={})
    assert bad not in str(caught.value)


def test_no_token_by_default() -> None:
    assert not load_settings(environ={}).access_token


# -- no token: open as before ------------------------------------------------------------------


async def test_without_a_token_everything_is_open() -> None:
    async with running_app() as served:
        for path in ["/", "/index.html", "/api/status", "/metrics", "/healthz"]:
            response = await served.client.get(path)
            assert response.status_code == 200, path
            assert "Set-Cookie" not in response.headers
        async with served.client.request("/api/events") as conn:
            assert (await StreamReader(conn).next_frame()) == {"retry": "3000"}
            await conn.disconnect()


# -- what needs the token ----------------------------------------------------------------------


@pytest.mark.parametrize("path", PROTECTED_API)
async def test_api_without_token_is_401_json(served: RunningApp, path: str) -> None:
    await assert_unauthorized_json(await get(served, path))


@pytest.mark.parametrize("path", ["/api/events", f"/api/torrents/{H1}/events"])
async def test_streams_without_token_are_401_and_never_subscribe(served: RunningApp, path: str) -> None:
    await assert_unauthorized_json(await get(served, path))
    assert served.runtime.hub.client_count == 0


async def test_healthz_and_panel_assets_stay_open(served: RunningApp) -> None:
    for path in ["/healthz", "/app.js", "/stream.js", "/style.css", "/icon.svg"]:
        response = await get(served, path)
        assert response.status_code == 200, path


@pytest.mark.parametrize("path", ["/", "/index.html", "/INDEX.HTML", "/nothing"])
async def test_panel_page_without_token_is_the_sign_in_page(served: RunningApp, path: str) -> None:
    response = await get(served, path)
    assert response.status_code == 401
    assert response.content_type.startswith("text/html")
    page = await response.get_data(as_text=True)
    assert '<form method="get"' in page
    assert 'name="token"' in page
    assert "Content-Security-Policy" in response.headers


@pytest.mark.parametrize("path", [*PROTECTED_API[:-1], "/api/events", "/"])
async def test_bearer_token_opens_everything(served: RunningApp, path: str) -> None:
    if path.endswith("/events"):
        async with served.client.request(path, headers=BEARER, scope_base=scope()) as conn:
            reader = StreamReader(conn)
            await reader.next_frame()
            assert (await reader.next_event())["event"] == "snapshot"
            await conn.disconnect()
        return
    response = await get(served, path, headers=BEARER)
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers


async def test_bearer_scheme_is_case_insensitive(served: RunningApp) -> None:
    response = await get(served, "/api/status", headers={"Authorization": f"bearer {TOKEN}"})
    assert response.status_code == 200


async def test_other_authorization_schemes_are_no_credential(served: RunningApp) -> None:
    response = await get(served, "/api/status", headers={"Authorization": f"Basic {TOKEN}"})
    await assert_unauthorized_json(response)
    assert limiter(served).retry_after("10.0.0.5") == 0


async def test_query_token_opens_the_api_and_streams_without_a_cookie(served: RunningApp) -> None:
    response = await get(served, f"/api/status?token={TOKEN}")
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers
    async with served.client.request(
        f"/api/events?heartbeat=event&token={TOKEN}", scope_base=scope()
    ) as conn:
        await StreamReader(conn).next_frame()
        assert conn.status_code == 200
        await conn.disconnect()


async def test_preflight_needs_no_token(served: RunningApp) -> None:
    response = await served.client.options("/api/status", scope_base=scope())
    assert response.status_code == 200
    assert await response.get_data() == b""


# -- the browser's way in: ?token= once, then a cookie ------------------------------------------


def cookie_header(response: Any) -> str:
    header = response.headers["Set-Cookie"]
    assert isinstance(header, str)
    return header


async def test_query_token_on_the_page_sets_a_cookie_and_redirects_without_it(served: RunningApp) -> None:
    response = await get(served, f"/?theme=dark&token={TOKEN}")
    assert response.status_code == 303
    assert response.headers["Location"] == "./?theme=dark"
    cookie = cookie_header(response)
    parts = [p.strip() for p in cookie.split(";")]
    name, _, value = parts[0].partition("=")
    assert name == SESSION_COOKIE
    assert value
    assert TOKEN not in cookie
    lowered = [p.lower() for p in parts]
    assert "httponly" in lowered
    assert "samesite=lax" in lowered
    assert "path=/" in lowered
    assert "secure" not in lowered  # plain http: a Secure cookie would be dropped
    assert any(p.startswith("max-age=") for p in lowered)

    # The cookie now opens the page, the API and the stream (EventSource sends it by itself).
    jar = {"Cookie": f"{SESSION_COOKIE}={value}"}
    assert (await get(served, "/", headers=jar)).status_code == 200
    assert (await get(served, "/api/status", headers=jar)).status_code == 200
    async with served.client.request("/api/events", headers=jar, scope_base=scope()) as conn:
        await StreamReader(conn).next_frame()
        assert conn.status_code == 200
        await conn.disconnect()


async def test_redirect_keeps_the_page_name_and_is_relative(served: RunningApp) -> None:
    response = await get(served, f"/index.html?token={TOKEN}")
    assert response.status_code == 303
    assert response.headers["Location"] == "index.html"


async def test_cookie_is_secure_over_https(served: RunningApp) -> None:
    response = await served.client.get(f"/?token={TOKEN}", scope_base=scope(scheme="https"))
    assert response.status_code == 303
    assert "secure" in [p.strip().lower() for p in cookie_header(response).split(";")]


async def test_framed_panel_keeps_its_token_and_is_served(served: RunningApp) -> None:
    """Home Assistant's iframe on another site cannot keep a Lax cookie (nor any cookie over
    http): the panel is served at the address with the token, which it passes on."""
    response = await get(
        served, f"/?token={TOKEN}", headers={"Sec-Fetch-Dest": "iframe", "Sec-Fetch-Site": "cross-site"}
    )
    assert response.status_code == 200
    assert "Location" not in response.headers
    assert (await response.get_data(as_text=True)).startswith("<!doctype html>")
    # Only a top-level page is signed in: a frame has its token in its address.
    assert "Set-Cookie" not in response.headers


@pytest.mark.parametrize("cookie", ["nonsense", "0" * 64, ""])
async def test_a_wrong_cookie_is_401_and_not_counted(served: RunningApp, cookie: str) -> None:
    for _ in range(15):
        response = await get(served, "/api/status", headers={"Cookie": f"{SESSION_COOKIE}={cookie}"})
        await assert_unauthorized_json(response)


async def test_a_cookie_from_another_token_does_not_open() -> None:
    async with running_app(access_token=WRONG) as other:
        set_cookie = cookie_header(await other.client.get(f"/?token={WRONG}"))
    value = set_cookie.split(";")[0].partition("=")[2]
    async with running_app(access_token=TOKEN) as served:
        response = await get(served, "/api/status", headers={"Cookie": f"{SESSION_COOKIE}={value}"})
        await assert_unauthorized_json(response)


async def test_comparisons_are_constant_time(served: RunningApp, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    original = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return original(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert (await get(served, "/api/status", headers=BEARER)).status_code == 200
    assert (await get(served, "/api/status", headers={"Authorization": f"Bearer {WRONG}"})).status_code == 401
    # Digests of equal length: not even the token's length shows in the timing.
    assert [len(a) == len(b) == 32 for a, b in calls] == [True, True]


# -- wrong tokens are rate-limited per address --------------------------------------------------


async def test_eleventh_wrong_token_in_a_minute_is_429_even_with_the_right_one(served: RunningApp) -> None:
    now = [1000.0]
    limiter(served).clock = lambda: now[0]
    wrong = {"Authorization": f"Bearer {WRONG}"}
    for _ in range(10):
        await assert_unauthorized_json(await get(served, "/api/status", headers=wrong))
    locked = await get(served, "/api/status", headers=BEARER)
    assert locked.status_code == 429
    assert (await locked.get_json())["error"] == "too_many_attempts"
    assert locked.headers["Retry-After"] == "60"
    # Wrong tokens in addresses have their own allowance (a page's guesses never lock out a
    # program's Bearer token, nor the other way round); once it is used up the panel page
    # says so, in HTML.
    assert (await get(served, f"/?token={TOKEN}")).status_code == 303
    for _ in range(10):
        await get(served, f"/?token={WRONG}")
    page = await get(served, f"/?token={TOKEN}")
    assert page.status_code == 429
    assert page.content_type.startswith("text/html")
    # Another address is not affected.
    assert (await get(served, "/api/status", remote="10.0.0.6", headers=BEARER)).status_code == 200
    # A minute after the first failure the address may try again.
    now[0] += 30
    assert (await get(served, "/api/status", headers=BEARER)).headers["Retry-After"] == "30"
    now[0] += 30
    assert (await get(served, "/api/status", headers=BEARER)).status_code == 200


async def test_a_signed_in_browser_is_not_locked_out_by_guessing_from_its_address(served: RunningApp) -> None:
    value = cookie_header(await get(served, f"/?token={TOKEN}")).split(";")[0].partition("=")[2]
    for _ in range(12):
        await get(served, f"/api/status?token={WRONG}")
    assert (await get(served, f"/api/status?token={TOKEN}")).status_code == 429
    response = await get(served, "/api/status", headers={"Cookie": f"{SESSION_COOKIE}={value}"})
    assert response.status_code == 200


async def test_requests_without_a_token_are_not_counted(served: RunningApp) -> None:
    for _ in range(25):
        await assert_unauthorized_json(await get(served, "/api/status"))
        assert (await get(served, "/")).status_code == 401


def test_limiter_memory_is_bounded() -> None:
    limits = FailureLimiter(allowed=2, window=60, max_tracked=3, clock=lambda: 0.0)
    for i in range(10):
        limits.fail(f"10.0.0.{i}")
    assert len(limits._failures) == 3


async def test_wrong_tokens_are_logged_without_the_token(
    served: RunningApp, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        for _ in range(11):
            await get(served, f"/api/status?token={WRONG}")
        await get(served, "/api/status", headers=BEARER)
    assert "wrong access token from 10.0.0.5" in caplog.text
    assert "too many wrong access tokens from 10.0.0.5" in caplog.text
    assert WRONG not in caplog.text
    assert TOKEN not in caplog.text


# -- the warning at start -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bind", "token", "warns"),
    [
        ("0.0.0.0:8765", "", True),
        ("192.168.1.10:8765", "", True),
        ("[::]:8765", "", True),
        ("0.0.0.0:8765", TOKEN, False),
        ("127.0.0.1:8765", "", False),
        ("127.0.0.2:8765", "", False),
        ("[::1]:8765", "", False),
        ("localhost:8765", "", False),
    ],
)
def test_open_bind_warning(bind: str, token: str, warns: bool) -> None:
    settings = load_settings(cli={"bind": bind, "access_token": token or None}, environ={})
    warning = open_bind_warning(settings)
    assert (warning is not None) == warns
    if warning:
        assert "without an access token" in warning
        assert "act on torrents" not in warning


def test_open_bind_warning_says_anyone_may_act_with_open_actions() -> None:
    settings = load_settings(cli={"bind": "0.0.0.0:8765", "open_actions": True}, environ={})
    warning = open_bind_warning(settings)
    assert warning is not None
    assert "act on torrents" in warning
    assert "open_actions" in warning


async def test_serve_warns_once_when_open_beyond_loopback(caplog: pytest.LogCaptureFixture) -> None:
    from quart_dl.web.app import create_app

    settings = load_settings(
        cli={"bind": f"0.0.0.0:{free_port()}", "database_url": "sqlite://:memory:"}, environ={}
    )
    stop = asyncio.Event()
    with caplog.at_level(logging.WARNING, logger="quart_dl"):
        task = asyncio.create_task(serve(settings, stop, create_app(settings, session=FakeSession())))
        deadline = asyncio.get_running_loop().time() + 10
        while not any("without an access token" in r.getMessage() for r in caplog.records):
            assert asyncio.get_running_loop().time() < deadline, "no warning within 10 s"
            await asyncio.sleep(0.02)
        stop.set()
        await asyncio.wait_for(task, 10)
    warnings = [r for r in caplog.records if "without an access token" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING


# -- a real server: neither secret ever comes back ----------------------------------------------


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Status, headers as text, and body of a GET (errors included); redirects not followed."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with opener.open(request, timeout=10) as reply:
            return reply.status, str(reply.headers), reply.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, str(exc.headers), exc.read().decode("utf-8", "replace")


def test_no_secret_in_any_answer_event_or_log_line(tmp_path: Path) -> None:
    password = "qbt-Pass-w0rd-7f3a9c"
    token = "Access-Tok3n-5b8e1d2c9a"
    with QbtInstance(tmp_path / "qbt", password=password) as qbt:
        server = ServerProcess(
            tmp_path / "server",
            qbt_url=qbt.url,
            qbt_username=qbt.username,
            qbt_password=password,
            env={"QUART_DL_ACCESS_TOKEN": token},
        )
        seen: list[str] = []
        with server:
            good = {"Authorization": f"Bearer {token}"}
            bad = {"Authorization": f"Bearer {token}x"}
            with SSEReader(server.url + "api/events", headers=good) as stream:
                stream.wait(lambda m: any(x.event == "snapshot" for x in m), 10, "the snapshot")
                snapshot = stream.events("snapshot")[0].json()
                assert snapshot["status"]["qbittorrent"] in ("connected", "connecting")
                paths = [
                    "",
                    "index.html",
                    "app.js",
                    "healthz",
                    "metrics",
                    "api/status",
                    "api/torrents",
                    "api/torrents?sort=nope&phase=bad&order=up",
                    "api/torrents/zz",
                    f"api/torrents/{'a' * 40}",
                    "api/history?minutes=x",
                    "api/history?minutes=5&hash=zz",
                    "api/history",
                    "api/instances",
                    "api/instances/default",
                    "api/instances/default/torrents",
                    "api/instances/default/status",
                    "api/instances/default/history",
                    "api/instances/nope",
                    "api/torrents?instance=nope",
                    f"api/torrents/{'a' * 40}/events",
                    "api/events?heartbeat=nope",
                    "api/nope",
                    "..%2fsetup.cfg",
                ]
                status, head, body = fetch(server.url + "?token=" + token, {"Sec-Fetch-Dest": "iframe"})
                assert status == 200
                seen += [head, body]
                status, head, body = fetch(server.url + "api/status", good)
                assert status == 200
                seen += [head, body, json.dumps(json.loads(body))]
                # Good credentials first: after ten wrong ones this address is locked out.
                attempts = [
                    (good, ""),
                    ({}, f"token={token}"),
                    ({}, ""),
                    (bad, ""),
                    ({}, f"token={token}x"),
                    ({}, "token="),
                ]
                for headers, query in attempts:
                    for path in paths:
                        sep = "&" if "?" in path else "?"
                        status, head, body = fetch(
                            server.url + path + (sep + query if query else ""), headers
                        )
                        assert status != 500, (path, body)
                        if headers is good:
                            assert status in (200, 400, 404), (path, status)
                        seen += [head, body]
                stream.wait(lambda m: any(x.comment == "heartbeat" for x in m), 5, "a heartbeat")
                seen += [f"{m.event} {m.id} {m.data} {m.comment}" for m in stream.snapshot()]
            with SSEReader(server.url + f"api/events?token={token}x", headers={}) as refused:
                assert refused.status == 429  # the wrong tokens above locked this address out
                seen += [json.dumps(refused.response_headers)]
        log = server.log_text()
    assert "wrong access token" in log
    assert seen
    for text in [*seen, log]:
        assert password not in text
        assert token not in text


# -- the sign-in redirect stays on this origin, whatever the path holds ------------------------

#: Paths browsers (or raw clients) can send that a naive "last segment" redirect turned into
#: another host: backslashes (``\\evil`` is ``//evil`` to a browser), encoded ones, tabs and
#: newlines (removed by URL parsers), leading slashes, schemes.
HOSTILE_PATHS = [
    "/\\\\evil.example",
    "/\\evil.example",
    "/%5C%5Cevil.example",
    "/%5cevil.example",
    "/x/%5C%5Cevil.example/",
    "/\t\\evil.example",
    "/%09%5C%5Cevil.example",
    "/%0A%5C%5Cevil.example",
    "//evil.example",
    "///evil.example",
    "/%2F%2Fevil.example",
    "/http:evil.example",
    "/https:%2F%2Fevil.example",
    "/http:%5C%5Cevil.example",
    "/javascript:alert(1)",
    "/data:text%2Fhtml,x",
    "/%20%5C%5Cevil.example",
    "/.",
    "/..",
]
#: What a reference may look like so that no URL parser can read a host or a scheme into it:
#: no slash or backslash to start an authority, no colon to end a scheme, no control
#: character or space for a parser to drop.
SAME_ORIGIN_REFERENCE = re.compile(r"(?:\./|\.\./|[A-Za-z0-9_.~%-]+)(?:\?[A-Za-z0-9_.~%+=&-]*)?")


def test_same_page_never_leaves_the_origin_for_any_short_path() -> None:
    """Every path of up to three characters from an alphabet of the dangerous ones."""
    alphabet = ["/", "\\", "\t", "\n", "\r", ":", "%", "5C", "h", ".", "@", "?", "#", " ", "\x00", "é"]
    for n in range(4):
        for parts in itertools.product(alphabet, repeat=n):
            for prefix in ("/", "/http:", "/x/"):
                path = prefix + "".join(parts)
                target = same_page(path)
                assert SAME_ORIGIN_REFERENCE.fullmatch(target), (path, target)
                assert target not in (".", "..")


@pytest.mark.parametrize("path", HOSTILE_PATHS)
async def test_regression_sign_in_redirect_cannot_point_to_another_host(
    served: RunningApp, path: str
) -> None:
    response = await get(served, f"{path}?theme=dark&token={TOKEN}")
    assert response.status_code == 303, path
    location = response.headers["Location"]
    assert SAME_ORIGIN_REFERENCE.fullmatch(location), (path, location)
    assert location.endswith("?theme=dark")


# -- cross-site pages cannot lock anyone out --------------------------------------------------------

TOP_LEVEL = {"Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
SIGN_IN_FORM = {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
HA_FRAME = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "iframe"}
#: The panel's own requests (in Home Assistant's frame: same-origin to the framed page).
PANEL_FETCH = {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"}
#: What another site's page can make a browser send without a navigation.
SUBRESOURCES = [
    {"Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"},
    {"Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "script"},
    {"Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "style"},
    {"Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "video"},
    {"Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "empty"},
    {"Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty", "Origin": "http://evil.example"},
]


def failures(served: RunningApp) -> int:
    return sum(len(times) for times in limiter(served)._failures.values())


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
@pytest.mark.parametrize("kind", SUBRESOURCES, ids=lambda k: f"{k['Sec-Fetch-Mode']}-{k['Sec-Fetch-Dest']}")
@pytest.mark.parametrize("path", ["/api/status", "/", "/api/events", "/metrics"])
async def test_regression_cross_site_subresources_with_tokens_are_not_counted(
    served: RunningApp, site: str, kind: dict[str, str], path: str
) -> None:
    """A page on another site loaded <img src="...?token=guess"> until the user was locked out."""
    headers = {**kind, "Sec-Fetch-Site": site}
    for _ in range(15):
        response = await get(served, f"{path}?token={WRONG}", headers=headers)
        assert response.status_code == 401
    assert failures(served) == 0
    # Not even the right token is looked at there: no sign-in, and no oracle for guesses.
    # (Bounded: a stream that opened would keep a plain get() waiting for ever.)
    response = await asyncio.wait_for(get(served, f"{path}?token={TOKEN}", headers=headers), 10)
    assert response.status_code == 401
    assert "Set-Cookie" not in response.headers
    # The user's own browser and programs are untouched.
    assert (await get(served, f"/?token={TOKEN}", headers=TOP_LEVEL)).status_code == 303
    assert (await get(served, "/api/status", headers=BEARER)).status_code == 200


async def test_a_listed_cors_origin_may_use_a_token_in_its_urls() -> None:
    async with running_app(access_token=TOKEN, cors_origins="https://dash.example") as served:
        headers = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"}
        listed = await get(
            served, f"/api/status?token={TOKEN}", headers={**headers, "Origin": "https://dash.example"}
        )
        assert listed.status_code == 200
        other = await get(
            served, f"/api/status?token={TOKEN}", headers={**headers, "Origin": "https://evil.example"}
        )
        assert other.status_code == 401


async def test_only_a_top_level_navigation_signs_in(served: RunningApp) -> None:
    for headers in (TOP_LEVEL, SIGN_IN_FORM, {**TOP_LEVEL, "Sec-Fetch-Site": "cross-site"}, {}):
        response = await get(served, f"/?token={TOKEN}", headers=headers)
        assert response.status_code == 303, headers
        assert SESSION_COOKIE in cookie_header(response)
    for headers in (HA_FRAME, {**HA_FRAME, "Sec-Fetch-Site": "same-site"}, PANEL_FETCH):
        response = await get(served, f"/?token={TOKEN}", headers=headers)
        assert response.status_code == 200, headers
        assert "Set-Cookie" not in response.headers, headers


async def test_the_framed_panels_own_requests_keep_working(served: RunningApp) -> None:
    """Home Assistant's sidebar: the frame's navigation, then the panel's fetches and its
    stream, each with ?token= (same-origin requests of the framed page)."""
    assert (await get(served, f"/?token={TOKEN}", headers=HA_FRAME)).status_code == 200
    assert (await get(served, f"/api/status?token={TOKEN}", headers=PANEL_FETCH)).status_code == 200
    async with served.client.request(
        f"/api/events?heartbeat=event&token={TOKEN}", headers=PANEL_FETCH, scope_base=scope()
    ) as conn:
        await StreamReader(conn).next_frame()
        assert conn.status_code == 200
        await conn.disconnect()


async def test_regression_guesses_of_one_kind_never_lock_out_another(served: RunningApp) -> None:
    """Rate-limit the guesser, not the key: each kind of request has its own allowance."""
    # Another site navigating frames (or links) with guesses locks out only that.
    for _ in range(12):
        await get(served, f"/?token={WRONG}", headers=HA_FRAME)
    assert (await get(served, f"/?token={TOKEN}", headers=HA_FRAME)).status_code == 429
    assert (await get(served, f"/?token={TOKEN}", headers=TOP_LEVEL)).status_code == 303
    assert (await get(served, f"/api/status?token={TOKEN}", headers=PANEL_FETCH)).status_code == 200
    assert (await get(served, "/api/status", headers=BEARER)).status_code == 200
    # Guesses in addresses (the user's pages, scripts) never refuse a valid Bearer token.
    for _ in range(12):
        await get(served, f"/api/status?token={WRONG}")
    assert (await get(served, f"/api/status?token={TOKEN}")).status_code == 429
    assert (await get(served, "/api/status", headers=BEARER)).status_code == 200
    # Nor do wrong Bearer tokens lock out the user's browser.
    for _ in range(12):
        await get(served, "/api/status", remote="10.0.0.7", headers={"Authorization": f"Bearer {WRONG}"})
    assert (await get(served, "/api/status", remote="10.0.0.7", headers=BEARER)).status_code == 429
    assert (await get(served, f"/?token={TOKEN}", remote="10.0.0.7", headers=TOP_LEVEL)).status_code == 303


async def test_regression_a_rebinding_page_cannot_lock_out_the_users_own_panel(served: RunningApp) -> None:
    """With a token the Host check lets other names through to the token check; a DNS-rebinding
    page (same-origin to its own name, same address as the user's browser) guessing tokens
    must exhaust only its own allowance, not the one of the panel's real address."""
    rebound = {**PANEL_FETCH, "Host": "rebind.evil.example"}
    for _ in range(12):
        await get(served, f"/api/status?token={WRONG}", headers=rebound)
    assert (await get(served, f"/api/status?token={TOKEN}", headers=rebound)).status_code == 429
    real = {**PANEL_FETCH, "Host": "192.168.1.10:8765"}
    assert (await get(served, f"/api/status?token={TOKEN}", headers=real)).status_code == 200
    frame = {**HA_FRAME, "Host": "192.168.1.10"}
    assert (await get(served, f"/?token={TOKEN}", headers=frame)).status_code == 200


async def test_regression_a_same_site_frame_with_the_cookie_may_still_frame_the_panel(
    served: RunningApp,
) -> None:
    """Home Assistant on another port of the same host is a same-site frame: the browser sends
    the Lax cookie with it. The panel opened with the token in its address must still be
    frameable by it (the cookie check used to answer first, with the stricter policy)."""
    signed_in = await get(served, f"/?token={TOKEN}", headers=TOP_LEVEL)
    cookie = signed_in.headers["Set-Cookie"].split(";")[0]
    same_site_frame = {**HA_FRAME, "Sec-Fetch-Site": "same-site", "Cookie": cookie}
    framed = await get(served, f"/?token={TOKEN}", headers=same_site_frame)
    assert framed.status_code == 200
    assert "frame-ancestors *" in framed.headers["Content-Security-Policy"]
    # the cookie alone still gets the stricter policy
    plain = await get(served, "/", headers={**TOP_LEVEL, "Cookie": cookie})
    assert "frame-ancestors *" not in plain.headers["Content-Security-Policy"]
