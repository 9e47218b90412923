"""The durable event log: event ids and replay that survive a restart, in quart-dl's database.

The same ``EventLog`` as ``MemoryEventLog`` (quart_dl/hub/log.py), whose memory buffer it
keeps for the common case (a reconnect within seconds), with every event also written to the
``event_log`` table, so a ``Last-Event-ID`` from before a restart still gets exactly the
missed events.

Ids are ``<database>.<run>-<seq>``:

- ``database``: random, made once with the table (``event_log_meta``): an id from another
  database never matches, and gets a snapshot;
- ``seq``: one sequence per database, counted here, in memory, from the newest row at start:
  the database never assigns one, so ids stay monotonic while it fails (events keep their
  ids in memory and are written later, as they were numbered);
- ``run``: which start of the server gave the id out (``event_log_run`` holds each run's
  first seq). Events published while the database was failing are lost if the process dies
  before writing them, and the next run numbers on from the last written one: the run tells
  such a lost id (at or past the next run's first seq) from one that was kept.

Writing. A change set's ``diff`` is reserved before the store's commit and written in the
same transaction (``Store.commit`` calls ``write``): a committed change always has its event,
and an event in the table never describes an uncommitted change. Other events (status, an
action's result) are written by a background flush within ``flush_interval``, or by the next
commit. Writes are always a prefix of the unwritten events, in id order (``INSERT … ON
CONFLICT DO NOTHING``, so a write retried after an ambiguous failure is harmless): the table
never has a hole, whatever fails when. While the database fails, unwritten events wait in
memory (at most ``max_pending``; beyond that the oldest plain diffs are dropped and the diff
floor raised, so a replay across them becomes a snapshot, never a wrong replay).

Retention: plain diffs and statuses for ``diff_seconds`` and at most ``diff_events``;
events with a lifecycle part (added, completed, removed; actions) for ``lifecycle_seconds``.
Pruning removes a prefix by seq and records the newest pruned seq of each class (the floors
in ``event_log_meta``), which is what decides how a stream resumes (``resume``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from typing import Any

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from ..hub.frames import Event
from ..hub.log import MemoryEventLog, Resume, split_id
from .models import EventLogMeta, EventLogRun, EventRow
from .store import DB_ERRORS, _describe, _placeholders

log = logging.getLogger("quart_dl.store.event_log")

_COLUMNS = ("seq", "run", "kind", "t", "lifecycle", "frame", "size", "late", "instance")
_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def _insert_sql(dialect: str) -> str:
    names = ", ".join(f'"{c}"' for c in _COLUMNS)
    table = EventRow._meta.db_table
    # Only our own constant names go into the text; the values travel as parameters.
    return (
        f'INSERT INTO "{table}" ({names}) VALUES ({_placeholders(len(_COLUMNS), dialect)}) '  # noqa: S608
        'ON CONFLICT ("seq") DO NOTHING'
    )


class DurableEventLog(MemoryEventLog):
    """The event log in the database; see the module docstring. ``open`` before use."""

    def __init__(
        self,
        size: int = 2048,
        *,
        diff_events: int = 10_000,
        diff_seconds: float = 3600.0,
        lifecycle_seconds: float = 30 * 86400.0,
        flush_interval: float = 1.0,
        prune_interval: float = 60.0,
        max_pending: int = 10_000,
    ) -> None:
        super().__init__(size, epoch="closed")
        self.diff_events = diff_events
        self.diff_seconds = diff_seconds
        self.lifecycle_seconds = lifecycle_seconds
        self.flush_interval = flush_interval
        self.prune_interval = prune_interval
        self.max_pending = max(16, max_pending)
        self.database_id = ""
        self.run = 0
        #: Each run's first seq, by run.
        self._first: dict[int, int] = {}
        self._pending: list[Event] = []
        self.persisted = 0
        self.diff_floor = 0
        self.lifecycle_floor = 0
        self._floors_dirty = False
        #: Held by every write and prune: writes stay a prefix, in order.
        self.lock = asyncio.Lock()
        self.failing = False
        self.last_error: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    # -- opening -------------------------------------------------------------------------

    async def open(self) -> None:
        """Read (or create) the log's identity, start a new run, load the newest events."""
        async with in_transaction() as conn:
            meta = await EventLogMeta.filter(id=1).using_db(conn).first()
            if meta is None:
                meta = await EventLogMeta.create(id=1, database_id=secrets.token_hex(4), using_db=conn)
            last = await EventRow.all().using_db(conn).order_by("-seq").first()
            runs = await EventLogRun.all().using_db(conn).order_by("run").values_list("run", "first_seq")
            newest = last.seq if last is not None else 0
            run = (runs[-1][0] if runs else 0) + 1
            await EventLogRun.create(run=run, first_seq=newest + 1, started_at=time.time(), using_db=conn)
        self.database_id = meta.database_id
        self.diff_floor = meta.diff_floor
        self.lifecycle_floor = meta.lifecycle_floor
        self.run = run
        self._first = {int(r): int(f) for r, f in runs}
        self._first[run] = newest + 1
        self._epoch = f"{self.database_id}.{run}"
        self._seq = self._next = self.persisted = newest
        self._last_id = f"{self._epoch}-0"
        if last is not None:
            self._last_id = last_id_of(self.database_id, last.run, last.seq)
        tail = (
            await EventRow.filter(seq__gt=newest - (self._buffer.maxlen or 0))
            .order_by("seq")
            .values_list(*_READ)
        )
        self._buffer.extend(_stored(self.database_id, row) for row in tail)
        log.info("event log: database %s, run %d, continuing after event %d", self.database_id, run, newest)

    def start(self) -> None:
        """Start the background flush and pruning."""
        if self._task is None:
            self._task = asyncio.create_task(self._background(), name="quart-dl event log")

    async def stop(self, timeout: float = 2.0) -> None:
        """Stop the background task and write what is still unwritten (best effort, bounded).

        The task is asked to stop rather than cancelled mid-write; but the poller, stopped
        just before, may have been cancelled inside a transaction and left the ORM's SQLite
        connection locked, so neither wait is allowed to hold shutdown up for long.
        """
        if self._task is not None:
            self._stopping.set()
            try:
                await asyncio.wait_for(self._task, timeout)
            except TimeoutError:
                log.warning("event log: background write did not finish at shutdown")
            self._task = None
        try:
            await asyncio.wait_for(self.flush(diffs=False), timeout)
        except TimeoutError:
            log.warning("event log: %d events left unwritten at shutdown", len(self._pending))

    @property
    def server_id(self) -> str:
        """The database's id: the same after a restart, another for another database."""
        return self.database_id or self._epoch

    # -- ids -----------------------------------------------------------------------------

    def _created(self, event: Event) -> None:
        self._pending.append(event)
        if len(self._pending) > self.max_pending:
            self._drop_oldest_plain()

    def _drop_oldest_plain(self) -> None:
        """Too much unwritten (a long database outage): forget the oldest plain event.

        Its replay is lost, so the diff floor goes past it: an id before it resumes with a
        snapshot and the lifecycle events (all still kept), never with a replay that skips.
        """
        for index, event in enumerate(self._pending):
            if event.lifecycle is None and event.seq <= self._seq:
                del self._pending[index]
                self.diff_floor = max(self.diff_floor, event.seq)
                self._floors_dirty = True
                return

    def parse(self, event_id: str | None) -> int | None:
        parsed = split_id(event_id)
        if parsed is None:
            return None
        epoch, seq = parsed
        database, sep, run_text = epoch.partition(".")
        if not sep or database != self.database_id or not (run_text.isascii() and run_text.isdigit()):
            return None
        run = int(run_text)
        first = self._first.get(run)
        if first is None or seq < first - 1 or seq > self._seq:
            return None
        following = self._first.get(run + 1)
        if following is not None and seq >= following:
            return None  # published from memory by a run that died before writing it
        return seq

    # -- writing -------------------------------------------------------------------------

    def unwritten(self, diffs: bool = True) -> list[Event]:
        """The unwritten events to write now, in id order: all of them (in a commit's
        transaction), or the prefix before the first diff (whose change set a commit must
        write with it)."""
        if diffs:
            return list(self._pending)
        out: list[Event] = []
        for event in self._pending:
            if event.kind == "diff":
                break
            out.append(event)
        return out

    async def write(self, conn: BaseDBAsyncClient, events: list[Event]) -> int:
        """Write ``events`` in ``conn``'s transaction; returns the newest seq written (0: none).

        The caller holds ``lock`` and calls ``written`` once the transaction committed.
        """
        if self._floors_dirty:
            await EventLogMeta.filter(id=1).using_db(conn).update(diff_floor=self.diff_floor)
        if not events:
            return 0
        run = self.run
        rows = [
            [
                e.seq,
                run,
                e.kind,
                e.t,
                e.lifecycle is not None,
                e.data.decode(),
                len(e.data),
                _JSON.encode(e.lifecycle) if e.lifecycle is not None else None,
                e.instance,
            ]
            for e in events
        ]
        await conn.execute_many(_insert_sql(conn.capabilities.dialect), rows)
        return events[-1].seq

    def written(self, upto: int) -> None:
        """The transaction holding events up to ``upto`` committed."""
        self._floors_dirty = False
        if self.failing:
            log.info("event log written again, up to event %d", upto or self.persisted)
        self.failing = False
        self.last_error = None
        if upto:
            self._pending = [e for e in self._pending if e.seq > upto]
            self.persisted = max(self.persisted, upto)

    def failed(self, exc: BaseException) -> None:
        """A write failed: the events stay unwritten, in memory, for the next one."""
        if not self.failing:
            log.warning("event log write failed, keeping events in memory: %s", _describe(exc))
        self.failing = True
        self.last_error = exc.__class__.__name__

    async def flush(self, diffs: bool = False) -> bool:
        """Write the unwritten events that need no change set (see ``unwritten``)."""
        async with self.lock:
            events = self.unwritten(diffs)
            if not events and not self._floors_dirty:
                return True
            try:
                async with in_transaction() as conn:
                    upto = await self.write(conn, events)
            except DB_ERRORS as exc:
                self.failed(exc)
                return False
            self.written(upto)
            return True

    # -- resuming ------------------------------------------------------------------------

    async def resume(self, event_id: str | None, max_bytes: int | None = None) -> Resume | None:
        """How a stream with ``event_id`` opens, from the table: see docs/protocol.md.

        Within the diff window (at or after the diff floor): every event after the id, unless
        their frames come to more than ``max_bytes`` (the hub passes the snapshot's size).
        Older, or bigger than that, within the lifecycle retention: the lifecycle events
        after it (``late`` frames, then a snapshot). Older still, or not this database's: a
        plain snapshot. None when the database cannot be read (the hub then decides from
        memory).

        Why the size: an hour of busy diffs (300 changes a poll) is ~97 MB and took ~200 ms
        to read and send (BENCHMARKS.md, "Durable log"), for a view that a snapshot of a few
        MB gives as well; the late lifecycle events keep every ``completed`` in it.
        """
        seq = self.parse(event_id)
        if seq is None:
            return Resume()
        persisted = self.persisted
        try:
            small = max_bytes is None or await self._frame_bytes_after(seq) <= max_bytes
            if seq >= self.diff_floor and small:
                rows = await EventRow.filter(seq__gt=seq).order_by("seq").values_list(*_READ)
                # Only what was delivered: a diff is written by its commit a moment before it
                # is published, and a stream subscribed in between got it twice, replayed and
                # then live (the hub merges what is published after ``upto`` from memory).
                delivered = self._seq
                events = [e for e in (_stored(self.database_id, row) for row in rows) if e.seq <= delivered]
                if all(e.seq == seq + 1 + i for i, e in enumerate(events)):
                    upto = max(persisted, events[-1].seq) if events else max(persisted, seq)
                    return Resume(events=events, upto=min(upto, delivered))
            if seq >= self.lifecycle_floor:
                rows = await EventRow.filter(seq__gt=seq, lifecycle=True).order_by("seq").values_list(*_READ)
                delivered = self._seq
                late = [e for e in (_stored(self.database_id, row) for row in rows) if e.seq <= delivered]
                upto = max(seq, persisted, late[-1].seq) if late else max(seq, persisted)
                return Resume(late=late, upto=min(upto, delivered), late_complete=True)
        except DB_ERRORS as exc:
            log.warning("event log unreadable, resuming from memory: %s", _describe(exc))
            return None
        return Resume()

    async def _frame_bytes_after(self, seq: int) -> int:
        """How many bytes of frames the table holds after ``seq`` (their ``size`` column)."""
        conn = connections.get("default")
        table = EventRow._meta.db_table
        placeholder = _placeholders(1, conn.capabilities.dialect)
        # Only our own constant names go into the text; the value travels as a parameter.
        sql = f'SELECT COALESCE(SUM("size"), 0) AS n FROM "{table}" WHERE "seq" > {placeholder}'  # noqa: S608
        rows = await conn.execute_query_dict(sql, [seq])
        return int(rows[0]["n"]) if rows else 0

    # -- retention -----------------------------------------------------------------------

    async def prune(self, now: float | None = None) -> None:
        """Drop plain events past the diff window and lifecycle events past their retention."""
        now = time.time() if now is None else now
        async with self.lock:
            try:
                async with in_transaction() as conn:
                    plain = (
                        await EventRow.filter(
                            Q(t__lt=now - self.diff_seconds) | Q(seq__lte=self.persisted - self.diff_events),
                            lifecycle=False,
                        )
                        .using_db(conn)
                        .order_by("-seq")
                        .first()
                        .values_list("seq", flat=True)
                    )
                    old = (
                        await EventRow.filter(t__lt=now - self.lifecycle_seconds, lifecycle=True)
                        .using_db(conn)
                        .order_by("-seq")
                        .first()
                        .values_list("seq", flat=True)
                    )
                    diff_floor, lifecycle_floor = self.diff_floor, self.lifecycle_floor
                    if isinstance(plain, int):
                        await EventRow.filter(seq__lte=plain, lifecycle=False).using_db(conn).delete()
                        diff_floor = max(diff_floor, plain)
                    if isinstance(old, int):
                        await EventRow.filter(seq__lte=old, lifecycle=True).using_db(conn).delete()
                        lifecycle_floor = max(lifecycle_floor, old)
                        # A replay needs every event after the id: none is left before this.
                        diff_floor = max(diff_floor, old)
                    if (diff_floor, lifecycle_floor) != (self.diff_floor, self.lifecycle_floor):
                        await (
                            EventLogMeta.filter(id=1)
                            .using_db(conn)
                            .update(diff_floor=diff_floor, lifecycle_floor=lifecycle_floor)
                        )
            except DB_ERRORS as exc:
                log.debug("could not prune the event log: %s", _describe(exc))
                return
            self.diff_floor, self.lifecycle_floor = diff_floor, lifecycle_floor

    async def _background(self) -> None:
        next_prune = time.monotonic()
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.flush_interval)
                return
            if self._pending:
                await self.flush(diffs=False)
            if time.monotonic() >= next_prune:
                next_prune = time.monotonic() + self.prune_interval
                await self.prune()


def last_id_of(database_id: str, run: int, seq: int) -> str:
    """An id as the log gives it out."""
    return f"{database_id}.{run}-{seq}"


#: The columns an event is read back with (plain tuples: no model object per row, which
#: cost most of a replay's time).
_READ = ("seq", "run", "kind", "t", "frame", "late", "instance")


def _stored(database_id: str, row: tuple[Any, ...]) -> Event:
    seq, run, kind, t, frame_text, late, instance = row
    lifecycle: dict[str, Any] | None = json.loads(late) if late else None
    return Event.stored(seq, f"{database_id}.{run}-{seq}", kind, frame_text.encode(), t, lifecycle, instance)
