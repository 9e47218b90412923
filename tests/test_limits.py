"""quart_dl.web.limits: stream caps per client address and in total; and the header size limit.

The caps are tested through the real app (Quart's test client); the header limit through a
real server process, since Hypercorn enforces it before the app sees the request.
"""

from __future__ import annotations

import gc
import socket
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

from quart_dl.lab.server_process import ServerProcess, get_json
from quart_dl.lab.sse_reader import SSEReader
from quart_dl.lab.wait import wait_for_async
from quart_dl.qbittorrent.fake import FakeSession
from quart_dl.server.serve import hypercorn_config
from quart_dl.settings import SettingsError, load_settings
from quart_dl.web.limits import RETRY_AFTER, StreamLimits, Ticket, client_key, connection_cap

UNREACHABLE_QBT = "http://127.0.0.1:9"


def limits_of(served: RunningApp) -> StreamLimits:
    limits = served.app.extensions["quart_dl.web.limits"]
    assert isinstance(limits, StreamLimits)
    return limits


@pytest.fixture
async def served() -> AsyncIterator[RunningApp]:
    qbt = FakeSession([full_update({H1: raw_torrent("one")})])
    async with running_app(qbt, max_streams_per_client=2, max_streams=3) as running:
        await wait_for_async(lambda: H1 in running.runtime.hub.torrents, what="the torrent")
        yield running


async def open_stream(served: RunningApp, path: str = "/api/events", remote: str | None = None) -> Any:
    """An open stream whose first frame arrived (so it is subscribed)."""
    scope: dict[str, Any] = {"client": (remote, 1234)} if remote else {}
    conn = served.client.request(path, scope_base=scope)
    await conn.__aenter__()
    await StreamReader(conn).next_frame()
    return conn


async def assert_refused(
    served: RunningApp, path: str = "/api/events", remote: str | None = None
) -> dict[str, Any]:
    scope: dict[str, Any] = {"client": (remote, 1234)} if remote else {}
    response = await served.client.get(path, scope_base=scope)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == str(RETRY_AFTER)
    body = await response.get_json()
    assert body["error"] == "too_many_streams"
    return dict(body)


# -- client keys -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("remote", "key"),
    [
        ("192.168.1.10", "192.168.1.10"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),
        ("::ffff:10.0.0.1", "10.0.0.1"),
        (None, "-"),
        ("", "-"),
        ("unix-socket", "unix-socket"),
    ],
)
def test_client_key(remote: str | None, key: str) -> None:
    assert client_key(remote) == key


# -- counting ----------------------------------------------------------------------------------


def test_admit_counts_per_client_and_in_total() -> None:
    limits = StreamLimits(per_client=2, total=3)
    a1, a2 = limits.admit("10.0.0.1"), limits.admit("10.0.0.1")
    assert isinstance(a1, Ticket)
    assert isinstance(a2, Ticket)
    assert limits.admit("10.0.0.1") == "this address already has 2 open event streams; close some first"
    b1 = limits.admit("10.0.0.2")
    assert isinstance(b1, Ticket)
    assert not isinstance(limits.admit("10.0.0.3"), Ticket)  # total reached
    assert limits.refused == {"per_client": 1, "total": 1}
    a1.release()
    a1.release()  # idempotent
    assert limits.open_total == 2
    assert isinstance(limits.admit("10.0.0.3"), Ticket)


def test_ipv6_neighbours_share_one_allowance() -> None:
    limits = StreamLimits(per_client=1, total=100)
    assert isinstance(limits.admit("2001:db8::1"), Ticket)
    assert not isinstance(limits.admit("2001:db8::2"), Ticket)
    assert isinstance(limits.admit("2001:db8:0:1::1"), Ticket)


def test_ticket_of_a_body_that_never_started_is_released() -> None:
    limits = StreamLimits(per_client=1, total=1)
    ticket = limits.admit("10.0.0.1")
    assert isinstance(ticket, Ticket)

    async def body() -> AsyncIterator[bytes]:
        yield b""

    gen = body()
    ticket.bind(gen)
    assert limits.open_total == 1
    del gen
    gc.collect()
    assert limits.open_total == 0


# -- through the app ---------------------------------------------------------------------------


async def test_per_client_cap_refuses_with_503_and_frees_on_close(served: RunningApp) -> None:
    first = await open_stream(served)
    second = await open_stream(served, f"/api/torrents/{H1}/events")
    body = await assert_refused(served)
    assert "2 open event streams" in body["message"]
    assert served.runtime.hub.client_count == 2
    await first.disconnect()
    await wait_for_async(lambda: limits_of(served).open_total == 1, what="the closed stream to be released")
    third = await open_stream(served)
    await second.disconnect()
    await third.disconnect()
    await wait_for_async(lambda: limits_of(served).open_total == 0, what="every stream released")


async def test_total_cap_counts_every_address(served: RunningApp) -> None:
    conns = [
        await open_stream(served, remote="10.0.0.1"),
        await open_stream(served, remote="10.0.0.2"),
        await open_stream(served, remote="10.0.0.3"),
    ]
    body = await assert_refused(served, remote="10.0.0.4")
    assert "too many open event streams" in body["message"]
    for conn in conns:
        await conn.disconnect()
    await wait_for_async(lambda: limits_of(served).open_total == 0, what="every stream released")


async def test_other_addresses_are_not_refused_by_one_clients_cap(served: RunningApp) -> None:
    conns = [await open_stream(served, remote="10.0.0.1"), await open_stream(served, remote="10.0.0.1")]
    await assert_refused(served, remote="10.0.0.1")
    other = await open_stream(served, remote="10.0.0.2")
    for conn in [*conns, other]:
        await conn.disconnect()


async def test_refused_requests_do_not_count(served: RunningApp) -> None:
    conns = [await open_stream(served), await open_stream(served)]
    for _ in range(5):
        await assert_refused(served)
    assert limits_of(served).open_total == 2
    for conn in conns:
        await conn.disconnect()
    await wait_for_async(lambda: limits_of(served).open_total == 0, what="every stream released")


async def test_bad_requests_take_no_place(served: RunningApp) -> None:
    for path in ("/api/events?heartbeat=nope", "/api/torrents/zz/events", f"/api/torrents/{'0' * 40}/events"):
        response = await served.client.get(path)
        assert response.status_code in (400, 404)
    assert limits_of(served).open_total == 0


async def test_regression_burst_of_admissions_before_any_body_starts_is_capped(served: RunningApp) -> None:
    """Counting at subscribe time would admit a burst whose handlers all run before any body
    starts; the count is taken when the request is admitted."""
    limits = limits_of(served)
    tickets = [limits.admit("10.9.9.9") for _ in range(5)]
    assert sum(isinstance(t, Ticket) for t in tickets) == 2
    for t in tickets:
        if isinstance(t, Ticket):
            t.release()


def test_defaults() -> None:
    settings = load_settings(environ={})
    assert settings.max_streams_per_client == 64
    assert settings.max_streams == 20_000


# -- header size (a real server: Hypercorn enforces it) -----------------------------------------


def test_hypercorn_header_limits_are_16_kib() -> None:
    config = hypercorn_config(load_settings(environ={}))
    assert config.h11_max_incomplete_size == 16 * 1024
    assert config.h2_max_header_list_size == 16 * 1024


def raw_request(port: int, header_bytes: int) -> bytes:
    """One HTTP/1.1 request with a header of ``header_bytes``; the raw answer (or b"")."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        request = (
            f"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {'a' * header_bytes}\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        try:
            sock.sendall(request)
        except OSError:
            return b""
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except OSError:
            pass
        return b"".join(chunks)


def test_a_64_kib_header_is_refused_without_a_500_and_streams_live_on(tmp_path: Path) -> None:
    with ServerProcess(tmp_path, qbt_url=UNREACHABLE_QBT, heartbeat=1) as server:
        with SSEReader(server.url + "api/events") as stream:
            stream.wait(lambda m: any(x.event == "snapshot" for x in m), 10, "the snapshot")
            answer = raw_request(server.port, 64 * 1024)
            status_line = answer.split(b"\r\n", 1)[0]
            assert status_line.startswith(b"HTTP/1.1 431"), status_line
            # A header under the limit is still served, and the open stream keeps going.
            ok = raw_request(server.port, 8 * 1024)
            assert ok.startswith(b"HTTP/1.1 200"), ok[:200]
            beats = len(stream.heartbeats())
            stream.wait(lambda m: len([x for x in m if x.comment == "heartbeat"]) > beats, 5, "a heartbeat")
            assert not stream.ended.is_set()
            assert server.running
            assert get_json(server.url + "healthz") == {"ok": True}
        assert "Traceback" not in server.log_text()


async def test_regression_stream_whose_body_never_starts_frees_its_place(served: RunningApp) -> None:
    """A client that leaves between the handler and the first byte: the body's ``finally``
    never runs, so its place would stay taken for good (two of those lock an address out)."""
    from quart_dl.web import sse

    limits = limits_of(served)
    for _ in range(3):
        async with served.app.test_request_context("/api/events"):
            response = await sse.all_events()
            assert response.status_code == 200
            assert limits.open_total == 1
        del response
        gc.collect()
        assert limits.open_total == 0
    assert served.runtime.hub.client_count == 0


def test_connection_cap_follows_the_stream_cap_unless_set() -> None:
    # Streams count as connections: by default the cap leaves 64 connections on top of the
    # stream cap (REST requests of the panel and Home Assistant), and follows it when it is
    # raised (the 1,000-stream tests and the 10,000-stream benchmark from one address).
    assert connection_cap(load_settings({}, environ={})) == 64 + 64
    assert connection_cap(load_settings({"max_streams_per_client": 5000}, environ={})) == 5064
    assert connection_cap(load_settings({}, environ={"QUART_DL_MAX_CONNECTIONS_PER_CLIENT": "10"})) == 10
    with pytest.raises(SettingsError, match="max_connections_per_client"):
        load_settings({"max_connections_per_client": "-1"}, environ={})
