"""quart_dl.server.serve: Hypercorn from code, as it runs in production.

Two ways a stream ends that only a real server shows: a client that stops reading is dropped
once its queue overflows (even while its send is blocked), and SIGTERM with streams open
ends them all and exits within 2 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from quart import Quart

import quart_dl.server
from quart_dl.hub import OVERFLOW, SEND_TIMEOUT
from quart_dl.lab.qbittorrent_nox import free_port
from quart_dl.lab.server_process import ServerProcess
from quart_dl.lab.sse_reader import SSEReader
from quart_dl.lab.wait import wait_for, wait_for_async
from quart_dl.qbittorrent.fake import FakeSession
from quart_dl.qbittorrent.session import QbtSession
from quart_dl.server import hypercorn_internals
from quart_dl.server.serve import hypercorn_config, serve
from quart_dl.settings import Settings
from quart_dl.torrents import ChangeSet
from quart_dl.web.app import create_app
from quart_dl.web.runtime import runtime


class FloodingFakeClient:
    """A fake blocking qBittorrent client (unit-test fake) whose 500 torrents all change on
    every poll; it runs on a real ``QbtSession``'s worker thread.

    Each diff is a few hundred kilobytes, so a client that stops reading fills its socket buffers
    and then its queue within seconds.
    """

    def __init__(self, count: int = 500, name_length: int = 500) -> None:
        self.rid = 0
        self.tick = 0
        self.count = count
        self.name_length = name_length

    def login(self) -> str:
        return "v4.5.2-fake"

    def maindata(self) -> dict[str, Any]:
        self.tick += 1
        torrents = {
            f"{i:040x}": {
                "name": f"torrent {i} at tick {self.tick} " + "x" * self.name_length,
                "state": "downloading",
                "downloaded": self.tick * 1000 + i,
                "amount_left": 10**9,
                "dlspeed": self.tick,
            }
            for i in range(self.count)
        }
        full = self.rid == 0
        self.rid += 1
        return {"rid": self.rid, "full_update": full, "torrents": torrents}

    def torrent_count(self) -> int:
        return self.count

    def reset(self) -> None:
        self.rid = 0

    def close(self) -> None:
        pass


def test_hypercorn_config_has_a_large_backlog_and_no_read_timeout() -> None:
    config = hypercorn_config(Settings(bind="127.0.0.1:9", backlog=4096))
    assert config.backlog == 4096  # Hypercorn's default of 100 refuses reconnect storms
    assert config.read_timeout is None  # a read timeout would cut streams whose clients never send
    assert config.graceful_timeout <= 2


def flooding_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """A server on a free port that polls the flooding fake ten times a second."""
    options: dict[str, Any] = {
        "bind": f"127.0.0.1:{free_port()}",
        "database_url": "sqlite://:memory:",
        "data_dir": tmp_path,
        "poll_interval": 0.1,
        "idle_poll_interval": 0.1,
    }
    return Settings(**{**options, **overrides})


@contextlib.asynccontextmanager
async def serving(settings: Settings, client: FloodingFakeClient) -> AsyncIterator[Quart]:
    """The real server (Hypercorn from code) in this event loop; stopped on exit."""
    app = create_app(settings, session=QbtSession(client))
    stop = asyncio.Event()
    server = asyncio.create_task(serve(settings, stop, app))
    try:
        await wait_for_async(lambda: _port_open(settings.port), 10, "the server to listen", interval=0.05)
        yield app
    finally:
        stop.set()
        await asyncio.wait_for(server, 10)


async def test_regression_client_that_stops_reading_is_dropped_on_overflow(tmp_path: Path) -> None:
    settings = flooding_settings(tmp_path, queue_size=8)
    port = settings.port
    async with serving(settings, FloodingFakeClient()) as app:
        hub = runtime(app).hub
        # A client with a tiny receive buffer that reads the headers and then nothing more.
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(("127.0.0.1", port))
        stalled.sendall(b"GET /api/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        await wait_for_async(
            lambda: hub.client_count == 1, 5, "the stalled client to subscribe", interval=0.05
        )
        # A healthy client keeps reading throughout.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n")
        received = 0

        async def read_forever() -> None:
            nonlocal received
            while chunk := await reader.read(65536):
                received += len(chunk)

        healthy = asyncio.create_task(read_forever())

        def drops() -> float:
            return runtime(app).metrics.value("sse_disconnects_total", reason=OVERFLOW)

        await wait_for_async(lambda: drops() >= 1, 30, "the stalled client to be dropped", interval=0.05)
        assert hub.client_count == 1, "the healthy client was dropped too"
        before = received
        await wait_for_async(
            lambda: received > before + 100_000, 10, "the healthy client to keep receiving", interval=0.05
        )
        healthy.cancel()
        writer.close()
        stalled.close()


def test_sigterm_with_open_streams_exits_within_two_seconds(
    make_server: Callable[..., ServerProcess],
) -> None:
    server = make_server()
    streams = [SSEReader(server.url + "api/events") for _ in range(20)]
    try:
        wait_for(lambda: server.status()["clients"] == 20, 10, "20 open streams")
        took = server.stop()
        assert took < 2.0, f"shutdown took {took:.2f} s"
        for stream in streams:
            assert stream.ended.wait(2), "a stream was left open"
        log = server.log_text()
        assert log.count("server shutdown") >= 20
        assert "Traceback" not in log
    finally:
        for stream in streams:
            stream.close()


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


async def test_shutdown_with_open_streams_is_quick_and_leaves_no_task_behind(tmp_path: Path) -> None:
    port = free_port()
    settings = Settings(
        bind=f"127.0.0.1:{port}", database_url="sqlite://:memory:", data_dir=tmp_path, poll_interval=0.2
    )
    app = create_app(settings, session=QbtSession(FloodingFakeClient()))
    before = asyncio.all_tasks()
    stop = asyncio.Event()
    server = asyncio.create_task(serve(settings, stop, app))
    await wait_for_async(lambda: _port_open(port), 10, "the server to listen", interval=0.05)
    clients = []
    for _ in range(10):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n")
        clients.append((reader, writer))
    await wait_for_async(lambda: runtime(app).hub.client_count == 10, 5, "ten streams", interval=0.05)
    started = time.monotonic()
    stop.set()
    await asyncio.wait_for(server, 5)
    assert time.monotonic() - started < 2.0
    assert runtime(app).hub.client_count == 0
    for reader, writer in clients:
        await asyncio.wait_for(reader.read(), 2)  # the server closed every stream: EOF
        writer.close()
    leftover = [t for t in asyncio.all_tasks() - before if t is not asyncio.current_task() and not t.done()]
    assert leftover == [], leftover


async def test_client_that_stops_reading_is_dropped_while_100_others_keep_up(tmp_path: Path) -> None:
    # What must not be lost: the 100 healthy clients get every event, each within 1 s of the
    # first of them, while one client that stopped reading fills its socket buffers; that
    # one is dropped by the send timeout (its queue is far from overflowing: events are
    # small), so it holds nothing forever.
    settings = flooding_settings(tmp_path, queue_size=100_000, send_timeout=2.0, max_streams_per_client=500)
    port = settings.port
    readers: list[asyncio.Task[None]] = []
    arrivals: list[dict[str, float]] = [{} for _ in range(100)]
    async with serving(settings, FloodingFakeClient(count=100, name_length=150)) as app:
        hub = runtime(app).hub
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(("127.0.0.1", port))
        stalled.sendall(b"GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n")

        async def read_ids(seen: dict[str, float]) -> None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n")
            pattern = re.compile(rb"id: ([0-9a-f.]+-[0-9]+)\n")
            buffer = b""
            try:
                while chunk := await reader.read(262144):
                    buffer += chunk
                    end = 0
                    now = time.monotonic()
                    for match in pattern.finditer(buffer):
                        seen.setdefault(match.group(1).decode(), now)
                        end = match.end()
                    buffer = buffer[end:] if end else buffer[-128:]
            finally:
                writer.close()

        readers = [asyncio.create_task(read_ids(seen)) for seen in arrivals]
        await wait_for_async(lambda: hub.client_count == 101, 15, "101 streams", interval=0.05)
        first_seq = hub.seq + 1

        def dropped() -> float:
            return runtime(app).metrics.value("sse_disconnects_total", reason=SEND_TIMEOUT)

        await wait_for_async(lambda: dropped() >= 1, 60, "the stalled client to be dropped", interval=0.05)
        last_seq = hub.seq
        await wait_for_async(
            lambda: all(f"{hub.epoch}-{last_seq}" in seen for seen in arrivals),
            5,
            "the last event everywhere",
            interval=0.05,
        )
        assert hub.client_count == 100, "a healthy client was dropped"
        assert runtime(app).metrics.value("sse_disconnects_total", reason=OVERFLOW) == 0
        assert last_seq - first_seq >= 20, "too few events to judge"
        worst = 0.0
        for seq in range(first_seq, last_seq + 1):
            event_id = f"{hub.epoch}-{seq}"
            times = [seen[event_id] for seen in arrivals if event_id in seen]
            assert len(times) == 100, f"event {event_id} reached {len(times)} of 100 clients"
            worst = max(worst, max(times) - min(times))
        assert worst < 1.0, f"an event took {worst:.2f} s to reach all 100 clients"
        stalled.close()
        for task in readers:
            task.cancel()


# -- a Hypercorn whose internals changed: one warning, every stream on Quart's path -------------


@pytest.mark.parametrize("change", ["signature", "import"])
async def test_a_hypercorn_whose_internals_changed_serves_every_stream_through_quarts_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, change: str
) -> None:
    if change == "signature":
        monkeypatch.setattr(hypercorn_internals, "contract_problem", lambda: "TCPServer takes ['app']")
        expected = "TCPServer takes ['app']"
    else:  # a module or name it imports is gone: importing the fence fails
        monkeypatch.delattr(quart_dl.server, "hypercorn_internals")
        monkeypatch.setitem(sys.modules, "quart_dl.server.hypercorn_internals", None)
        expected = "ImportError"
    caplog.set_level(logging.INFO, logger="quart_dl")
    settings = flooding_settings(tmp_path, heartbeat=1.0)
    app = create_app(settings, session=FakeSession())
    stop = asyncio.Event()
    server = asyncio.create_task(serve(settings, stop, app))
    await wait_for_async(lambda: _port_open(settings.port), 10, "the server to listen", interval=0.05)
    hub = runtime(app).hub
    metrics = runtime(app).metrics
    hub.seed({"a" * 40: {"hash": "a" * 40, "progress": 0.1}})
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert expected in warnings[0].getMessage()
    assert "Quart path" in warnings[0].getMessage()
    # Fresh and reused connections, a diff, a heartbeat, a client leaving, shutdown.
    fresh = await asyncio.open_connection("127.0.0.1", settings.port)
    fresh[1].write(b"GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n")
    reused = await asyncio.open_connection("127.0.0.1", settings.port)
    reused[1].write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    await read_until(reused[0], b'{"ok":true}')
    reused[1].write(b"GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n")
    for reader, _ in (fresh, reused):
        await read_until(reader, b"event: snapshot")
    assert metrics.value("sse_streams", carrier="quart") == 2
    assert metrics.value("sse_streams", carrier="socket") == 0
    hub.publish_changes(ChangeSet(changed={"a" * 40: {"progress": 0.5}}))
    for reader, _ in (fresh, reused):
        await read_until(reader, b'"progress":0.5')
        await read_until(reader, b": heartbeat")
    fresh[1].close()
    await wait_for_async(lambda: hub.client_count == 1, 5, "the closed stream to be forgotten")
    stop.set()
    await asyncio.wait_for(server, 10)
    rest = await asyncio.wait_for(reused[0].read(), 5)
    assert rest.endswith(b"0\r\n\r\n")  # the stream ended with its last chunk
    reused[1].close()


async def read_until(reader: asyncio.StreamReader, marker: bytes, timeout: float = 5.0) -> bytes:
    """Read until ``marker`` (what was read before it is gone: each call reads on)."""
    return await asyncio.wait_for(reader.readuntil(marker), timeout)


def test_the_start_line_names_every_instance(caplog: pytest.LogCaptureFixture) -> None:
    from dataclasses import replace

    from fakes import instance_tables, make_settings

    from quart_dl.server.serve import _listening

    one = make_settings(qbt_url="http://10.0.0.1:8080")
    two = replace(one, instance_tables=instance_tables(one, ["seedbox"]))
    with caplog.at_level(logging.INFO, logger="quart_dl"):
        _listening(one)
        _listening(two)
    lines = [r.getMessage() for r in caplog.records if "listening on" in r.getMessage()]
    assert "(qBittorrent at http://10.0.0.1:8080, heartbeat 15 s)" in lines[0]
    assert "(qBittorrent default at http://10.0.0.1:8080, seedbox at http://127.0.0.1:18080," in lines[1]
    assert "pw-" not in " ".join(lines)
