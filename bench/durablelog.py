"""The durable event log's cost: CPU per poll against the in-memory log, and replay time.

Per poll (10,000 torrents, 300 changing): the poller's steps, through the real TorrentTable,
Store and Hub: merge, then ``prepare_changes`` → ``Store.commit`` (the change set, plus with
the durable log its event in the same transaction) → ``publish_prepared``, and a status event.
The same polls run with the in-memory log (the baseline: the store commits only torrents) and
with the durable log, alternating A/B in one run, on SQLite and on PostgreSQL. CPU is
``time.process_time`` (every thread of this process: aiosqlite's writer is counted; the
PostgreSQL server's own CPU is not, it is another process).

Replay: an hour of diffs (3,600, one per second) written to the log, the database closed and
opened again as after a restart, then the time ``Hub.resume`` + ``subscribe`` take to build the
opening of a client that reconnects with the id from an hour ago.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from quart_dl.hub import Hub
from quart_dl.hub.log import MemoryEventLog
from quart_dl.status import InstanceStatus
from quart_dl.store.event_log import DurableEventLog
from quart_dl.store.store import Store, close_database, open_database, tortoise_url
from quart_dl.torrents import ChangeSet, TorrentTable

from .common import dumps
from .synthetic import full_maindata, partial_maindata

DB_OK = {"ok": True, "last_error": None}
POSTGRES_URL = os.environ.get("QUART_DL_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")


async def _pg_schema(sql: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(tortoise_url(POSTGRES_URL), timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


class _Url:
    """A fresh database for one measurement (SQLite file, or a PostgreSQL schema)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.schema = f"qdl_bench_{secrets.token_hex(4)}"

    async def __aenter__(self) -> str:
        from tortoise.backends.base.executor import EXECUTOR_CACHE

        # Tortoise caches built statements by connection name, not backend (tests/fakes.py).
        EXECUTOR_CACHE.clear()
        if self.kind == "sqlite":
            return f"sqlite://{Path(tempfile.mkdtemp(prefix='quart-dl-durable-')) / 'bench.sqlite3'}"
        await _pg_schema(f'CREATE SCHEMA "{self.schema}"')
        sep = "&" if "?" in POSTGRES_URL else "?"
        return f"{POSTGRES_URL}{sep}schema={self.schema}"

    async def __aexit__(self, *exc: object) -> None:
        if self.kind == "postgres":
            await _pg_schema(f'DROP SCHEMA "{self.schema}" CASCADE')


async def _polls(kind: str, n: int, changing: int, polls: int) -> dict[str, float]:
    async with _Url(kind) as url:
        await open_database(url)
        try:
            durable = DurableEventLog(2048)
            await durable.open()
            setups: dict[str, tuple[Hub, Store, TorrentTable, InstanceStatus]] = {}
            for name, log in (("memory", MemoryEventLog(2048)), ("durable", durable)):
                store = Store(name, "http://127.0.0.1:8080")
                table = TorrentTable(await store.open_instance(), first_run=True)
                hub = Hub(log=log)
                status = InstanceStatus()
                hub.watch_status(status.record)
                if name == "durable":
                    store.journal = durable
                setups[name] = (hub, store, table, status)

            async def poll(name: str, raw: bytes) -> float:
                hub, store, table, status = setups[name]
                answer = json.loads(raw)
                c = time.process_time()
                changes = table.apply(answer)
                event = hub.prepare_changes(changes, table.records)
                if changes:
                    await store.commit(changes, table.records)
                if event is not None:
                    hub.publish_prepared(event, changes)
                visible, _ = status.connected(version="v4.5.2", database=DB_OK, now=time.time())
                if visible:
                    hub.publish_status(status.record)
                return time.process_time() - c

            first = dumps(full_maindata(n)).encode()
            for name in setups:
                await poll(name, first)
            cpu: dict[str, list[float]] = {"memory": [], "durable": []}
            for rid in range(2, 2 + polls):
                raw = dumps(partial_maindata(n, rid, changing)).encode()
                order = ("memory", "durable") if rid % 2 else ("durable", "memory")
                for name in order:
                    cpu[name].append(await poll(name, raw))
            await durable.flush()
        finally:
            await close_database()
    mem = statistics.median(cpu["memory"][2:])
    dur = statistics.median(cpu["durable"][2:])
    return {
        "memory_cpu_ms_p50": round(mem * 1000, 2),
        "durable_cpu_ms_p50": round(dur * 1000, 2),
        "durable_over_memory": round(dur / mem, 3),
    }


async def _replay(kind: str, diffs: int, changing: int, n: int, samples: int = 5) -> dict[str, Any]:
    async with _Url(kind) as url:
        await open_database(url)
        try:
            log = DurableEventLog(2048, diff_events=diffs + 16)
            await log.open()
            hub = Hub(log=log)
            start_id = hub.last_event_id
            hashes = [f"{i:040x}" for i in range(changing)]
            for i in range(diffs):
                changes = ChangeSet(changed={h: {"progress": i / diffs, "dl_speed": i} for h in hashes})
                hub.publish_changes(changes)
                if i % 200 == 199:
                    await log.flush(diffs=True)
            await log.flush(diffs=True)
        finally:
            await close_database()
        await open_database(url)  # a restart: nothing in memory but the newest 2048 events
        try:
            log = DurableEventLog(2048)
            await log.open()
            hub = Hub(log=log)
            # The view a restarted server holds (n torrents): its snapshot is what a replay
            # bigger than it is sent as instead (with the late lifecycle events).
            table = TorrentTable(first_run=True)
            table.apply(json.loads(dumps(full_maindata(n))))
            hub.seed(table.records)
            walls: list[float] = []
            size = 0
            how = ""
            for _ in range(samples):
                w = time.perf_counter()
                resume = await hub.resume(start_id)
                sink, opening, how = hub.subscribe(last_event_id=start_id, resume=resume)
                walls.append(time.perf_counter() - w)
                size = sum(len(f) for f in opening)
                hub.unsubscribe(sink, "bench")
        finally:
            await close_database()
    return {
        f"replay_{diffs}_diffs_of_{changing}_ms_p50": round(statistics.median(walls) * 1000, 1),
        f"replay_{diffs}_diffs_of_{changing}_bytes": size,
        f"replay_{diffs}_diffs_of_{changing}_opened_with": how,
    }


async def _run(n: int, changing: int, polls: int) -> dict[str, Any]:
    out: dict[str, Any] = {"torrents": n, "changing_per_poll": changing, "polls": polls}
    for kind in ("sqlite", "postgres"):
        out[kind] = await _polls(kind, n, changing, polls)
        out[kind].update(await _replay(kind, 3600, 5, n))
        out[kind].update(await _replay(kind, 3600, 300, n, samples=3))
    return out


def run_durablelog(n: int = 10_000, changing: int = 300, polls: int = 30) -> dict[str, Any]:
    """Figures for BENCHMARKS.md, "Durable log"."""
    return asyncio.run(_run(n, changing, polls))


if __name__ == "__main__":
    print(json.dumps(run_durablelog(), indent=2))
