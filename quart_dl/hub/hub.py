"""The hub: the published view, the event log and the fan-out, put together.

Why it is shaped this way (each part has its own module):

- ``view.py``: the published views, one per qBittorrent instance. Snapshots are taken from
  them, never from a poller's working table, so a snapshot and the diffs that follow it
  always line up.
- ``log.py``: event ids, delivery order and replay, behind the ``EventLog`` interface (in
  memory there; the server uses the durable one, quart_dl/store/event_log.py).
- ``fanout.py`` and ``sinks.py``: one sink per open stream, each event's bytes delivered to
  all of them in one loop, one shared heartbeat tick.

``subscribe`` registers the sink and takes its snapshot in one synchronous step (no
``await`` in between); what the durable log must read from the database for an old
``Last-Event-ID`` is read before, by ``resume``, and completed from memory in that step.
``publish_*`` is synchronous too, so no event can fall between the
two: a change landing while a client connects is neither lost nor applied twice. A queued
stream still drops events whose ``seq`` the snapshot already covers, as a guard.

Several instances share one log and one fan-out: ids are global, so one ``Last-Event-ID``
resumes a stream of every instance (protocol 2). A protocol 1 stream follows one instance
(the primary, the first configured, unless it asks for another) and skips the others'
events: its ids have gaps, its bytes are those of a server with that one instance.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, overload

from ..metrics import Metrics
from ..torrents import ChangeSet, Record
from .fanout import Demand, FanOut
from .frames import Event
from .log import EventLog, MemoryEventLog, Resume
from .sinks import SERVER_SHUTDOWN, QueueSink, Sink, TransportSink
from .view import PublishedView, snapshot_v2, total_transfer

if TYPE_CHECKING:
    from asyncio import Transport


#: What a ``late`` event says of each torrent it names (enough for an automation to act).
LATE_FIELDS = ("hash", "name", "size", "save_path", "category", "added_at", "completed_at")


log = logging.getLogger("quart_dl.hub.hub")

#: How long a stream's opening waits for the durable log (seconds) before memory decides.
RESUME_TIMEOUT = 2.0

#: The instance a hub publishes to when none is named (the flat ``qbt_*`` settings' one).
DEFAULT_INSTANCE = "default"


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
        self.views: dict[str, PublishedView] = {}
        self._snapshot_v2: tuple[int, bytes] | None = None
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
    def server_id(self) -> str:
        """What names this server's database (stable across restarts with the durable log)."""
        return self.log.server_id

    # -- instances -------------------------------------------------------------------------

    def add_instance(self, instance_id: str, name: str = "") -> PublishedView:
        """Publish an instance from now on (in the order they are added: the first is the
        primary, which protocol 1 means when a stream names none)."""
        view = self.views.get(instance_id)
        if view is None:
            view = self.views[instance_id] = PublishedView(self.heartbeat, instance_id, name)
        elif name:
            view.name = name
        return view

    def view(self, instance_id: str) -> PublishedView:
        """The published view of one instance (KeyError if there is none of that id)."""
        return self.views[instance_id]

    def _view_of(self, instance_id: str) -> PublishedView:
        # A hub used without instances registered (unit tests, the demo's first moments):
        # the instance that publishes first registers itself.
        return self.views.get(instance_id) or self.add_instance(instance_id)

    @property
    def primary(self) -> str:
        """The id of the first instance (protocol 1's, when a stream names none)."""
        return next(iter(self.views), DEFAULT_INSTANCE)

    @property
    def view_primary(self) -> PublishedView:
        """The primary instance's view."""
        return self._view_of(self.primary)

    @property
    def torrents(self) -> dict[str, Record]:
        """The primary instance's published torrents, by hash."""
        return self.view_primary.torrents

    @property
    def status(self) -> Record:
        """The primary instance's published status record."""
        return self.view_primary.status

    @property
    def transfer(self) -> Record:
        """The primary instance's published transfer speeds and totals."""
        return self.view_primary.transfer

    def total_transfer(self) -> Record:
        """Transfer speeds, totals and limits added up over every instance."""
        return total_transfer(list(self.views.values()))

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

    def seed(self, torrents: dict[str, Record], instance: str = DEFAULT_INSTANCE) -> None:
        """Start an instance's view from what the store last saw (before it publishes)."""
        self._view_of(instance).seed(torrents)

    def watch_status(self, record: Record, instance: str = DEFAULT_INSTANCE) -> None:
        """Show ``record`` (an instance's live status) in snapshots and REST answers."""
        self._view_of(instance).status = record

    # -- publishing ----------------------------------------------------------------------

    def publish_changes(self, changes: ChangeSet, instance: str = DEFAULT_INSTANCE) -> Event | None:
        """Apply a change set to an instance's view and publish it as a ``diff`` event."""
        event = self.prepare_changes(changes, instance=instance)
        if event is not None:
            self.publish_prepared(event, changes)
        return event

    def prepare_changes(
        self, changes: ChangeSet, records: dict[str, Record] | None = None, instance: str = DEFAULT_INSTANCE
    ) -> Event | None:
        """Reserve the ``diff`` event of a change set about to be committed (the durable log
        writes it in the same transaction); ``publish_prepared`` delivers it afterwards.

        ``records`` (the poller's table) names the torrents of its lifecycle part, so that a
        client told of it late, after the diff is pruned, still learns what it was.
        """
        if not changes:
            return None
        payload = changes.as_event()
        lifecycle = self._lifecycle(changes, records or {}, self._view_of(instance))
        if lifecycle is not None:
            # When it happened, for a client that gets it replayed after a restart (and
            # marks it late): only on diffs that add, complete or remove, so steady
            # progress diffs cost nothing more.
            payload["t"] = round(time.time(), 3)
        return self.log.reserve("diff", payload, lifecycle, instance=instance)

    def publish_prepared(self, event: Event, changes: ChangeSet) -> None:
        """Apply the committed change set to its instance's view and deliver its event (in
        id order)."""
        self._view_of(event.instance or self.primary).apply(changes)
        self.log.publish(event)
        self._deliver_ready()

    def _lifecycle(
        self, changes: ChangeSet, records: dict[str, Record], view: PublishedView
    ) -> dict[str, Any] | None:
        if not (changes.added or changes.completed or changes.removed):
            return None
        torrents: dict[str, Record] = {}
        for torrent_hash in (*changes.added, *changes.completed, *changes.removed):
            record = (
                records.get(torrent_hash)
                or view.torrents.get(torrent_hash)
                or changes.changed.get(torrent_hash)  # an added torrent's full record
            )
            if record is not None:
                torrents[torrent_hash] = {k: record.get(k) for k in LATE_FIELDS}
        return {
            "added": list(changes.added),
            "completed": list(changes.completed),
            "removed": list(changes.removed),
            "torrents": torrents,
        }

    def publish_status(self, record: Record, instance: str = DEFAULT_INSTANCE) -> Event:
        """Announce a visible change of an instance's status (the instance decided it is one)."""
        self._view_of(instance).status = record
        return self._publish("status", dict(record), instance)

    def publish_action(self, payload: dict[str, Any]) -> Event:
        """Tell every stream what was asked of qBittorrent and how it answered (``action``).

        An event like the others: it has an id, it is replayed, and it goes through the same
        log and fan-out, so a viewer sees it in order with the diffs that confirm it (after any
        diff reserved before it). ``action`` is a lifecycle kind: kept for the long retention.
        """
        instance = payload.get("instance")
        return self._publish("action", payload, instance if isinstance(instance, str) else None)

    def _publish(self, kind: str, payload: dict[str, Any], instance: str | None) -> Event:
        event = self.log.append(kind, payload, instance=instance)
        self._deliver_ready()
        return event

    def _deliver_ready(self) -> None:
        for event in self.log.take_ready():
            self.metrics.inc("events_published_total", kind=event.kind)
            self.fanout.deliver(event)

    # -- subscribing ---------------------------------------------------------------------

    @overload
    def subscribe(
        self,
        *,
        remote: str = "-",
        torrent_hash: str | None = None,
        last_event_id: str | None = None,
        heartbeat_as_event: bool = False,
        resume: Resume | None = None,
        transport: None = None,
        chunked: bool = True,
        instance: str | None = None,
        v2: bool = False,
    ) -> tuple[QueueSink, list[bytes], str]: ...

    @overload
    def subscribe(
        self,
        *,
        remote: str = "-",
        torrent_hash: str | None = None,
        last_event_id: str | None = None,
        heartbeat_as_event: bool = False,
        resume: Resume | None = None,
        transport: Transport,
        chunked: bool = True,
        instance: str | None = None,
        v2: bool = False,
    ) -> tuple[TransportSink, list[bytes], str]: ...

    def subscribe(
        self,
        *,
        remote: str = "-",
        torrent_hash: str | None = None,
        last_event_id: str | None = None,
        heartbeat_as_event: bool = False,
        resume: Resume | None = None,
        transport: Transport | None = None,
        chunked: bool = True,
        instance: str | None = None,
        v2: bool = False,
    ) -> tuple[Sink, list[bytes], str]:
        """Register a stream; return its sink, its opening frames, and how it was opened.

        ``v2`` streams speak protocol 2 and follow every instance, or only ``instance``;
        protocol 1 streams follow one instance, ``instance`` or else the primary.

        The opening is a replay of the missed events when ``last_event_id`` is this log's and
        still covered by it, else a snapshot. The third value says which (``replay`` or
        ``snapshot``), for the log. With ``transport`` the stream is the socket layer's and
        the fan-out writes to it from now on (the caller writes the opening before returning
        to the loop); without, it is a queue for Quart's path.
        """
        now = time.monotonic()
        client_id = f"c{next(self._ids)}"
        if not v2 and instance is None:
            instance = self.primary
        sink: Sink
        if transport is not None:
            sink = TransportSink(
                client_id,
                remote,
                torrent_hash,
                heartbeat_as_event,
                now,
                self.queue_size,
                transport,
                chunked,
                instance=instance,
                v2=v2,
            )
        else:
            sink = QueueSink(
                client_id,
                remote,
                torrent_hash,
                heartbeat_as_event,
                now,
                self.queue_size,
                instance=instance,
                v2=v2,
            )
        opening, how = self._opening(last_event_id, sink, resume)
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

    async def resume(
        self, last_event_id: str | None, v2: bool = False, instance: str | None = None
    ) -> Resume | None:
        """Read what the durable log holds for ``last_event_id`` beyond memory, before
        ``subscribe`` (which must not await: see the module docstring). None when memory
        answers alone, or there is no id. ``v2`` and ``instance`` say which snapshot the
        stream would open with instead (its size bounds the replay)."""
        if not last_event_id or self.log.replay(last_event_id) is not None:
            return None
        # A replay bigger than the snapshot (cached per seq, so a storm of resumes after a
        # restart builds it once) is sent as the snapshot and the late lifecycle events.
        snapshot = self.snapshot_v2(instance) if v2 else self.snapshot_frame(None, instance)
        reading = self.log.resume(last_event_id, max_bytes=len(snapshot))
        try:
            # Bounded: a database that hangs (rather than refusing) must not hold the stream,
            # nor the socket layer's slot it opens in; memory then decides, as when it fails.
            return await asyncio.wait_for(reading, RESUME_TIMEOUT)
        except TimeoutError:
            log.warning("the event log did not answer within %.0f s: resuming from memory", RESUME_TIMEOUT)
            return None

    def _opening(
        self, last_event_id: str | None, sink: Sink, resume: Resume | None
    ) -> tuple[list[bytes], str]:
        """Replay, or snapshot with the ``late`` lifecycle events before it, or snapshot.

        ``resume`` was read from the database a moment ago: what was delivered since (its
        ``upto``) is in memory, and is added here, in this synchronous step.
        """
        torrent_hash = sink.torrent_hash
        events = self.log.replay(last_event_id)
        if events is None and resume is not None and resume.events is not None:
            tail = self.log.buffered_after(resume.upto)
            if not tail or tail[0].seq == resume.upto + 1:
                events = resume.events + tail
        if events is not None:
            return self._frames(events, sink), "replay"
        if sink.v2:
            snapshot = self.snapshot_v2(sink.instance)
        else:
            snapshot = self.snapshot_frame(torrent_hash, sink.instance)
        if resume is None or not resume.late_complete:
            return [snapshot], "snapshot"
        late = resume.late + [e for e in self.log.buffered_after(resume.upto) if e.lifecycle]
        late = [e for e in late if sink.concerns(e)]
        if torrent_hash is not None:
            late = [e for e in late if _names(e, torrent_hash)]
        return [*(e.late_frame(sink.v2) for e in late), snapshot], "late"

    @staticmethod
    def _frames(events: list[Event], sink: Sink) -> list[bytes]:
        events = [event for event in events if sink.concerns(event)]
        if sink.torrent_hash is None:
            return [event.data_v2 if sink.v2 else event.data for event in events]
        frames = (event.for_torrent(sink.torrent_hash) for event in events)
        return [data for data in frames if data is not None]

    def snapshot_frame(self, torrent_hash: str | None = None, instance: str | None = None) -> bytes:
        """The protocol 1 ``snapshot`` of one instance (default: the primary) as of now,
        with the id of the newest event."""
        view = self._view_of(instance or self.primary)
        return view.snapshot_frame(self.seq, self.last_event_id, torrent_hash)

    def snapshot_v2(self, instance: str | None = None) -> bytes:
        """The protocol 2 ``snapshot`` of every instance (or one), cached per event for the
        whole-server one: a reconnect storm encodes it once."""
        if instance is not None:
            return snapshot_v2([self._view_of(instance)], self.heartbeat, self.last_event_id)
        cached = self._snapshot_v2
        if cached is not None and cached[0] == self.seq:
            return cached[1]
        views = list(self.views.values()) or [self.view_primary]
        data = snapshot_v2(views, self.heartbeat, self.last_event_id)
        self._snapshot_v2 = (self.seq, data)
        return data

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


def _names(event: Event, torrent_hash: str) -> bool:
    """Whether a lifecycle event concerns ``torrent_hash``: a diff's torrents, or the hashes an
    action named (as the live ``action`` event reaches a per-torrent stream only then)."""
    lifecycle = event.lifecycle or {}
    if "torrents" in lifecycle:
        return torrent_hash in lifecycle["torrents"]
    data = lifecycle.get("data")
    hashes = data.get("hashes") if isinstance(data, dict) else None
    return isinstance(hashes, list) and torrent_hash in hashes
