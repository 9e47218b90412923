"""The event log: event ids, the order events are delivered in, and what a reconnecting
stream missed.

Behind a small interface (``EventLog``), as Mercure's hub talks to a ``Transport``:
``MemoryEventLog`` (here) keeps a per-process epoch and the last events in memory;
``DurableEventLog`` (quart_dl/store/event_log.py) keeps them in the database, so a
``Last-Event-ID`` survives a restart of the server. The fan-out and the routes know neither.

Ids are ``<epoch>-<seq>``. In memory the epoch is random per process, so an id from an earlier
run (or another server) is never taken for a current one: it gets a snapshot, never a wrong
replay. The durable log's epoch names the database and the run (docs/protocol.md, "Event
ids, resume and retention").

Reserving, then publishing. A change set's event gets its id *before* the change set is
committed (the durable log writes it in the same transaction) and is delivered only after
the commit. An event appended meanwhile (a status, an action's result) gets the next id and
is held until the reserved one is published: streams always see ids in order, so a client's
``Last-Event-ID`` never skips an event it has not seen. ``take_ready`` hands out what may be
delivered now, in id order.
"""

from __future__ import annotations

import secrets
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from .frames import Event

#: Kinds whose every event is a lifecycle event (kept for the long retention).
LIFECYCLE_KINDS = frozenset({"action"})


def new_epoch() -> str:
    """A per-process epoch: ids from an earlier run can never be taken for current ones."""
    return secrets.token_hex(4)


def lifecycle_of(
    kind: str, payload: dict[str, Any], lifecycle: dict[str, Any] | None
) -> dict[str, Any] | None:
    """What of an event must outlive the diff window: the caller's summary, or the whole
    payload of a lifecycle kind (an action's result)."""
    if lifecycle is not None:
        return lifecycle
    if kind in LIFECYCLE_KINDS:
        return {"data": payload}
    return None


@dataclass
class Resume:
    """How a stream with a ``Last-Event-ID`` opens, as far as the database could tell.

    ``events``: every event after the id that the database holds (up to ``upto``), for a
    replay; None when only a snapshot is honest. ``late``: with a snapshot, the lifecycle
    events after the id (sent as ``late`` frames before it). The hub adds what was
    published in memory after ``upto`` when it subscribes the stream.
    """

    events: list[Event] | None = None
    late: list[Event] = field(default_factory=list)
    upto: int = 0
    #: False when the id is too old for even the lifecycle retention (or foreign).
    late_complete: bool = False


class EventLog(Protocol):
    """Where published events get their ids and from where missed ones are replayed."""

    @property
    def epoch(self) -> str:
        """What names this log's new ids (``<epoch>-<seq>``)."""
        ...

    @property
    def seq(self) -> int:
        """The newest delivered event's sequence number (0 before the first)."""
        ...

    @property
    def last_id(self) -> str:
        """The newest delivered event's id (``<epoch>-0`` before the first)."""
        ...

    @property
    def server_id(self) -> str:
        """What names the server: the database's id for the durable log (stable across
        restarts), the epoch in memory."""
        ...

    def append(
        self,
        kind: str,
        payload: dict[str, Any],
        lifecycle: dict[str, Any] | None = None,
        *,
        instance: str | None = None,
    ) -> Event:
        """Give the event the next id and encode it once; it is ready once every earlier
        reserved event is published (``take_ready``)."""
        ...

    def reserve(
        self,
        kind: str,
        payload: dict[str, Any],
        lifecycle: dict[str, Any] | None = None,
        *,
        instance: str | None = None,
    ) -> Event:
        """Give the event the next id; it is delivered after ``publish``."""
        ...

    def publish(self, event: Event) -> None:
        """A reserved event may be delivered now (its change set is committed, or failed to be)."""
        ...

    def take_ready(self) -> list[Event]:
        """The events that may be delivered now, in id order (each handed out once)."""
        ...

    def parse(self, event_id: str | None) -> int | None:
        """The sequence number of an id from this log, or None (another epoch, garbage)."""
        ...

    def replay(self, event_id: str | None) -> list[Event] | None:
        """The events after ``event_id`` that memory holds, oldest first; None when memory
        cannot tell (an id from elsewhere, or some of the events after it are gone)."""
        ...

    def buffered_after(self, seq: int) -> list[Event]:
        """Whatever memory holds after ``seq`` (merged with a database read)."""
        ...

    async def resume(self, event_id: str | None, max_bytes: int | None = None) -> Resume | None:
        """What the database knows beyond memory for ``event_id`` (None: nothing more); a
        replay bigger than ``max_bytes`` becomes the late lifecycle events and a snapshot."""
        ...


class MemoryEventLog:
    """Epoch, sequence and the last ``size`` events, in memory (lost with the process)."""

    def __init__(self, size: int = 2048, epoch: str | None = None) -> None:
        self._epoch = epoch or new_epoch()
        self._seq = 0
        self._last_id = f"{self._epoch}-0"
        self._next = 0
        self._buffer: deque[Event] = deque(maxlen=size)
        #: Reserved or appended events not yet delivered, by seq; True once published.
        self._held: dict[int, tuple[Event, bool]] = {}
        self._ready: list[Event] = []

    @property
    def epoch(self) -> str:
        return self._epoch

    @property
    def seq(self) -> int:
        return self._seq

    @property
    def last_id(self) -> str:
        return self._last_id

    @property
    def server_id(self) -> str:
        return self._epoch

    def _new(
        self, kind: str, payload: dict[str, Any], lifecycle: dict[str, Any] | None, instance: str | None
    ) -> Event:
        self._next += 1
        summary = lifecycle_of(kind, payload, lifecycle)
        event = Event(self._next, self._epoch, kind, payload, lifecycle=summary, instance=instance)
        self._created(event)
        return event

    def _created(self, event: Event) -> None:
        """Hook: a new event got its id (the durable log queues it for writing)."""

    def reserve(
        self,
        kind: str,
        payload: dict[str, Any],
        lifecycle: dict[str, Any] | None = None,
        *,
        instance: str | None = None,
    ) -> Event:
        event = self._new(kind, payload, lifecycle, instance)
        self._held[event.seq] = (event, False)
        return event

    def append(
        self,
        kind: str,
        payload: dict[str, Any],
        lifecycle: dict[str, Any] | None = None,
        *,
        instance: str | None = None,
    ) -> Event:
        event = self._new(kind, payload, lifecycle, instance)
        self._held[event.seq] = (event, True)
        self._advance()
        return event

    def publish(self, event: Event) -> None:
        if event.seq in self._held:
            self._held[event.seq] = (event, True)
            self._advance()

    def _advance(self) -> None:
        while True:
            entry = self._held.get(self._seq + 1)
            if entry is None or not entry[1]:
                return
            del self._held[self._seq + 1]
            event = entry[0]
            self._seq = event.seq
            self._last_id = event.id
            self._buffer.append(event)
            self._ready.append(event)

    def take_ready(self) -> list[Event]:
        ready, self._ready = self._ready, []
        return ready

    def parse(self, event_id: str | None) -> int | None:
        parsed = split_id(event_id)
        if parsed is None or parsed[0] != self._epoch:
            return None
        return parsed[1] if parsed[1] <= self._seq else None

    def replay(self, event_id: str | None) -> list[Event] | None:
        seq = self.parse(event_id)
        if seq is None:
            return None
        return self._after(seq)

    def _after(self, seq: int) -> list[Event] | None:
        """The buffered events after ``seq``, or None if some of them are gone."""
        if seq == self._seq:
            return []
        if not self._buffer or self._buffer[0].seq > seq + 1:
            return None  # some of the missed events are gone: only a snapshot is honest
        return [event for event in self._buffer if event.seq > seq]

    def buffered_after(self, seq: int) -> list[Event]:
        """Whatever the buffer holds after ``seq`` (for merging with a database read)."""
        return [event for event in self._buffer if event.seq > seq]

    async def resume(self, event_id: str | None, max_bytes: int | None = None) -> Resume | None:
        return None


def split_id(event_id: str | None) -> tuple[str, int] | None:
    """``<epoch>-<seq>`` as (epoch, seq), or None for anything else (bounded, ASCII digits)."""
    if not event_id or len(event_id) > 64:
        return None
    epoch, sep, seq_text = event_id.strip().rpartition("-")
    # isascii(): "²".isdigit() is True, and int("²") raises.
    if not sep or not epoch or not (seq_text.isascii() and seq_text.isdigit()) or len(seq_text) > 18:
        return None
    return epoch, int(seq_text)
