"""The fan-out: every open stream's sink, each event delivered to all of them in one loop,
and the one heartbeat tick they share.

Why one loop and one tick: an event is encoded once (``Event``) and the same bytes go to
every sink; a stream held by the socket layer gets them written to its transport right in
this loop, with no task per stream (BENCHMARKS.md). One shared tick instead of a timer per
stream wakes only the streams that have been silent for the heartbeat interval, and drops
those whose send has been blocked for ``send_timeout``.

Why routes: the socket layer's whole-library streams are nearly all of them, and a broadcast
is one pass over them. They are kept by what they are sent (the instance they follow, the
protocol, chunked or not), so that what is the same for all of a route (whether the event
concerns it, which of the event's frames) is decided once per route, and the loop over its
streams only checks that a stream is neither ending nor paused and sends (run 8 in
BENCHMARKS.md: the Python per stream went from ~0.45 to ~0.1 µs; the kernel's send is the
rest, ~5-7 µs on this machine). Every other stream (Quart's path, a torrent's stream) goes
through its sink's ``deliver``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

from ..metrics import Metrics
from .frames import HEARTBEAT_COMMENT, Event, heartbeat_event
from .sinks import SEND_TIMEOUT, SERVER_SHUTDOWN, Sink, TransportSink

#: What a route's streams are sent: the instance they follow (None: all), protocol 2,
#: chunked.
RouteKey = tuple[str | None, bool, bool]


class Demand:
    """How many streams are open, for every poller that paces itself by it.

    A signal rather than a callback slot: with several qBittorrent instances each poller
    listens, and none can silently take over another's hook. ``arrived`` runs the listeners
    synchronously, inside ``subscribe``: a first viewer wakes the pollers at once.
    """

    def __init__(self) -> None:
        self.viewers = 0
        self._listeners: list[Callable[[int], None]] = []

    def listen(self, callback: Callable[[int], None]) -> None:
        """Call ``callback(viewers)`` whenever a stream opens."""
        self._listeners.append(callback)

    def arrived(self, viewers: int) -> None:
        """A stream opened; ``viewers`` are open now."""
        self.viewers = viewers
        for callback in self._listeners:
            callback(viewers)

    def left(self, viewers: int) -> None:
        """A stream closed; ``viewers`` are open now."""
        self.viewers = viewers


class _TickHeartbeats:
    """The heartbeats one tick writes: each kind encoded once for all the streams it is due
    to, and counted once (a tick writes thousands when every stream has been quiet; encoding
    and counting each was most of its Python: BENCHMARKS.md, run 8)."""

    __slots__ = ("event", "sent")

    def __init__(self) -> None:
        self.event: bytes | None = None
        self.sent = 0

    def __call__(self, sink: Sink) -> bytes:
        self.sent += 1
        if not sink.heartbeat_as_event:
            return HEARTBEAT_COMMENT
        if self.event is None:
            self.event = heartbeat_event(time.time())
        return self.event


class FanOut:
    """The open streams' sinks; see the module docstring."""

    def __init__(self, *, heartbeat: float, send_timeout: float, metrics: Metrics) -> None:
        self.heartbeat = heartbeat
        self.send_timeout = send_timeout
        self.metrics = metrics
        self.demand = Demand()
        self._sinks: set[Sink] = set()
        #: The socket layer's whole-library streams, by route (insertion-ordered sets).
        self._routes: dict[RouteKey, dict[TransportSink, None]] = {}
        #: Every other stream: each delivered to through its sink's ``deliver``.
        self._others: set[Sink] = set()
        self._ticker: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def count(self) -> int:
        """Open streams."""
        return len(self._sinks)

    @property
    def closing(self) -> bool:
        """True once shutdown began: new streams are refused."""
        return self._closing

    def sinks(self) -> Iterable[Sink]:
        """The open streams (for status and tests)."""
        return tuple(self._sinks)

    def add(self, sink: Sink) -> None:
        """Start delivering to ``sink``; tell the pollers a viewer arrived."""
        self._sinks.add(sink)
        if isinstance(sink, TransportSink) and sink.torrent_hash is None:
            self._routes.setdefault((sink.instance, sink.v2, sink.chunked), {})[sink] = None
        else:
            self._others.add(sink)
        self.demand.arrived(len(self._sinks))

    def remove(self, sink: Sink, reason: str) -> float:
        """Stop delivering to ``sink``; returns how long it was open (seconds)."""
        self._sinks.discard(sink)
        self._others.discard(sink)
        if isinstance(sink, TransportSink):
            key = (sink.instance, sink.v2, sink.chunked)
            route = self._routes.get(key)
            if route is not None:
                route.pop(sink, None)
                if not route:
                    del self._routes[key]
        self.demand.left(len(self._sinks))
        self.metrics.inc("sse_disconnects_total", reason=reason)
        return time.monotonic() - sink.connected_at

    def deliver(self, event: Event) -> None:
        """Give ``event`` to every open stream."""
        now = time.monotonic()
        instance = event.instance
        # Copies: nothing in the loops changes the sets today (a dropped stream is removed
        # later, when its carrier reports the end), and they keep the loops safe if that
        # changes; ~50 µs at 10,000 streams against ~60 ms per broadcast.
        for (follows, v2, chunked), route in list(self._routes.items()):
            if instance is not None and follows is not None and instance != follows:
                continue  # another instance's event
            if v2:
                data = event.chunk_v2 if chunked else event.data_v2
            else:
                data = event.chunk if chunked else event.data
            size = len(data)
            for sink in list(route):
                # TransportSink.put and .deliver, inlined: this line runs once per stream.
                send = sink.send
                if (
                    send is None
                    or sink.unsent  # bytes wait in the transport: after them, through write
                    or sink.sending_since is not None
                    or sink.close_reason is not None
                ):
                    sink.deliver(event, now)  # paused, ending, bytes waiting, or no socket
                    continue
                try:
                    sent = send(data)
                except OSError:  # BlockingIOError included: ``write`` retries, buffers or fails it
                    sent = 0
                if sent != size:
                    sink.transport.write(data[sent:])
                sink.last_sent = now
        for other in list(self._others):
            other.deliver(event, now)

    # -- heartbeats and shutdown ---------------------------------------------------------

    def start(self) -> None:
        """Start the shared heartbeat tick."""
        if self._ticker is None:
            self._ticker = asyncio.create_task(self._tick(), name="quart-dl heartbeat")

    async def _tick(self) -> None:
        period = min(1.0, self.heartbeat / 4)
        while True:
            await asyncio.sleep(period)
            self.beat(time.monotonic())

    def beat(self, now: float) -> int:
        """Heartbeat every stream silent for a heartbeat interval; returns how many.

        The same pass drops a stream whose send has been blocked for ``send_timeout``: a
        client that stopped reading fills the socket buffers (megabytes) long before its
        queue overflows when events are small, and would hold its place forever.
        """
        due = 0
        frames = _TickHeartbeats()
        for sink in list(self._sinks):
            if sink.close_reason is not None:
                continue
            if sink.sending_since is not None and now - sink.sending_since >= self.send_timeout:
                sink.close(SEND_TIMEOUT)
                continue
            if sink.heartbeat(now, self.heartbeat, frames):
                due += 1
        if frames.sent:
            self.metrics.inc("heartbeats_sent_total", frames.sent)
        return due

    def heartbeat_frame(self, sink: Sink) -> bytes:
        """The heartbeat this stream asked for (comment, or event for browsers)."""
        self.metrics.inc("heartbeats_sent_total")
        return heartbeat_event(time.time()) if sink.heartbeat_as_event else HEARTBEAT_COMMENT

    def close_all(self, reason: str = SERVER_SHUTDOWN) -> None:
        """End every stream (shutdown): each carrier ends its own and reports back."""
        self._closing = True
        for sink in list(self._sinks):
            sink.close(reason)

    async def stop(self) -> None:
        """Stop the tick; used at shutdown after ``close_all``."""
        if self._ticker is not None:
            self._ticker.cancel()
            try:
                await self._ticker
            except asyncio.CancelledError:
                pass
            self._ticker = None
