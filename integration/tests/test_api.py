"""The client over real loopback HTTP: stream timeouts and big lines, and its errors.

Two regressions are pinned here, each with a control that shows the failure it prevents:
Home Assistant's shared session has a 300 s *total* timeout that would cut a stream, and
aiohttp's line iterator fails on lines over ~128 KiB. Then the errors: a server refusing the
host name is not a refused token, and an unreachable server is said so in a few words.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from quart_dl.lab.qbittorrent_nox import free_port
from quart_dl.lab.server_process import ServerProcess
from quart_dl.lab.transfer import TransferPair

from custom_components.quart_dl.api import (
    QuartDlAuthError,
    QuartDlClient,
    QuartDlConnectionError,
    QuartDlHostNotAllowedError,
    QuartDlResponseError,
    normalize_url,
)
from custom_components.quart_dl.sse import SseParser

from .conftest import TEST_HOST, make_server
from .helpers import FakeHostsResolver

type Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

BIG = "x" * (1024 * 1024)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """A session like Home Assistant's, with a (much shorter) total timeout."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as client:
        yield client


@pytest.fixture
async def release() -> AsyncIterator[asyncio.Event]:
    """Set at teardown, so that handlers that hang on purpose end."""
    event = asyncio.Event()
    yield event
    event.set()


async def _serve(handler: Handler) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_get("/api/events", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def _stream_start(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    return response


@pytest.fixture
async def big_line_server(release: asyncio.Event) -> AsyncIterator[str]:
    """An event stream whose first event is one 1 MiB ``data:`` line."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = await _stream_start(request)
        payload = f'id: e-1\nevent: snapshot\ndata: "{BIG}"\n\n'.encode()
        for start in range(0, len(payload), 16384):
            await response.write(payload[start : start + 16384])
        await release.wait()
        return response

    runner, url = await _serve(handler)
    yield url
    release.set()
    await runner.cleanup()


@pytest.fixture
async def silent_server(release: asyncio.Event) -> AsyncIterator[str]:
    """An event stream that sends one event and then nothing, not even heartbeats."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = await _stream_start(request)
        await response.write(b'id: e-1\nevent: status\ndata: {"qbittorrent":"connected"}\n\n')
        await release.wait()
        return response

    runner, url = await _serve(handler)
    yield url
    release.set()
    await runner.cleanup()


async def test_snapshot_line_over_128_kib_is_read(
    session: aiohttp.ClientSession, big_line_server: str
) -> None:
    """Regression: a 1 MiB snapshot line arrives whole."""
    client = QuartDlClient(session, big_line_server)
    events = client.events(last_event_id=None, read_timeout=5, parser=SseParser())
    event = await anext(events)
    await events.aclose()
    assert event.event == "snapshot"
    assert event.data == f'"{BIG}"'


async def test_control_aiohttp_line_iterator_fails_on_the_same_line(
    session: aiohttp.ClientSession, big_line_server: str
) -> None:
    """Control: the obvious ``async for line in response.content`` breaks on it."""
    async with session.get(
        f"{big_line_server}/api/events", timeout=aiohttp.ClientTimeout(total=5)
    ) as response:
        with pytest.raises(ValueError, match="Chunk too big"):
            async for _line in response.content:
                pass


async def test_stream_outlives_the_sessions_total_timeout(
    session: aiohttp.ClientSession, server: ServerProcess
) -> None:
    """A stream read through a session with ``total=1`` lives on past 1 s (heartbeats)."""
    parser = SseParser()
    client = QuartDlClient(session, normalize_url(server.url))

    async def consume() -> None:
        async for _event in client.events(last_event_id=None, read_timeout=7, parser=parser):
            pass

    reader = asyncio.get_running_loop().create_task(consume())
    done, _ = await asyncio.wait({reader}, timeout=2.5)
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)
    assert not done, f"the stream ended early: {reader.exception()!r}"
    assert parser.comments >= 1, "no heartbeat arrived"


async def test_control_session_total_timeout_cuts_a_plain_stream(
    session: aiohttp.ClientSession, server: ServerProcess
) -> None:
    """Control: without the per-request override, the session's total timeout fires."""

    async def read_plainly() -> None:
        async with session.get(f"{normalize_url(server.url)}/api/events") as response:
            async for _chunk in response.content.iter_any():
                pass

    with pytest.raises(TimeoutError):
        await read_plainly()


async def test_silent_stream_times_out(session: aiohttp.ClientSession, silent_server: str) -> None:
    """A stream with no heartbeat for ``read_timeout`` is a dead stream."""
    client = QuartDlClient(session, silent_server)
    events = client.events(last_event_id=None, read_timeout=0.5, parser=SseParser())
    first = await anext(events)
    assert first.event == "status"
    started = time.monotonic()
    with pytest.raises(QuartDlConnectionError) as failed:
        await anext(events)
    assert 0.4 < time.monotonic() - started < 5
    assert failed.value.reason == "timed out"


async def test_not_an_event_stream(session: aiohttp.ClientSession) -> None:
    """A 200 that is not ``text/event-stream`` (a login page, a proxy) is refused."""

    async def handler(request: web.Request) -> web.Response:
        return web.Response(text="<html>login</html>", content_type="text/html")

    runner, url = await _serve(handler)
    try:
        client = QuartDlClient(session, url)
        with pytest.raises(QuartDlResponseError):
            await anext(client.events(last_event_id=None, read_timeout=5, parser=SseParser()))
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("http://Host:8080/", "http://host:8080"),
        ("host:8080", "http://host:8080"),
        (" https://example.org/qbt/?x=1#y ", "https://example.org/qbt"),
        ("http://[::1]:8765", "http://[::1]:8765"),
    ],
)
def test_normalize_url(raw: str, expected: str) -> None:
    """One server, one spelling."""
    assert normalize_url(raw) == expected


@pytest.mark.parametrize("raw", ["ftp://host/", "http://", "/just/a/path"])
def test_normalize_url_refuses(raw: str) -> None:
    """Anything but an absolute http(s) URL is refused."""
    with pytest.raises(ValueError, match="URL"):
        normalize_url(raw)


@pytest.fixture
async def named_session() -> AsyncIterator[aiohttp.ClientSession]:
    """A session that resolves :data:`TEST_HOST` to 127.0.0.1 (see ``FakeHostsResolver``)."""
    connector = aiohttp.TCPConnector(resolver=FakeHostsResolver({TEST_HOST: "127.0.0.1"}))
    async with aiohttp.ClientSession(connector=connector) as client:
        yield client


async def test_regression_host_refusal_is_not_an_auth_error(
    named_session: aiohttp.ClientSession, server: ServerProcess
) -> None:
    """Regression: a server without a token refuses a host name outside its
    ``allowed_hosts`` with 403; that was a "wrong token" error. It is its own error now,
    naming the host, on REST and on the stream; by IP address the same server answers."""
    by_name = QuartDlClient(named_session, f"http://{TEST_HOST}:{server.port}")
    with pytest.raises(QuartDlHostNotAllowedError) as refused:
        await by_name.status()
    assert refused.value.host == TEST_HOST
    assert not isinstance(refused.value, QuartDlAuthError)
    with pytest.raises(QuartDlHostNotAllowedError):
        await anext(by_name.events(last_event_id=None, read_timeout=5, parser=SseParser()))

    by_address = QuartDlClient(named_session, normalize_url(server.url))
    assert (await by_address.status())["protocol"] == 1


async def test_control_allowed_host_name_is_answered(
    named_session: aiohttp.ClientSession, qbt_pair: TransferPair, tmp_path: Path
) -> None:
    """Control: with the name in ``allowed_hosts``, the same request by name gets in (the
    fake resolver really leads to the server, and the setting is what decides)."""
    process = make_server(tmp_path / "server", qbt_pair, allowed_hosts=TEST_HOST)
    process.start()
    try:
        client = QuartDlClient(named_session, f"http://{TEST_HOST}:{process.port}")
        assert (await client.status())["protocol"] == 1
    finally:
        process.stop()


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/html", b"<html><body>403 Forbidden (nginx)</body></html>"),
        ("application/json", b'{"error": "forbidden"}'),
        ("application/json", b'["host_not_allowed"]'),
        ("application/json", b'{"error": "host_not_allowed"'),
        ("application/json", b""),
        ("application/json", b'{"error": "host_not_allowed", "pad": "' + b"x" * 20000 + b'"}'),
    ],
    ids=["proxy-html", "other-error", "not-an-object", "cut-json", "empty", "too-big"],
)
async def test_other_403_is_an_auth_error(
    session: aiohttp.ClientSession, content_type: str, body: bytes
) -> None:
    """Any 403 but quart-dl's exact JSON host error (a proxy's HTML page, another error,
    broken or oversized JSON) stays a refused token; reading its body never fails."""

    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=403, body=body, content_type=content_type)

    app = web.Application()
    app.router.add_get("/api/status", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        client = QuartDlClient(session, f"http://127.0.0.1:{runner.addresses[0][1]}")
        with pytest.raises(QuartDlAuthError):
            await client.status()
    finally:
        await runner.cleanup()


async def test_regression_unreachable_reason_is_short(session: aiohttp.ClientSession) -> None:
    """Regression: the error of an unreachable server carried aiohttp's repr
    (``ClientConnectorError(ConnectionKey(...))``), which reached the UI. Now a phrase."""
    client = QuartDlClient(session, f"http://127.0.0.1:{free_port()}")
    with pytest.raises(QuartDlConnectionError) as failed:
        await client.status()
    assert failed.value.reason == "connection refused"
    assert str(failed.value) == "/api/status: connection refused"
