"""The hub: the published view, the event log and the fan-out, put together.

Why it is shaped this way (each part has its own module):

- ``view.py``: the published view. Snapshots are taken from it, never from a poller's
  working table, so a snapshot and the diffs that follow it always line up.
- ``log.py``: event ids and replay, behind the ``EventLog`` interface (in memory today).
- ``fanout.py`` and ``sinks.py``: one sink per open stream, each event's bytes delivered to
  all of them in one loop, one shared heartbeat tick.

``subscribe`` registers the sink and takes its snapshot in one synchronous step (no
``await`` in between). ``publish_*`` is synchronous too, so no event can fall between the
two: a change landing while a client connects is neither lost nor applied twice. A queued
stream still drops events whose ``seq`` the snapshot already covers, as a guard.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, overload

from ..metrics import Metrics
from ..torrents import ChangeSet, Record
from .fanout import Demand, FanOut
from .frames import Event
from .log import EventLog, MemoryEventLog
from .sinks import SERVER_SHUTDOWN, QueueSink, Sink, TransportSink
from .view import PublishedView

if TYPE_CHECKING:
    from asyncio import Transport


class Hub:
    """Publishes what the instances saw to every stream; see the module docstring."""

    def __init__(
        self,
        *,
        heartbeat: float = 15.0,
        queue_size: int = 256,
        send_timeout: float = 30.0,
        replay_size: int = 2048,
        metrics: Metrics | None = None,
        epoch: str | None = None,
        log: EventLog | None = None,
    ) -> None:
        self.heartbeat = heartbeat
        self.queue_size = queue_size
        self.metrics = metrics or Metrics()
        self.log: EventLog = log if log is not None else MemoryEventLog(replay_size, epoch)
        self.view = PublishedView(heartbeat)
        self.fanout = FanOut(heartbeat=heartbeat, send_timeout=send_timeout, metrics=self.metrics)
        self._ids = itertools.count(1)

    # -- the published view ------------------------------------------------------------

    @property
    def epoch(self) -> str:
        """What names this hub's event ids."""
        return self.log.epoch

    @property
    def seq(self) -> int:
        """The newest event's sequence number."""
        return self.log.seq

    @property
    def last_event_id(self) -> str:
        """Id of the newest event (``<epoch>-0`` before the first)."""
        return self.log.last_id

    @property
    def torrents(self) -> dict[str, Record]:
        """The published torrents, by hash."""
        return self.view.torrents

    @property
    def status(self) -> Record:
        """The published status record."""
        return self.view.status

    @property
    def transfer(self) -> Record:
        """The published global transfer speeds and totals."""
        return self.view.transfer

    @property
    def demand(self) -> Demand:
        """How many streams are open; pollers listen to it."""
        return self.fanout.demand

    @property
    def client_count(self) -> int:
        """Open streams."""
        return self.fanout.count

    @property
    def closing(self) -> bool:
        """True once shutdown began: new streams are refused."""
        return self.fanout.closing

    def seed(self, torrents: dict[str, Record]) -> None:
        """Start the view from what the store last saw (before any event is published)."""
        self.view.seed(torrents)

    def watch_status(self, record: Record) -> None:
        """Show ``record`` (an instance's live status) in snapshots and REST answers.

        One instance per hub today (protocol 1 has one status object): a second instance's
        poller would replace the first's record. Several instances need the view to key
        status by instance id, with protocol 2.
        """
        self.view.status = record

    # -- publishing ----------------------------------------------------------------------

    def publish_changes(self, changes: ChangeSet) -> Event | None:
        """Apply a change set to the view and publish it as a ``diff`` event."""
        if not changes:
            return None
        self.view.apply(changes)
        return self._publish("diff", changes.as_event())

    def publish_status(self, record: Record) -> Event:
        """Announce a visible change of the status (the instance decided it is one)."""
        self.view.status = record
        return self._publish("status", dict(record))

    def publish_action(self, payload: dict[str, Any]) -> Event:
        """Tell every stream what was asked of qBittorrent and how it answered (``action``).

        An event like the others: it has an id, it is replayed, and it goes through the same
        log and fan-out, so a viewer sees it in order with the diffs that confirm it.
        """
        return self._publish("action", payload)

    def _publish(self, kind: str, payload: dict[str, Any]) -> Event:
        event = self.log.append(kind, payload)
        self.metrics.inc("events_published_total", kind=kind)
        self.fanout.deliver(event)
        return event

    # -- subscribing ---------------------------------------------------------------------

    @overload
    def subscribe(
        self,
        *,
        remote: str = "-",
        torrent_hash: str | None = None,
        last_event_id: str | None = None,
        heartbeat_as_event: bool = False,
        transport: None = None,
        chunked: bool = True,
    ) -> tuple[QueueSink, list[bytes], str]: ...

    @overload
    def subscribe(
        self,
        *,
        remote: str = "-",
        torrent_hash: str | None = None,
        last_event_id: str | None = None,
        heartbeat_as_event: bool = False,
        transport: Transport,
        chunked: bool = True,
    ) -> tuple[TransportSink, list[bytes], str]: ...

    def subscribe(
        self,
        *,
        remote: str = "-",
        torrent_hash: str | None = None,
        last_event_id: str | None = None,
        heartbeat_as_event: bool = False,
        transport: Transport | None = None,
        chunked: bool = True,
    ) -> tuple[Sink, list[bytes], str]:
        """Register a stream; return its sink, its opening frames, and how it was opened.

        The opening is a replay of the missed events when ``last_event_id`` is this log's and
        still covered by it, else a snapshot. The third value says which (``replay`` or
        ``snapshot``), for the log. With ``transport`` the stream is the socket layer's and
        the fan-out writes to it from now on (the caller writes the opening before returning
        to the loop); without, it is a queue for Quart's path.
        """
        now = time.monotonic()
        client_id = f"c{next(self._ids)}"
        sink: Sink
        if transport is not None:
            sink = TransportSink(
                client_id, remote, torrent_hash, heartbeat_as_event, now, self.queue_size, transport, chunked
            )
        else:
            sink = QueueSink(client_id, remote, torrent_hash, heartbeat_as_event, now, self.queue_size)
        replay = self._replay(last_event_id, torrent_hash)
        if replay is not None:
            opening, how = replay, "replay"
        else:
            opening, how = [self.snapshot_frame(torrent_hash)], "snapshot"
        sink.since_seq = self.seq
        self.fanout.add(sink)
        self.metrics.inc("sse_connects_total", opened_with=how)
        return sink, opening, how

    def unsubscribe(self, sink: Sink, reason: str) -> float:
        """Forget a stream; returns how long it was open (seconds)."""
        return self.fanout.remove(sink, reason)

    def parse_event_id(self, value: str | None) -> int | None:
        """The sequence number of an id from this log, or None (other epoch, garbage)."""
        return self.log.parse(value)

    def _replay(self, last_event_id: str | None, torrent_hash: str | None) -> list[bytes] | None:
        events = self.log.replay(last_event_id)
        if events is None:
            return None
        if torrent_hash is None:
            return [event.data for event in events]
        frames = (event.for_torrent(torrent_hash) for event in events)
        return [data for data in frames if data is not None]

    def snapshot_frame(self, torrent_hash: str | None = None) -> bytes:
        """The ``snapshot`` event as of now, with the id of the newest event."""
        return self.view.snapshot_frame(self.seq, self.last_event_id, torrent_hash)

    # -- heartbeats and shutdown ---------------------------------------------------------

    def start(self) -> None:
        """Start the shared heartbeat tick."""
        self.fanout.start()

    def beat(self, now: float) -> int:
        """Heartbeat silent streams, drop stuck ones; returns how many heartbeats."""
        return self.fanout.beat(now)

    def heartbeat_frame(self, sink: Sink) -> bytes:
        """The heartbeat this stream asked for (comment, or event for browsers)."""
        return self.fanout.heartbeat_frame(sink)

    def close_all(self, reason: str = SERVER_SHUTDOWN) -> None:
        """End every stream (shutdown)."""
        self.fanout.close_all(reason)

    async def stop(self) -> None:
        """Stop the tick; used at shutdown after ``close_all``."""
        await self.fanout.stop()

    def subscribers(self) -> Iterable[Sink]:
        """The open streams (for status and tests)."""
        return self.fanout.sinks()
