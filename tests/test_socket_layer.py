"""quart_dl.server.socket_layer: streams held by the socket layer, every other connection handed to Hypercorn.

Each test runs the real server (``server.serve``: the socket layer, Hypercorn, the whole app)
in this event loop and talks to it over raw sockets, so that what is on the wire is checked
byte for byte: the chunk framing, the head, ``Connection: close`` on answers, HTTP/1.0.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import json
import socket
import struct
import termios
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from quart import Quart, request

from quart_dl.hub import SERVER_SHUTDOWN, Hub, TransportSink
from quart_dl.lab.qbittorrent_nox import free_port
from quart_dl.lab.wait import wait_for_async
from quart_dl.qbittorrent.fake import FakeSession
from quart_dl.server import socket_layer
from quart_dl.server.hypercorn_internals import HypercornConnection
from quart_dl.server.serve import serve
from quart_dl.settings import Secret, Settings
from quart_dl.torrents import ChangeSet
from quart_dl.web.app import create_app
from quart_dl.web.runtime import runtime

HASH = "a" * 40


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    options: dict[str, Any] = {
        "bind": f"127.0.0.1:{free_port()}",
        "database_url": "sqlite://:memory:",
        "data_dir": tmp_path,
        "poll_interval": 0.2,
        "idle_poll_interval": 0.2,
    }
    return Settings(**{**options, **overrides})


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[Quart]:
    """The real server in this event loop, with a scripted fake qBittorrent; stopped on exit."""
    app = create_app(settings, session=FakeSession())
    stop = asyncio.Event()
    server = asyncio.create_task(serve(settings, stop, app))
    try:
        await wait_for_async(lambda: port_open(settings.port), 10, "the server to listen", interval=0.02)
        runtime(app).hub.seed({HASH: {"hash": HASH, "name": "one", "progress": 0.1}})
        yield app
    finally:
        stop.set()
        await asyncio.wait_for(server, 10)


class RawClient:
    """A raw socket client: sends a request head as given, collects every byte it gets."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.data = b""

    @classmethod
    async def open(cls, port: int, head: bytes) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(head)
        return cls(reader, writer)

    async def read_until(self, marker: bytes, timeout: float = 5.0) -> bytes:
        deadline = time.monotonic() + timeout
        while marker not in self.data:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {marker!r} in {self.data[-300:]!r}")
            chunk = await asyncio.wait_for(self.reader.read(65536), left)
            if not chunk:
                raise EOFError(f"closed before {marker!r}; got {self.data[-300:]!r}")
            self.data += chunk
        return self.data

    async def read_to_end(self, timeout: float = 5.0) -> bytes:
        while chunk := await asyncio.wait_for(self.reader.read(65536), timeout):
            self.data += chunk
        return self.data

    def close(self) -> None:
        self.writer.close()


def stream_head(path: str = "/api/events", version: str = "1.1", extra: str = "") -> bytes:
    return f"GET {path} HTTP/{version}\r\nHost: x\r\n{extra}\r\n".encode()


def dechunk(body: bytes) -> bytes:
    """The payload of a chunked body (complete chunks only)."""
    out = b""
    while body:
        size_line, sep, rest = body.partition(b"\r\n")
        if not sep:
            break
        size = int(size_line, 16)
        if size == 0 or len(rest) < size + 2:
            break
        out += rest[:size]
        body = rest[size + 2 :]
    return out


def change(progress: float) -> ChangeSet:
    return ChangeSet(changed={HASH: {"progress": progress}})


def transport_streams(hub: Hub) -> int:
    return sum(1 for sub in hub.subscribers() if isinstance(sub, TransportSink))


async def test_a_stream_on_a_fresh_connection_is_held_by_the_socket_layer(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    async with serving(settings) as app:
        hub = runtime(app).hub
        client = await RawClient.open(settings.port, stream_head())
        await client.read_until(b"event: snapshot")
        assert transport_streams(hub) == 1  # the hub writes to it itself: no task, no queue
        event = hub.publish_changes(change(0.31))
        assert event is not None
        data = await client.read_until(b'"progress":0.31')
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"transfer-encoding: chunked" in head
        assert b"content-type: text/event-stream; charset=utf-8" in head
        assert b"x-accel-buffering: no" in head
        assert b"content-length" not in head
        events = dechunk(body)
        assert events.startswith(b"retry: ")
        expected = f'id: {event.id}\nevent: diff\ndata: {{"changed":{{"{HASH}":{{"progress":0.31}}}}}}\n\n'
        assert expected.encode() in events
        client.close()
        await wait_for_async(lambda: hub.client_count == 0, 5, "the stream to be forgotten", interval=0.02)
        assert stream_limits_open(app) == 0


async def test_regression_a_stream_on_a_reused_keep_alive_connection_took_the_slow_path(
    tmp_path: Path,
) -> None:
    # Browsers (Chromium's EventSource on the connection that just served detail.js), Home
    # Assistant's shared aiohttp session and nginx's upstream keepalive pool all ask for the
    # stream on a connection that has served something else: it went to Hypercorn and
    # Quart's path (~33 KB per stream, p99 ~400 ms at 10,000). Now the socket layer takes
    # the connection back at the request boundary.
    settings = settings_for(tmp_path)
    async with serving(settings) as app:
        hub = runtime(app).hub
        metrics = runtime(app).metrics
        client = await RawClient.open(settings.port, b"GET /api/status HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await read_response(client)).startswith(b"HTTP/1.1 200 ")
        client.writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")  # a second one, too
        assert (await read_response(client)).startswith(b"HTTP/1.1 200 ")
        client.writer.write(stream_head())
        await client.read_until(b"event: snapshot")
        assert hub.client_count == 1
        assert transport_streams(hub) == 1  # the socket layer's fast path
        assert metrics.value("sse_streams_opened_total", carrier="socket") == 1
        assert metrics.value("sse_streams", carrier="socket") == 1
        assert metrics.value("sse_streams", carrier="quart") == 0
        assert metrics.value("connections_taken_back_total") == 1
        head, _, _ = client.data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"transfer-encoding: chunked" in head
        hub.publish_changes(change(0.5))
        await client.read_until(b'"progress":0.5')
        client.close()
        await wait_for_async(lambda: hub.client_count == 0, 5, "the stream to be forgotten", interval=0.02)
        assert stream_limits_open(app) == 0
        assert runtime(app).metrics.value("sse_disconnects_total", reason="client closed") == 1


async def test_fresh_and_taken_back_streams_are_both_sent_to_on_the_socket_itself(tmp_path: Path) -> None:
    """A connection taken back from Hypercorn keeps asyncio's own TCP transport (no layer of
    Python per write): the fan-out sends on its socket as on a fresh connection's."""
    settings = settings_for(tmp_path)
    async with serving(settings) as app:
        hub = runtime(app).hub
        fresh = await RawClient.open(settings.port, stream_head())
        await fresh.read_until(b"event: snapshot")
        reused = await RawClient.open(settings.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await read_response(reused)).startswith(b"HTTP/1.1 200 ")
        reused.writer.write(stream_head())
        await reused.read_until(b"event: snapshot")
        assert runtime(app).metrics.value("connections_taken_back_total") == 1
        sinks = [sub for sub in hub.subscribers() if isinstance(sub, TransportSink)]
        assert len(sinks) == 2
        assert all(sink.send is not None for sink in sinks)
        hub.publish_changes(change(0.42))
        for client in (fresh, reused):
            await client.read_until(b'"progress":0.42')
            client.close()
        await wait_for_async(lambda: hub.client_count == 0, 5, "the streams to be forgotten", interval=0.02)


async def test_regression_a_taken_back_connection_kept_hypercorns_handler_for_its_keep_alive_timeout(
    tmp_path: Path,
) -> None:
    # Hypercorn's handler of a taken-back connection ended only after its keep-alive wait
    # (5 s): ~45 KB per stream held that long, measured as 53 KB per idle stream at 300
    # browser-like clients. It is let go at once now.
    settings = settings_for(tmp_path)
    async with serving(settings):
        clients = []
        for _ in range(10):
            client = await RawClient.open(settings.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            await read_response(client)
            client.writer.write(stream_head())
            await client.read_until(b"event: snapshot")
            clients.append(client)
        started = time.monotonic()
        await wait_for_async(
            lambda: hypercorn_handlers() == 0, 4, "Hypercorn's handlers to end", interval=0.05
        )
        assert time.monotonic() - started < 4  # well within keep_alive_timeout
        for client in clients:
            client.close()


def hypercorn_handlers() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, HypercornConnection))


async def test_a_pooling_http_client_gets_the_fast_path_on_its_kept_alive_connection(tmp_path: Path) -> None:
    # httpx's pool, as Home Assistant's shared aiohttp session: the status, then the stream,
    # on the one connection it keeps alive; then another request on a new one.
    settings = settings_for(tmp_path)
    async with serving(settings) as app:
        metrics = runtime(app).metrics
        base = f"http://127.0.0.1:{settings.port}"
        async with httpx.AsyncClient(base_url=base, timeout=5) as http:
            assert (await http.get("/api/status")).status_code == 200
            async with http.stream("GET", "/api/events") as answer:
                assert answer.status_code == 200
                async for line in answer.aiter_lines():
                    if line == "event: snapshot":
                        break
                assert metrics.value("connections_taken_back_total") == 1
                assert metrics.value("sse_streams", carrier="socket") == 1
                assert metrics.value("sse_streams", carrier="quart") == 0
            await wait_for_async(lambda: runtime(app).hub.client_count == 0, 5, "the stream to end")
            assert (await http.get("/healthz")).json() == {"ok": True}


async def test_a_stream_after_pipelined_and_body_carrying_requests_is_taken_back(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    async with serving(settings) as app:
        hub = runtime(app).hub
        pipelined = (
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            + b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
            + b"POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"5\r\nhello\r\n0\r\n\r\n"
            + stream_head()
        )
        client = await RawClient.open(settings.port, pipelined)
        answers = [await read_response(client) for _ in range(3)]
        assert [a.split(b" ", 2)[1] for a in answers] == [b"200", b"405", b"405"]
        await client.read_until(b"event: snapshot")
        assert transport_streams(hub) == 1
        client.close()


async def test_large_request_bodies_stream_through_and_the_connection_still_gets_the_fast_path(
    tmp_path: Path,
) -> None:
    # Uploads (a torrent file, multipart, well over 64 KiB) pass the socket layer as they
    # arrive, in pieces, to Hypercorn; a stream asked for after them on the same connection
    # is still taken back.
    settings = settings_for(tmp_path)
    app = create_app(settings, session=FakeSession())
    app.config["MAX_CONTENT_LENGTH"] = 4 * 2**20
    seen: list[int] = []

    @app.post("/echo-length")
    async def echo_length() -> dict[str, int]:
        total = 0
        async for piece in request.body:
            total += len(piece)
        seen.append(total)
        return {"length": total}

    stop = asyncio.Event()
    server = asyncio.create_task(serve(settings, stop, app))
    try:
        await wait_for_async(lambda: port_open(settings.port), 10, "the server to listen", interval=0.02)
        body = bytes(range(256)) * 1200  # 300 KiB
        client = await RawClient.open(
            settings.port, b"POST /echo-length HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        for at in range(0, len(body), 16384):  # as a slow uploader sends it
            client.writer.write(body[at : at + 16384])
            await client.writer.drain()
        answer = await read_response(client, timeout=10)
        assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
        assert json.loads(answer.partition(b"\r\n\r\n")[2]) == {"length": len(body)}
        chunked = b"".join(
            b"%x\r\n%b\r\n" % (len(body[at : at + 50000]), body[at : at + 50000])
            for at in range(0, len(body), 50000)
        )
        client.writer.write(
            b"POST /echo-length HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + chunked
            + b"0\r\n\r\n"
        )
        answer = await read_response(client, timeout=10)
        assert json.loads(answer.partition(b"\r\n\r\n")[2]) == {"length": len(body)}
        client.writer.write(stream_head())
        await client.read_until(b"event: snapshot")
        assert transport_streams(runtime(app).hub) == 1
        assert seen == [len(body), len(body)]
        client.close()
    finally:
        stop.set()
        await asyncio.wait_for(server, 10)


async def test_every_check_runs_for_a_stream_on_a_reused_connection(tmp_path: Path) -> None:
    # No check is skipped on the fast path: Host, token, stream limits, CORS and the root
    # path answer on a reused connection as on a fresh one (the app runs them, once).
    token = "s3cret-token-1234"
    settings = settings_for(
        tmp_path,
        access_token=Secret(token),
        allowed_hosts=("quart-dl.lan",),
        cors_origins=("http://panel.example",),
        root_path="/dl",
        max_streams_per_client=1,
    )
    auth = f"Authorization: Bearer {token}\r\n"
    async with serving(settings) as app:
        hub = runtime(app).hub

        async def reused(head: bytes) -> RawClient:
            client = await RawClient.open(
                settings.port, f"GET /dl/healthz HTTP/1.1\r\nHost: quart-dl.lan\r\n{auth}\r\n".encode()
            )
            assert (await read_response(client)).startswith(b"HTTP/1.1 200 ")
            client.writer.write(head)
            return client

        def request(path: str, host: str = "quart-dl.lan", extra: str = auth) -> bytes:
            return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode()

        refusals = [
            (request("/dl/api/events", host="evil.example"), 403, "host_not_allowed"),
            (request("/dl/api/events", extra=""), 401, "unauthorized"),
            (
                request("/dl/api/events", extra="Authorization: Bearer wrong-token-0000\r\n"),
                401,
                "unauthorized",
            ),
            (request("/dl/api/events?heartbeat=loud"), 400, "invalid_parameter"),
        ]
        for head, status, code in refusals:
            client = await reused(head)
            data = await read_response(client)
            answer_head, _, body = data.partition(b"\r\n\r\n")
            assert answer_head.startswith(b"HTTP/1.1 %d " % status), (head, data)
            assert b"connection: close" not in answer_head  # keep-alive, as Hypercorn would answer
            assert json.loads(body)["error"] == code
            assert token.encode() not in data
            # ... and the connection goes on: Hypercorn answers the next request on it.
            client.writer.write(request("/dl/healthz"))
            assert (await read_response(client)).startswith(b"HTTP/1.1 200 ")
            client.close()
        assert hub.client_count == 0
        # Admitted, with the CORS headers of an allowed origin and the root path honoured.
        first = await reused(request("/dl/api/events", extra=auth + "Origin: http://panel.example\r\n"))
        await first.read_until(b"event: snapshot")
        head = first.data.partition(b"\r\n\r\n")[0].lower()
        assert b"access-control-allow-origin: http://panel.example" in head
        assert transport_streams(hub) == 1
        # The per-client stream limit counts it: a second stream is refused, on the fast path too.
        second = await reused(request("/dl/api/events"))
        data = await read_response(second)
        assert data.startswith(b"HTTP/1.1 503 "), data[:300]
        assert b"retry-after" in data.lower()
        assert hub.client_count == 1
        second.close()
        first.close()
        await wait_for_async(lambda: hub.client_count == 0, 5, "the stream to be forgotten", interval=0.02)


async def test_a_refused_stream_on_a_reused_connection_answers_what_follows_in_order(tmp_path: Path) -> None:
    # Pipelined behind a refused stream request: answered by Hypercorn, in order; a stream
    # asked for again after that is taken back again. "Connection: close" is honoured.
    settings = settings_for(tmp_path, access_token=Secret("s3cret-token-1234"))
    auth = "Authorization: Bearer s3cret-token-1234\r\n"
    async with serving(settings) as app:
        client = await RawClient.open(
            settings.port, f"GET /healthz HTTP/1.1\r\nHost: x\r\n{auth}\r\n".encode()
        )
        await read_response(client)
        client.writer.write(stream_head() + f"GET /api/status HTTP/1.1\r\nHost: x\r\n{auth}\r\n".encode())
        assert (await read_response(client)).startswith(b"HTTP/1.1 401 ")
        assert (await read_response(client)).startswith(b"HTTP/1.1 200 ")
        client.writer.write(stream_head(extra=auth))
        await client.read_until(b"event: snapshot")
        assert transport_streams(runtime(app).hub) == 1
        client.close()
        client = await RawClient.open(
            settings.port, f"GET /healthz HTTP/1.1\r\nHost: x\r\n{auth}\r\n".encode()
        )
        await read_response(client)
        client.writer.write(stream_head(extra="Connection: close\r\n"))
        answer = await client.read_to_end()
        assert answer.startswith(b"HTTP/1.1 401 ")
        assert b"connection: close" in answer.lower()
        client.close()


async def test_requests_after_a_stream_on_a_reused_connection_are_not_answered_and_it_closes_cleanly(
    tmp_path: Path,
) -> None:
    # A stream never ends on its own; what a client sends after asking for one is not a
    # request anyone answers. When the stream ends (here: shutdown), the connection closes
    # after the last chunk, with nothing else written.
    settings = settings_for(tmp_path)
    app = create_app(settings, session=FakeSession())
    stop = asyncio.Event()
    server = asyncio.create_task(serve(settings, stop, app))
    await wait_for_async(lambda: port_open(settings.port), 10, "the server to listen", interval=0.02)
    client = await RawClient.open(settings.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    await read_response(client)
    client.writer.write(stream_head())
    await client.read_until(b"event: snapshot")
    assert transport_streams(runtime(app).hub) == 1
    client.writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    await client.writer.drain()
    (sub,) = runtime(app).hub.subscribers()
    assert isinstance(sub, TransportSink)
    server_side = sub.transport.get_extra_info("socket")
    # Read by the server (and not answered): closing with unread bytes would be a reset.
    await wait_for_async(lambda: unread_bytes(server_side) == 0, 5, "the late request to be read")
    stop.set()
    await asyncio.wait_for(server, 5)
    data = await client.read_to_end()
    assert data.endswith(b"\r\n0\r\n\r\n")
    assert data.count(b"HTTP/1.1 ") == 1  # the stream's head only: the late request is not answered
    client.close()


async def test_a_reused_connection_whose_stream_is_refused_by_hypercorn_rules_keeps_working(
    tmp_path: Path,
) -> None:
    # A stream request the socket layer does not take (an upgrade header) after an ordinary
    # request goes back to a fresh Hypercorn handler on the same connection: answered as
    # Hypercorn answers it, and the connection is not handed back and forth.
    settings = settings_for(tmp_path)
    async with serving(settings) as app:
        client = await RawClient.open(settings.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        await read_response(client)
        client.writer.write(
            stream_head(
                extra="Upgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                "HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n"
            )
        )
        await client.read_until(b"\r\n\r\n")
        assert client.data.startswith(b"HTTP/1.1 ")
        assert transport_streams(runtime(app).hub) == 0
        client.close()


async def test_the_forced_fallback_carries_streams_on_quarts_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With take-back off (as when Hypercorn's internals are not the ones checked), a stream on
    # a reused connection still works, carried by Quart's path, and /metrics says so.
    original = socket_layer.FrontDoor.__init__

    def without_take_back(door: socket_layer.FrontDoor, *args: Any, **kwargs: Any) -> None:
        original(door, *args, **kwargs)
        door.takes_streams = False

    monkeypatch.setattr(socket_layer.FrontDoor, "__init__", without_take_back)
    settings = settings_for(tmp_path)
    async with serving(settings) as app:
        hub = runtime(app).hub
        client = await RawClient.open(settings.port, b"GET /api/status HTTP/1.1\r\nHost: x\r\n\r\n")
        await read_response(client)
        client.writer.write(stream_head())
        await client.read_until(b"event: snapshot")
        assert transport_streams(hub) == 0
        assert runtime(app).metrics.value("sse_streams", carrier="quart") == 1
        assert runtime(app).metrics.value("sse_streams_opened_total", carrier="quart") == 1
        client.close()
        await wait_for_async(lambda: hub.client_count == 0, 5, "the stream to be forgotten", interval=0.02)


async def test_http_1_0_stream_is_unchunked_and_ends_with_the_connection(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    async with serving(settings) as app:
        hub = runtime(app).hub
        client = await RawClient.open(settings.port, stream_head(version="1.0"))
        await client.read_until(b"event: snapshot")
        hub.publish_changes(change(0.7))
        data = await client.read_until(b'"progress":0.7}}}\n\n')
        head, _, body = data.partition(b"\r\n\r\n")
        assert b"transfer-encoding" not in head
        assert body.startswith(b"retry: ")  # frames as they are, no chunk sizes
        hub.close_all()
        assert (await client.read_to_end()).endswith(b"\n\n")
        client.close()


async def test_error_answers_are_json_with_connection_close_and_give_the_place_back(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, access_token=Secret("s3cret-token-1234"))
    async with serving(settings) as app:
        cases = [
            (stream_head(), 401, "unauthorized"),
            (
                stream_head("/api/torrents/zz/events", extra="Authorization: Bearer s3cret-token-1234\r\n"),
                400,
                "invalid_hash",
            ),
            (stream_head(f"/api/torrents/{'b' * 40}/events?token=s3cret-token-1234"), 404, "not_found"),
            (stream_head("/api/events?heartbeat=loud&token=s3cret-token-1234"), 400, "invalid_parameter"),
            (
                stream_head("/nothing/events", extra="Authorization: Bearer s3cret-token-1234\r\n"),
                404,
                "not_found",
            ),
        ]
        for head, status, code in cases:
            client = await RawClient.open(settings.port, head)
            data = await client.read_to_end()
            head_bytes, _, body = data.partition(b"\r\n\r\n")
            assert head_bytes.startswith(b"HTTP/1.1 %d " % status), (head, data)
            assert b"connection: close" in head_bytes
            assert b"content-length: %d" % len(body) in head_bytes
            answer = json.loads(body)
            if code is not None:
                assert answer["error"] == code, answer
            assert b"s3cret-token-1234" not in data
            client.close()
        assert runtime(app).hub.client_count == 0
        assert stream_limits_open(app) == 0


async def test_per_torrent_stream_gets_only_its_torrent_framed_as_chunks(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    async with serving(settings) as app:
        hub = runtime(app).hub
        hub.seed({HASH: {"hash": HASH, "progress": 0.1}, "c" * 40: {"hash": "c" * 40, "progress": 0.2}})
        client = await RawClient.open(settings.port, stream_head(f"/api/torrents/{HASH}/events"))
        await client.read_until(b"event: snapshot")
        hub.publish_changes(ChangeSet(changed={"c" * 40: {"progress": 0.9}}))
        event = hub.publish_changes(change(0.42))
        assert event is not None
        data = await client.read_until(b'"progress":0.42')
        events = dechunk(data.partition(b"\r\n\r\n")[2])
        assert b'"progress":0.9' not in events  # (a bare "0.9" can be in a timestamp)
        assert f"id: {event.id}\nevent: diff".encode() in events
        client.close()


async def test_requests_the_socket_layer_does_not_take_go_to_hypercorn(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    async with serving(settings) as app:
        # Pipelined: a stream request followed by another request in the same bytes.
        client = await RawClient.open(
            settings.port, stream_head() + b"GET /api/status HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        await client.read_until(b"event: snapshot")
        assert transport_streams(runtime(app).hub) == 0
        client.close()
        # A body on a stream request, and a HEAD: Hypercorn and Quart answer.
        for head in (
            b"GET /api/events HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
            b"HEAD /api/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        ):
            client = await RawClient.open(settings.port, head)
            await client.read_until(b"\r\n\r\n")
            assert client.data.startswith(b"HTTP/1.1 ")
            client.close()
        # An oversized head: Hypercorn's limit and the app's JSON 431, as before.
        big = b"GET /api/events HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n"
        client = await RawClient.open(settings.port, big)
        data = await client.read_to_end()
        assert data.startswith(b"HTTP/1.1 431 ") or data == b"", data[:200]
        client.close()


async def test_regression_a_head_that_never_completes_is_closed_after_the_keep_alive_timeout(
    tmp_path: Path,
) -> None:
    settings = settings_for(tmp_path)
    async with serving(settings):
        client = await RawClient.open(settings.port, b"GET /api/events HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        assert await client.read_to_end(timeout=10) == b""
        assert 4.0 < time.monotonic() - started < 8.0  # Hypercorn's keep_alive_timeout: 5 s
        client.close()


async def test_shutdown_ends_held_streams_with_the_last_chunk(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    app = create_app(settings, session=FakeSession())
    stop = asyncio.Event()
    server = asyncio.create_task(serve(settings, stop, app))
    await wait_for_async(lambda: port_open(settings.port), 10, "the server to listen", interval=0.02)
    client = await RawClient.open(settings.port, stream_head())
    await client.read_until(b"event: snapshot")
    stop.set()
    await asyncio.wait_for(server, 5)
    data = await client.read_to_end()
    assert data.endswith(b"\r\n0\r\n\r\n")
    assert runtime(app).metrics.value("sse_disconnects_total", reason=SERVER_SHUTDOWN) == 1
    client.close()


async def test_heartbeat_is_written_to_an_idle_held_stream(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, heartbeat=1.0)
    async with serving(settings) as app:
        client = await RawClient.open(settings.port, stream_head())
        await client.read_until(b"event: snapshot")
        await client.read_until(b": heartbeat\n\n", timeout=4)
        assert runtime(app).metrics.value("heartbeats_sent_total") >= 1
        client.close()


def unread_bytes(sock: Any) -> int:
    """Bytes waiting in a socket's receive buffer."""
    buf = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    return int(struct.unpack("i", buf)[0])


def stream_limits_open(app: Quart) -> int:
    return int(app.extensions["quart_dl.web.limits"].open_total)


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


async def test_regression_a_connect_burst_runs_at_most_app_slots_requests_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without the cap, 5,000 streams connecting at once kept 18.5 KB of RSS each (the burst's
    # working memory); with it, 6.2 KB (BENCHMARKS.md run 4).
    monkeypatch.setattr(socket_layer, "APP_SLOTS", 8)
    settings = settings_for(tmp_path)
    running = peak = 0
    full = asyncio.Event()
    async with serving(settings) as app:
        inner = app.asgi_app

        async def counting(scope: Any, receive: Any, send: Any) -> None:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            if running >= 8:
                full.set()
            try:
                # Held until as many run as the cap allows, so that they surely overlap (and
                # without the cap, the others would pile in meanwhile).
                await asyncio.wait_for(full.wait(), 10)
                await inner(scope, receive, send)
            finally:
                running -= 1

        app.asgi_app = counting  # type: ignore[method-assign]
        clients = await asyncio.gather(*(RawClient.open(settings.port, stream_head()) for _ in range(60)))
        await wait_for_async(lambda: runtime(app).hub.client_count == 60, 10, "60 streams", interval=0.02)
        assert peak == 8
        for client in clients:
            client.close()


async def test_regression_a_burst_of_browser_like_clients_runs_a_few_hypercorn_connections_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 1,000 clients each fetching a file, then the stream on the same connection, ran 1,000
    # Hypercorn handlers and requests side by side: 49 KB per idle stream afterwards (the
    # process keeps the high-water mark). At most HYPERCORN_SLOTS start at once now.
    monkeypatch.setattr(socket_layer, "HYPERCORN_SLOTS", 4)
    settings = settings_for(tmp_path)
    running = peak = 0
    full = asyncio.Event()
    async with serving(settings) as app:
        inner = app.asgi_app

        async def counting(scope: Any, receive: Any, send: Any) -> None:
            nonlocal running, peak
            if scope["type"] != "http" or scope["path"] != "/healthz":
                await inner(scope, receive, send)
                return
            running += 1
            peak = max(peak, running)
            if running >= 4:
                full.set()
            try:
                await asyncio.wait_for(full.wait(), 10)  # held until the cap's worth overlap
                await inner(scope, receive, send)
            finally:
                running -= 1

        app.asgi_app = counting  # type: ignore[method-assign]

        async def browser_like() -> RawClient:
            client = await RawClient.open(settings.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await read_response(client)).startswith(b"HTTP/1.1 200 ")
            client.writer.write(stream_head())
            await client.read_until(b"event: snapshot")
            return client

        clients = await asyncio.gather(*(browser_like() for _ in range(40)))
        assert transport_streams(runtime(app).hub) == 40
        assert peak == 4
        for client in clients:
            client.close()


# -- request framing, pipelines, slow readers, the per-address connection cap ------------------


async def read_response(client: RawClient, timeout: float = 5.0) -> bytes:
    """One whole response (head and Content-Length body) off a keep-alive connection."""
    data = await client.read_until(b"\r\n\r\n", timeout)
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.lower().split(b"\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in lines if line.startswith(b"content-length:"))
    while len(rest) < length:
        chunk = await asyncio.wait_for(client.reader.read(65536), timeout)
        assert chunk, "closed in the middle of a response"
        rest += chunk
    client.data = rest[length:]
    return head + b"\r\n\r\n" + rest[:length]


#: Heads h11 would accept although their framing is ambiguous, each followed by the bytes a
#: smuggler would hide behind it (a second request, for a parser that frames differently).
AMBIGUOUS = {
    "both framing headers": (
        b"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        400,
    ),
    "duplicate Content-Length": (
        b"GET {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
        400,
    ),
    "Content-Length list": (b"GET {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0, 0\r\n\r\n", 400),
    "signed Content-Length": (b"GET {path} HTTP/1.1\r\nHost: x\r\nContent-Length: +0\r\n\r\n", 400),
    "obs-fold": (b"GET {path} HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n", 400),
    "bare LF": (b"GET {path} HTTP/1.1\nHost: x\n\n", 400),
    "chunked HTTP/1.0": (b"POST {path} HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "unknown coding": (b"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
}


def assert_refused(answer: bytes, status: int) -> None:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status), answer[:300]
    assert b"connection: close" in head.lower()
    assert b"content-type: application/json" in head.lower()
    error = json.loads(body)
    assert error["error"] in ("bad_framing", "unsupported_transfer_coding"), error
    assert error["message"]


@pytest.mark.parametrize("case", sorted(AMBIGUOUS))
async def test_regression_ambiguous_framing_is_one_json_answer_then_close_on_every_carrier(
    tmp_path: Path, case: str
) -> None:
    # Both framing headers were answered twice on one connection (h11 framed by chunked, so
    # the bytes after "0\r\n\r\n" became a second request): a smuggling vector behind a
    # proxy that frames by Content-Length. A head ending in bare LF waited out the 5 s head
    # timeout. Refused at once, one answer, on a fresh connection (REST and stream, both
    # carriers: Hypercorn and the socket layer), and after an ordinary keep-alive request.
    template, status = AMBIGUOUS[case]
    settings = settings_for(tmp_path)
    async with serving(settings) as app:
        for path, warm_up in (("/api/status", False), ("/api/events", False), ("/api/status", True)):
            head = template.replace(b"{path}", path.encode())
            if warm_up:
                client = await RawClient.open(settings.port, b"GET /api/status HTTP/1.1\r\nHost: x\r\n\r\n")
                assert (await read_response(client)).startswith(b"HTTP/1.1 200 ")
                started = time.monotonic()
                client.writer.write(head)
            else:
                started = time.monotonic()
                client = await RawClient.open(settings.port, head)
            answer = await client.read_to_end(timeout=4)
            assert time.monotonic() - started < 2.5  # not the 5 s head timeout
            assert answer.count(b"HTTP/1.1 ") == 1, (case, path, answer)
            assert_refused(answer, status)
            client.close()
        assert runtime(app).hub.client_count == 0
        assert runtime(app).metrics.value("connections_refused_total", reason="framing") == 3


async def test_ordinary_pipelining_keep_alive_and_bodies_still_go_to_hypercorn(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    async with serving(settings):
        pipelined = (
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 3
            + b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
            + b"POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"5;x=1\r\nhello\r\n0\r\n\r\n"
            + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        client = await RawClient.open(settings.port, pipelined)
        answers = [await read_response(client) for _ in range(6)]
        assert [a.split(b" ", 2)[1] for a in answers] == [b"200", b"200", b"200", b"405", b"405", b"200"]
        # still open (keep-alive): a stream on it is taken back for the fast path
        client.writer.write(stream_head())
        await client.read_until(b"event: snapshot")
        client.close()
        # HTTP/1.0, answered and closed by Hypercorn as before
        client = await RawClient.open(settings.port, b"GET /healthz HTTP/1.0\r\n\r\n")
        answer = await client.read_to_end()
        assert answer.startswith(b"HTTP/1.1 200 ")
        assert answer.endswith(b'{"ok":true}\n') or answer.endswith(b'{"ok":true}')
        client.close()


async def test_regression_a_client_that_pipelines_and_leaves_leaves_no_work_behind(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # 100 clients pipelining 300 requests each and leaving cost 20 s of CPU and 44,691 log
    # lines of "socket.send() raised exception.": Hypercorn answered every buffered request
    # to a closed socket. Now a connection's pipeline stops with its transport.
    settings = settings_for(tmp_path)
    async with serving(settings) as app:
        inner = app.asgi_app
        calls = 0

        async def counting(scope: Any, receive: Any, send: Any) -> None:
            nonlocal calls
            if scope["type"] == "http" and scope["path"] == "/api/torrents":
                calls += 1
            await inner(scope, receive, send)

        app.asgi_app = counting  # type: ignore[method-assign]
        pipelined = b"GET /api/torrents HTTP/1.1\r\nHost: x\r\n\r\n" * 300
        for _ in range(20):
            client = await RawClient.open(settings.port, pipelined)
            await client.writer.drain()
            client.close()  # gone, with 300 requests sent
        # A request on a fresh connection is answered after the server has read them all.
        probe = await RawClient.open(settings.port, b"GET /api/torrents HTTP/1.1\r\nHost: x\r\n\r\n")
        await read_response(probe)
        probe.close()
        await asyncio.sleep(0)  # one turn of the loop for the last callbacks
        assert calls <= 2 * 20 + 1, f"{calls} requests answered for clients that had left"
    assert "socket.send() raised" not in caplog.text


async def test_regression_a_rest_client_that_pipelines_and_never_reads_is_dropped_after_the_send_timeout(
    tmp_path: Path,
) -> None:
    # It kept its connection and megabytes of queued answers forever: only streams had a
    # send timeout.
    settings = settings_for(tmp_path, send_timeout=1.0)
    loop = asyncio.get_running_loop()
    async with serving(settings) as app:
        size = len(await http_get(settings.port, "/dashboard.js"))
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", settings.port))
        await loop.sock_sendall(sock, b"GET /dashboard.js HTTP/1.1\r\nHost: x\r\n\r\n" * 400)
        started = time.monotonic()
        metrics = runtime(app).metrics
        await wait_for_async(
            lambda: metrics.value("connections_dropped_total", reason="send_timeout") == 1, 15, "the drop"
        )
        assert time.monotonic() - started >= 1.0
        received = 0
        with contextlib.suppress(OSError, TimeoutError):
            while chunk := await asyncio.wait_for(loop.sock_recv(sock, 1 << 20), 2):
                received += len(chunk)
        sock.close()
        assert received < 400 * size / 2
        assert "HTTP/1.1 200" in (await http_get(settings.port, "/healthz")).decode()  # the others carry on


async def http_get(port: int, path: str) -> bytes:
    client = await RawClient.open(port, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    try:
        return await read_response(client)
    finally:
        client.close()


async def open_from(address: str, port: int, head: bytes) -> RawClient:
    """A raw client whose connection comes from ``address`` (any 127.x.y.z is loopback)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(address, 0))
    writer.write(head)
    return RawClient(reader, writer)


async def test_connections_per_address_are_capped_streams_included(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, max_connections_per_client=3)
    async with serving(settings) as app:
        hub = runtime(app).hub
        streams = [await RawClient.open(settings.port, stream_head()) for _ in range(3)]
        for stream in streams:
            await stream.read_until(b"event: snapshot")
        for head in (b"GET /api/status HTTP/1.1\r\nHost: x\r\n\r\n", stream_head()):
            client = await RawClient.open(settings.port, head)
            answer = await client.read_to_end()
            head_bytes, _, body = answer.partition(b"\r\n\r\n")
            assert head_bytes.startswith(b"HTTP/1.1 503 "), answer[:300]
            assert b"connection: close" in head_bytes
            assert b"retry-after: " in head_bytes
            assert json.loads(body)["error"] == "too_many_connections"
            client.close()
        # another address is not refused for this one's connections
        other = await open_from("127.0.0.2", settings.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await read_response(other)).startswith(b"HTTP/1.1 200 ")
        other.close()
        # a place is given back when a connection closes, whoever held it
        streams.pop().close()
        await wait_for_async(lambda: hub.client_count == 2, 5, "the stream to be forgotten")
        assert (await http_get(settings.port, "/healthz")).startswith(b"HTTP/1.1 200 ")
        assert runtime(app).metrics.value("connections_refused_total", reason="per_client") == 2
        for stream in streams:
            stream.close()


async def test_regression_connections_over_the_cap_are_bounded_too(tmp_path: Path) -> None:
    # Each connection over the cap was held until its head arrived (up to 5 s) to get its
    # 503: an address at the cap could still open any number of sockets. Now at most
    # OVER_CAP_HELD wait for their answer; past those a new one is cut at once.
    settings = settings_for(tmp_path, max_connections_per_client=2)
    async with serving(settings) as app:
        metrics = runtime(app).metrics
        within = [await RawClient.open(settings.port, b"") for _ in range(2)]
        held = [await RawClient.open(settings.port, b"") for _ in range(socket_layer.OVER_CAP_HELD)]
        cut = await RawClient.open(settings.port, b"")  # accepted after those, in order
        with pytest.raises((EOFError, ConnectionError)):
            await cut.read_until(b"HTTP/1.1", timeout=2)  # closed at once, no answer, no wait
        assert metrics.value("connections_refused_total", reason="per_client") == 1
        # one that was held still gets its 503 once it sends its head
        held[0].writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await held[0].read_to_end()).startswith(b"HTTP/1.1 503 ")
        for client in [*within, *held, cut]:
            client.close()


async def test_regression_a_connection_its_client_closed_gives_its_place_back_at_once(tmp_path: Path) -> None:
    # Hypercorn held a keep-alive connection its client had closed for its keep-alive
    # timeout (5 s): a client opening a connection per request (schemathesis does) hit
    # max_connections_per_client with connections that were already closed.
    settings = settings_for(tmp_path, max_connections_per_client=2)
    async with serving(settings):
        for _ in range(6):
            client = await RawClient.open(settings.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await read_response(client)).startswith(b"HTTP/1.1 200 ")
            client.writer.write_eof()
            started = time.monotonic()
            assert await client.read_to_end(timeout=4) == b""
            assert time.monotonic() - started < 2.5  # not Hypercorn's 5 s keep-alive timeout
            client.close()
        # pipelined, then half-closed: every answer, then the close at once
        client = await RawClient.open(settings.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 3)
        client.writer.write_eof()
        started = time.monotonic()
        answers = await client.read_to_end(timeout=4)
        assert answers.count(b"HTTP/1.1 200 ") == 3
        assert time.monotonic() - started < 2.5
        client.close()


# -- every way a stream ends on this carrier (docs/streams.md) -----------------------------


async def test_a_stream_whose_client_closes_is_unsubscribed_as_client_closed(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    async with serving(settings) as app:
        hub = runtime(app).hub
        client = await RawClient.open(settings.port, stream_head())
        await client.read_until(b"event: snapshot")
        assert transport_streams(hub) == 1
        client.close()
        await wait_for_async(lambda: hub.client_count == 0, 5, "the stream to be unsubscribed")
        assert runtime(app).metrics.value("sse_disconnects_total", reason="client closed") == 1
        assert stream_limits_open(app) == 0


async def test_a_stream_whose_client_ends_its_side_is_unsubscribed_as_client_closed(tmp_path: Path) -> None:
    """A half-close (EOF) ends the stream as a close does: the fan-out stops sending on the
    socket at once (``TransportSink.lost``) and the reason stays the client's."""
    settings = settings_for(tmp_path)
    async with serving(settings) as app:
        hub = runtime(app).hub
        client = await RawClient.open(settings.port, stream_head())
        await client.read_until(b"event: snapshot")
        client.writer.write_eof()
        await wait_for_async(lambda: hub.client_count == 0, 5, "the stream to be unsubscribed")
        assert runtime(app).metrics.value("sse_disconnects_total", reason="client closed") == 1
        assert stream_limits_open(app) == 0
        client.close()


async def test_regression_an_app_error_on_a_stream_request_is_a_json_500_and_gives_the_place_back(
    tmp_path: Path,
) -> None:
    settings = settings_for(tmp_path)
    async with serving(settings) as app:
        inner = app.asgi_app

        async def failing(scope: Any, receive: Any, send: Any) -> None:
            await inner(scope, receive, send)  # the route admits the stream (a place is taken)
            raise RuntimeError("a bug after the route ran")

        app.asgi_app = failing  # type: ignore[method-assign]
        client = await RawClient.open(settings.port, stream_head())
        data = await client.read_to_end()
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 500 ")
        assert b"connection: close" in head
        assert json.loads(body)["error"] == "internal_error"
        assert b"a bug after the route ran" not in data  # no details to the client
        assert runtime(app).hub.client_count == 0
        assert stream_limits_open(app) == 0
        client.close()


async def test_a_client_that_leaves_while_waiting_for_an_app_slot_costs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(socket_layer, "APP_SLOTS", 1)
    protocols: list[socket_layer.FrontProtocol] = []
    make_protocol = socket_layer.FrontDoor.protocol

    def recording(door: socket_layer.FrontDoor) -> socket_layer.FrontProtocol:
        protocols.append(make_protocol(door))
        return protocols[-1]

    monkeypatch.setattr(socket_layer.FrontDoor, "protocol", recording)
    settings = settings_for(tmp_path)
    calls = 0
    release = asyncio.Event()
    async with serving(settings) as app:
        inner = app.asgi_app

        async def slow(scope: Any, receive: Any, send: Any) -> None:
            nonlocal calls
            calls += 1
            await release.wait()  # the first request holds the only slot
            await inner(scope, receive, send)

        app.asgi_app = slow  # type: ignore[method-assign]
        first = await RawClient.open(settings.port, stream_head())
        await wait_for_async(lambda: calls == 1, 5, "the first request in the app")
        before = len(protocols)  # the readiness probe's and the first stream's
        second = await RawClient.open(settings.port, stream_head())
        await wait_for_async(lambda: len(protocols) > before, 5, "the second connection")
        second.close()  # leaves while waiting for the slot
        await wait_for_async(lambda: protocols[before]._closed, 5, "the server to see it leave")
        release.set()
        await first.read_until(b"event: snapshot")
        await wait_for_async(lambda: runtime(app).hub.client_count == 1, 5, "the first stream")
        hub = runtime(app).hub
        assert calls == 1  # the app never ran for the one that left
        assert hub.metrics.value("sse_connects_total", opened_with="snapshot") == 1
        assert stream_limits_open(app) == 1
        first.close()
