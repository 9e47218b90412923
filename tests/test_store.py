"""The store, against SQLite (a file) and a real PostgreSQL.

PostgreSQL comes from ``QUART_DL_TEST_POSTGRES_URL`` (default
``postgres://postgres@127.0.0.1:5432/test``); every test gets a schema of its own, dropped
afterwards. If PostgreSQL is not reachable the PostgreSQL cases fail (they do not skip): run
the project's setup, whose test command starts PostgreSQL.

A failing database is simulated two ways: the ``torrent`` table renamed away by a second
connection (both backends), and an SQLite file held under an EXCLUSIVE lock by a second
sqlite3 connection (``busy_timeout`` is lowered in the URL so the wait is short).
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from fakes import H1, H2, H3, forget_sql_dialect, raw_torrent, seeding_torrent

from quart_dl.record import FIELDS, fields_of_type
from quart_dl.store import store as store_module
from quart_dl.store.models import InstanceRow, Torrent
from quart_dl.store.store import (
    _COLUMNS,
    _RECORD_FIELDS,
    _TEXT_AT,
    Store,
    _upsert_sql,
    close_database,
    open_database,
    tortoise_url,
)
from quart_dl.torrents import ChangeSet, Record, project

POSTGRES_URL = os.environ.get("QUART_DL_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
QBT_URL = "http://127.0.0.1:8080"


@dataclass
class Database:
    """One test database: its URL and a second connection to break it with."""

    kind: str
    url: str
    execute: Callable[[str], Awaitable[None]]
    table: str  # the torrent table's qualified name, for the second connection


def with_param(url: str, param: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{param}"


@pytest.fixture(params=["sqlite", "postgres"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        path = tmp_path / "quart-dl.sqlite3"

        async def run_sqlite(sql: str) -> None:
            conn = sqlite3.connect(path)
            try:
                conn.execute(sql)
                conn.commit()
            finally:
                conn.close()

        yield Database("sqlite", f"sqlite://{path}?busy_timeout=100", run_sqlite, "torrent")
        return

    schema = f"qdl_test_{secrets.token_hex(4)}"
    problem = None
    try:
        admin = await asyncpg.connect(tortoise_url(POSTGRES_URL), timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        problem = f"{exc.__class__.__name__}: {exc}"
    if problem is not None:
        pytest.fail(
            f"PostgreSQL is not reachable at {POSTGRES_URL} ({problem}). The store tests run "
            "against PostgreSQL too: run the project's setup first (`./dev setup`, or `./dev test`, "
            "which starts PostgreSQL), or point QUART_DL_TEST_POSTGRES_URL at a server.",
            pytrace=False,
        )
    await admin.execute(f'CREATE SCHEMA "{schema}"')

    async def run_pg(sql: str) -> None:
        await admin.execute(sql)

    try:
        yield Database(
            "postgres", with_param(POSTGRES_URL, f"schema={schema}"), run_pg, f'"{schema}".torrent'
        )
    finally:
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()


@pytest.fixture
async def store(database: Database) -> AsyncIterator[Store]:
    forget_sql_dialect()
    await open_database(database.url)
    try:
        store = Store("default", QBT_URL)
        assert await store.open_instance() == {}
        yield store
    finally:
        await close_database()


def records_of(*raws: tuple[str, dict[str, Any]]) -> dict[str, Record]:
    return {h: project(h, raw) for h, raw in raws}


def added(records: dict[str, Record]) -> ChangeSet:
    return ChangeSet(changed={h: dict(r) for h, r in records.items()}, added=list(records))


async def reload(url: str = "") -> dict[str, Record]:
    """What a fresh Store (as after a restart) loads."""
    return await Store("default", QBT_URL).open_instance()


async def test_regression_an_upgrade_that_failed_halfway_left_the_column_without_its_values(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: a column was added and the rows given their value in one script, which on
    SQLite is not one transaction. A failure between the two (here an UPDATE that cannot run;
    in life a crash) left the column there and the rows unfilled, and the next start, seeing
    the column, never filled them. Now the two are one transaction on both dialects."""
    forget_sql_dialect()
    await open_database(database.url)
    await close_database()
    event_log = database.table.replace("torrent", "event_log")
    await database.execute(f"ALTER TABLE {event_log} DROP COLUMN instance")
    broken = (("event_log", "instance", "VARCHAR(32)", "no_such_column"),)
    monkeypatch.setattr(store_module, "ADDED_COLUMNS", broken)
    with pytest.raises(store_module.DB_ERRORS):
        await open_database(database.url)
    await close_database()
    with pytest.raises((sqlite3.OperationalError, asyncpg.UndefinedColumnError), match="instance"):
        await database.execute(f"SELECT {event_log}.instance FROM {event_log}")
    monkeypatch.undo()
    await open_database(database.url)  # the real upgrade, whole, on the next start
    await close_database()
    await database.execute(f"SELECT {event_log}.instance FROM {event_log}")


def test_tortoise_url_accepts_postgresql_scheme() -> None:
    assert tortoise_url("postgresql://u:p@db/quart") == "postgres://u:p@db/quart"
    assert tortoise_url("postgres://u@db/quart") == "postgres://u@db/quart"
    assert tortoise_url("sqlite:///var/lib/q.sqlite3") == "sqlite:///var/lib/q.sqlite3?busy_timeout=200"


# -- commits -----------------------------------------------------------------------------------


async def test_commit_added_torrents_and_reload_gives_the_same_records(store: Store) -> None:
    records = records_of(
        (H1, raw_torrent("debian.iso", tags="linux,iso", category="os")),
        (H2, seeding_torrent('näme with\nnewline "quotes" 🎬', ratio=1.2345)),
        (H3, raw_torrent("x" * 5000, eta=8_640_000, size=50 * 2**40, amount_left=50 * 2**40)),
    )
    assert records[H2]["complete"] is True
    assert records[H3]["eta"] is None
    assert await store.commit(added(records), records) is True
    assert store.behind is False
    assert await reload() == records


async def test_regression_nul_in_a_name_keeps_the_store_behind_forever(store: Store) -> None:
    # PostgreSQL text cannot hold U+0000 (SQLite can). One torrent named so made every commit
    # fail, and every catch-up rewrote the whole table including it: nothing was stored again.
    records = records_of((H1, raw_torrent("nul\x00inside")), (H2, raw_torrent("two")))
    assert await store.commit(added(records), records) is True
    assert store.behind is False
    records[H2] = {**records[H2], "progress": 0.5}
    assert await store.commit(ChangeSet(changed={H2: {"progress": 0.5}}), records) is True
    loaded = await reload()
    assert set(loaded) == {H1, H2}
    assert loaded[H2] == records[H2]
    assert loaded[H1]["name"].startswith("nul")
    assert loaded[H1]["name"].endswith("inside")


async def test_reload_after_reopening_the_database(database: Database, store: Store) -> None:
    records = records_of((H1, raw_torrent()), (H2, seeding_torrent()))
    assert await store.commit(added(records), records)
    await close_database()
    await open_database(database.url)
    assert await reload() == records


async def test_commit_changed_fields_writes_the_full_current_record(store: Store) -> None:
    records = records_of((H1, raw_torrent()), (H2, raw_torrent("two")))
    await store.commit(added(records), records)
    records[H1] = {
        **records[H1],
        "progress": 0.75,
        "amount_left": 524_288,
        "state": "stalledDL",
        "phase": "stalled",
    }
    changes = ChangeSet(
        changed={H1: {"progress": 0.75, "amount_left": 524_288, "state": "stalledDL", "phase": "stalled"}}
    )
    assert await store.commit(changes, records)
    assert await reload() == records


async def test_upsert_updates_the_row_in_place_on_conflict(store: Store) -> None:
    # The commit is one prepared INSERT … ON CONFLICT (instance_id, hash) DO UPDATE: a change
    # must rewrite the existing row (same id, every column, a newer updated_at), never add one.
    records = records_of((H1, raw_torrent()), (H2, raw_torrent("two")))
    await store.commit(added(records), records)
    before = await Torrent.get(instance_id=store.instance_id, hash=H1)
    other = Store("other", "http://qbt2.lan:8080")
    await other.open_instance()
    theirs = records_of((H1, raw_torrent("theirs")))
    await other.commit(added(theirs), theirs)  # the same hash in another instance

    records[H1] = project(
        H1, seeding_torrent("renamed", tags="a, b", category="c", completion_on=1_700_000_500)
    )
    assert await store.commit(ChangeSet(changed={H1: records[H1]}), records)
    after = await Torrent.get(instance_id=store.instance_id, hash=H1)
    assert after.id == before.id
    assert after.updated_at >= before.updated_at
    assert (after.name, after.tags, after.complete, after.completed_at) == (
        "renamed",
        ["a", "b"],
        True,
        1_700_000_500,
    )
    assert await Torrent.filter(hash=H1).count() == 2
    assert await reload() == records
    assert await other.open_instance() == theirs


async def test_upsert_round_trips_every_kind_of_value(store: Store) -> None:
    records = records_of(
        (H1, raw_torrent("ünïcode ✓ 'single' \"double\" back\\slash", tags='tag one,ünï,q"uote')),
        (H2, seeding_torrent("big", size=2**62, downloaded=2**62, ratio=0.0001, completion_on=2**40)),
        (H3, raw_torrent("nul tag", tags="a\x00b", category="", save_path="", eta=-1)),
    )
    assert await store.commit(added(records), records)
    loaded = await reload()
    assert loaded[H1] == records[H1]
    assert loaded[H2] == records[H2]
    assert loaded[H2]["size"] == 2**62
    assert loaded[H2]["completed_at"] == 2**40
    assert loaded[H3]["tags"] == ["a\ufffdb"]  # PostgreSQL JSON cannot hold U+0000 either
    assert loaded[H3]["eta"] is None
    assert {h: type(r["complete"]) for h, r in loaded.items()} == {H1: bool, H2: bool, H3: bool}


def test_upsert_statement_per_dialect() -> None:
    sqlite_sql, postgres_sql = _upsert_sql("sqlite"), _upsert_sql("postgres")
    columns = len(_RECORD_FIELDS) + 3  # instance_id, hash, the record, updated_at
    assert sqlite_sql.count("?") == columns
    assert "$" not in sqlite_sql
    assert f"${columns})" in postgres_sql
    assert "?" not in postgres_sql
    for sql in (sqlite_sql, postgres_sql):
        assert 'ON CONFLICT ("instance_id", "hash") DO UPDATE SET' in sql
        assert '"updated_at" = excluded."updated_at"' in sql
        assert '"hash" = excluded' not in sql
        assert '"instance_id" = excluded' not in sql


def test_columns_are_the_declared_record() -> None:
    # Derived from record.TorrentRecord: a field added there is written, updated and loaded.
    assert ("instance_id", *FIELDS, "updated_at") == _COLUMNS
    assert FIELDS[1:] == _RECORD_FIELDS
    assert tuple(_COLUMNS[at] for at in _TEXT_AT) == fields_of_type(str)
    for field in FIELDS[1:]:
        assert f'"{field}" = excluded."{field}"' in _upsert_sql("sqlite")


async def test_commit_removed(store: Store) -> None:
    records = records_of((H1, raw_torrent()), (H2, raw_torrent("two")), (H3, raw_torrent("three")))
    await store.commit(added(records), records)
    del records[H2]
    assert await store.commit(ChangeSet(removed=[H2]), records)
    assert set(await reload()) == {H1, H3}


async def test_commit_many_torrents_in_batches(store: Store) -> None:
    records = {f"{i:040x}": project(f"{i:040x}", raw_torrent(f"t{i}")) for i in range(1, 1201)}
    assert await store.commit(added(records), records)
    assert await Torrent.filter(instance__name="default").count() == 1200
    assert await reload() == records


async def test_instances_are_kept_apart(store: Store) -> None:
    records = records_of((H1, raw_torrent()))
    await store.commit(added(records), records)
    other = Store("other", "http://qbt2.lan:8080")
    assert await other.open_instance() == {}
    assert other.instance_id != store.instance_id


async def test_open_instance_follows_a_new_url(store: Store) -> None:
    moved = Store("default", "http://qbt.lan:8080")
    await moved.open_instance()
    assert moved.instance_id == store.instance_id
    assert (await InstanceRow.get(name="default")).url == "http://qbt.lan:8080"


async def test_save_status(store: Store) -> None:
    await store.save_status(
        {"qbittorrent": "auth_failed", "message": "rejected", "version": "v4.5.2", "last_poll": 12.5}
    )
    row = await InstanceRow.get(name="default")
    assert (row.status, row.message, row.version, row.last_poll) == (
        "auth_failed",
        "rejected",
        "v4.5.2",
        12.5,
    )


async def test_commit_before_open_instance_is_a_programming_error(database: Database) -> None:
    forget_sql_dialect()
    await open_database(database.url)
    try:
        with pytest.raises(AssertionError, match="open_instance"):
            await Store("default", QBT_URL).commit(ChangeSet(), {})
    finally:
        await close_database()


# -- a failing database ------------------------------------------------------------------------


async def test_failed_commit_leaves_the_store_behind_and_the_next_one_catches_up(
    database: Database, store: Store
) -> None:
    records = records_of((H1, raw_torrent()), (H2, raw_torrent("two")))
    await store.commit(added(records), records)

    await database.execute(f"ALTER TABLE {database.table} RENAME TO torrent_away")
    # During the outage: H1 progresses, H2 is removed, H3 is added.
    records[H1] = {**records[H1], "progress": 0.6}
    del records[H2]
    records[H3] = project(H3, raw_torrent("three"))
    assert await store.commit(ChangeSet(changed={H1: {"progress": 0.6}}, removed=[H2]), records) is False
    assert store.behind is True
    assert store.last_error is not None
    assert await store.commit(added({H3: records[H3]}), records) is False
    assert store.behind is True

    await database.execute(
        f"ALTER TABLE {database.table.replace('torrent', 'torrent_away')} RENAME TO torrent"
    )
    # The next commit only mentions an unrelated change, yet the whole table catches up.
    records[H3] = {**records[H3], "dl_speed": 1}
    assert await store.commit(ChangeSet(changed={H3: {"dl_speed": 1}}), records) is True
    assert store.behind is False
    assert store.last_error is None
    assert await reload() == records


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_sqlite_locked_by_another_connection(database: Database, store: Store) -> None:
    records = records_of((H1, raw_torrent()))
    await store.commit(added(records), records)
    path = database.url.removeprefix("sqlite://").split("?")[0]
    locker = sqlite3.connect(path, timeout=0)
    try:
        locker.execute("BEGIN EXCLUSIVE")
        records[H2] = project(H2, raw_torrent("two"))
        assert await store.commit(added({H2: records[H2]}), records) is False
        assert store.behind is True
        assert store.last_error == "OperationalError"
        # sampling and pruning fail quietly while locked
        await store.sample(100.0, {"dl_speed": 1, "up_speed": 0, "dl_total": 0, "up_total": 0}, records)
        await store.prune(50.0)
    finally:
        locker.rollback()
        locker.close()
    assert await store.commit(ChangeSet(), records) is True
    assert store.behind is False
    assert await reload() == records


# -- history -----------------------------------------------------------------------------------


def transfer(dl: int, up: int = 0) -> dict[str, int]:
    return {"dl_speed": dl, "up_speed": up, "dl_total": 0, "up_total": 0}


async def test_history_samples_oldest_first(store: Store) -> None:
    active = project(H1, raw_torrent(dlspeed=1000, upspeed=10))
    idle = project(H2, raw_torrent("idle", dlspeed=0, upspeed=0))
    torrents = {H1: active, H2: idle}
    for t, dl in ((1000.0, 100), (1005.0, 200), (1010.0, 300)):
        await store.sample(t, transfer(dl, 7), {H1: {**active, "dl_speed": dl}, H2: idle})
    assert await store.history(0) == [
        {"t": 1000.0, "dl_speed": 100, "up_speed": 7},
        {"t": 1005.0, "dl_speed": 200, "up_speed": 7},
        {"t": 1010.0, "dl_speed": 300, "up_speed": 7},
    ]
    assert [s["t"] for s in await store.history(1005.0)] == [1005.0, 1010.0]
    assert [s["t"] for s in await store.history(0, limit=2)] == [1005.0, 1010.0]
    assert await store.history(0, H1) == [
        {"t": 1000.0, "dl_speed": 100, "up_speed": 10},
        {"t": 1005.0, "dl_speed": 200, "up_speed": 10},
        {"t": 1010.0, "dl_speed": 300, "up_speed": 10},
    ]
    assert await store.history(0, H2) == []  # idle torrents are not sampled
    assert torrents[H2]["dl_speed"] == 0


async def test_prune_drops_old_samples(store: Store) -> None:
    active = project(H1, raw_torrent(dlspeed=1000))
    for t in (100.0, 200.0, 300.0):
        await store.sample(t, transfer(5), {H1: active})
    await store.prune(250.0)
    assert [s["t"] for s in await store.history(0)] == [300.0]
    assert [s["t"] for s in await store.history(0, H1)] == [300.0]


async def test_history_is_per_instance(store: Store) -> None:
    await store.sample(100.0, transfer(5), {})
    other = Store("other", "http://qbt2.lan:8080")
    await other.open_instance()
    assert await other.history(0) == []
