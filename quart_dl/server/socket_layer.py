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
   upgrade, a head h11 rejects) is handed to Hypercorn with the bytes read so far, once one
   of ``HYPERCORN_SLOTS`` is free (``slots.py``): keep-alive, HTTP/2, its own error
   answers. Its bytes still pass through a ``Relay``: one request at a time, each head
   checked as the first was (so a smuggled second request never reaches h11), nothing more
   once the client is gone, and the connection dropped when a send stays blocked.
3. A stream request is run through the whole Quart app once, as Hypercorn would run it, with
   a ``Takeover`` in the ASGI extensions: auth, CORS, caps and validation answer as for any
   request. An error answer is written with ``Connection: close`` (on a fresh connection).
   When the route admitted the stream (``sse.StreamPlan``, through ``takeover.py``), this
   layer writes the app's head and the opening, and the hub holds the transport. asyncio's
   flow control tells the hub when a client stops reading (``pause_writing``);
   ``connection_lost`` ends the stream.
4. A stream requested later on a keep-alive connection Hypercorn serves (a browser's, Home
   Assistant's shared session, a proxy's upstream pool) is seen by the ``Relay`` at the
   request boundary (``relay.py``): it takes the connection back from Hypercorn and gives it
   to a new ``FrontProtocol`` (``FrontDoor.take_back``), which goes on from step 1's head as
   for a fresh connection. Every check is the app's, run the same way. An error answer there
   keeps the connection alive, and it goes back to Hypercorn.

The modules: ``answers.py`` (what this layer writes itself), ``relay.py`` (connections
Hypercorn serves), ``slots.py``, ``hypercorn_internals.py`` (all this layer uses of Hypercorn beyond its
public API, checked at start-up), ``takeover.py`` (the contract with the routes).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import h11
from hypercorn.typing import AppWrapper

from ..hub import CLIENT_CLOSED, TransportSink
from ..hub.frames import chunk
from ..metrics import Metrics
from ..web.limits import MAX_HEADER_BYTES, client_key
from . import framing
from .answers import INTERNAL_ERROR, TOO_MANY_CONNECTIONS, address, head, looks_like_stream, refuse
from .hypercorn_internals import Config, WorkerContext
from .relay import MAX_HELD, SEND_TIMEOUT_MARGIN, Relay, hand_to_hypercorn
from .slots import HYPERCORN_SLOTS, Slot, Slots
from .takeover import TAKEOVER, StreamOffer, Takeover

log = logging.getLogger("quart_dl.server.socket_layer")

#: Connections over ``max_connections_per_client`` one address may have waiting for their 503;
#: beyond these a new one is cut at once (no answer), so sockets per address stay bounded.
OVER_CAP_HELD = 16

#: Stream requests running the app at once. A reconnect storm of thousands would otherwise
#: run thousands of requests side by side on one loop: no faster, but each holds its
#: request's working memory (tens of KB) until all are done, and the process keeps that
#: high-water mark. Waiting requests hold only their head.
APP_SLOTS = 32

__all__ = [
    "APP_SLOTS",
    "MAX_HELD",
    "OVER_CAP_HELD",
    "SEND_TIMEOUT_MARGIN",
    "FrontDoor",
    "FrontProtocol",
    "Relay",
]


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
        #: Connections starting with Hypercorn at once (``slots.py``).
        self.hypercorn_slots = Slots(HYPERCORN_SLOTS)
        #: Whether a stream asked for on a connection Hypercorn serves is taken back for the
        #: fast path (``relay.py``); off only to test Quart's path on a real server.
        self.takes_streams = True

    def protocol(self) -> FrontProtocol:
        """The protocol factory for ``loop.create_server``."""
        return FrontProtocol(self)

    def take_back(self, transport: asyncio.Transport, key: str, data: bytes) -> None:
        """A connection Hypercorn served, taken back at a request boundary for a stream.

        ``data`` is the stream request's head; ``key`` the connection's counted place.
        """
        self.metrics.inc("connections_taken_back_total")
        protocol = self.protocol()
        transport.set_protocol(protocol)
        protocol.adopt(transport, key)
        protocol.data_received(data)

    def track(self, task: asyncio.Task[Any]) -> None:
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def admit(self, peer: Any) -> tuple[str, bool]:
        """Count a new connection: its client key, and whether it is within the cap.

        One over the cap is held until its head arrives (so that its client reads the 503
        rather than a reset), but at most ``OVER_CAP_HELD`` of them per address: beyond that
        a connection is cut at once, so the cap bounds the sockets one address holds.
        """
        name = address(peer)
        key = client_key(name[0] if name else None)
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
        "_reused",
        "_start",
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
        self._plan: StreamOffer | None = None
        self._sub: TransportSink | None = None
        #: The connection's place in its address's count; None when over the cap (refused).
        self._key: str | None = None
        #: The client key of a connection held over the cap for its 503, else None.
        self._over_cap: str | None = None
        #: Taken back from Hypercorn (``adopt``): an error answer keeps the connection alive.
        self._reused = False
        #: Waiting for a Hypercorn slot: the callback that hands the connection over.
        self._start: Callable[[Slot], None] | None = None

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

    def adopt(self, transport: asyncio.Transport, key: str) -> None:
        """Start on a connection taken back from Hypercorn, already counted under ``key``."""
        self._transport = transport
        self._key = key
        self._reused = True
        self._door.pending.add(self)
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._door.config.keep_alive_timeout, self._head_timeout)

    def data_received(self, data: bytes) -> None:
        if self._start is not None:  # waiting for a Hypercorn slot: keep what comes, bounded
            self._buffer += data
            if len(self._buffer) > MAX_HELD and self._transport is not None:
                self._transport.pause_reading()
            return
        if self._timer is None:
            if self._reused and self._plan is None and not self._closed:
                # The app is deciding on a stream asked for on a keep-alive connection: what
                # follows is the client's next request, if the answer is an error (kept for
                # Hypercorn, bounded as the Relay bounds it).
                self._buffer += data
                if len(self._buffer) > MAX_HELD and self._transport is not None:
                    self._transport.pause_reading()
            return  # a stream's client has nothing more to say; ignore it
        self._buffer += data
        end = framing.head_end(self._buffer)
        if end < 0:
            if len(self._buffer) > MAX_HEADER_BYTES:
                if self._key is None:
                    self._refuse(TOO_MANY_CONNECTIONS, "per_client")
                else:
                    self._hand_off()  # Hypercorn answers an oversized head
            return
        self._stop_timer()
        if self._key is None:
            self._refuse(TOO_MANY_CONNECTIONS, "per_client")
            return
        parsed = framing.read_head(self._buffer[:end])
        if isinstance(parsed, framing.Refusal):
            self._refuse(parsed, "framing")
            return
        if end != len(self._buffer) or parsed.body or not looks_like_stream(self._buffer):
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
        if self._sub is not None:
            # asyncio closes the transport now and drops what is written to it; the fan-out,
            # which may send on the socket itself, must stop too (``TransportSink.lost``).
            self._sub.lost()
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
        if self._start is not None:
            self._door.hypercorn_slots.forget(self._start)
            self._start = None
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
        refuse(self._door, transport, refusal, reason)

    def _hand_off(self) -> None:
        """Give the connection, and the bytes read so far, to Hypercorn (through a Relay),
        once a Hypercorn slot is free (``slots.py``); until then it stays pending."""
        self._stop_timer()
        self._start = self._started
        self._door.hypercorn_slots.take(self._started)

    def _started(self, slot: Slot) -> None:
        self._start = None
        self._door.pending.discard(self)
        transport = self._transport
        assert transport is not None
        assert self._key is not None
        key, self._key = self._key, None  # the Relay gives the place back
        data, self._buffer = self._buffer, bytearray()
        if not transport.is_reading():
            transport.resume_reading()
        hand_to_hypercorn(self._door, transport, key, data, slot=slot)

    def _stream_scope(self, request_head: bytes) -> dict[str, Any] | None:
        """The ASGI scope Hypercorn would build for this head, or None to let Hypercorn judge."""
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
        conn.receive_data(request_head)
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
            "client": address(transport.get_extra_info("peername")),
            "server": address(transport.get_extra_info("sockname")),
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
                plan.release()
            return
        transport = self._transport
        assert transport is not None
        http10 = scope["http_version"] == "1.0"
        if plan is not None and start.get("status") == 200:
            self._plan = plan
            stream_head = head(
                200, start.get("headers", ()), b"" if http10 else b"transfer-encoding: chunked\r\n"
            )
            sub, opening = plan.open_transport(transport, chunked=not http10)
            self._sub = sub
            transport.write(stream_head + (opening if http10 else chunk(opening)))
            return
        if plan is not None:
            plan.release()
        if not start:
            status, headers, content = 500, [(b"content-type", b"application/json")], INTERNAL_ERROR
        else:
            status, headers, content = start["status"], start.get("headers", ()), b"".join(body)
        if self._reused and _keeps_alive(scope["headers"], headers) and not http10:
            # Asked for on a keep-alive connection: the client may go on using it, as it could
            # had Hypercorn answered. The connection goes back to Hypercorn.
            transport.write(head(status, headers, b"content-length: %d\r\n" % len(content)) + content)
            key, self._key = self._key, None
            assert key is not None
            data, self._buffer = self._buffer, bytearray()
            if not transport.is_reading():
                transport.resume_reading()
            hand_to_hypercorn(self._door, transport, key, data, at_boundary=True)
            return
        extra = b"content-length: %d\r\nconnection: close\r\n" % len(content)
        transport.write(head(status, headers, extra) + content)
        transport.close()


def _keeps_alive(request_headers: Any, response_headers: Any) -> bool:
    """Neither the request nor the app's answer says ``Connection: close``."""
    for name, value in (*request_headers, *response_headers):
        if bytes(name).lower() == b"connection" and b"close" in bytes(value).lower():
            return False
    return True
