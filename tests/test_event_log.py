"""quart_dl.store.event_log: the durable event log, on SQLite and on a real PostgreSQL.

The ``database`` fixture is test_store's (a file SQLite, a PostgreSQL schema of its own, and a
second connection to break either with). A "restart" is the database closed and opened again
with a new log, as a new server process does; a "crash" is the same without the final flush.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from fakes import H1, H2, forget_sql_dialect, raw_torrent, seeding_torrent
from test_store import QBT_URL, Database, database  # noqa: F401 (the fixture)

from quart_dl.hub import Hub
from quart_dl.store.event_log import DurableEventLog
from quart_dl.store.models import EventRow, Torrent
from quart_dl.store.store import Store, close_database, open_database
from quart_dl.torrents import ChangeSet, project


async def opened(url: str, **options: float) -> DurableEventLog:
    forget_sql_dialect()
    await open_database(url)
    log = DurableEventLog(64, **options)  # type: ignore[arg-type]
    await log.open()
    return log


async def restart(url: str, log: DurableEventLog | None = None, **options: float) -> DurableEventLog:
    """Stop ``log`` cleanly (None: a crash, nothing flushed), close, open a new one."""
    if log is not None:
        await log.stop()
    await close_database()
    return await opened(url, **options)


@pytest.fixture
async def log(database: Database) -> AsyncIterator[DurableEventLog]:  # noqa: F811
    opened_log = await opened(database.url)
    try:
        yield opened_log
    finally:
        await close_database()


def status(n: int) -> dict[str, object]:
    return {"qbittorrent": "connected", "n": n}


async def rows() -> list[tuple[int, str]]:
    return [(r.seq, r.kind) for r in await EventRow.all().order_by("seq")]


# -- ids --------------------------------------------------------------------------------------


async def test_ids_name_the_database_and_run_and_count_on_after_a_restart(
    database: Database,  # noqa: F811
    log: DurableEventLog,
) -> None:
    assert log.last_id == f"{log.database_id}.1-0"
    first = log.append("status", status(1))
    second = log.append("status", status(2))
    assert (first.id, second.id) == (f"{log.database_id}.1-1", f"{log.database_id}.1-2")
    again = await restart(database.url, log)
    assert again.database_id == log.database_id
    assert (again.run, again.seq, again.last_id) == (2, 2, second.id)  # the last id as it was given
    third = again.append("status", status(3))
    assert third.id == f"{log.database_id}.2-3"
    assert again.parse(second.id) == 2  # an id of the earlier run is still this log's


async def test_replay_across_a_restart_is_exactly_the_missed_events(
    database: Database,  # noqa: F811
    log: DurableEventLog,
) -> None:
    events = [log.append("status", status(i)) for i in range(6)]
    assert await log.flush()
    again = await restart(database.url, log)
    resume = await again.resume(events[2].id)
    assert resume is not None
    assert resume.events is not None
    assert [e.id for e in resume.events] == [e.id for e in events[3:]]
    assert [e.data for e in resume.events] == [e.data for e in events[3:]]  # the frames as sent
    assert again.replay(events[2].id) is not None  # the newest are loaded into memory too


async def test_an_id_from_another_database_gets_a_plain_snapshot(log: DurableEventLog) -> None:
    log.append("status", status(1))
    foreign = "0badc0de.1-1"
    assert log.parse(foreign) is None
    resume = await log.resume(foreign)
    assert resume is not None
    assert (resume.events, resume.late, resume.late_complete) == (None, [], False)


async def test_an_id_lost_in_a_crash_is_never_taken_for_the_next_runs_event(
    database: Database,  # noqa: F811
    log: DurableEventLog,
) -> None:
    kept = log.append("status", status(1))
    assert await log.flush()
    lost = log.append("status", status(2))  # published from memory, never written
    again = await restart(database.url, None)  # killed: nothing flushed
    assert again.seq == 1
    reused = again.append("status", status(3))
    assert reused.seq == lost.seq
    assert reused.id != lost.id
    assert again.parse(lost.id) is None  # a snapshot, not a replay that skips event 2
    assert again.parse(kept.id) == 1


# -- writing ----------------------------------------------------------------------------------


async def test_a_diff_is_written_in_the_commit_of_its_change_set_and_only_there(
    log: DurableEventLog,
) -> None:
    store = Store("default", QBT_URL)
    await store.open_instance()
    store.journal = log
    hub = Hub(log=log)
    record = project(H1, raw_torrent("debian.iso"))
    changes = ChangeSet(changed={H1: dict(record)}, added=[H1])
    event = hub.prepare_changes(changes, {H1: record})
    assert event is not None
    hub.publish_status(status(1))  # appended while the diff waits: held behind it
    assert hub.seq == 0
    assert await log.flush()  # the flush writes nothing: the diff is first, its commit writes it
    assert await rows() == []
    assert await store.commit(changes, {H1: record})
    assert await rows() == [(1, "diff"), (2, "status")]
    hub.publish_prepared(event, changes)
    assert (hub.seq, hub.last_event_id) == (2, f"{log.database_id}.1-2")
    stored = await EventRow.get(seq=1)
    assert stored.lifecycle
    assert json.loads(stored.late or "{}")["torrents"][H1]["name"] == "debian.iso"


async def test_a_failed_commit_keeps_the_events_and_the_catch_up_writes_them_without_gap_or_duplicate(
    database: Database,  # noqa: F811
    log: DurableEventLog,
) -> None:
    store = Store("default", QBT_URL)
    await store.open_instance()
    store.journal = log
    hub = Hub(log=log)
    table = {H1: project(H1, raw_torrent("debian.iso"))}
    first = ChangeSet(changed={H1: dict(table[H1])}, added=[H1])
    event = hub.prepare_changes(first, table)
    assert event is not None
    assert await store.commit(first, table)
    hub.publish_prepared(event, first)

    await database.execute(f"ALTER TABLE {database.table} RENAME TO torrent_away")
    ids = []
    for n in range(3):
        table[H2 if n else H1] = project(H2 if n else H1, seeding_torrent("arch.iso", ratio=n))
        changes = ChangeSet(changed={H2 if n else H1: {"ratio": n}})
        reserved = hub.prepare_changes(changes, table)
        assert reserved is not None
        assert not await store.commit(changes, table)  # the database fails
        hub.publish_prepared(reserved, changes)  # the stream goes on from memory
        ids.append(reserved.seq)
    assert hub.seq == 4
    assert log.failing
    assert await rows() == [(1, "diff")]

    away = database.table.replace("torrent", "torrent_away")
    await database.execute(f"ALTER TABLE {away} RENAME TO torrent")
    assert await store.commit(ChangeSet(), table)  # the next poll catches up
    assert await rows() == [(1, "diff"), (2, "diff"), (3, "diff"), (4, "diff")]
    assert not log.failing
    assert await Torrent.filter(hash=H2).exists()
    again = await restart(database.url, log)
    resume = await again.resume(event.id)
    assert resume is not None
    assert resume.events is not None
    assert [e.seq for e in resume.events] == ids


async def test_an_ambiguous_write_retried_is_harmless(log: DurableEventLog) -> None:
    event = log.append("status", status(1))
    assert await log.flush()
    log._pending.append(event)  # as if the commit's answer was lost and the write is retried
    assert await log.flush()
    assert await rows() == [(1, "status")]


async def test_too_many_unwritten_events_drop_plain_ones_and_raise_the_diff_floor(
    database: Database,  # noqa: F811
    log: DurableEventLog,
) -> None:
    log.max_pending = 16
    added = log.append(
        "diff", {"changed": {}}, {"added": [H1], "completed": [], "removed": [], "torrents": {}}
    )
    for n in range(20):
        log.append("status", status(n))
    assert len(log._pending) == 16
    assert added in log._pending  # lifecycle events are never dropped
    assert log.diff_floor == 6
    assert await log.flush(diffs=True)
    again = await restart(database.url, log)
    assert again.diff_floor == 6
    resume = await again.resume(f"{log.database_id}.1-0")
    assert resume is not None
    assert resume.events is None
    assert resume.late_complete
    assert [e.seq for e in resume.late] == [1]


# -- retention and resuming ---------------------------------------------------------------------


def lifecycle(h: str) -> dict[str, object]:
    return {"added": [], "completed": [h], "removed": [], "torrents": {h: {"hash": h, "name": "debian.iso"}}}


async def test_prune_keeps_lifecycle_events_and_resume_follows_the_floors(
    database: Database,  # noqa: F811
    log: DurableEventLog,
) -> None:
    log.diff_seconds, log.lifecycle_seconds = 3600.0, 30 * 86400.0
    old = 1_000_000.0
    events = [log.append("status", status(0))]
    events.append(log.append("diff", {"changed": {}, "completed": [H1]}, lifecycle(H1)))
    events += [log.append("status", status(n)) for n in range(2)]
    events.append(log.append("action", {"action": "pause", "ok": True}))
    for e in events:
        e.t = old  # two hours before "now" below
    events.append(log.append("status", status(9)))
    events[-1].t = old + 7000
    assert await log.flush(diffs=True)
    await log.prune(now=old + 7200)
    assert await rows() == [(2, "diff"), (5, "action"), (6, "status")]
    assert (log.diff_floor, log.lifecycle_floor) == (4, 0)

    again = await restart(database.url, log)
    assert (again.diff_floor, again.lifecycle_floor) == (4, 0)
    within = await again.resume(events[3].id)  # id 4: every event after it is kept
    assert within is not None
    assert within.events is not None
    assert [e.seq for e in within.events] == [5, 6]
    older = await again.resume(events[0].id)  # id 1: its diffs are gone
    assert older is not None
    assert older.events is None
    assert older.late_complete
    assert [(e.seq, e.kind) for e in older.late] == [(2, "diff"), (5, "action")]
    late = json.loads(older.late[0].late_frame().split(b"data: ")[1])
    assert late == {"id": events[1].id, "t": old, "kind": "diff", **lifecycle(H1)}
    assert json.loads(older.late[1].late_frame().split(b"data: ")[1])["data"] == {
        "action": "pause",
        "ok": True,
    }

    await again.prune(now=old + 31 * 86400)
    assert (again.diff_floor, again.lifecycle_floor) == (6, 5)
    gone = await again.resume(events[0].id)  # older than every retention: a plain snapshot
    assert gone is not None
    assert (gone.events, gone.late_complete) == (None, False)


async def test_regression_a_resume_between_commit_and_publish_got_the_diff_twice(
    database: Database,  # noqa: F811
    log: DurableEventLog,
) -> None:
    """A diff is written by its commit a moment before it is published: a stream resuming in
    between read it from the table, and then got it again live. Only delivered events are
    resumed; the hub adds the rest from memory when they are published."""
    store = Store("default", QBT_URL)
    await store.open_instance()
    store.journal = log
    hub = Hub(log=log)
    first = log.append("status", status(0))
    assert await log.flush()
    record = project(H1, raw_torrent("debian.iso"))
    changes = ChangeSet(changed={H1: dict(record)}, added=[H1])
    event = hub.prepare_changes(changes, {H1: record})
    assert event is not None
    assert await store.commit(changes, {H1: record})  # in the table, not yet published
    assert (2, "diff") in await rows()
    resume = await log.resume(first.id)
    assert resume is not None
    assert resume.events is not None
    assert [e.seq for e in resume.events] == []
    assert resume.upto == first.seq
    hub.publish_prepared(event, changes)
    again = await log.resume(first.id)
    assert again is not None
    assert again.events is not None
    assert [e.seq for e in again.events] == [event.seq]


async def test_regression_a_replay_bigger_than_the_snapshot_was_sent_whole(
    database: Database,  # noqa: F811
    log: DurableEventLog,
) -> None:
    """An hour of busy diffs replayed whole was ~97 MB and ~200 ms for a view that a snapshot
    gives as well: beyond ``max_bytes`` the opening is the late lifecycle events and a
    snapshot, so no ``completed`` is skipped and nothing bigger than the snapshot is sent."""
    start = log.append("status", status(0))
    events = [log.append("status", status(n)) for n in range(1, 4)]
    events.append(log.append("diff", {"changed": {}, "completed": [H1]}, lifecycle(H1)))
    assert await log.flush(diffs=True)
    again = await restart(database.url, log)
    size = sum(len(e.data) for e in events)
    whole = await again.resume(start.id, max_bytes=size)  # exactly as big as allowed: replayed
    assert whole is not None
    assert whole.events is not None
    assert [e.seq for e in whole.events] == [e.seq for e in events]
    bigger = await again.resume(start.id, max_bytes=size - 1)
    assert bigger is not None
    assert bigger.events is None
    assert bigger.late_complete
    assert [(e.seq, e.kind) for e in bigger.late] == [(events[-1].seq, "diff")]


async def test_prune_by_size_keeps_the_newest_diff_events(log: DurableEventLog) -> None:
    log.diff_events = 3
    for n in range(8):
        log.append("status", status(n))
    assert await log.flush()
    await log.prune()
    assert [seq for seq, _ in await rows()] == [6, 7, 8]
    assert log.diff_floor == 5


async def test_an_unreadable_log_resumes_from_memory(database: Database, log: DurableEventLog) -> None:  # noqa: F811
    event = log.append("status", status(1))
    assert await log.flush()
    again = await restart(database.url, log)
    await database.execute(
        f"ALTER TABLE {database.table.replace('torrent', 'event_log')} RENAME TO elsewhere"
    )
    again._buffer.clear()
    assert await again.resume(event.id) is None


async def test_a_kill_between_commit_and_publish_loses_nothing(
    database: Database,  # noqa: F811
    log: DurableEventLog,
) -> None:
    store = Store("default", QBT_URL)
    await store.open_instance()
    store.journal = log
    hub = Hub(log=log)
    before = hub.last_event_id
    record = project(H1, seeding_torrent("done.iso"))
    changes = ChangeSet(changed={H1: dict(record)}, added=[H1], completed=[H1])
    event = hub.prepare_changes(changes, {H1: record})
    assert event is not None
    assert await store.commit(changes, {H1: record})
    # killed here: never published
    again = await restart(database.url, None)
    assert await Store("default", QBT_URL).open_instance() == {H1: record}  # no re-announcement
    resume = await again.resume(before)
    assert resume is not None
    assert resume.events is not None
    assert [(e.id, e.data) for e in resume.events] == [(event.id, event.data)]  # the next start delivers it


# -- several instances ----------------------------------------------------------------------


async def test_an_event_keeps_its_instance_across_a_restart(
    database: Database,  # noqa: F811
    log: DurableEventLog,
) -> None:
    box = log.append("status", status(1), instance="box")
    server = log.append("status", status(2))
    assert await log.flush()
    again = await restart(database.url, log)
    resume = await again.resume(f"{log.database_id}.1-0")
    assert resume is not None
    assert resume.events is not None
    assert [(e.id, e.instance) for e in resume.events] == [(box.id, "box"), (server.id, None)]
    assert b'"instance":"box"' in resume.events[0].data_v2  # protocol 2 frames from stored ones
    assert again.server_id == log.database_id  # stable: what Home Assistant keys the server by


async def test_a_database_from_before_instances_gets_the_instance_column(
    database: Database,  # noqa: F811
    log: DurableEventLog,
) -> None:
    """An event_log table of the previous release (no ``instance`` column) is upgraded in place,
    its rows kept (read back as instance ``default``'s, the one instance there was)."""
    old = log.append("status", status(1))
    assert await log.flush()
    await log.stop()
    await close_database()
    table = database.table.replace("torrent", "event_log")
    await database.execute(f"ALTER TABLE {table} DROP COLUMN instance")
    again = await opened(database.url)
    newer = again.append("status", status(2), instance="home")
    assert await again.flush()
    resume = await again.resume(f"{log.database_id}.1-0")
    assert resume is not None
    assert resume.events is not None
    assert [(e.id, e.instance) for e in resume.events] == [(old.id, "default"), (newer.id, "home")]


async def test_regression_rows_from_before_instances_replay_as_instance_default(
    database: Database,  # noqa: F811
    log: DurableEventLog,
) -> None:
    """Regression: the rows of an event_log from before several instances were read back with
    no instance, that is as the whole server's: a resume after the upgrade replayed the old
    ``default`` qBittorrent's diffs to a protocol 1 stream of any instance (another primary,
    once ``[[instances]]`` replaced the flat settings) and sent them to protocol 2 streams
    without the ``instance`` every v2 diff names. They were all ``default``'s: the upgrade
    says so."""
    old = log.append("diff", {"changed": {"5a1b": {"progress": 0.5}}})
    assert await log.flush(diffs=True)
    await log.stop()
    await close_database()
    table = database.table.replace("torrent", "event_log")
    await database.execute(f"ALTER TABLE {table} DROP COLUMN instance")
    again = await opened(database.url)
    resume = await again.resume(f"{log.database_id}.1-0")
    assert resume is not None
    assert resume.events is not None
    (event,) = resume.events
    assert (event.id, event.instance) == (old.id, "default")
    assert event.data_v2.startswith(f'id: {old.id}\nevent: diff\ndata: {{"instance":"default",'.encode())
    await again.stop()
    await close_database()
    reopened = await opened(database.url)  # the upgrade is done once: later rows keep theirs
    newer = reopened.append("status", status(2))
    assert await reopened.flush()
    resume = await reopened.resume(old.id)
    assert resume is not None
    assert resume.events is not None
    assert [(e.id, e.instance) for e in resume.events] == [(newer.id, None)]
