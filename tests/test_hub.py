"""The hub: ids with epochs, replay or snapshot, the subscribe race, fan-out, overflow, beats."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from fakes import H1, H2, H3, FakeTransport, parse_frames, raw_torrent

from quart_dl.hub import OVERFLOW, SEND_TIMEOUT, SERVER_SHUTDOWN, Hub, TransportSink
from quart_dl.hub import hub as hub_module
from quart_dl.hub.log import MemoryEventLog, Resume
from quart_dl.status import InstanceStatus
from quart_dl.torrents import ChangeSet, Record, project

EPOCH = "cafe0001"


def status_record(**fields: Any) -> Record:
    """A status record as an instance keeps it, with ``fields`` set."""
    record = InstanceStatus().record
    record.update(fields)
    return record


def make_hub(**kwargs: Any) -> Hub:
    kwargs.setdefault("epoch", EPOCH)
    hub = Hub(**kwargs)
    hub.seed({H1: project(H1, raw_torrent("one")), H2: project(H2, raw_torrent("two"))})
    return hub


def progress(torrent_hash: str, value: float) -> ChangeSet:
    return ChangeSet(changed={torrent_hash: {"progress": value}})


def decode(data: bytes) -> list[dict[str, Any]]:
    """Frames with their JSON data decoded."""
    frames = parse_frames(data)
    for f in frames:
        if "data" in f:
            f["data"] = json.loads(f["data"])
    return frames


def only(data: bytes) -> dict[str, Any]:
    (f,) = decode(data)
    return f


def queued(sub: Any) -> list[dict[str, Any]]:
    return [only(d) for d in sub.drain()]


# -- ids and the view --------------------------------------------------------------------------


def test_ids_carry_the_epoch_and_count_from_one() -> None:
    hub = make_hub()
    assert hub.last_event_id == f"{EPOCH}-0"
    first = hub.publish_changes(progress(H1, 0.4))
    second = hub.publish_status(status_record(qbittorrent="connected", version="v4.5.2"))
    assert first is not None
    assert second is not None
    assert (first.id, second.id) == (f"{EPOCH}-1", f"{EPOCH}-2")
    assert hub.last_event_id == f"{EPOCH}-2"


def test_epochs_differ_between_hubs() -> None:
    assert Hub().epoch != Hub().epoch


def test_publish_changes_updates_the_view() -> None:
    hub = make_hub()
    hub.publish_changes(
        ChangeSet(
            changed={H1: {"progress": 0.9}, H3: project(H3, raw_torrent("three"))},
            added=[H3],
            removed=[H2],
            transfer={"dl_speed": 9, "up_speed": 0, "dl_total": 99, "up_total": 0},
        )
    )
    assert set(hub.torrents) == {H1, H3}
    assert hub.torrents[H1]["progress"] == 0.9
    assert hub.torrents[H1]["name"] == "one"
    assert hub.torrents[H3]["name"] == "three"
    assert hub.transfer["dl_total"] == 99


def test_empty_change_set_is_not_published() -> None:
    hub = make_hub()
    assert hub.publish_changes(ChangeSet()) is None
    assert hub.seq == 0


def test_publish_status_announces_the_record_it_is_given() -> None:
    hub = make_hub()
    sub, _, _ = hub.subscribe()
    record = status_record(qbittorrent="connected", message=None, version="v4.5.2")
    event = hub.publish_status(record)
    assert event.id == f"{EPOCH}-1"
    (status,) = queued(sub)
    assert status["event"] == "status"
    assert status["data"]["qbittorrent"] == "connected"
    # The record is the instance's live one: a quiet change (last_poll) shows in the view
    # without an event.
    record["last_poll"] = 1_764_446_413.5
    assert hub.status["last_poll"] == 1_764_446_413.5
    assert hub.seq == 1
    assert queued(sub) == []


def test_watch_status_shows_a_record_without_an_event() -> None:
    hub = make_hub()
    sub, _, _ = hub.subscribe()
    hub.watch_status(status_record(qbittorrent="unreachable", message="down"))
    assert hub.status["qbittorrent"] == "unreachable"
    assert hub.seq == 0
    assert queued(sub) == []


# -- opening: snapshot or replay ---------------------------------------------------------------


def test_new_subscriber_gets_a_snapshot() -> None:
    hub = make_hub(heartbeat=15.0)
    hub.publish_changes(progress(H1, 0.5))
    sub, opening, how = hub.subscribe()
    assert how == "snapshot"
    (snap,) = decode(b"".join(opening))
    assert snap["event"] == "snapshot"
    assert snap["id"] == f"{EPOCH}-1"
    assert snap["data"]["v"] == 1
    assert snap["data"]["heartbeat"] == 15.0
    assert set(snap["data"]["torrents"]) == {H1, H2}
    assert snap["data"]["torrents"][H1]["progress"] == 0.5
    assert snap["data"]["status"]["qbittorrent"] == "connecting"
    assert snap["data"]["transfer"] == {
        **{"dl_speed": 0, "up_speed": 0, "dl_total": 0, "up_total": 0},
        **{"alt_speed": False, "dl_limit": 0, "up_limit": 0},
    }
    assert sub.drain() == []  # the event before subscribing is in the snapshot, not queued


def test_replay_after_last_event_id_returns_exactly_the_missed_events() -> None:
    hub = make_hub()
    events = [hub.publish_changes(progress(H1, i / 10)) for i in range(1, 6)]
    _, opening, how = hub.subscribe(last_event_id=f"{EPOCH}-2")
    assert how == "replay"
    assert opening == [e.data for e in events[2:] if e is not None]
    assert [only(d)["id"] for d in opening] == [f"{EPOCH}-3", f"{EPOCH}-4", f"{EPOCH}-5"]


def test_replay_when_nothing_was_missed_is_empty() -> None:
    hub = make_hub()
    hub.publish_changes(progress(H1, 0.2))
    sub, opening, how = hub.subscribe(last_event_id=f"{EPOCH}-1")
    assert (opening, how) == ([], "replay")
    event = hub.publish_changes(progress(H1, 0.3))
    assert event is not None
    assert sub.drain() == [event.data]


def test_replay_from_zero_returns_everything_still_buffered() -> None:
    hub = make_hub()
    hub.publish_changes(progress(H1, 0.2))
    hub.publish_changes(progress(H1, 0.3))
    _, opening, how = hub.subscribe(last_event_id=f"{EPOCH}-0")
    assert how == "replay"
    assert len(opening) == 2


@pytest.mark.parametrize(
    "last_event_id",
    [
        "0badbeef-1",  # another epoch (an earlier server run)
        f"{EPOCH}-99",  # forged: beyond the current sequence
        f"{EPOCH}--1",  # negative
        f"{EPOCH}-1.5",
        f"{EPOCH}-",
        f"{EPOCH}-{'9' * 40}",
        "garbage",
        "",
        "-",
        "\x00",
        f"{EPOCH}-1" + "x" * 10_000,
        "9" * 10_000,
        f"{EPOCH}-" + "1" * 10_000,
    ],
    ids=lambda v: repr(v[:24]),
)
def test_unusable_last_event_id_gives_a_snapshot(last_event_id: str) -> None:
    hub = make_hub()
    for i in range(3):
        hub.publish_changes(progress(H1, i / 10))
    _, opening, how = hub.subscribe(last_event_id=last_event_id)
    assert how == "snapshot"
    (snap,) = decode(b"".join(opening))
    assert snap["event"] == "snapshot"
    assert snap["id"] == f"{EPOCH}-3"


@pytest.mark.parametrize("digits", ["\u00b2", "1\u00b2", "\u2075"])
def test_regression_non_ascii_digit_in_last_event_id_raises(digits: str) -> None:
    # str.isdigit() accepts superscripts that int() refuses: a Last-Event-ID header byte 0xB2
    # ("²" in latin-1) made subscribe() raise ValueError inside the stream body, after the
    # 200 was sent; the browser then reconnected with the same id, forever.
    hub = make_hub()
    hub.publish_changes(progress(H1, 0.1))
    assert hub.parse_event_id(f"{EPOCH}-{digits}") is None
    _, opening, how = hub.subscribe(last_event_id=f"{EPOCH}-{digits}")
    assert how == "snapshot"
    assert only(opening[0])["event"] == "snapshot"


def test_parse_event_id() -> None:
    hub = make_hub()
    hub.publish_changes(progress(H1, 0.1))
    assert hub.parse_event_id(f"{EPOCH}-1") == 1
    assert hub.parse_event_id(f"{EPOCH}-0") == 0
    assert hub.parse_event_id(f"{EPOCH}-2") is None
    assert hub.parse_event_id(None) is None


def test_replay_needing_dropped_events_gives_a_snapshot() -> None:
    hub = make_hub(replay_size=16)
    for i in range(40):
        hub.publish_changes(progress(H1, i / 100))
    # the buffer holds 25..40: resuming after 9 needs 10..24, which are gone
    _, opening, how = hub.subscribe(last_event_id=f"{EPOCH}-9")
    assert how == "snapshot"
    assert only(opening[0])["data"]["torrents"][H1]["progress"] == 0.39
    # resuming after 24 needs exactly what is buffered
    _, opening, how = hub.subscribe(last_event_id=f"{EPOCH}-24")
    assert how == "replay"
    assert [only(d)["id"] for d in opening] == [f"{EPOCH}-{n}" for n in range(25, 41)]
    # resuming after 23 needs 24, just dropped
    assert hub.subscribe(last_event_id=f"{EPOCH}-23")[2] == "snapshot"


def test_snapshot_is_cached_per_sequence() -> None:
    hub = make_hub()
    first = hub.snapshot_frame()
    assert hub.snapshot_frame() is first
    hub.publish_changes(progress(H1, 0.8))
    assert hub.snapshot_frame() is not first


# -- the subscribe / snapshot race -------------------------------------------------------------


def test_publish_right_after_subscribe_is_delivered_once_and_not_in_the_snapshot() -> None:
    hub = make_hub()
    hub.publish_changes(progress(H1, 0.4))  # before: in the snapshot
    sub, opening, _ = hub.subscribe()
    hub.publish_changes(progress(H1, 0.6))  # after: queued, not in the snapshot
    snap = only(opening[0])
    assert snap["data"]["torrents"][H1]["progress"] == 0.4
    assert snap["id"] == f"{EPOCH}-1"
    diffs = queued(sub)
    assert [d["id"] for d in diffs] == [f"{EPOCH}-2"]
    assert diffs[0]["data"]["changed"] == {H1: {"progress": 0.6}}
    assert sub.drain() == []


def test_drain_drops_events_the_opening_already_covered() -> None:
    hub = make_hub()
    first = hub.publish_changes(progress(H1, 0.4))
    sub, _, _ = hub.subscribe()
    assert first is not None
    sub.queue.appendleft((first.seq, first.data))  # as if it had raced into the queue
    later = hub.publish_changes(progress(H1, 0.5))
    assert later is not None
    assert sub.drain() == [later.data]


async def test_concurrent_publishers_and_subscribers_lose_and_duplicate_nothing() -> None:
    hub = make_hub()
    subs: list[tuple[Any, int]] = []

    async def publisher() -> None:
        for i in range(200):
            hub.publish_changes(progress(H1, i / 1000))
            await asyncio.sleep(0)

    async def subscriber() -> None:
        for _ in range(50):
            sub, opening, _ = hub.subscribe()
            subs.append((sub, int(only(opening[0])["id"].rsplit("-", 1)[1])))
            await asyncio.sleep(0)

    await asyncio.gather(publisher(), subscriber())
    for sub, snapshot_seq in subs:
        seqs = [int(only(d)["id"].rsplit("-", 1)[1]) for d in sub.drain()]
        assert seqs == list(range(snapshot_seq + 1, hub.seq + 1))


# -- fan-out and overflow ----------------------------------------------------------------------


def test_the_same_bytes_object_goes_to_every_queue() -> None:
    hub = make_hub()
    subs = [hub.subscribe()[0] for _ in range(5)]
    event = hub.publish_changes(progress(H1, 0.5))
    assert event is not None
    for sub in subs:
        (item,) = sub.queue
        assert item[1] is event.data
        assert sub.wake.is_set()


def test_overflow_drops_the_slow_subscriber_and_others_keep_receiving() -> None:
    hub = make_hub(queue_size=8)
    slow, _, _ = hub.subscribe()
    fast, _, _ = hub.subscribe()
    for i in range(8):
        hub.publish_changes(progress(H1, i / 100))
        assert len(fast.drain()) == 1  # the fast one keeps up
    assert slow.close_reason is None
    assert len(slow.queue) == 8
    hub.publish_changes(progress(H1, 0.5))
    assert slow.close_reason == OVERFLOW
    assert len(slow.queue) == 0
    assert slow.wake.is_set()
    assert fast.close_reason is None
    assert [only(d)["data"]["changed"][H1]["progress"] for d in fast.drain()] == [0.5]
    hub.publish_changes(progress(H1, 0.6))
    assert len(fast.drain()) == 1
    assert hub.metrics.value("events_published_total", kind="diff") == 10


async def test_overflow_cancels_the_subscriber_task() -> None:
    hub = make_hub(queue_size=8)
    sub, _, _ = hub.subscribe()
    blocked = asyncio.Event()

    async def stuck_in_send() -> None:
        blocked.set()
        await asyncio.Event().wait()  # a send to a client that stopped reading

    sub.task = asyncio.create_task(stuck_in_send())
    await blocked.wait()
    for i in range(9):
        hub.publish_changes(progress(H1, i / 100))
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(sub.task, 1.0)
    assert sub.close_reason == OVERFLOW


def test_unsubscribe_counts_and_forgets() -> None:
    hub = make_hub()
    sub, _, _ = hub.subscribe()
    assert hub.client_count == 1
    assert hub.unsubscribe(sub, "client closed") >= 0
    assert hub.client_count == 0
    assert hub.metrics.value("sse_disconnects_total", reason="client closed") == 1
    assert hub.metrics.value("sse_connects_total", opened_with="snapshot") == 1


def test_demand_tells_every_listener_the_count() -> None:
    hub = make_hub()
    first: list[int] = []
    second: list[int] = []
    hub.demand.listen(first.append)
    hub.demand.listen(second.append)  # a second poller does not take the first one's place
    sub, _, _ = hub.subscribe()
    hub.subscribe()
    assert first == second == [1, 2]
    assert hub.demand.viewers == 2
    hub.unsubscribe(sub, "client closed")
    assert hub.demand.viewers == 1
    assert first == [1, 2]  # only arrivals are announced


# -- per-torrent subscribers -------------------------------------------------------------------


def test_per_torrent_subscriber_gets_only_its_torrents_diffs() -> None:
    hub = make_hub()
    sub, opening, how = hub.subscribe(torrent_hash=H1)
    snap = only(opening[0])
    assert how == "snapshot"
    assert set(snap["data"]["torrents"]) == {H1}
    assert "transfer" not in snap["data"]
    hub.publish_changes(progress(H2, 0.9))
    hub.publish_changes(
        ChangeSet(
            changed={H1: {"progress": 0.7}, H2: {"progress": 0.95}},
            transfer={"dl_speed": 5, "up_speed": 0, "dl_total": 5, "up_total": 0},
        )
    )
    hub.publish_status(status_record(qbittorrent="connected"))
    frames = queued(sub)
    assert [f["event"] for f in frames] == ["diff", "status"]
    assert frames[0]["id"] == f"{EPOCH}-2"
    assert frames[0]["data"] == {"changed": {H1: {"progress": 0.7}}}


def test_per_torrent_replay_uses_the_shared_sequence() -> None:
    hub = make_hub()
    hub.publish_changes(progress(H1, 0.1))
    hub.publish_changes(progress(H2, 0.2))
    hub.publish_changes(progress(H1, 0.3))
    _, opening, how = hub.subscribe(torrent_hash=H1, last_event_id=f"{EPOCH}-1")
    assert how == "replay"
    assert [(f["id"], f["data"]) for f in (only(d) for d in opening)] == [
        (f"{EPOCH}-3", {"changed": {H1: {"progress": 0.3}}})
    ]


def test_per_torrent_snapshot_of_an_unknown_torrent_is_empty() -> None:
    hub = make_hub()
    assert only(hub.snapshot_frame(H3))["data"]["torrents"] == {}


# -- heartbeats and shutdown -------------------------------------------------------------------


def test_beat_marks_only_silent_subscribers() -> None:
    hub = make_hub(heartbeat=15.0)
    quiet, _, _ = hub.subscribe()
    busy, _, _ = hub.subscribe()
    quiet.last_sent = 100.0
    busy.last_sent = 110.0
    assert hub.beat(114.9) == 0
    assert hub.beat(115.0) == 1
    assert quiet.heartbeat_due
    assert quiet.wake.is_set()
    assert not busy.heartbeat_due
    assert not busy.wake.is_set()
    assert hub.beat(116.0) == 0  # already due: not counted twice
    assert hub.beat(125.0) == 1
    assert busy.heartbeat_due


def test_heartbeat_frame_comment_or_event() -> None:
    hub = make_hub()
    comment, _, _ = hub.subscribe()
    browser, _, _ = hub.subscribe(heartbeat_as_event=True)
    assert hub.heartbeat_frame(comment) == b": heartbeat\n\n"
    assert only(hub.heartbeat_frame(browser))["event"] == "heartbeat"
    assert hub.metrics.value("heartbeats_sent_total") == 2


async def test_heartbeat_tick_wakes_a_silent_subscriber() -> None:
    hub = make_hub(heartbeat=1.0)
    sub, _, _ = hub.subscribe()
    hub.start()
    try:
        await asyncio.wait_for(sub.wake.wait(), 2.5)
        assert sub.heartbeat_due
    finally:
        await hub.stop()
    assert hub.fanout._ticker is None


def test_close_all_ends_every_stream_and_refuses_new_ones() -> None:
    hub = make_hub()
    subs = [hub.subscribe()[0] for _ in range(3)]
    hub.publish_changes(progress(H1, 0.5))
    assert not hub.closing
    hub.close_all()
    assert hub.closing
    for sub in subs:
        assert sub.close_reason == SERVER_SHUTDOWN
        assert sub.wake.is_set()
        assert sub.drain() == []


async def test_beat_drops_a_stream_whose_send_is_blocked_past_the_send_timeout() -> None:
    hub = Hub(heartbeat=15.0, send_timeout=2.0)
    blocked, _, _ = hub.subscribe()
    fine, _, _ = hub.subscribe()
    blocked.task = asyncio.create_task(asyncio.sleep(60))
    now = time.monotonic()
    blocked.sending_since = now - 2.5  # a send started 2.5 s ago and has not returned
    fine.sending_since = now - 1.0
    hub.beat(now)
    assert blocked.close_reason == SEND_TIMEOUT
    assert fine.close_reason is None
    with pytest.raises(asyncio.CancelledError):
        await blocked.task


# -- streams held as transports (the socket layer, server/socket_layer.py) ------------------------------


def held(
    hub: Hub, chunked: bool = True, torrent_hash: str | None = None
) -> tuple[TransportSink, FakeTransport]:
    transport = FakeTransport()
    sub, _, _ = hub.subscribe(transport=transport, chunked=chunked, torrent_hash=torrent_hash)
    return sub, transport


def test_publish_writes_one_shared_chunk_to_every_held_stream() -> None:
    hub = make_hub()
    (_, ta), (_, tb) = held(hub), held(hub)
    event = hub.publish_changes(progress(H1, 0.31))
    assert event is not None
    assert ta.written == [event.chunk]
    assert tb.written[0] is ta.written[0]  # framed once for all
    assert event.chunk == b"%x\r\n%b\r\n" % (len(event.data), event.data)


def test_held_streams_get_their_own_framing_and_filter() -> None:
    hub = make_hub()
    _, plain = held(hub, chunked=False)
    _, one = held(hub, torrent_hash=H2)
    event = hub.publish_changes(progress(H1, 0.5))
    assert event is not None
    assert plain.written == [event.data]  # HTTP/1.0: frames as they are
    assert one.written == []  # says nothing of H2
    hub.publish_changes(progress(H2, 0.6))
    (only_h2,) = one.written
    assert b'"progress":0.6' in only_h2
    assert only_h2.startswith(b"%x\r\n" % (len(only_h2) - only_h2.index(b"\r\n") - 4))


def test_regression_a_paused_transport_overflows_after_queue_size_events() -> None:
    hub = make_hub(queue_size=3)
    sub, transport = held(hub)
    sub.sending_since = time.monotonic()  # asyncio paused it: the client stopped reading
    for i in range(3):
        hub.publish_changes(progress(H1, i / 10))
    assert transport.closed == ""
    hub.publish_changes(progress(H1, 0.9))
    assert transport.closed == "abort"
    assert sub.close_reason == OVERFLOW
    hub.publish_changes(progress(H1, 0.95))
    assert len(transport.written) == 3  # nothing more once it is dropped


def test_regression_a_transport_paused_past_the_send_timeout_is_dropped() -> None:
    hub = make_hub(send_timeout=30.0)
    sub, transport = held(hub)
    now = time.monotonic()
    sub.sending_since = now - 29
    hub.beat(now)
    assert transport.closed == ""
    sub.sending_since = now - 31
    hub.beat(now)
    assert transport.closed == "abort"
    assert sub.close_reason == SEND_TIMEOUT


def test_beat_writes_heartbeats_to_silent_held_streams_only() -> None:
    hub = make_hub(heartbeat=15.0)
    quiet, tq = held(hub)
    busy, tb = held(hub)
    now = time.monotonic()
    quiet.last_sent = now - 16
    busy.last_sent = now - 1
    assert hub.beat(now) == 1
    assert tq.written == [b"%x\r\n%b\r\n" % (len(HEARTBEAT), HEARTBEAT)]
    assert tb.written == []
    assert quiet.last_sent == now
    assert hub.beat(now) == 0  # not again until another interval of silence


def test_close_all_ends_held_streams_with_the_last_chunk_or_aborts_a_stuck_one() -> None:
    hub = make_hub()
    _, fine = held(hub)
    _, stuck = held(hub)
    stuck.buffered = 1 << 20  # a client that is not reading: do not wait for it
    hub.close_all()
    assert fine.written[-1] == b"0\r\n\r\n"
    assert fine.closed == "close"
    assert stuck.closed == "abort"
    hub.close_all()  # the app's shutdown does it again, before the transports reported back
    assert fine.written.count(b"0\r\n\r\n") == 1


HEARTBEAT = b": heartbeat\n\n"


def test_an_old_id_opens_with_the_late_lifecycle_events_then_the_snapshot() -> None:
    hub = Hub(epoch="feed0001", replay_size=1)  # memory keeps only the newest event
    record = project(H1, raw_torrent("debian.iso"))
    completed = hub.publish_changes(ChangeSet(changed={H1: dict(record)}, added=[H1], completed=[H1]))
    assert completed is not None
    assert completed.lifecycle is not None
    hub.publish_changes(progress(H1, 0.9))
    # As the durable log answers for an id older than its diff window: its lifecycle events
    # up to what it held (upto), memory adds any after.
    resume = Resume(late=[completed], upto=1, late_complete=True)
    _, opening, how = hub.subscribe(last_event_id="feed0001-0", resume=resume)
    assert how == "late"
    frames = parse_frames(b"".join(opening))
    assert [(f["event"], f["id"]) for f in frames] == [("late", "feed0001-1"), ("snapshot", "feed0001-2")]
    late = json.loads(frames[0]["data"])
    assert late["completed"] == [H1]
    assert late["torrents"][H1]["name"] == "debian.iso"
    assert late["kind"] == "diff"
    assert late["t"] == pytest.approx(completed.t, abs=0.001)


def test_regression_a_per_torrent_stream_got_other_torrents_actions_as_late() -> None:
    """The live ``action`` event reaches a per-torrent stream only when it names that
    torrent; the late opening sent every action to every per-torrent stream."""
    hub = make_hub()
    mine = hub.publish_action({"action": "pause", "hashes": [H1], "result": "accepted"})
    other = hub.publish_action({"action": "pause", "hashes": [H2], "result": "accepted"})
    resume = Resume(late=[mine, other], upto=hub.seq, late_complete=True)
    _, opening, how = hub.subscribe(torrent_hash=H1, last_event_id="0badc0de.1-1", resume=resume)
    assert how == "late"
    late = [frame for frame in opening if b"event: late" in frame]
    assert len(late) == 1
    assert H1.encode() in late[0]
    assert H2.encode() not in late[0]


class HangingLog(MemoryEventLog):
    """A fake durable log whose database never answers."""

    async def resume(self, event_id: str | None, max_bytes: int | None = None) -> Resume | None:
        await asyncio.Event().wait()
        return None  # pragma: no cover - never reached


async def test_a_hanging_event_log_does_not_hold_a_stream_opening(monkeypatch: pytest.MonkeyPatch) -> None:
    """A database that hangs rather than refusing: the opening waits ``RESUME_TIMEOUT`` at most,
    then memory decides (a snapshot for an id it cannot replay)."""
    monkeypatch.setattr(hub_module, "RESUME_TIMEOUT", 0.05)
    hub = Hub(log=HangingLog(epoch=EPOCH))
    started = time.monotonic()
    assert await hub.resume("0badc0de.1-7") is None
    assert time.monotonic() - started < 2.0


# -- several instances (protocol 2) ----------------------------------------------------------


def two_instances() -> Hub:
    """A hub following ``home`` (primary) and ``box``, the same torrent H1 in both."""
    hub = Hub(epoch=EPOCH)
    hub.add_instance("home", "Home")
    hub.add_instance("box", "Seedbox")
    hub.seed({H1: project(H1, raw_torrent("one"))}, "home")
    hub.seed({H1: project(H1, raw_torrent("one")), H2: project(H2, raw_torrent("two"))}, "box")
    return hub


def test_the_first_instance_added_is_the_primary_and_v1_reads_it() -> None:
    hub = two_instances()
    assert hub.primary == "home"
    assert list(hub.torrents) == [H1]
    assert set(hub.view("box").torrents) == {H1, H2}
    with pytest.raises(KeyError):
        hub.view("nope")


def test_a_v1_stream_gets_the_bytes_of_a_server_with_its_one_instance() -> None:
    """v1 clients see no change: the same frames, byte for byte, as a hub with one instance."""
    alone = Hub(epoch=EPOCH)
    alone.add_instance("home", "Home")
    alone.seed({H1: project(H1, raw_torrent("one"))}, "home")
    hub = two_instances()
    for each in (alone, hub):
        each.watch_status(status_record(since=1.0), "home")
    (solo, solo_opening, _), (sub, opening, _) = alone.subscribe(), hub.subscribe()
    assert opening == solo_opening
    box = hub.publish_changes(progress(H2, 0.3), "box")
    assert box is not None
    hub.publish_changes(progress(H1, 0.5), "home")
    alone.publish_changes(progress(H1, 0.5), "home")
    assert sub.drain() == [alone_data.replace(b"-1\n", b"-2\n") for alone_data in solo.drain()]


def test_a_v1_stream_of_another_instance_follows_only_that_one() -> None:
    hub = two_instances()
    sub, opening, _ = hub.subscribe(instance="box")
    assert set(only(opening[0])["data"]["torrents"]) == {H1, H2}
    hub.publish_changes(progress(H1, 0.5), "home")
    hub.publish_status(status_record(qbittorrent="unreachable"), "home")
    hub.publish_changes(progress(H1, 0.7), "box")
    (diff,) = queued(sub)
    assert diff["data"] == {"changed": {H1: {"progress": 0.7}}}
    assert diff["id"] == f"{EPOCH}-3"  # ids are global: a stream of one instance has gaps


def test_the_v2_snapshot_holds_every_instance_with_records_naming_theirs() -> None:
    hub = two_instances()
    for instance, speed in (("home", 100), ("box", 23)):
        transfer = {**hub.view(instance).transfer, "dl_speed": speed}
        hub.publish_changes(ChangeSet(changed={}, transfer=transfer), instance)
    _, opening, _ = hub.subscribe(v2=True)
    snapshot = only(opening[0])["data"]
    assert snapshot["v"] == 2
    assert list(snapshot["instances"]) == ["home", "box"]
    assert snapshot["instances"]["box"]["name"] == "Seedbox"
    assert snapshot["instances"]["home"]["transfer"]["dl_speed"] == 100
    assert snapshot["transfer"]["dl_speed"] == 123
    # The same torrent in two instances (cross-seeding) is two records.
    assert snapshot["torrents"]["home"][H1]["instance"] == "home"
    assert snapshot["torrents"]["box"][H1]["instance"] == "box"
    assert set(snapshot["torrents"]["box"]) == {H1, H2}
    assert "instance" not in hub.view("box").torrents[H1]  # the view itself is untouched


def test_v2_events_name_their_instance_and_v1_bytes_do_not() -> None:
    hub = two_instances()
    v1, _, _ = hub.subscribe(instance="box")
    v2, _, _ = hub.subscribe(v2=True)
    hub.publish_changes(progress(H1, 0.4), "box")
    hub.publish_status(status_record(qbittorrent="connected", version="v5.1.0"), "box")
    hub.publish_action({"id": "a1", "instance": "home", "action": "stop", "hashes": [H1], "result": "ok"})
    diff, status, action = queued(v2)
    assert diff["data"] == {"instance": "box", "changed": {H1: {"progress": 0.4}}}
    assert status["data"]["instance"] == "box"
    assert status["data"]["version"] == "v5.1.0"
    assert action["data"]["instance"] == "home"
    v1_diff, v1_status = queued(v1)  # the home action is not box's
    assert "instance" not in v1_diff["data"]
    assert "instance" not in v1_status["data"]


def test_v2_replay_after_last_event_id_spans_instances_and_v1_replay_skips_others() -> None:
    hub = two_instances()
    start = hub.last_event_id
    hub.publish_changes(progress(H1, 0.1), "home")
    hub.publish_changes(progress(H1, 0.2), "box")
    hub.publish_changes(progress(H1, 0.3), "home")
    _, opening, how = hub.subscribe(v2=True, last_event_id=start)
    assert how == "replay"
    assert [(only(f)["data"]["instance"], only(f)["id"]) for f in opening] == [
        ("home", f"{EPOCH}-1"),
        ("box", f"{EPOCH}-2"),
        ("home", f"{EPOCH}-3"),
    ]
    _, opening, how = hub.subscribe(instance="box", last_event_id=start)
    assert how == "replay"
    assert [only(f)["id"] for f in opening] == [f"{EPOCH}-2"]


def test_held_v2_streams_get_the_v2_chunk_and_held_v1_streams_skip_other_instances() -> None:
    hub = two_instances()
    v1_transport, v2_transport = FakeTransport(), FakeTransport()
    hub.subscribe(transport=v1_transport)
    hub.subscribe(transport=v2_transport, v2=True)
    v1_transport.written.clear()
    v2_transport.written.clear()
    event = hub.publish_changes(progress(H2, 0.9), "box")
    assert event is not None
    assert v1_transport.written == []
    assert v2_transport.written == [event.chunk_v2]
    assert b'"instance":"box"' in event.chunk_v2


def test_late_frames_name_their_instance_in_v2_only() -> None:
    hub = two_instances()
    event = hub.publish_changes(ChangeSet(changed={}, removed=[H2]), "box")
    assert event is not None
    assert json.loads(parse_frames(event.late_frame(v2=True))[0]["data"])["instance"] == "box"
    assert "instance" not in json.loads(parse_frames(event.late_frame())[0]["data"])


class SizeRecordingLog(MemoryEventLog):
    """A fake durable log that records the replay bound each resume is given."""

    def __init__(self) -> None:
        super().__init__(epoch=EPOCH)
        self.bounds: list[int | None] = []

    async def resume(self, event_id: str | None, max_bytes: int | None = None) -> Resume | None:
        self.bounds.append(max_bytes)
        return None


async def test_regression_a_stream_of_one_instance_bounded_its_replay_by_the_primarys_snapshot() -> None:
    """A replay bigger than the snapshot the stream would get instead is sent as late events
    and that snapshot: the bound must be that stream's snapshot (its instance, its protocol),
    not the primary's v1 one (which was used for every stream)."""
    log = SizeRecordingLog()
    hub = Hub(log=log)
    hub.add_instance("home", "Home")
    hub.add_instance("box", "Box")
    hub.seed({H1: project(H1, raw_torrent("one")), H2: project(H2, raw_torrent("two"))}, "box")
    await hub.resume("0badc0de.1-7")
    await hub.resume("0badc0de.1-7", instance="box")
    await hub.resume("0badc0de.1-7", v2=True)
    expected = [len(hub.snapshot_frame()), len(hub.snapshot_frame(None, "box")), len(hub.snapshot_v2())]
    assert log.bounds == expected
    assert len(set(log.bounds)) == 3
