"""Where one stream's events go: a sink per stream, one per carrier, each ending itself.

Two carriers (docs/streams.md tells every way a stream ends on each):

- ``TransportSink``: the socket layer (``socket_layer.py``) holds the connection. The fan-out writes
  each event's bytes, framed once as an HTTP chunk, straight to the transport: no task to
  wake, no framework between the hub and the socket (the fan-out benchmark's bound,
  BENCHMARKS.md). asyncio "pauses" a transport that stops draining; events written while
  paused count against ``queue_size`` like queued ones.
- ``QueueSink``: Quart's path (a stream pipelined behind other requests, Quart's test
  client, or every stream when Hypercorn's internals are not the checked ones; see
  docs/streams.md). Events wait in a bounded queue for the stream's handler task (``sse.py``),
  which an ``asyncio.Event`` wakes.

Each sink knows how to shut itself down (as uvicorn's protocols do): ``close(reason)`` ends
the stream on its carrier; the carrier then reports the end (``connection_lost``, or the
handler's ``finally``), which unsubscribes it. The fan-out never needs to know which it is.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .frames import LAST_CHUNK, Event, chunk
from .selector_transport import Send, direct_send

if TYPE_CHECKING:
    from asyncio import Transport
    from collections.abc import Sized

log = logging.getLogger("quart_dl.hub")

#: Why a stream ended, as logged and counted in /metrics (docs/streams.md).
CLIENT_CLOSED = "client closed"
SERVER_SHUTDOWN = "server shutdown"
OVERFLOW = "overflow"
SEND_TIMEOUT = "send timeout"
#: Endings that mean the client is not reading: cut it, never wait on it.
_STUCK = (OVERFLOW, SEND_TIMEOUT)

HeartbeatFrame = Callable[["Sink"], bytes]


class Sink(ABC):
    """One open stream: who it is for, what it filters, and where it stands."""

    __slots__ = (
        "client_id",
        "close_reason",
        "connected_at",
        "heartbeat_as_event",
        "instance",
        "last_sent",
        "queue_size",
        "remote",
        "sending_since",
        "since_seq",
        "torrent_hash",
        "v2",
    )

    def __init__(
        self,
        client_id: str,
        remote: str,
        torrent_hash: str | None,
        heartbeat_as_event: bool,
        now: float,
        queue_size: int,
        *,
        instance: str | None = None,
        v2: bool = False,
    ) -> None:
        self.client_id = client_id
        self.remote = remote
        self.torrent_hash = torrent_hash
        #: The one instance this stream follows (None: every instance, protocol 2 only).
        self.instance = instance
        #: Protocol 2 frames (each event naming its instance), else protocol 1's.
        self.v2 = v2
        self.heartbeat_as_event = heartbeat_as_event
        self.queue_size = queue_size
        #: The newest event the opening (snapshot or replay) already covered.
        self.since_seq = 0
        self.connected_at = now
        self.last_sent = now
        #: Since when a send has been blocked (a queued stream's send in progress, or a
        #: paused transport), else None: the heartbeat tick drops it after ``send_timeout``.
        self.sending_since: float | None = None
        #: Set once the stream is ending; nothing more is sent to it.
        self.close_reason: str | None = None

    @abstractmethod
    def deliver(self, event: Event, now: float) -> None:
        """Send ``event`` (if it concerns this stream); overflow ends the stream."""

    @abstractmethod
    def heartbeat(self, now: float, heartbeat: float, frame: HeartbeatFrame) -> bool:
        """Send a heartbeat if silent for ``heartbeat`` seconds; True if one was due."""

    @abstractmethod
    def close(self, reason: str) -> None:
        """End the stream from the server's side, even when it is blocked sending."""

    def concerns(self, event: Event) -> bool:
        """Whether ``event`` is for this stream's instance (a v1 stream follows one)."""
        return self.instance is None or event.instance is None or event.instance == self.instance

    def _frame(self, event: Event) -> bytes | None:
        if not self.concerns(event):
            return None
        if self.torrent_hash is None:
            return event.data_v2 if self.v2 else event.data
        return event.for_torrent(self.torrent_hash)


class TransportSink(Sink):
    """A stream the socket layer holds: events are written straight to its transport.

    A whole-library stream is delivered to by the fan-out's own loop (``FanOut.deliver``),
    which sends on ``send`` itself while the transport's ``unsent`` is empty
    (``selector_transport.py``); ``deliver`` here is the path for everything else (a
    per-torrent stream, a paused or ending one) and what the fan-out's loop falls back to.
    """

    __slots__ = ("backlog", "chunked", "send", "transport", "unsent")

    def __init__(
        self,
        client_id: str,
        remote: str,
        torrent_hash: str | None,
        heartbeat_as_event: bool,
        now: float,
        queue_size: int,
        transport: Transport,
        chunked: bool = True,
        *,
        instance: str | None = None,
        v2: bool = False,
    ) -> None:
        super().__init__(
            client_id, remote, torrent_hash, heartbeat_as_event, now, queue_size, instance=instance, v2=v2
        )
        self.transport = transport
        #: Frames go out as HTTP/1.1 chunks (else as they are: HTTP/1.0, ended by closing).
        self.chunked = chunked
        #: Events written since the transport paused (it stopped draining).
        self.backlog = 0
        direct = direct_send(transport)
        #: The socket's own ``send``, and the bytes the transport still holds unsent; None
        #: when the transport is not asyncio's plain TCP one (``write`` is used then).
        self.send: Send | None = direct[0] if direct is not None else None
        self.unsent: Sized | None = direct[1] if direct is not None else None

    def deliver(self, event: Event, now: float) -> None:
        if self.close_reason is not None:
            return
        instance = event.instance
        if instance is not None and self.instance is not None and instance != self.instance:
            return  # another instance's (inlined ``concerns``: this loop runs per stream)
        if self.torrent_hash is None:
            if self.v2:
                data = event.chunk_v2 if self.chunked else event.data_v2
            else:
                data = event.chunk if self.chunked else event.data  # framed once for all
        else:
            frame = event.for_torrent(self.torrent_hash)
            if frame is None:
                return
            data = chunk(frame) if self.chunked else frame
        if self.sending_since is not None:
            self.backlog += 1
            if self.backlog > self.queue_size:
                self.close(OVERFLOW)
                return
        self.put(data)
        self.last_sent = now

    def write(self, data: bytes) -> None:
        """Put one or more frames on the socket, framed as this stream needs."""
        self.put(chunk(data) if self.chunked else data)

    def put(self, data: bytes) -> None:
        """Write ``data``: on the socket itself when nothing waits in the transport, and what
        the socket does not take (or every byte, when something waits) through ``write``.

        The fan-out's loop inlines this for whole-library streams; it is here for them all.
        """
        send = self.send
        if send is None or self.unsent:
            self.transport.write(data)
            return
        try:
            sent = send(data)
        except OSError:  # BlockingIOError included: ``write`` retries, buffers or fails it
            sent = 0
        if sent != len(data):
            self.transport.write(data[sent:])

    def lost(self) -> None:
        """The client ended its side (EOF): nothing more is sent; ``connection_lost`` follows."""
        if self.close_reason is None:
            self.close_reason = CLIENT_CLOSED

    def paused(self, now: float) -> None:
        """asyncio paused writing: the client stopped draining."""
        if self.sending_since is None:
            self.sending_since = now
            self.backlog = 0

    def resumed(self) -> None:
        """The client drains again."""
        self.sending_since = None
        self.backlog = 0

    def heartbeat(self, now: float, heartbeat: float, frame: HeartbeatFrame) -> bool:
        # Written here and now; a paused transport has bytes in flight already.
        if self.sending_since is None and now - self.last_sent >= heartbeat:
            self.write(frame(self))
            self.last_sent = now
            log.debug("%s heartbeat", self.client_id)
            return True
        return False

    def close(self, reason: str) -> None:
        if self.close_reason is not None:
            return  # already ending: its connection_lost is on its way
        self.close_reason = reason
        # The protocol's connection_lost unsubscribes and logs, with this reason.
        if reason in _STUCK:
            self.transport.abort()
            return
        if self.chunked:
            self.transport.write(LAST_CHUNK)
        if self.transport.get_write_buffer_size():
            self.transport.abort()  # a client that is not reading: do not wait on it
        else:
            self.transport.close()


class QueueSink(Sink):
    """A stream on Quart's path: a bounded queue its handler task drains (``sse.py``)."""

    __slots__ = ("heartbeat_due", "queue", "task", "wake")

    def __init__(
        self,
        client_id: str,
        remote: str,
        torrent_hash: str | None,
        heartbeat_as_event: bool,
        now: float,
        queue_size: int,
        *,
        instance: str | None = None,
        v2: bool = False,
    ) -> None:
        super().__init__(
            client_id, remote, torrent_hash, heartbeat_as_event, now, queue_size, instance=instance, v2=v2
        )
        self.queue: deque[tuple[int, bytes]] = deque()
        self.wake = asyncio.Event()
        self.heartbeat_due = False
        #: The handler task, cancelled when the stream is dropped while blocked in a send.
        self.task: asyncio.Task[Any] | None = None

    def deliver(self, event: Event, now: float) -> None:
        if self.close_reason is not None:
            return
        data = self._frame(event)
        if data is None:
            return
        if len(self.queue) >= self.queue_size:
            self.close(OVERFLOW)
            return
        self.queue.append((event.seq, data))
        self.wake.set()

    def drain(self) -> list[bytes]:
        """Take every queued frame the snapshot or replay has not already covered."""
        out = [data for seq, data in self.queue if seq > self.since_seq]
        self.queue.clear()
        return out

    def heartbeat(self, now: float, heartbeat: float, frame: HeartbeatFrame) -> bool:
        # Marked due and woken: the handler task sends it.
        if not self.heartbeat_due and now - self.last_sent >= heartbeat:
            self.heartbeat_due = True
            self.wake.set()
            return True
        return False

    def close(self, reason: str) -> None:
        if self.close_reason is None:
            self.close_reason = reason
        self.queue.clear()
        self.wake.set()
        if reason in _STUCK and self.task is not None and not self.task.done():
            # The handler may be stuck in send() to a client that stopped reading: only a
            # cancellation reaches it there. Quart treats that as a disconnect.
            self.task.cancel()
