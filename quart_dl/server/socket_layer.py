"""The socket layer: event streams straight from the socket, every other request to Hypercorn.

Why it exists: with one task per stream and every event sent through Quart, Hypercorn and h11,
an event reached the last of 10,000 viewers ~400 ms after the first, and each idle stream held
~33 KB of framework state (BENCHMARKS.md, runs 1-3: 72 % of a broadcast was that send path,
22 % waking one task per stream). Here a stream is a transport and a few-slot object: the hub
writes each event's bytes, framed once, to every transport in one loop.

How a connection goes:

1. ``FrontProtocol`` counts the connection against its address's cap
   (``max_connections_per_client``) and reads the request head (at most ``MAX_HEADER_BYTES``,
   within Hypercorn's ``keep_alive_timeout``, the same limits Hypercorn applies). A
   connection over the cap, or a head with ambiguous framing (``framing.py``), gets a JSON
   answer with ``Connection: close``.
2. Anything but a body-less ``GET .../events`` (and anything odd: pipelined bytes, an
   upgrade, a head h11 rejects) is handed to Hypercorn with the bytes read so far, and the
   connection is Hypercorn's from then on: keep-alive, HTTP/2, its own error answers. Its
   bytes still pass through a ``Relay``: one request at a time, each head checked as the
   first was (so a smuggled second request never reaches h11), nothing more once the
   client is gone, and the connection dropped when a send stays blocked.
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
import json
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
from hypercorn.events import Event, Updated
from hypercorn.typing import AppWrapper

from ..hub import CLIENT_CLOSED, TransportSink
from ..hub.frames import chunk
from ..metrics import Metrics
from ..web.limits import MAX_HEADER_BYTES, RETRY_AFTER, client_key
from ..web.sse import TAKEOVER, StreamPlan, Takeover
from . import framing

log = logging.getLogger("quart_dl.server.socket_layer")

#: Connections over ``max_connections_per_client`` one address may have waiting for their 503;
#: beyond these a new one is cut at once (no answer), so sockets per address stay bounded.
OVER_CAP_HELD = 16

#: Stream requests running the app at once. A reconnect storm of thousands would otherwise
#: run thousands of requests side by side on one loop: no faster, but each holds its
#: request's working memory (tens of KB) until all are done, and the process keeps that
#: high-water mark. Waiting requests hold only their head.
APP_SLOTS = 32

#: Bytes of pipelined requests a connection may have waiting behind the one Hypercorn is
#: answering; beyond, the socket layer stops reading it (TCP pushes back on the client).
#: Four of the largest heads Hypercorn accepts.
MAX_HELD = 4 * MAX_HEADER_BYTES
#: A connection whose send stays blocked this long past ``send_timeout`` is dropped. The
#: margin is the hub's tick: a stream on Quart's path is then ended by the hub first, with
#: its reason (``send timeout``) in the log and the metrics, not cut here as "client closed".
SEND_TIMEOUT_MARGIN = 1.0

#: Response headers this layer sets itself (framing is the server's business, not the app's).
_FRAMING = {b"content-length", b"transfer-encoding", b"connection"}
#: errors.py's answer to an unexpected exception, for the one the app itself did not catch.
_INTERNAL_ERROR = b'{"error":"internal_error","message":"the server hit an unexpected error; see its log"}'


class FrontDoor:
    """What every connection's protocol shares: the app, Hypercorn's parts, open work."""

    def __init__(
        self,
        asgi_app: Any,
        wrapped: AppWrapper,
        config: Config,
        context: WorkerContext,
        *,
        metrics: Metrics,
        send_timeout: float,
        max_connections_per_client: int,
    ) -> None:
        self.asgi_app = asgi_app
        self.wrapped = wrapped
        self.config = config
        self.context = context
        self.metrics = metrics
        self.send_timeout = send_timeout
        self.max_connections_per_client = max_connections_per_client
        #: Open connections per client key (``limits.client_key``), streams included.
        self.connections: dict[str, int] = {}
        #: Connections over the cap waiting for their head (and their 503), per client key.
        self.over_cap: dict[str, int] = {}
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

    def admit(self, peer: Any) -> tuple[str, bool]:
        """Count a new connection: its client key, and whether it is within the cap.

        One over the cap is held until its head arrives (so that its client reads the 503
        rather than a reset), but at most ``OVER_CAP_HELD`` of them per address: beyond that
        a connection is cut at once, so the cap bounds the sockets one address holds.
        """
        address = _address(peer)
        key = client_key(address[0] if address else None)
        count = self.connections.get(key, 0)
        if count >= self.max_connections_per_client:
            return key, False
        self.connections[key] = count + 1
        return key, True

    def hold_over_cap(self, key: str) -> bool:
        """Hold one more connection over the cap for its 503; False when too many are held."""
        held = self.over_cap.get(key, 0)
        if held >= OVER_CAP_HELD:
            return False
        self.over_cap[key] = held + 1
        return True

    def release_over_cap(self, key: str) -> None:
        """A connection held over the cap closed."""
        held = self.over_cap[key] - 1
        if held:
            self.over_cap[key] = held
        else:
            del self.over_cap[key]

    def release(self, key: str) -> None:
        """A counted connection closed."""
        count = self.connections[key] - 1
        if count:
            self.connections[key] = count
        else:
            del self.connections[key]

    def close_pending(self) -> None:
        """Shutdown: drop connections that have not become a stream or Hypercorn's."""
        for protocol in list(self.pending):
            protocol.abort()


class FrontProtocol(asyncio.Protocol):
    """One accepted connection until it is a stream (then also its protocol) or Hypercorn's."""

    __slots__ = (
        "_buffer",
        "_closed",
        "_disconnected",
        "_door",
        "_key",
        "_over_cap",
        "_plan",
        "_sub",
        "_timer",
        "_transport",
    )

    def __init__(self, door: FrontDoor) -> None:
        self._door = door
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        self._disconnected: asyncio.Future[None] | None = None
        self._plan: StreamPlan | None = None
        self._sub: TransportSink | None = None
        #: The connection's place in its address's count; None when over the cap (refused).
        self._key: str | None = None
        #: The client key of a connection held over the cap for its 503, else None.
        self._over_cap: str | None = None

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        key, within = self._door.admit(transport.get_extra_info("peername"))
        if within:
            self._key = key
        elif self._door.hold_over_cap(key):
            self._over_cap = key
        else:
            self._door.metrics.inc("connections_refused_total", reason="per_client")
            self._closed = True
            transport.abort()
            return
        self._door.pending.add(self)
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._door.config.keep_alive_timeout, self._head_timeout)

    def data_received(self, data: bytes) -> None:
        if self._timer is None:
            return  # the head is in: a stream's client has nothing more to say; ignore it
        self._buffer += data
        end = framing.head_end(self._buffer)
        if end < 0:
            if len(self._buffer) > MAX_HEADER_BYTES:
                if self._key is None:
                    self._refuse(_TOO_MANY_CONNECTIONS, "per_client")
                else:
                    self._hand_off()  # Hypercorn answers an oversized head
            return
        self._stop_timer()
        if self._key is None:
            self._refuse(_TOO_MANY_CONNECTIONS, "per_client")
            return
        head = framing.read_head(self._buffer[:end])
        if isinstance(head, framing.Refusal):
            self._refuse(head, "framing")
            return
        if end != len(self._buffer) or head.body or not _looks_like_stream(self._buffer):
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
        if self._key is not None:
            self._door.release(self._key)
            self._key = None
        if self._over_cap is not None:
            self._door.release_over_cap(self._over_cap)
            self._over_cap = None
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

    def _refuse(self, refusal: framing.Refusal, reason: str) -> None:
        """Answer the first head with a JSON error and close (nothing else is in flight)."""
        transport = self._transport
        assert transport is not None
        self._stop_timer()
        self._door.pending.discard(self)
        self._buffer = bytearray()
        _refuse(self._door, transport, refusal, reason)

    def _hand_off(self) -> None:
        """Give the connection, and the bytes read so far, to Hypercorn (through a Relay)."""
        self._stop_timer()
        self._door.pending.discard(self)
        transport = self._transport
        assert transport is not None
        assert self._key is not None
        key, self._key = self._key, None  # the Relay gives the place back
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=2**16)
        relay = Relay(reader, self._door, key)
        transport.set_protocol(relay)
        relay.connection_made(transport)
        writer = _Writer(transport, relay, reader, loop)
        door = self._door
        server = _Server(relay, door.wrapped, loop, door.config, door.context, door.state, reader, writer)
        door.track(loop.create_task(server.run()))
        relay.start(self._buffer)
        self._buffer = bytearray()

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


class Relay(asyncio.StreamReaderProtocol):
    """The protocol of a connection handed to Hypercorn: its bytes reach Hypercorn's reader
    one request at a time.

    Why one at a time: h11 answers pipelined requests one after the other anyway, but
    everything already in Hypercorn's reader is parsed and answered even after the client
    left (measured: 100 clients pipelining 300 requests each and leaving cost 20 s of CPU and
    44,691 ``socket.send() raised exception`` log lines). Here the next request waits in
    ``_held`` until Hypercorn has answered the current one (``answered``, from its
    ``Updated(idle=True)``), its head checked by ``framing.read_head`` first: an ambiguous
    one is answered with a JSON error and the connection closed, so h11 never reads it. At
    most ``MAX_HELD`` bytes wait; beyond, reading pauses. When the connection is lost, what
    waits is dropped and Hypercorn sees the disconnect; ``_Writer`` drops anything written
    after. A send blocked (asyncio's ``pause_writing``) for ``send_timeout`` aborts the
    connection: a client that pipelines and never reads holds nothing for long. A client's
    EOF closes the connection as soon as nothing is left to answer (Hypercorn would hold it
    for its keep-alive timeout, and with it a place under ``max_connections_per_client``).

    After a request that switches protocols (h2c, WebSocket) the bytes pass unchecked.
    """

    _IDLE, _BODY, _BUSY, _PASS, _STOP = range(5)

    def __init__(self, reader: asyncio.StreamReader, door: FrontDoor, key: str) -> None:
        super().__init__(reader)
        self._door = door
        self._key: str | None = key
        self._relay_transport: asyncio.Transport | None = None
        self._held = bytearray()
        self._mode = self._IDLE
        self._left = 0  # body bytes of the current request still to pass on (Content-Length)
        self._chunked: framing.ChunkedBody | None = None
        self._close_after = False  # close once the current request is answered
        self._eof = False  # the client sent EOF; Hypercorn's reader gets it once _held is empty
        self._client_done = False  # that EOF is in Hypercorn's reader: close once it has answered
        self._reading_paused = False
        self._send_timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._relay_transport = transport
        super().connection_made(transport)

    def start(self, data: bytes | bytearray) -> None:
        """The bytes the socket layer read before the hand-off."""
        self._held += data
        self._pump()

    def data_received(self, data: bytes) -> None:
        if self._mode == self._STOP:
            return
        if self._mode == self._PASS:
            super().data_received(data)
            return
        self._held += data
        self._pump()

    def eof_received(self) -> bool:
        if self._mode == self._IDLE:
            # Nothing in flight and no request can follow: close now. (Hypercorn would hold
            # a half-closed connection for its keep-alive timeout, 5 s, and with it the
            # address's place under max_connections_per_client.)
            self._stop()
            super().eof_received()
            return False
        self._eof = True
        if self._held and self._mode != self._STOP:
            return True  # Hypercorn gets the EOF after the requests still waiting
        self._eof = False
        self._client_done = self._mode == self._BUSY
        return bool(super().eof_received())

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._send_timer is None:
            delay = self._door.send_timeout + SEND_TIMEOUT_MARGIN
            self._send_timer = asyncio.get_running_loop().call_later(delay, self._send_timed_out)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._cancel_send_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop()
        self._cancel_send_timer()
        if self._key is not None:
            self._door.release(self._key)
            self._key = None
        super().connection_lost(exc)

    # -- Hypercorn ---------------------------------------------------------------------------

    def answered(self) -> None:
        """Hypercorn answered the current request and waits for the next one."""
        if self._mode == self._BUSY:
            if self._close_after or self._client_done:
                self._close()
                return
            self._mode = self._IDLE
            self._pump()
        elif self._mode in (self._IDLE, self._BODY):
            # h11 saw the request end before this layer did: the framings disagree (a bug in
            # framing.py), and what h11 has left over was never checked. Cut the connection;
            # counted rather than logged, since a client could repeat it at will.
            log.debug("request framing disagreed with h11; connection dropped")
            self._door.metrics.inc("connections_dropped_total", reason="framing_mismatch")
            self._abort()

    # -- the requests ------------------------------------------------------------------------

    def _pump(self) -> None:
        """Pass on what the current request may: its head once checked, then its body."""
        held = self._held
        while held:
            if self._mode == self._IDLE:
                end = framing.head_end(held)
                if end < 0:
                    if len(held) > MAX_HEADER_BYTES:  # h11 answers 431 to an incomplete head this long
                        self._forward(len(held))
                        self._stop()
                    break
                head = framing.read_head(held[:end])
                if isinstance(head, framing.Refusal):
                    self._refuse(head)
                    return
                self._forward(end)
                if head.switches:
                    self._mode = self._PASS
                    self._forward(len(held))
                    break
                if head.body == framing.CHUNKED:
                    self._chunked = framing.ChunkedBody()
                    self._mode = self._BODY
                elif head.body:
                    self._left = head.body
                    self._mode = self._BODY
                else:
                    self._mode = self._BUSY
            elif self._mode == self._BODY:
                if self._chunked is not None:
                    body = self._chunked
                    taken = body.scan(held, MAX_HEADER_BYTES)
                    self._forward(taken)
                    if body.failed:  # h11 refuses these bytes and closes
                        self._stop()
                        break
                    if not body.done:
                        break
                    self._close_after = body.close_after
                    self._chunked = None
                    self._mode = self._BUSY
                else:
                    taken = min(self._left, len(held))
                    self._forward(taken)
                    self._left -= taken
                    if not self._left:
                        self._mode = self._BUSY
            else:  # BUSY: the next request waits for the answer; PASS/STOP: nothing held
                break
        self._flow()

    def _forward(self, count: int) -> None:
        if count:
            data = bytes(self._held[:count])
            del self._held[:count]
            super().data_received(data)

    def _flow(self) -> None:
        """Pause reading while too much waits; the client's EOF once nothing waits."""
        transport = self._relay_transport
        if transport is None or transport.is_closing():
            return
        # The transport's own state is the truth: the StreamReader underneath pauses and
        # resumes the same transport for its buffer, and may have resumed it since.
        if len(self._held) > MAX_HELD:
            self._reading_paused = True
            if transport.is_reading():
                transport.pause_reading()
        elif self._reading_paused:
            self._reading_paused = False
            if not transport.is_reading():
                transport.resume_reading()
        if self._eof and self._mode == self._IDLE:
            self._close()  # the client is done and the rest of what it sent is no request
            return
        if self._eof and not self._held:
            self._eof = False
            self._client_done = self._mode == self._BUSY
            if not super().eof_received():
                transport.close()

    def _refuse(self, refusal: framing.Refusal) -> None:
        """Hypercorn is idle (the previous request, if any, is answered): answer and close."""
        transport = self._relay_transport
        assert transport is not None
        self._stop()
        _refuse(self._door, transport, refusal, "framing")

    def _stop(self) -> None:
        self._mode = self._STOP
        self._held.clear()

    # -- closing -------------------------------------------------------------------------------

    def _cancel_send_timer(self) -> None:
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None

    def _send_timed_out(self) -> None:
        self._send_timer = None
        log.debug("dropped a connection: a send was blocked for %g s", self._door.send_timeout)
        self._door.metrics.inc("connections_dropped_total", reason="send_timeout")
        self._abort()

    def _abort(self) -> None:
        self._stop()
        if self._relay_transport is not None:
            self._relay_transport.abort()

    def _close(self) -> None:
        self._stop()
        if self._relay_transport is not None:
            self._relay_transport.close()


class _Server(TCPServer):
    """Hypercorn's connection handler, telling the Relay when a request has been answered."""

    def __init__(self, relay: Relay, *args: Any) -> None:
        super().__init__(*args)
        self._relay = relay

    async def protocol_send(self, event: Event) -> None:
        await super().protocol_send(event)
        if isinstance(event, Updated) and event.idle:
            self._relay.answered()


class _Writer(asyncio.StreamWriter):
    """Hypercorn's writer; writes nothing once the connection is closing or lost.

    asyncio counts writes to a lost transport and logs ``socket.send() raised exception.``
    for each one past the fifth: a line per failed send, which is noise for operators.
    """

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self.transport.is_closing():
            super().write(data)


#: The answer to a connection over ``max_connections_per_client``.
_TOO_MANY_CONNECTIONS = framing.Refusal(
    503, "too_many_connections", "this address has too many open connections; close some first"
)


def _refuse(door: FrontDoor, transport: asyncio.Transport, refusal: framing.Refusal, reason: str) -> None:
    """Write ``refusal`` as the app's JSON error (``Connection: close``) and close."""
    log.debug("refused a request (%s): %s", reason, refusal.message)
    door.metrics.inc("connections_refused_total", reason=reason)
    body = json.dumps({"error": refusal.code, "message": refusal.message}, separators=(",", ":")).encode()
    extra = b"content-length: %d\r\nconnection: close\r\n" % len(body)
    if refusal.status == 503:
        extra += b"retry-after: %d\r\n" % RETRY_AFTER
    transport.write(_head(refusal.status, [(b"content-type", b"application/json")], extra) + body)
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
