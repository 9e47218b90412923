"""The event hub: the published view, the replay buffer, and one bounded queue per subscriber.

Why it is shaped this way:

- The hub owns the *published* view (torrents, status, transfer as of the last event). A
  snapshot is taken from it, never from the poller's working table, so a snapshot and the
  diffs that follow it always line up.
- ``subscribe`` registers the subscriber and takes its snapshot in one synchronous step (no
  ``await`` in between). ``publish`` is synchronous too, so no event can fall between the
  two: a change landing while a client connects is neither lost nor applied twice. The
  stream still drops queued events whose ``seq`` the snapshot already covers, as a guard.
- An event is encoded once (``Event``) and the same bytes object goes to every queue.
- Queues are bounded. A subscriber that falls ``queue_size`` events behind is dropped (its
  handler task is cancelled, which also frees a send blocked on a client that stopped
  reading); it resumes with ``Last-Event-ID`` from the replay buffer or a snapshot.
- One shared heartbeat tick for all subscribers instead of a timer per stream: a stream that
  has been silent for the heartbeat interval is woken with a heartbeat.
- A stream comes in one of two shapes. Held by the socket layer (``front.py``; every stream
  opened on a fresh connection of the real server), it is a transport: ``publish`` writes the
  event's bytes, framed once as an HTTP chunk, to every such transport in one loop, with no
  task to wake and no framework between the hub and the socket (the fan-out benchmark's
  bound, BENCHMARKS.md). A transport that stops draining is "paused" by asyncio; events
  written while paused count against ``queue_size`` like queued ones. Otherwise (a stream
  on a connection Hypercorn already served, or Quart's test client) it is a queue and an
  ``asyncio.Event`` that the stream's handler task waits on (``sse.py``).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from asyncio import Transport

from .events import HEARTBEAT_COMMENT, LAST_CHUNK, PROTOCOL_VERSION, Event, chunk, frame, heartbeat_event
from .metrics import Metrics
from .status import InstanceStatus
from .torrents import ChangeSet, Record

log = logging.getLogger("quart_dl.hub")

#: Disconnect reasons, as logged and counted in /metrics.
CLIENT_CLOSED = "client closed"
SERVER_SHUTDOWN = "server shutdown"
OVERFLOW = "overflow"
SEND_TIMEOUT = "send timeout"


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


def new_epoch() -> str:
    """A per-process epoch: ids from an earlier run can never be taken for current ones."""
    return secrets.token_hex(4)


class Subscriber:
    """One open stream: where its frames go (a transport, or a queue), and its state."""

    __slots__ = (
        "backlog",
        "chunked",
        "client_id",
        "close_reason",
        "connected_at",
        "heartbeat_as_event",
        "heartbeat_due",
        "last_sent",
        "queue",
        "remote",
        "sending_since",
        "since_seq",
        "task",
        "torrent_hash",
        "transport",
        "wake",
    )

    def __init__(
        self,
        client_id: str,
        remote: str,
        torrent_hash: str | None,
        heartbeat_as_event: bool,
        now: float,
        transport: Transport | None = None,
        chunked: bool = True,
    ) -> None:
        self.client_id = client_id
        self.remote = remote
        self.torrent_hash = torrent_hash
        self.heartbeat_as_event = heartbeat_as_event
        #: Written to directly by the hub (socket layer); None for a queued stream.
        self.transport = transport
        #: Frames go out as HTTP/1.1 chunks (else as they are: HTTP/1.0, ended by closing).
        self.chunked = chunked
        #: Events written since the transport paused (it stopped draining).
        self.backlog = 0
        # A queued stream's queue and the event its task waits on; a transport needs neither
        # (and 10,000 idle streams are cheaper without them).
        self.queue: deque[tuple[int, bytes]] = deque() if transport is None else _NO_QUEUE
        self.wake = asyncio.Event() if transport is None else _NO_WAKE
        self.since_seq = 0
        self.connected_at = now
        self.last_sent = now
        self.heartbeat_due = False
        #: Since when a send has been blocked (a queued stream's send in progress, or a
        #: paused transport), else None.
        self.sending_since: float | None = None
        self.close_reason: str | None = None
        self.task: asyncio.Task[Any] | None = None

    def drain(self) -> list[bytes]:
        """Take every queued frame the snapshot or replay has not already covered."""
        out = [data for seq, data in self.queue if seq > self.since_seq]
        self.queue.clear()
        return out

    def write(self, data: bytes) -> None:
        """Put one or more frames on a transport stream's socket, framed as it needs."""
        assert self.transport is not None
        self.transport.write(chunk(data) if self.chunked else data)


class _NoWake(asyncio.Event):
    """The ``wake`` of a transport stream: nothing waits on it, setting it does nothing."""

    def set(self) -> None:
        pass


_NO_QUEUE: deque[tuple[int, bytes]] = deque(maxlen=0)
_NO_WAKE = _NoWake()


class Hub:
    """Fans events out to subscribers; see the module docstring for the guarantees."""

    def __init__(
        self,
        *,
        heartbeat: float = 15.0,
        queue_size: int = 256,
        send_timeout: float = 30.0,
        replay_size: int = 2048,
        metrics: Metrics | None = None,
        epoch: str | None = None,
    ) -> None:
        self.epoch = epoch or new_epoch()
        self.heartbeat = heartbeat
        self.queue_size = queue_size
        self.send_timeout = send_timeout
        self.metrics = metrics or Metrics()
        self.seq = 0
        self.torrents: dict[str, Record] = {}
        #: The status record of the instance this hub publishes (``InstanceStatus.record``):
        #: the instance keeps it current, ``publish_status`` announces its visible changes.
        self.status: Record = InstanceStatus().record
        self.transfer: Record = {"dl_speed": 0, "up_speed": 0, "dl_total": 0, "up_total": 0}
        self._buffer: deque[Event] = deque(maxlen=replay_size)
        self._subscribers: set[Subscriber] = set()
        self._ids = itertools.count(1)
        self._snapshot_cache: tuple[int, bytes] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._closing = False
        self.demand = Demand()

    # -- the published view ------------------------------------------------------------

    @property
    def last_event_id(self) -> str:
        """Id of the newest event (``<epoch>-0`` before the first)."""
        return f"{self.epoch}-{self.seq}"

    @property
    def client_count(self) -> int:
        """Open streams."""
        return len(self._subscribers)

    def seed(self, torrents: dict[str, Record]) -> None:
        """Start the view from what the store last saw (before any event is published)."""
        self.torrents = {h: dict(r) for h, r in torrents.items()}

    def publish_changes(self, changes: ChangeSet) -> Event | None:
        """Apply a change set to the view and publish it as a ``diff`` event."""
        if not changes:
            return None
        for torrent_hash, delta in changes.changed.items():
            current = self.torrents.get(torrent_hash)
            if current is None:
                self.torrents[torrent_hash] = dict(delta)
            else:
                current.update(delta)
        for torrent_hash in changes.removed:
            self.torrents.pop(torrent_hash, None)
        if changes.transfer is not None:
            self.transfer = dict(changes.transfer)
        return self._publish("diff", changes.as_event())

    def watch_status(self, record: Record) -> None:
        """Show ``record`` (an instance's live status) in snapshots and REST answers."""
        self.status = record

    def publish_status(self, record: Record) -> Event:
        """Announce a visible change of the status (the instance decided it is one)."""
        self.status = record
        return self._publish("status", dict(record))

    def _publish(self, kind: str, payload: dict[str, Any]) -> Event:
        self.seq += 1
        event = Event(self.seq, self.epoch, kind, payload)
        self._buffer.append(event)
        self.metrics.inc("events_published_total", kind=kind)
        now = time.monotonic()
        for sub in list(self._subscribers):
            if sub.close_reason is not None:
                continue
            if sub.torrent_hash is None:
                data: bytes | None = event.data
            else:
                data = event.for_torrent(sub.torrent_hash)
                if data is None:
                    continue
            transport = sub.transport
            if transport is not None:
                if sub.sending_since is not None:
                    sub.backlog += 1
                    if sub.backlog > self.queue_size:
                        self._drop(sub, OVERFLOW)
                        continue
                if not sub.chunked:
                    transport.write(data)  # type: ignore[arg-type]
                elif sub.torrent_hash is None:
                    transport.write(event.chunk)
                else:
                    transport.write(chunk(data))  # type: ignore[arg-type]
                sub.last_sent = now
                continue
            if len(sub.queue) >= self.queue_size:
                self._drop(sub, OVERFLOW)
                continue
            sub.queue.append((event.seq, data))  # type: ignore[arg-type]
            sub.wake.set()
        return event

    # -- subscribing ---------------------------------------------------------------------

    def subscribe(
        self,
        *,
        remote: str = "-",
        torrent_hash: str | None = None,
        last_event_id: str | None = None,
        heartbeat_as_event: bool = False,
        transport: Transport | None = None,
        chunked: bool = True,
    ) -> tuple[Subscriber, list[bytes], str]:
        """Register a stream; return it, its opening frames, and how it was opened.

        The opening is a replay of the missed events when ``last_event_id`` is from this
        process and still covered by the buffer, else a snapshot. The third value says which
        (``replay`` or ``snapshot``), for the log. With ``transport``, the hub writes to it
        from now on; the caller writes the opening before returning to the loop.
        """
        now = time.monotonic()
        sub = Subscriber(
            f"c{next(self._ids)}", remote, torrent_hash, heartbeat_as_event, now, transport, chunked
        )
        replay = self._replay(last_event_id, torrent_hash)
        if replay is not None:
            opening, how = replay, "replay"
        else:
            opening, how = [self.snapshot_frame(torrent_hash)], "snapshot"
        sub.since_seq = self.seq
        self._subscribers.add(sub)
        self.metrics.inc("sse_connects_total", opened_with=how)
        self.demand.arrived(len(self._subscribers))
        return sub, opening, how

    def unsubscribe(self, sub: Subscriber, reason: str) -> float:
        """Forget a stream; returns how long it was open (seconds)."""
        self._subscribers.discard(sub)
        self.demand.left(len(self._subscribers))
        self.metrics.inc("sse_disconnects_total", reason=reason)
        return time.monotonic() - sub.connected_at

    def _drop(self, sub: Subscriber, reason: str) -> None:
        """End a stream from the server side, even when it is blocked sending."""
        transport = sub.transport
        if transport is not None and sub.close_reason is not None:
            return  # already ending: its connection_lost is on its way
        if sub.close_reason is None:
            sub.close_reason = reason
        if transport is not None:
            # Its protocol's connection_lost unsubscribes and logs, with this reason.
            if reason in (OVERFLOW, SEND_TIMEOUT):
                transport.abort()
            else:
                if sub.chunked:
                    transport.write(LAST_CHUNK)
                if transport.get_write_buffer_size():
                    transport.abort()  # a client that is not reading: do not wait on it
                else:
                    transport.close()
            return
        sub.queue.clear()
        sub.wake.set()
        if reason in (OVERFLOW, SEND_TIMEOUT) and sub.task is not None and not sub.task.done():
            # The handler may be stuck in send() to a client that stopped reading: only a
            # cancellation reaches it there. Quart treats that as a disconnect.
            sub.task.cancel()

    def parse_event_id(self, value: str | None) -> int | None:
        """The sequence number of an id from this process, or None (other epoch, garbage)."""
        if not value or len(value) > 64:
            return None
        epoch, sep, seq_text = value.strip().rpartition("-")
        # isascii(): "²".isdigit() is True, and int("²") raises.
        if not sep or epoch != self.epoch or not (seq_text.isascii() and seq_text.isdigit()):
            return None
        if len(seq_text) > 18:
            return None
        seq = int(seq_text)
        return seq if seq <= self.seq else None

    def _replay(self, last_event_id: str | None, torrent_hash: str | None) -> list[bytes] | None:
        seq = self.parse_event_id(last_event_id)
        if seq is None:
            return None
        if seq == self.seq:
            return []
        if not self._buffer or self._buffer[0].seq > seq + 1:
            return None  # some of the missed events are gone: only a snapshot is honest
        frames: list[bytes] = []
        for event in self._buffer:
            if event.seq <= seq:
                continue
            data = event.data if torrent_hash is None else event.for_torrent(torrent_hash)
            if data is not None:
                frames.append(data)
        return frames

    def snapshot_frame(self, torrent_hash: str | None = None) -> bytes:
        """The ``snapshot`` event as of now, with the id of the newest event.

        The all-torrents snapshot is cached per sequence number: a reconnect storm of
        thousands of clients encodes it once.
        """
        if torrent_hash is None:
            cached = self._snapshot_cache
            if cached is not None and cached[0] == self.seq:
                return cached[1]
            torrents = self.torrents
        else:
            record = self.torrents.get(torrent_hash)
            torrents = {torrent_hash: record} if record is not None else {}
        payload: dict[str, Any] = {
            "v": PROTOCOL_VERSION,
            "torrents": torrents,
            "status": self.status,
            "heartbeat": self.heartbeat,
        }
        if torrent_hash is None:
            payload["transfer"] = self.transfer
        data = frame("snapshot", payload, self.last_event_id)
        if torrent_hash is None:
            self._snapshot_cache = (self.seq, data)
        return data

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

        A transport stream gets its heartbeat written at once; a queued stream is marked due
        and woken.

        The same pass drops a stream whose send has been blocked for ``send_timeout``: a
        client that stopped reading fills the socket buffers (megabytes) long before its
        queue overflows when events are small, and would hold its place forever.
        """
        due = 0
        for sub in list(self._subscribers):
            if sub.close_reason is not None:
                continue
            if sub.sending_since is not None and now - sub.sending_since >= self.send_timeout:
                self._drop(sub, SEND_TIMEOUT)
                continue
            if sub.transport is not None:
                # Written here and now; a paused transport has bytes in flight already.
                if sub.sending_since is None and now - sub.last_sent >= self.heartbeat:
                    sub.write(self.heartbeat_frame(sub))
                    sub.last_sent = now
                    log.debug("%s heartbeat", sub.client_id)
                    due += 1
                continue
            if not sub.heartbeat_due and now - sub.last_sent >= self.heartbeat:
                sub.heartbeat_due = True
                sub.wake.set()
                due += 1
        return due

    def heartbeat_frame(self, sub: Subscriber) -> bytes:
        """The heartbeat this subscriber asked for (comment, or event for browsers)."""
        self.metrics.inc("heartbeats_sent_total")
        return heartbeat_event(time.time()) if sub.heartbeat_as_event else HEARTBEAT_COMMENT

    def close_all(self, reason: str = SERVER_SHUTDOWN) -> None:
        """End every stream (shutdown): each handler wakes and returns on its own."""
        self._closing = True
        for sub in list(self._subscribers):
            self._drop(sub, reason)

    @property
    def closing(self) -> bool:
        """True once shutdown began: new streams are refused."""
        return self._closing

    async def stop(self) -> None:
        """Stop the tick; used at shutdown after ``close_all``."""
        if self._ticker is not None:
            self._ticker.cancel()
            try:
                await self._ticker
            except asyncio.CancelledError:
                pass
            self._ticker = None

    def subscribers(self) -> Iterable[Subscriber]:
        """The open streams (for status and tests)."""
        return tuple(self._subscribers)
