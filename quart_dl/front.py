"""The socket layer: event streams straight from the socket, every other request to Hypercorn.

Why it exists: with one task per stream and every event sent through Quart, Hypercorn and h11,
an event reached the last of 10,000 viewers ~400 ms after the first, and each idle stream held
~33 KB of framework state (BENCHMARKS.md, runs 1-3: 72 % of a broadcast was that send path,
22 % waking one task per stream). Here a stream is a transport and a few-slot object: the hub
writes each event's bytes, framed once, to every transport in one loop.

How a connection goes:

1. ``FrontProtocol`` reads the request head (at most ``MAX_HEADER_BYTES``, within Hypercorn's
   ``keep_alive_timeout``, the same limits Hypercorn applies).
2. Anything but a body-less ``GET .../events`` (and anything odd: pipelined bytes, an
   upgrade, a head h11 rejects) is handed to Hypercorn with the bytes read so far, and the
   connection is Hypercorn's from then on: keep-alive, HTTP/2, its own error answers.
3. A stream request is run through the whole Quart app once, as Hypercorn would run it, with
   a ``Takeover`` in the ASGI extensions: auth, CORS, caps and validation answer as for any
   request. An error answer is written with ``Connection: close``. When the route admitted the
   stream (``sse.StreamPlan``), this layer writes the app's head and the opening, and the hub
   holds the transport. asyncio's flow control tells the hub when a client stops reading
   (``pause_writing``); ``connection_lost`` ends the stream.

A stream requested on a keep-alive connection Hypercorn already serves takes Quart's path
(``sse._stream``): same protocol, slower fan-out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from email.utils import formatdate
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

import h11
from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.asyncio.worker_context import WorkerContext
from hypercorn.config import Config
from hypercorn.typing import AppWrapper

from .events import chunk
from .hub import CLIENT_CLOSED, TransportSink
from .limits import MAX_HEADER_BYTES
from .sse import TAKEOVER, StreamPlan, Takeover

log = logging.getLogger("quart_dl.front")

#: Stream requests running the app at once. A reconnect storm of thousands would otherwise
#: run thousands of requests side by side on one loop: no faster, but each holds its
#: request's working memory (tens of KB) until all are done, and the process keeps that
#: high-water mark. Waiting requests hold only their head.
APP_SLOTS = 32

#: Response headers this layer sets itself (framing is the server's business, not the app's).
_FRAMING = {b"content-length", b"transfer-encoding", b"connection"}
#: errors.py's answer to an unexpected exception, for the one the app itself did not catch.
_INTERNAL_ERROR = b'{"error":"internal_error","message":"the server hit an unexpected error; see its log"}'


class FrontDoor:
    """What every connection's protocol shares: the app, Hypercorn's parts, open work."""

    def __init__(self, asgi_app: Any, wrapped: AppWrapper, config: Config, context: WorkerContext) -> None:
        self.asgi_app = asgi_app
        self.wrapped = wrapped
        self.config = config
        self.context = context
        self.state: dict[str, Any] = {}
        #: Connections still reading their head or running the app for a stream request.
        self.pending: set[FrontProtocol] = set()
        #: Hypercorn connection tasks and app calls, awaited at shutdown.
        self.tasks: set[asyncio.Task[Any]] = set()
        self.app_slots = asyncio.Semaphore(APP_SLOTS)

    def protocol(self) -> FrontProtocol:
        """The protocol factory for ``loop.create_server``."""
        return FrontProtocol(self)

    def track(self, task: asyncio.Task[Any]) -> None:
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def close_pending(self) -> None:
        """Shutdown: drop connections that have not become a stream or Hypercorn's."""
        for protocol in list(self.pending):
            protocol.abort()


class FrontProtocol(asyncio.Protocol):
    """One accepted connection until it is a stream (then also its protocol) or Hypercorn's."""

    __slots__ = ("_buffer", "_closed", "_disconnected", "_door", "_plan", "_sub", "_timer", "_transport")

    def __init__(self, door: FrontDoor) -> None:
        self._door = door
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        self._disconnected: asyncio.Future[None] | None = None
        self._plan: StreamPlan | None = None
        self._sub: TransportSink | None = None

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._door.pending.add(self)
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._door.config.keep_alive_timeout, self._head_timeout)

    def data_received(self, data: bytes) -> None:
        if self._timer is None:
            return  # the head is in: a stream's client has nothing more to say; ignore it
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > MAX_HEADER_BYTES:
                self._hand_off()  # Hypercorn answers an oversized head
            return
        self._stop_timer()
        if end + 4 != len(self._buffer) or not _looks_like_stream(self._buffer):
            self._hand_off()
            return
        scope = self._stream_scope(bytes(self._buffer))
        if scope is None:
            self._hand_off()
            return
        self._buffer = bytearray()
        task = asyncio.get_running_loop().create_task(self._run_app(scope))
        self._door.track(task)

    def eof_received(self) -> bool | None:
        return None  # close our side too; connection_lost follows

    def pause_writing(self) -> None:
        if self._sub is not None:
            self._sub.paused(time.monotonic())

    def resume_writing(self) -> None:
        if self._sub is not None:
            self._sub.resumed()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._stop_timer()
        self._door.pending.discard(self)
        if self._disconnected is not None and not self._disconnected.done():
            self._disconnected.set_result(None)
        if self._sub is not None and self._plan is not None:
            sub, self._sub = self._sub, None
            self._plan.close(sub, CLIENT_CLOSED)

    # -- the head ----------------------------------------------------------------------------

    def _head_timeout(self) -> None:
        self._timer = None
        self.abort()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def abort(self) -> None:
        if self._transport is not None and not self._closed:
            self._transport.abort()

    def _hand_off(self) -> None:
        """Give the connection, and the bytes read so far, to Hypercorn."""
        self._stop_timer()
        self._door.pending.discard(self)
        transport = self._transport
        assert transport is not None
        reader = asyncio.StreamReader(limit=2**16)
        protocol = asyncio.StreamReaderProtocol(reader)
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        reader.feed_data(bytes(self._buffer))
        self._buffer = bytearray()
        loop = asyncio.get_running_loop()
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        door = self._door
        server = TCPServer(door.wrapped, loop, door.config, door.context, door.state, reader, writer)
        door.track(loop.create_task(server.run()))

    def _stream_scope(self, head: bytes) -> dict[str, Any] | None:
        """The ASGI scope Hypercorn would build for this head, or None to let Hypercorn judge."""
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
        conn.receive_data(head)
        try:
            request = conn.next_event()
            end = conn.next_event()
        except h11.RemoteProtocolError:
            return None
        if not isinstance(request, h11.Request) or not isinstance(end, h11.EndOfMessage):
            return None
        if any(name in (b"upgrade", b"http2-settings") for name, _ in request.headers):
            return None
        path, _, query_string = request.target.partition(b"?")
        try:
            text_path = unquote(path.decode("ascii"))
        except UnicodeDecodeError:
            return None
        transport = self._transport
        assert transport is not None
        return {
            "type": "http",
            "http_version": request.http_version.decode(),
            "asgi": {"spec_version": "2.1", "version": "3.0"},
            "method": "GET",
            "scheme": "http",
            "path": text_path,
            "raw_path": path,
            "query_string": query_string,
            "root_path": self._door.config.root_path,
            "headers": list(request.headers),
            "client": _address(transport.get_extra_info("peername")),
            "server": _address(transport.get_extra_info("sockname")),
            "state": dict(self._door.state),
            "extensions": {TAKEOVER: Takeover()},
        }

    # -- the app -----------------------------------------------------------------------------

    async def _run_app(self, scope: dict[str, Any]) -> None:
        """Run the app once for a stream request; then stream, or write its answer and close."""
        start: dict[str, Any] = {}
        body: list[bytes] = []
        received = False

        async def receive() -> dict[str, Any]:
            nonlocal received
            if not received:
                received = True
                return {"type": "http.request", "body": b"", "more_body": False}
            if self._disconnected is None:
                self._disconnected = asyncio.get_running_loop().create_future()
                if self._closed:
                    self._disconnected.set_result(None)
            await self._disconnected
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                body.append(message.get("body", b""))

        try:
            async with self._door.app_slots:
                if self._closed:
                    return  # the client left while waiting for a slot
                await self._door.asgi_app(scope, receive, send)
        except Exception:  # the app answers its own errors; this is a bug, not a client's fault
            log.exception("the app failed on a stream request")
            start.clear()
        takeover: Takeover = scope["extensions"][TAKEOVER]
        plan = takeover.plan
        self._door.pending.discard(self)
        if self._closed:
            if plan is not None:
                plan.ticket.release()
            return
        transport = self._transport
        assert transport is not None
        http10 = scope["http_version"] == "1.0"
        if plan is not None and start.get("status") == 200:
            self._plan = plan
            head = _head(200, start.get("headers", ()), b"" if http10 else b"transfer-encoding: chunked\r\n")
            sub, opening = plan.open_transport(transport, chunked=not http10)
            self._sub = sub
            transport.write(head + (opening if http10 else chunk(opening)))
            return
        if plan is not None:
            plan.ticket.release()
        if not start:
            status, headers, content = 500, [(b"content-type", b"application/json")], _INTERNAL_ERROR
        else:
            status, headers, content = start["status"], start.get("headers", ()), b"".join(body)
        extra = b"content-length: %d\r\nconnection: close\r\n" % len(content)
        transport.write(_head(status, headers, extra) + content)
        transport.close()


def _looks_like_stream(head: bytearray) -> bool:
    """A cheap look at the request line: ``GET <path ending in /events>[?query] HTTP/1.x``."""
    line_end = head.find(b"\r\n")
    parts = bytes(head[:line_end]).split(b" ")
    return (
        len(parts) == 3
        and parts[0] == b"GET"
        and parts[1].partition(b"?")[0].endswith(b"/events")
        and parts[2] in (b"HTTP/1.1", b"HTTP/1.0")
    )


def _address(value: Any) -> tuple[str, int] | None:
    if isinstance(value, tuple) and len(value) >= 2:
        return (str(value[0]), int(value[1]))
    return None


def _head(status: int, headers: Any, extra: bytes) -> bytes:
    try:
        reason = HTTPStatus(status).phrase.encode()
    except ValueError:
        reason = b""
    lines = [b"HTTP/1.1 %d %b\r\n" % (status, reason)]
    lines.extend(
        b"%b: %b\r\n" % (bytes(name), bytes(value))
        for name, value in headers
        if bytes(name).lower() not in _FRAMING
    )
    lines.append(b"date: %b\r\n" % formatdate(usegmt=True).encode())
    lines.append(extra)
    lines.append(b"\r\n")
    return b"".join(lines)
