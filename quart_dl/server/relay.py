"""The Relay: a connection Hypercorn serves, one request at a time, until a stream is asked for.

``hand_to_hypercorn`` gives a connection to Hypercorn's own handler (``hypercorn_internals``)
behind a ``Relay``. At every request boundary (Hypercorn answered and waits) the next head is
checked; when it asks for a stream, the Relay takes the connection back from Hypercorn and
gives it to the socket layer (``FrontDoor.take_back``), which runs the app for it as for the
first request of a fresh connection: the same checks, then the fast path. That is how
browsers, Home Assistant's shared session and proxies with upstream keep-alive, which all
reuse a connection that has served something else, get the fast path (issue #12).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from ..web.limits import MAX_HEADER_BYTES
from . import framing
from .answers import looks_like_stream, refuse
from .hypercorn_internals import GuardedWriter, HypercornConnection
from .slots import Slot

if TYPE_CHECKING:
    from .socket_layer import FrontDoor

log = logging.getLogger("quart_dl.server.socket_layer")

#: Bytes of pipelined requests a connection may have waiting behind the one Hypercorn is
#: answering; beyond, the socket layer stops reading it (TCP pushes back on the client).
#: Four of the largest heads Hypercorn accepts.
MAX_HELD = 4 * MAX_HEADER_BYTES
#: A connection whose send stays blocked this long past ``send_timeout`` is dropped. The
#: margin is the hub's tick: a stream on Quart's path is then ended by the hub first, with
#: its reason (``send timeout``) in the log and the metrics, not cut here as "client closed".
SEND_TIMEOUT_MARGIN = 1.0


def hand_to_hypercorn(
    door: FrontDoor,
    transport: asyncio.Transport,
    key: str,
    data: bytes | bytearray,
    *,
    at_boundary: bool = False,
    slot: Slot | None = None,
) -> None:
    """Give the connection, and the bytes read so far, to Hypercorn (through a Relay).

    ``at_boundary``: ``data`` starts a new request the socket layer has not looked at (after
    its error answer to a stream request on a keep-alive connection), so a stream asked for
    there may be taken back again; otherwise its first request is the one the socket layer
    declined, which is Hypercorn's. ``slot``: the connection's Hypercorn slot (``slots.py``),
    given back when the first request is answered or the connection is lost or taken back.
    """
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**16)
    relay = Relay(reader, door, key)
    relay.first_is_hypercorns = not at_boundary
    relay.slot = slot
    transport.set_protocol(relay)
    relay.connection_made(transport)
    writer = GuardedWriter(transport, relay, reader, loop)
    server = HypercornConnection(
        relay.answered, door.wrapped, loop, door.config, door.context, door.state, reader, writer
    )
    relay.hypercorn = server
    door.track(loop.create_task(server.run()))
    relay.start(data)


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

    A body-less stream request at a boundary, with nothing behind it, is not passed on: the
    connection is taken back (``_take_back``) and carried by the socket layer from then on.
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
        #: The first request is the one the socket layer declined: never taken back.
        self.first_is_hypercorns = True
        #: The connection's Hypercorn slot while its first request runs (``slots.py``).
        self.slot: Slot | None = None
        #: Hypercorn's handler of this connection (set by ``hand_to_hypercorn``).
        self.hypercorn: HypercornConnection | None = None

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
        self._release_slot()
        if self._key is not None:
            self._door.release(self._key)
            self._key = None
        super().connection_lost(exc)

    # -- Hypercorn ---------------------------------------------------------------------------

    def answered(self) -> None:
        """Hypercorn answered the current request and waits for the next one."""
        self._release_slot()
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

    def _release_slot(self) -> None:
        slot, self.slot = self.slot, None
        if slot is not None:
            slot.release()

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
                if end == len(held) and not head.body and not head.switches and self._may_take_back(held):
                    self._take_back()
                    return
                self.first_is_hypercorns = False
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

    def _may_take_back(self, held: bytearray) -> bool:
        """Whether the request in ``held`` (whole, body-less) is a stream to take back for.

        Not while a send is blocked (the socket layer's protocol would never hear of it), nor
        after the client's EOF (no stream for a client that is done), nor when the door does
        not take streams (the forced fallback of tests).
        """
        return (
            not self.first_is_hypercorns
            and self._door.takes_streams
            and self._send_timer is None
            and not self._eof
            and self.hypercorn is not None
            and looks_like_stream(held)
        )

    def _take_back(self) -> None:
        """Take the connection back from Hypercorn at this boundary, for the socket layer.

        Hypercorn waits for its next request; it is let go (its writer detached so that its
        way out, EOF and close, does not touch the connection; its keep-alive wait ended) and
        told EOF, on which it ends. The connection's place under the per-address cap goes
        with it.
        """
        transport = self._relay_transport
        hypercorn = self.hypercorn
        assert transport is not None
        assert hypercorn is not None
        assert self._key is not None
        data = bytes(self._held)
        key, self._key = self._key, None
        self._stop()
        self._cancel_send_timer()
        self._release_slot()
        hypercorn.let_go()
        super().eof_received()  # Hypercorn's reader: EOF, so its handler ends
        if not transport.is_reading():
            transport.resume_reading()
        self._door.take_back(transport, key, data)

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
        refuse(self._door, transport, refusal, "framing")

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
