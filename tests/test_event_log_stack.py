"""The durable event log against the whole stack: real qbittorrent-nox, real server processes
restarted (SIGTERM) or killed (SIGKILL) between streams, SQLite and a real PostgreSQL.

What must hold for someone following the server: a stream resumed with its Last-Event-ID
after a restart gets exactly the events it missed (their count and ids, no snapshot), and a
download that completed while the server was down is announced once, on that replay, and
never again.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator

import asyncpg  # type: ignore[import-untyped]
import pytest
from test_store import POSTGRES_URL, with_param

from quart_dl.lab.server_process import ServerProcess
from quart_dl.lab.sse_reader import SSEMessage, SSEReader, apply_stream
from quart_dl.lab.transfer import TransferPair
from quart_dl.lab.wait import wait_for
from quart_dl.store.store import tortoise_url

MiB = 1024 * 1024


@pytest.fixture(params=["sqlite", "postgres"])
def database_args(request: pytest.FixtureRequest) -> Iterator[tuple[str, ...]]:
    """Server arguments for the database: the default SQLite file, or a PostgreSQL schema."""
    if request.param == "sqlite":
        yield ()
        return
    import asyncio

    schema = f"qdl_stack_{secrets.token_hex(4)}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(tortoise_url(POSTGRES_URL), timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE SCHEMA "{schema}"'))
    try:
        yield ("--database-url", with_param(POSTGRES_URL, f"schema={schema}"))
    finally:
        asyncio.run(run(f'DROP SCHEMA "{schema}" CASCADE'))


def seq_of(event_id: str | None) -> int:
    assert event_id is not None
    return int(event_id.rsplit("-", 1)[1])


def completions(messages: list[SSEMessage], torrent_hash: str) -> list[str | None]:
    """Ids of the events that announced ``torrent_hash`` as completed (diff or late)."""
    return [
        m.id
        for m in messages
        if m.event in ("diff", "late") and m.data and torrent_hash in m.json().get("completed", [])
    ]


def test_a_stream_resumes_across_a_server_restart_with_exactly_the_missed_events(
    pair: TransferPair, make_server: Callable[..., ServerProcess], database_args: tuple[str, ...]
) -> None:
    server = make_server(extra_args=database_args)
    torrent_hash = pair.add_transfer("across.bin", size=2 * MiB, rate=128 * 1024)
    with SSEReader(server.url + "api/events") as first:
        first.wait(lambda m: len([e for e in m if e.event == "diff"]) >= 3, 30, "diffs on the first stream")
        last_id = first.last_id
        seen_first = first.events()
    assert last_id is not None
    database = last_id.split(".", 1)[0]
    server.stop()  # SIGTERM: a clean restart
    server.start()
    status = wait_for(
        lambda: (s := server.status()) and seq_of(s["event_id"]) > seq_of(last_id) + 3 and s, 30, "new events"
    )
    with SSEReader(server.url + "api/events", headers={"Last-Event-ID": last_id}) as second:
        second.wait(lambda m: [e for e in m if e.data], 5, "the replay")
        newest = seq_of(server.status()["event_id"])
        second.wait(lambda m: m and seq_of(second.last_id) >= newest, 10, "the replay up to the newest event")
        replayed = [e for e in second.events() if e.data]
        assert all(e.event != "snapshot" for e in replayed), "an id from before the restart got a snapshot"
        ids = [e.id for e in replayed]
        seqs = [seq_of(i) for i in ids]
        # Exactly the missed events: every seq after the last one seen, once, in order.
        assert seqs == list(range(seq_of(last_id) + 1, seq_of(last_id) + 1 + len(seqs)))
        assert all(i is not None and i.startswith(database + ".") for i in ids)  # the same database
        assert any(
            i is not None and not i.startswith(last_id.rsplit("-", 1)[0] + "-") for i in ids
        )  # a new run
        with SSEReader(server.url + "api/events") as fresh:
            second.wait(
                lambda m: fresh.last_id is not None and fresh.last_id == second.last_id,
                10,
                "both at the same event",
            )
            assert apply_stream(seen_first + second.snapshot()) == apply_stream(fresh.snapshot())
    assert status["event_id"].startswith(database + ".")
    assert torrent_hash


def test_a_completion_while_the_server_was_killed_is_announced_once(
    pair: TransferPair, make_server: Callable[..., ServerProcess], database_args: tuple[str, ...]
) -> None:
    server = make_server(extra_args=database_args)
    torrent_hash = pair.add_transfer("while-down.bin", size=1 * MiB, rate=128 * 1024)
    with SSEReader(server.url + "api/events") as first:
        first.wait(
            lambda m: [e for e in m if e.event == "diff" and torrent_hash in (e.data or "")],
            30,
            "the transfer",
        )
        last_id = first.last_id
    assert last_id is not None
    assert completions(first.events(), torrent_hash) == []
    server.kill()  # SIGKILL
    pair.wait_complete(torrent_hash)
    server.start()
    with SSEReader(server.url + "api/events", headers={"Last-Event-ID": last_id}) as second:
        announced = second.wait(lambda m: completions(m, torrent_hash), 30, "the completion on the replay")
        assert len(announced) == 1
        resumed_at = announced[0]
        assert resumed_at is not None
    server.kill()
    server.start()
    with SSEReader(server.url + "api/events", headers={"Last-Event-ID": resumed_at}) as third:
        third.wait(lambda m: [e for e in m if e.data], 5, "the opening")
        assert completions(third.events(), torrent_hash) == [], "announced twice"
    with SSEReader(server.url + "api/events", headers={"Last-Event-ID": last_id}) as again:
        announced_again = again.wait(lambda m: completions(m, torrent_hash), 10, "the completion replayed")
        assert announced_again == announced  # the same event, with the same id: a client that saw it skips it
