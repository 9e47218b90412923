"""The store: commits change sets to the database, one transaction per poll.

Changed and added torrents are written as one upsert of their full records: one prepared
``INSERT … ON CONFLICT DO UPDATE`` run by the driver's ``executemany`` (not one UPDATE each,
and not the ORM's per-row model objects, which cost more CPU than the write itself). If a
commit fails (database locked, read-only, PostgreSQL restarting), nothing is lost: the store
remembers that it is behind and, on the next successful commit, rewrites the whole current
table in one transaction. Meanwhile the hub keeps serving from memory.
"""

from __future__ import annotations

import functools
import json
import logging
import operator
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from tortoise import Tortoise
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import BaseORMException
from tortoise.transactions import in_transaction

from ..record import FIELDS, fields_of_type
from ..torrents import ChangeSet, Record
from .models import InstanceRow, Torrent, TorrentSample, TransferSample

if TYPE_CHECKING:
    import asyncio

    from ..hub.frames import Event

log = logging.getLogger("quart_dl.store.store")


class Journal(Protocol):
    """The durable event log as the store sees it: events written in the commit's transaction."""

    lock: asyncio.Lock

    def unwritten(self, diffs: bool = True) -> list[Event]: ...

    async def write(self, conn: BaseDBAsyncClient, events: list[Event]) -> int: ...

    def written(self, upto: int) -> None: ...

    def failed(self, exc: BaseException) -> None: ...


#: The record's fields beside its key, in record order: the torrent row's columns.
_RECORD_FIELDS = tuple(f for f in FIELDS if f != "hash")

#: What a failing database raises: the ORM's own errors, the drivers' (OSError for a
#: vanished socket), and sqlite3/asyncpg errors that come through unwrapped.
DB_ERRORS: tuple[type[BaseException], ...] = (BaseORMException, OSError)
try:  # pragma: no cover - both are installed in practice
    import sqlite3

    DB_ERRORS += (sqlite3.Error,)
    import asyncpg  # type: ignore[import-untyped]

    DB_ERRORS += (asyncpg.PostgresError, asyncpg.InterfaceError)
except ImportError:  # pragma: no cover
    pass


#: How long an SQLite write waits for a lock held by another process (milliseconds).
#: sqlite3's default is 5 s, and the poller awaits every commit: a locked database then froze
#: the stream for 5 s per poll instead of being served from memory (test_faults,
#: test_sqlite_locked_streams_from_memory_and_catches_up). A failed commit costs nothing: the
#: store marks itself behind and catches up on a later poll.
SQLITE_BUSY_TIMEOUT_MS = 200


def tortoise_url(url: str) -> str:
    """Accept ``postgresql://`` too (what people copy from elsewhere); bound SQLite's lock wait."""
    if url.startswith("postgresql://"):
        return "postgres://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite://") and "busy_timeout=" not in url:
        # Tortoise runs every query parameter of an SQLite URL as a PRAGMA.
        return f"{url}{'&' if '?' in url else '?'}busy_timeout={SQLITE_BUSY_TIMEOUT_MS}"
    return url


async def open_database(url: str) -> None:
    """Connect and create the schema if it is missing (safe on an existing database)."""
    await Tortoise.init(
        db_url=tortoise_url(url),
        modules={"models": ["quart_dl.store.models"]},
        _enable_global_fallback=True,
    )
    # Upgraded first: the schema generation comments on every column, and fails on a table
    # that lacks one.
    await upgrade_schema()
    await Tortoise.generate_schemas(safe=True)


#: Columns added after a table was first released: (table, column, SQL type, the value the
#: rows already there get). ``generate_schemas`` creates missing tables only, so a database
#: from an earlier release gets them here. ``event_log.instance``: every event of a release
#: before several instances was about its one instance, ``default`` (null would make them the
#: whole server's: replayed to a stream of any instance, and to protocol 2 naming none).
ADDED_COLUMNS = (("event_log", "instance", "VARCHAR(32)", "'default'"),)


async def upgrade_schema() -> None:
    """Add the columns a database from an earlier release lacks (idempotent, both dialects)."""
    conn = Tortoise.get_connection("default")
    for table, column, kind, existing in ADDED_COLUMNS:
        # Our own constant names only. Asking for the table, then the column, tells whether
        # either is there (a new database has neither: the schema generation makes both).
        if not await _answers(conn, f'SELECT 1 FROM "{table}" LIMIT 0'):  # noqa: S608
            continue
        # Qualified: SQLite takes an unknown bare "name" for a string literal, not an error.
        if not await _answers(conn, f'SELECT "{table}"."{column}" FROM "{table}" LIMIT 0'):  # noqa: S608
            # One transaction (both dialects' DDL is transactional), so that a crash or an
            # error between the two never leaves the column added without the rows' value:
            # the next start would see the column and never fill it. Not ``execute_script``:
            # SQLite's commits what is pending before it runs.
            async with in_transaction() as tx:
                await tx.execute_query(f'ALTER TABLE "{table}" ADD COLUMN "{column}" {kind}')
                await tx.execute_query(f'UPDATE "{table}" SET "{column}" = {existing}')  # noqa: S608
            log.info("database upgraded: %s.%s added", table, column)


async def _answers(conn: BaseDBAsyncClient, sql: str) -> bool:
    try:
        await conn.execute_query(sql)
    except DB_ERRORS:  # OperationalError on both dialects, a BaseORMException
        return False
    return True


async def close_database() -> None:
    """Close every connection."""
    await Tortoise.close_connections()


class Store:
    """Writes what the poller saw; reads what the REST API and a restart need."""

    def __init__(self, instance_name: str, url: str) -> None:
        self.instance_name = instance_name
        self.url = url
        self.instance_id: int | None = None
        #: True when this database had never seen the instance (a first install).
        self.created = False
        self.behind = False
        self.last_error: str | None = None
        #: The durable event log, when there is one: its unwritten events (this change set's
        #: ``diff`` among them) are written in the commit's transaction.
        self.journal: Journal | None = None

    async def open_instance(self) -> dict[str, Record]:
        """Get or create the instance row; return the torrents last committed for it."""
        instance, self.created = await InstanceRow.get_or_create(
            name=self.instance_name, defaults={"url": self.url, "updated_at": time.time()}
        )
        if instance.url != self.url:
            instance.url = self.url
            await instance.save(update_fields=["url"])
        self.instance_id = instance.id
        rows = await Torrent.filter(instance_id=instance.id).values("hash", *_RECORD_FIELDS)
        return {row["hash"]: _record(row) for row in rows}

    async def commit(self, changes: ChangeSet, records: Mapping[str, Record]) -> bool:
        """Commit one change set (or, after a failure, the whole table). True on success.

        ``records`` is the poller's full current table: after a failure the next commit
        writes all of it, so the database catches up with the present, not the past.
        """
        assert self.instance_id is not None, "open_instance() first"
        journal = self.journal
        if journal is None:
            return self._done(await self._commit(changes, records, None))
        async with journal.lock:
            failure = await self._commit(changes, records, journal)
        return self._done(failure)

    async def _commit(
        self, changes: ChangeSet, records: Mapping[str, Record], journal: Journal | None
    ) -> BaseException | None:
        """One transaction: the change set (or the whole table), and the unwritten events."""
        upto = 0
        try:
            async with in_transaction() as conn:
                if self.behind:
                    await Torrent.filter(instance_id=self.instance_id).using_db(conn).delete()
                    await self._upsert(records.values(), conn)
                else:
                    if changes.removed:
                        await (
                            Torrent.filter(instance_id=self.instance_id, hash__in=changes.removed)
                            .using_db(conn)
                            .delete()
                        )
                    touched = [records[h] for h in changes.changed if h in records]
                    if touched:
                        await self._upsert(touched, conn)
                if journal is not None:
                    upto = await journal.write(conn, journal.unwritten())
        except DB_ERRORS as exc:
            if journal is not None:
                journal.failed(exc)
            return exc
        if journal is not None:
            journal.written(upto)
        return None

    def _done(self, exc: BaseException | None) -> bool:
        if exc is not None:
            if not self.behind:
                log.warning("database write failed, serving from memory: %s", _describe(exc))
            self.behind = True
            self.last_error = exc.__class__.__name__
            return False
        if self.behind:
            log.info("database reachable again; caught up")
        self.behind = False
        self.last_error = None
        return True

    async def _upsert(self, records: Iterable[Record], conn: BaseDBAsyncClient) -> None:
        """Write full records with one prepared upsert statement, run ``executemany`` style.

        Not ``Torrent.bulk_create``: a model object per row and Tortoise's query building cost
        ~10 ms of CPU per steady poll of 300 changed torrents out of 10,000 (issue #5). The
        driver's own ``executemany`` of one prepared statement does the same write for a
        fraction of that, on SQLite and PostgreSQL alike.
        """
        now = time.time()
        rows = [_row(self.instance_id, record, now) for record in records]
        if rows:
            await conn.execute_many(_upsert_sql(conn.capabilities.dialect), rows)

    async def save_status(self, status: Mapping[str, Any]) -> None:
        """Remember the instance status (best effort: a failure here is not worth a fault)."""
        try:
            await InstanceRow.filter(id=self.instance_id).update(
                status=status["qbittorrent"],
                message=status.get("message"),
                version=status.get("version"),
                last_poll=status.get("last_poll"),
                updated_at=time.time(),
            )
        except DB_ERRORS as exc:
            log.debug("could not save status: %s", _describe(exc))

    async def sample(self, now: float, transfer: Record, torrents: Mapping[str, Record]) -> None:
        """Write one history sample: global speeds, and the speeds of active torrents.

        Plain prepared INSERTs, like the commit: the ORM's model objects cost more than the
        rows they write, every few seconds.
        """
        try:
            async with in_transaction() as conn:
                dialect = conn.capabilities.dialect
                await conn.execute_many(
                    _insert_sql(TransferSample._meta.db_table, _SAMPLE_COLUMNS, dialect),
                    [[self.instance_id, now, transfer["dl_speed"], transfer["up_speed"]]],
                )
                active = [
                    [self.instance_id, h, now, r["dl_speed"], r["up_speed"]]
                    for h, r in torrents.items()
                    if r["dl_speed"] or r["up_speed"]
                ]
                if active:
                    await conn.execute_many(
                        _insert_sql(TorrentSample._meta.db_table, _TORRENT_SAMPLE_COLUMNS, dialect), active
                    )
        except DB_ERRORS as exc:
            log.debug("could not write a history sample: %s", _describe(exc))

    async def prune(self, older_than: float) -> None:
        """Drop history samples older than the retention."""
        try:
            await TransferSample.filter(t__lt=older_than).delete()
            await TorrentSample.filter(t__lt=older_than).delete()
        except DB_ERRORS as exc:
            log.debug("could not prune history: %s", _describe(exc))

    async def history(
        self, since: float, torrent_hash: str | None = None, limit: int = 20000
    ) -> list[dict[str, Any]]:
        """Speed samples since ``since``, oldest first (global, or one torrent's)."""
        columns = ("t", "dl_speed", "up_speed")
        if torrent_hash is None:
            query = TransferSample.filter(instance_id=self.instance_id, t__gte=since)
            rows = await query.order_by("-t").limit(limit).values(*columns)
        else:
            per_torrent = TorrentSample.filter(instance_id=self.instance_id, hash=torrent_hash, t__gte=since)
            rows = await per_torrent.order_by("-t").limit(limit).values(*columns)
        return [
            {"t": round(r["t"], 3), "dl_speed": r["dl_speed"], "up_speed": r["up_speed"]}
            for r in reversed(rows)
        ]


def _clean(value: Any) -> Any:
    """PostgreSQL text cannot hold NUL: a torrent name with one must not wedge the store."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


#: The torrent table's columns as the upsert writes them: the key, the record, the write time.
_COLUMNS = ("instance_id", "hash", *_RECORD_FIELDS, "updated_at")
_record_values = operator.itemgetter("hash", *_RECORD_FIELDS)
#: Where the text values sit in a row (NUL is cleaned there) and where the lists (tags) sit:
#: both from the record's declared types.
_TEXT_AT = tuple(_COLUMNS.index(f) for f in fields_of_type(str))
_LIST_AT = tuple(_COLUMNS.index(f) for f in fields_of_type(list))
_LIST_FIELDS = fields_of_type(list)
_BOOL_FIELDS = fields_of_type(bool)
#: One encoder for every row: ``json.dumps`` with options builds a new one per call.
_JSON = json.JSONEncoder(separators=(",", ":"))


def _row(instance_id: int | None, record: Record, now: float) -> list[Any]:
    """One torrent as upsert parameters, in ``_COLUMNS`` order."""
    row = [instance_id, *_record_values(record), now]
    for at in _TEXT_AT:
        value = row[at]
        if isinstance(value, str) and "\x00" in value:
            row[at] = _clean(value)
    # JSON text is what both backends take for Tortoise's JSONField column (TEXT in SQLite,
    # JSONB in PostgreSQL, where asyncpg's default codec sends a str as is).
    for at in _LIST_AT:
        items = row[at]
        row[at] = _JSON.encode(_clean(items)) if items else "[]"
    return row


_SAMPLE_COLUMNS = ("instance_id", "t", "dl_speed", "up_speed")
_TORRENT_SAMPLE_COLUMNS = ("instance_id", "hash", "t", "dl_speed", "up_speed")


def _placeholders(count: int, dialect: str) -> str:
    """``?, ?, …`` for sqlite3, ``$1, $2, …`` for asyncpg."""
    if dialect == "sqlite":
        return ", ".join("?" for _ in range(count))
    if dialect == "postgres":
        return ", ".join(f"${i}" for i in range(1, count + 1))
    raise ValueError(f"no placeholders for the {dialect} dialect")  # pragma: no cover


@functools.cache
def _insert_sql(table: str, columns: tuple[str, ...], dialect: str) -> str:
    """A plain INSERT of ``columns`` into ``table``, in the dialect's placeholders."""
    names = ", ".join(f'"{c}"' for c in columns)
    # Only our own constant names go into the text; the values travel as parameters.
    return f'INSERT INTO "{table}" ({names}) VALUES ({_placeholders(len(columns), dialect)})'  # noqa: S608


@functools.cache
def _upsert_sql(dialect: str) -> str:
    """``INSERT … ON CONFLICT (instance_id, hash) DO UPDATE`` of every torrent column.

    SQLite (3.24+) and PostgreSQL share the syntax; only the placeholders differ.
    """
    updates = ", ".join(f'"{c}" = excluded."{c}"' for c in _COLUMNS[2:])
    return (
        f"{_insert_sql(Torrent._meta.db_table, _COLUMNS, dialect)} "
        f'ON CONFLICT ("instance_id", "hash") DO UPDATE SET {updates}'
    )


def _record(row: Mapping[str, Any]) -> Record:
    """A row as loaded back into a record (SQLite gives 0/1 for a bool column)."""
    record: Record = {"hash": row["hash"]}
    record.update({f: row[f] for f in _RECORD_FIELDS})
    for name in _LIST_FIELDS:
        record[name] = list(record[name] or [])
    for name in _BOOL_FIELDS:
        record[name] = bool(record[name])
    return record


def _describe(exc: BaseException) -> str:
    """A one-line description of a database error (never the URL: it may hold a password)."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{exc.__class__.__name__}: {text}"[:200]
