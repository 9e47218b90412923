"""The poller with a scripted qBittorrent, a real hub and a real store (in-memory SQLite)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import pytest
from fakes import (
    H1,
    H2,
    forget_sql_dialect,
    full_update,
    parse_frames,
    partial_update,
    raw_torrent,
    seeding_torrent,
)

from quart_dl.hub import Hub
from quart_dl.lab.wait import wait_for_async
from quart_dl.metrics import Metrics
from quart_dl.qbittorrent.client import AuthFailed, Unreachable
from quart_dl.qbittorrent.fake import FakeSession
from quart_dl.qbittorrent.poller import AUTH_BASE, FOLLOW_UP_INTERVAL, UNREACHABLE_CAP, Poller, backoff
from quart_dl.store.models import InstanceRow, Torrent
from quart_dl.store.store import Store, close_database, open_database
from quart_dl.torrents import ChangeSet, Record, TorrentTable, project

EPOCH = "feed0001"
QBT_URL = "http://127.0.0.1:8080"
SERVER_STATE = {"dl_info_speed": 204_800, "up_info_speed": 0, "dl_info_data": 650_117, "up_info_data": 0}

MakePoller = Callable[..., Poller]


class RecordingStore(Store):
    """A real store that notes, at the end of each commit, the hub's sequence and the rows."""

    def __init__(self) -> None:
        super().__init__("default", QBT_URL)
        self.hub: Hub | None = None
        self.commits: list[tuple[int, set[str]]] = []

    async def commit(self, changes: ChangeSet, records: Any) -> bool:
        ok = await super().commit(changes, records)
        if ok and self.hub is not None:
            # flat=True gives the hashes themselves; Tortoise's annotation says tuples.
            rows = cast(list[str], await Torrent.all().values_list("hash", flat=True))
            self.commits.append((self.hub.seq, set(rows)))
        return ok


@pytest.fixture
async def store() -> AsyncIterator[RecordingStore]:
    forget_sql_dialect()
    await open_database("sqlite://:memory:")
    try:
        yield RecordingStore()
    finally:
        await close_database()


@pytest.fixture
async def make_poller(store: RecordingStore) -> AsyncIterator[MakePoller]:
    made: list[Poller] = []

    def make(session: FakeSession, **kwargs: Any) -> Poller:
        metrics = Metrics()
        hub = Hub(heartbeat=15.0, metrics=metrics, epoch=EPOCH)
        store.hub = hub
        kwargs.setdefault("poll_interval", 0.05)
        kwargs.setdefault("idle_poll_interval", 30.0)
        poller = Poller(session=session, hub=hub, store=store, metrics=metrics, **kwargs)
        made.append(poller)
        return poller

    yield make
    for poller in made:
        # A loop task that died raises here; the test that killed it has failed already.
        with contextlib.suppress(Exception):
            await poller.stop()


async def prepare(poller: Poller, known: dict[str, Record] | None = None) -> None:
    """What ``Poller.start`` does before its loop, so tests can call ``poll_once`` by hand."""
    loaded = await poller.store.open_instance()
    if known:
        loaded.update(known)
    poller.table = TorrentTable(loaded)
    poller.hub.seed(poller.table.records)


def events(sub: Any) -> list[dict[str, Any]]:
    out = []
    for data in sub.drain():
        (f,) = parse_frames(data)
        f["data"] = json.loads(f["data"])
        out.append(f)
    return out


# -- backoff -----------------------------------------------------------------------------------


def test_backoff_bounds() -> None:
    assert backoff(1, 1.0, 30.0, rand=lambda: 0.0) == 0.5
    assert backoff(1, 1.0, 30.0, rand=lambda: 1.0) == 1.0
    assert backoff(0, 1.0, 30.0, rand=lambda: 1.0) == 1.0
    assert backoff(3, 1.0, 30.0, rand=lambda: 1.0) == 4.0
    assert backoff(3, 1.0, 30.0, rand=lambda: 0.5) == 3.0
    assert backoff(6, 1.0, 30.0, rand=lambda: 1.0) == 30.0  # 32 capped
    assert backoff(500, 1.0, 30.0, rand=lambda: 1.0) == 30.0  # no overflow
    assert backoff(500, 1.0, 30.0, rand=lambda: 0.0) == 15.0
    assert backoff(1, 60.0, 600.0, rand=lambda: 0.0) == 30.0


def test_backoff_with_real_jitter_stays_within_half_and_all() -> None:
    for failures in range(1, 12):
        ceiling = min(30.0, 2.0 ** (failures - 1))
        for _ in range(50):
            assert ceiling / 2 <= backoff(failures, 1.0, 30.0) <= ceiling


# -- a good poll -------------------------------------------------------------------------------


async def test_first_poll_logs_in_commits_then_publishes(
    make_poller: MakePoller, store: RecordingStore
) -> None:
    client = FakeSession([full_update({H1: raw_torrent()}, SERVER_STATE)])
    poller = make_poller(client)
    await prepare(poller)
    sub, _, _ = poller.hub.subscribe()
    assert await poller.poll_once() == 0.05  # someone watches: the fast cadence
    assert client.calls[:2] == ["login", "maindata"]
    by_kind = {e["event"]: e for e in events(sub)}
    assert sorted(by_kind) == ["diff", "status"]  # one of each, in either order
    status, diff = by_kind["status"], by_kind["diff"]
    assert status["data"]["qbittorrent"] == "connected"
    assert status["data"]["version"] == "v4.5.2"
    assert diff["data"]["added"] == [H1]
    assert diff["data"]["changed"][H1] == project(H1, raw_torrent())
    assert diff["data"]["transfer"]["dl_speed"] == 204_800
    # committed before published: at the end of the commit the row was there and the diff
    # was not yet out (the hub's sequence was still below the diff's)
    ((seq_at_commit, rows_at_commit),) = store.commits
    assert rows_at_commit == {H1}
    assert seq_at_commit == int(diff["id"].rsplit("-", 1)[1]) - 1
    assert poller.hub.torrents[H1]["progress"] == 0.31
    assert poller.hub.status["last_poll"] is not None
    assert poller.metrics.value("poll_duration_seconds_count") == 1
    assert poller.last_duration is not None


async def test_quiet_polls_publish_nothing(make_poller: MakePoller, store: RecordingStore) -> None:
    client = FakeSession([full_update({H1: raw_torrent()}), partial_update({H1: {"time_active": 13}})])
    poller = make_poller(client)
    await prepare(poller)
    await poller.poll_once()
    seq = poller.hub.seq
    first_poll = poller.hub.status["last_poll"]
    await poller.poll_once()  # raw-only churn
    await poller.poll_once()  # script used up: nothing changed
    assert poller.hub.seq == seq
    assert len(store.commits) == 1
    assert poller.hub.status["last_poll"] >= first_poll
    assert client.count("login") == 1


async def test_history_sampled_on_its_own_clock(make_poller: MakePoller, store: RecordingStore) -> None:
    client = FakeSession([full_update({H1: raw_torrent(), H2: raw_torrent("idle", dlspeed=0)}, SERVER_STATE)])
    poller = make_poller(client, sample_interval=60.0)
    await prepare(poller)
    await poller.poll_once()
    await poller.poll_once()
    samples = await store.history(0)
    assert [s["dl_speed"] for s in samples] == [204_800]
    assert [s["dl_speed"] for s in await store.history(0, H1)] == [204_800]
    assert await store.history(0, H2) == []  # only torrents moving data are sampled


async def test_known_torrents_seed_the_table_and_a_missed_completion_is_reported(
    make_poller: MakePoller,
) -> None:
    client = FakeSession([full_update({H1: seeding_torrent("debian.iso"), H2: raw_torrent("two")})])
    poller = make_poller(client)
    # what the database saw last time: H1 at 31 %, H2 exactly as now
    await prepare(poller, {H1: project(H1, raw_torrent("debian.iso")), H2: project(H2, raw_torrent("two"))})
    sub, opening, _ = poller.hub.subscribe()
    (snap,) = parse_frames(opening[0])
    assert set(json.loads(snap["data"])["torrents"]) == {H1, H2}
    await poller.poll_once()
    diff = [e for e in events(sub) if e["event"] == "diff"]
    assert len(diff) == 1
    assert diff[0]["data"]["completed"] == [H1]
    assert set(diff[0]["data"]["changed"]) == {H1}
    assert "added" not in diff[0]["data"]


async def test_changes_are_published_while_the_database_fails(
    make_poller: MakePoller, store: RecordingStore
) -> None:
    from tortoise import Tortoise

    client = FakeSession([full_update({H1: raw_torrent()}), partial_update({H1: {"progress": 0.5}})])
    poller = make_poller(client)
    await prepare(poller)
    await poller.poll_once()
    conn = Tortoise.get_connection("default")
    await conn.execute_script("ALTER TABLE torrent RENAME TO torrent_away")
    sub, _, _ = poller.hub.subscribe()
    await poller.poll_once()
    assert store.behind is True
    diff, status = events(sub)
    assert diff["data"]["changed"] == {H1: {"progress": 0.5}}
    # The stream is told too (test_faults: "status shows the fault").
    assert status["data"]["database"] == {"ok": False, "last_error": "OperationalError"}
    await conn.execute_script("ALTER TABLE torrent_away RENAME TO torrent")
    client.script(partial_update({H2: raw_torrent("two")}))
    await poller.poll_once()
    assert store.behind is False
    rows = {r["hash"]: r["progress"] for r in await Torrent.all().values("hash", "progress")}
    assert rows == {H1: 0.5, H2: 0.31}


# -- faults ------------------------------------------------------------------------------------


async def test_unreachable_backs_off_with_jitter_up_to_30_s(make_poller: MakePoller) -> None:
    client = FakeSession()
    client.failure = Unreachable("cannot reach qBittorrent at http://127.0.0.1:8080 (connection refused)")
    poller = make_poller(client)
    await prepare(poller)
    sub, _, _ = poller.hub.subscribe()
    delays = [await poller.poll_once() for _ in range(12)]
    for n, delay in enumerate(delays, start=1):
        ceiling = min(UNREACHABLE_CAP, 2.0 ** (n - 1))
        assert ceiling / 2 <= delay <= ceiling, (n, delay)
    assert max(delays) <= 30.0
    assert min(delays[6:]) >= 15.0  # it grew
    assert len(set(delays[6:])) > 1  # jittered, not in lockstep
    (status,) = events(sub)  # one event: the repeats change nothing visible
    assert status["data"]["qbittorrent"] == "unreachable"
    assert status["data"]["message"].startswith("cannot reach qBittorrent")
    assert poller.failures == 12
    assert poller.errors == 12
    assert poller.last_error == "unreachable"
    assert poller.metrics.value("poll_errors_total", kind="unreachable") == 12
    assert client.count("reset") == 12
    assert client.count("login") == 12  # each attempt starts with a fresh login


async def test_status_since_changes_only_on_a_transition(make_poller: MakePoller) -> None:
    client = FakeSession()
    client.failure = Unreachable("down")
    poller = make_poller(client)
    await prepare(poller)
    await poller.poll_once()
    since = poller.hub.status["since"]
    await poller.poll_once()
    assert poller.hub.status["since"] == since


async def test_auth_failed_backs_off_long(make_poller: MakePoller) -> None:
    client = FakeSession(login_answers=[AuthFailed("qBittorrent rejected the user name or password")])
    poller = make_poller(client)
    await prepare(poller)
    sub, _, _ = poller.hub.subscribe()
    delay = await poller.poll_once()
    assert AUTH_BASE / 2 <= delay <= AUTH_BASE
    (status,) = events(sub)
    assert status["data"]["qbittorrent"] == "auth_failed"
    assert status["data"]["message"] == "qBittorrent rejected the user name or password"
    assert poller.last_error == "auth_failed"
    assert client.count("maindata") == 0
    row = await InstanceRow.get(name="default")
    assert row.status == "auth_failed"


async def test_a_new_subscriber_does_not_wake_a_poller_whose_credentials_fail(
    make_poller: MakePoller,
) -> None:
    client = FakeSession(login_answers=[AuthFailed("rejected")])
    poller = make_poller(client)
    await prepare(poller)
    await poller.poll_once()
    poller.hub.subscribe()
    assert not poller._wake.is_set()


async def test_recovery_publishes_connected(make_poller: MakePoller) -> None:
    client = FakeSession([full_update({H1: raw_torrent()})])
    poller = make_poller(client)
    await prepare(poller)
    await poller.poll_once()
    client.failure = Unreachable("down")
    await poller.poll_once()
    await poller.poll_once()
    sub, _, _ = poller.hub.subscribe()
    client.failure = None
    client.script(full_update({H1: raw_torrent(progress=0.4)}))  # after reset: a full update
    assert await poller.poll_once() == 0.05
    by_kind = {e["event"]: e for e in events(sub)}
    assert sorted(by_kind) == ["diff", "status"]  # one of each, in either order
    assert by_kind["status"]["data"]["qbittorrent"] == "connected"
    assert by_kind["status"]["data"]["message"] is None
    assert by_kind["diff"]["data"] == {"changed": {H1: {"progress": 0.4}}}
    assert poller.failures == 0
    assert poller.errors == 2
    assert poller.last_error is None


async def test_regression_connected_status_never_saved(make_poller: MakePoller) -> None:
    # Login publishes "connected" itself, so the later "status changed?" check is always
    # false and save_status() is never called for it: the instance row kept "unreachable".
    client = FakeSession([full_update({H1: raw_torrent()})])
    poller = make_poller(client)
    await prepare(poller)
    client.failure = Unreachable("down")
    await poller.poll_once()
    assert (await InstanceRow.get(name="default")).status == "unreachable"
    client.failure = None
    await poller.poll_once()
    assert poller.hub.status["qbittorrent"] == "connected"
    row = await InstanceRow.get(name="default")
    assert row.status == "connected"
    assert row.version == "v4.5.2"


async def test_regression_status_flaps_when_login_works_but_maindata_fails(make_poller: MakePoller) -> None:
    # Every retry logs in again and login publishes "connected" before any data came back;
    # maindata then fails and "unreachable" follows: two status events per retry, the panel
    # blinks "connected", and "since" restarts every time.
    client = FakeSession([Unreachable("sync failed"), Unreachable("sync failed"), Unreachable("sync failed")])
    poller = make_poller(client)
    await prepare(poller)
    sub, _, _ = poller.hub.subscribe()
    await poller.poll_once()
    since = poller.hub.status["since"]
    await poller.poll_once()
    await poller.poll_once()
    assert client.count("login") == 3
    states = [e["data"]["qbittorrent"] for e in events(sub) if e["event"] == "status"]
    assert states == ["unreachable"]
    assert poller.hub.status["since"] == since


async def test_unexpected_exception_is_an_unreachable_poll(make_poller: MakePoller) -> None:
    client = FakeSession([RuntimeError("surprise")])
    poller = make_poller(client)
    await prepare(poller)
    delay = await poller.poll_once()
    assert 0.5 <= delay <= 1.0
    assert poller.hub.status["qbittorrent"] == "unreachable"
    message = poller.hub.status["message"]
    assert message.startswith("unexpected")
    assert "RuntimeError" in message
    assert "surprise" not in message  # the exception's text may hold anything: not shown


async def test_unexpected_exception_does_not_kill_the_loop(make_poller: MakePoller) -> None:
    client = FakeSession(
        [full_update({H1: raw_torrent()}), RuntimeError("surprise"), partial_update({H1: {"progress": 0.9}})]
    )
    poller = make_poller(client)
    poller.hub.subscribe()  # fast cadence
    await poller.start()
    await wait_for_async(
        lambda: poller.hub.torrents.get(H1, {}).get("progress") == 0.9, what="poll after the error"
    )
    assert poller.errors == 1
    assert poller.hub.status["qbittorrent"] == "connected"
    assert poller._task is not None
    assert not poller._task.done()


async def test_regression_error_after_the_poll_kills_the_loop(
    make_poller: MakePoller, store: RecordingStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An exception raised after poll_once's try (here by the store; before, by the encoder on
    # a NaN ratio) ended the loop task, and the panel went silently stale.
    client = FakeSession(
        [
            full_update({H1: raw_torrent()}),
            partial_update({H1: {"progress": 0.5}}),
            partial_update({H1: {"progress": 0.9}}),
        ]
    )
    calls = 0
    real_commit = store.commit

    async def failing_once(changes: ChangeSet, records: Any) -> bool:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("unexpected")
        return await real_commit(changes, records)

    monkeypatch.setattr(store, "commit", failing_once)
    poller = make_poller(client)
    poller.hub.subscribe()
    await poller.start()
    await wait_for_async(lambda: client.count("maindata") >= 3, what="a poll after the unencodable answer")
    assert poller._task is not None
    assert not poller._task.done()


async def test_regression_malformed_maindata_kills_the_poll_loop(make_poller: MakePoller) -> None:
    # A torrent entry that is not an object (a proxy or a broken qBittorrent answering
    # something odd) raised TypeError in TorrentTable.apply, outside poll_once's try: the
    # loop task died and nothing was polled again, silently.
    client = FakeSession(
        [
            full_update({H1: raw_torrent()}),
            {"rid": 3, "torrents": {H2: None}},
            partial_update({H1: {"progress": 0.9}}),
        ]
    )
    poller = make_poller(client)
    poller.hub.subscribe()
    await poller.start()
    await wait_for_async(lambda: client.count("maindata") >= 2, what="the malformed answer")
    await wait_for_async(
        lambda: client.count("maindata") >= 3, timeout=1.5, what="a poll after the malformed answer"
    )
    assert poller._task is not None
    assert not poller._task.done()


# -- cadence and the loop ----------------------------------------------------------------------


async def test_cadence_fast_with_subscribers_slow_without(make_poller: MakePoller) -> None:
    client = FakeSession()
    poller = make_poller(client, poll_interval=1.0, idle_poll_interval=30.0)
    await prepare(poller)
    assert poller.interval == 30.0
    assert await poller.poll_once() == 30.0
    sub, _, _ = poller.hub.subscribe()
    assert poller.interval == 1.0
    assert await poller.poll_once() == 1.0
    poller.hub.unsubscribe(sub, "client closed")
    assert await poller.poll_once() == 30.0


async def test_loop_polls_at_the_fast_cadence_with_a_subscriber(make_poller: MakePoller) -> None:
    client = FakeSession()
    poller = make_poller(client, poll_interval=0.05, idle_poll_interval=30.0)
    poller.hub.subscribe()
    await poller.start()
    await wait_for_async(lambda: client.count("maindata") >= 5, timeout=3.0, what="five fast polls")


async def test_first_subscriber_wakes_an_idle_poller(make_poller: MakePoller) -> None:
    client = FakeSession()
    poller = make_poller(client, poll_interval=1.0, idle_poll_interval=30.0)
    await poller.start()
    await wait_for_async(lambda: poller.hub.status["last_poll"] is not None, what="the first poll")
    assert client.count("maindata") == 1
    poller.hub.subscribe()
    await wait_for_async(
        lambda: client.count("maindata") == 2, timeout=2.0, what="a poll for the first viewer"
    )


async def test_start_loads_what_the_database_knows(make_poller: MakePoller, store: RecordingStore) -> None:
    await store.open_instance()
    record = project(H1, raw_torrent())
    await store.commit(ChangeSet(changed={H1: record}, added=[H1]), {H1: record})
    client = FakeSession()
    client.failure = Unreachable("down")
    poller = make_poller(client)
    await poller.start()
    assert poller.hub.torrents == {H1: record}
    assert poller.table.records == {H1: record}


async def test_stop_ends_the_loop_and_leaves_the_session_to_its_instance(make_poller: MakePoller) -> None:
    client = FakeSession()
    poller = make_poller(client)
    await poller.start()
    task = poller._task
    assert task is not None
    await poller.stop()
    assert task.done()
    assert client.count("close") == 0  # the instance owns the session (test_instance)


class GatedSession(FakeSession):
    """A FakeSession whose ``maindata`` waits for ``gate`` while ``hold`` is set: a poll in flight."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hold = False
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()

    async def maindata(self) -> dict[str, Any]:
        if self.hold:
            self.entered.set()
            await self.gate.wait()
        return await super().maindata()


async def test_regression_a_wake_during_a_poll_is_not_lost(make_poller: MakePoller) -> None:
    """An action answered while a poll's maindata was in flight woke the poller, and the
    poll's end cleared the wake: the action's effect waited out the idle interval (30 s)."""
    session = GatedSession([full_update({H1: raw_torrent("one")})])
    poller = make_poller(session)  # idle interval 30 s: no viewer
    await poller.start()
    try:
        await wait_for_async(lambda: session.count("maindata") >= 1, what="the first poll")
        session.hold = True
        poller.wake()
        await asyncio.wait_for(session.entered.wait(), 3)
        in_flight = session.count("maindata") + 1  # counted once the gate opens
        poller.wake()  # lands during the poll
        session.hold = False
        session.gate.set()
        await wait_for_async(
            lambda: session.count("maindata") > in_flight, timeout=2, what="one more poll at once"
        )
    finally:
        await poller.stop()


async def test_follow_up_polls_fast_for_a_while_then_slows_down(make_poller: MakePoller) -> None:
    session = FakeSession([full_update({H1: raw_torrent("one")})])
    poller = make_poller(session)
    await poller.start()
    try:
        await wait_for_async(lambda: session.count("maindata") >= 1, what="the first poll")
        assert poller.interval == 30.0
        polls = session.count("maindata")
        poller.follow_up(seconds=0.6)
        assert poller.interval == FOLLOW_UP_INTERVAL
        await wait_for_async(lambda: session.count("maindata") >= polls + 2, timeout=2, what="fast polls")
        await wait_for_async(
            lambda: poller.interval == 30.0 or None, timeout=2, what="back to the idle interval"
        )
    finally:
        await poller.stop()
