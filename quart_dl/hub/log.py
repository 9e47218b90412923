"""The event log: event ids, and the events a reconnecting stream may have missed.

Behind a small interface (``EventLog``: append, replay after an id, the last id), as Mercure's
hub talks to a ``Transport``: ``MemoryEventLog`` is today's implementation, a per-process
epoch and sequence with a bounded buffer; a durable one in the database can take its place
without the fan-out or the routes knowing.

Ids are ``<epoch>-<seq>``. The epoch is random per process, so an id from an earlier run (or
another server) is never taken for a current one: it gets a snapshot, never a wrong replay.
"""

from __future__ import annotations

import secrets
from collections import deque
from typing import Any, Protocol

from .frames import Event


def new_epoch() -> str:
    """A per-process epoch: ids from an earlier run can never be taken for current ones."""
    return secrets.token_hex(4)


class EventLog(Protocol):
    """Where published events get their ids and from where missed ones are replayed."""

    @property
    def epoch(self) -> str:
        """What names this log's ids (``<epoch>-<seq>``)."""
        ...

    @property
    def seq(self) -> int:
        """The newest event's sequence number (0 before the first)."""
        ...

    @property
    def last_id(self) -> str:
        """The newest event's id (``<epoch>-0`` before the first)."""
        ...

    def append(self, kind: str, payload: dict[str, Any]) -> Event:
        """Give the event the next id, encode it once, keep it for replay."""
        ...

    def parse(self, event_id: str | None) -> int | None:
        """The sequence number of an id from this log, or None (another epoch, garbage)."""
        ...

    def replay(self, event_id: str | None) -> list[Event] | None:
        """The events after ``event_id``, oldest first; None when only a snapshot is honest
        (an id from elsewhere, or some of the events after it are gone)."""
        ...


class MemoryEventLog:
    """Epoch, sequence and the last ``size`` events, in memory (lost with the process)."""

    def __init__(self, size: int = 2048, epoch: str | None = None) -> None:
        self._epoch = epoch or new_epoch()
        self._seq = 0
        self._buffer: deque[Event] = deque(maxlen=size)

    @property
    def epoch(self) -> str:
        return self._epoch

    @property
    def seq(self) -> int:
        return self._seq

    @property
    def last_id(self) -> str:
        return f"{self._epoch}-{self._seq}"

    def append(self, kind: str, payload: dict[str, Any]) -> Event:
        self._seq += 1
        event = Event(self._seq, self._epoch, kind, payload)
        self._buffer.append(event)
        return event

    def parse(self, event_id: str | None) -> int | None:
        if not event_id or len(event_id) > 64:
            return None
        epoch, sep, seq_text = event_id.strip().rpartition("-")
        # isascii(): "²".isdigit() is True, and int("²") raises.
        if not sep or epoch != self._epoch or not (seq_text.isascii() and seq_text.isdigit()):
            return None
        if len(seq_text) > 18:
            return None
        seq = int(seq_text)
        return seq if seq <= self._seq else None

    def replay(self, event_id: str | None) -> list[Event] | None:
        seq = self.parse(event_id)
        if seq is None:
            return None
        if seq == self._seq:
            return []
        if not self._buffer or self._buffer[0].seq > seq + 1:
            return None  # some of the missed events are gone: only a snapshot is honest
        return [event for event in self._buffer if event.seq > seq]
