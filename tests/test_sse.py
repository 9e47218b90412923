"""The SSE routes through the HTTP layer (Quart's test client over the real app).

``client.get`` never returns on an endless stream: streams are opened with
``client.request(...)`` and read frame by frame with deadlines (``StreamReader``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fakes import (
    H1,
    H2,
    UNKNOWN_HASH,
    RunningApp,
    StreamReader,
    full_update,
    partial_update,
    raw_torrent,
    running_app,
)

from quart_dl.lab.wait import wait_for_async
from quart_dl.qbittorrent.fake import FakeSession
from quart_dl.torrents import ChangeSet
from quart_dl.web import sse


@pytest.fixture
async def served() -> AsyncIterator[RunningApp]:
    qbt = FakeSession([full_update({H1: raw_torrent("one"), H2: raw_torrent("two")})])
    async with running_app(qbt, retry_ms=5000, heartbeat=1) as running:
        await wait_for_async(lambda: len(running.runtime.hub.torrents) == 2, what="the torrents")
        yield running


def data(frame: dict[str, Any]) -> Any:
    return json.loads(frame["data"])


def seq_of(frame: dict[str, Any]) -> int:
    return int(frame["id"].rsplit("-", 1)[1])


async def close(conn: Any) -> None:
    await conn.disconnect()


# -- opening -----------------------------------------------------------------------------------


async def test_headers(served: RunningApp) -> None:
    async with served.client.request("/api/events", headers={"Accept-Encoding": "gzip, br"}) as conn:
        await StreamReader(conn).next_frame()
        assert conn.status_code == 200
        headers = conn.headers
        assert headers["Content-Type"].split(";")[0] == "text/event-stream"
        assert headers["Cache-Control"] == "no-cache"
        assert headers["X-Accel-Buffering"] == "no"
        assert headers.get("Content-Encoding", "identity") == "identity"
        assert headers["X-Content-Type-Options"] == "nosniff"
        await close(conn)


async def test_retry_then_snapshot(served: RunningApp) -> None:
    hub = served.runtime.hub
    async with served.client.request("/api/events") as conn:
        reader = StreamReader(conn)
        assert await reader.next_frame() == {"retry": "5000"}
        snap = await reader.next_frame()
        assert snap["event"] == "snapshot"
        assert snap["id"] == hub.last_event_id
        body = data(snap)
        assert body["v"] == 1
        assert body["heartbeat"] == 1.0
        assert set(body["torrents"]) == {H1, H2}
        assert body["torrents"][H1] == hub.torrents[H1]
        assert body["status"]["qbittorrent"] == "connected"
        assert "transfer" in body
        await close(conn)


async def test_diffs_follow_the_snapshot(served: RunningApp) -> None:
    async with served.client.request("/api/events") as conn:
        reader = StreamReader(conn)
        snap = await reader.next_event()
        served.qbt.script(partial_update({H1: {"progress": 0.5, "amount_left": 1_048_576}}))
        served.runtime.default.poller.wake()
        diff = await reader.next_event()
        assert diff["event"] == "diff"
        assert seq_of(diff) == seq_of(snap) + 1
        assert data(diff) == {"changed": {H1: {"progress": 0.5, "amount_left": 1_048_576}}}
        event = served.runtime.hub.publish_changes(ChangeSet(removed=[H2]))
        assert event is not None
        removed = await reader.next_event()
        assert removed["id"] == event.id
        body = data(removed)
        assert isinstance(body.pop("t"), float)  # when it happened: a lifecycle diff says so
        assert body == {"changed": {}, "removed": [H2]}
        await close(conn)


async def test_status_events_reach_the_stream(served: RunningApp) -> None:
    async with served.client.request("/api/events") as conn:
        reader = StreamReader(conn)
        await reader.next_event()
        status_record = served.runtime.default.status
        status_record.failed("unreachable", "qBittorrent did not answer", time.time())
        served.runtime.hub.publish_status(status_record.record)
        status = await reader.next_event()
        assert status["event"] == "status"
        assert data(status)["qbittorrent"] == "unreachable"
        await close(conn)


async def test_every_subscriber_gets_every_event(served: RunningApp) -> None:
    async with (
        served.client.request("/api/events") as one,
        served.client.request("/api/events") as two,
    ):
        readers = [StreamReader(one), StreamReader(two)]
        for reader in readers:
            await reader.next_event()
        await wait_for_async(lambda: served.runtime.hub.client_count == 2, what="two clients")
        for i in range(1, 6):
            served.runtime.hub.publish_changes(ChangeSet(changed={H1: {"progress": i / 10}}))
        for reader in readers:
            got = [data(await reader.next_event())["changed"][H1]["progress"] for _ in range(5)]
            assert got == [0.1, 0.2, 0.3, 0.4, 0.5]
        await close(one)
        await close(two)


# -- heartbeats --------------------------------------------------------------------------------


async def test_heartbeat_comment_after_a_silent_interval(served: RunningApp) -> None:
    # Quart's RESPONSE_TIMEOUT cuts any response that runs longer; streams lift it. Lowered
    # here below the heartbeat, the stream must still be alive for the heartbeat and after.
    served.app.config["RESPONSE_TIMEOUT"] = 0.3
    async with served.client.request("/api/events") as conn:
        reader = StreamReader(conn)
        await reader.next_event()
        started = time.monotonic()
        beat = await reader.next_frame(timeout=3.0)
        assert beat == {"comment": "heartbeat"}
        assert time.monotonic() - started >= 0.9  # not before the interval (1 s)
        served.runtime.hub.publish_changes(ChangeSet(changed={H1: {"progress": 0.7}}))
        assert data(await reader.next_event())["changed"] == {H1: {"progress": 0.7}}
        await close(conn)
    assert served.runtime.metrics.value("heartbeats_sent_total") >= 1


async def test_heartbeat_as_event(served: RunningApp) -> None:
    async with served.client.request("/api/events?heartbeat=event") as conn:
        reader = StreamReader(conn)
        await reader.next_event()
        beat = await reader.next_frame(timeout=3.0)
        assert beat["event"] == "heartbeat"
        assert "id" not in beat  # a heartbeat does not move Last-Event-ID
        assert abs(data(beat)["t"] - time.time()) < 5
        await close(conn)


async def test_bad_heartbeat_mode_is_a_400(served: RunningApp) -> None:
    response = await served.client.get("/api/events?heartbeat=loud")
    assert response.status_code == 400
    body = await response.get_json()
    assert body["field"] == "heartbeat"
    assert body["error"] == "invalid_parameter"


async def test_response_timeout_is_none_for_streams(served: RunningApp) -> None:
    async with served.app.test_request_context("/api/events"):
        response = await sse.all_events()
        assert response.timeout is None
    async with served.app.test_request_context(f"/api/torrents/{H1}/events"):
        response = await sse.torrent_events(H1)
        assert response.timeout is None
    assert served.runtime.hub.client_count == 0  # the body never ran: nobody subscribed


# -- Last-Event-ID -----------------------------------------------------------------------------


async def test_last_event_id_replays_exactly_the_missed_events(served: RunningApp) -> None:
    hub = served.runtime.hub
    async with served.client.request("/api/events") as conn:
        snap = await StreamReader(conn).next_event()
        await close(conn)
    await wait_for_async(lambda: hub.client_count == 0, what="the first stream to end")
    missed = [hub.publish_changes(ChangeSet(changed={H1: {"progress": p}})) for p in (0.6, 0.7)]
    async with served.client.request("/api/events", headers={"Last-Event-ID": snap["id"]}) as conn:
        reader = StreamReader(conn)
        assert await reader.next_frame() == {"retry": "5000"}
        first, second = await reader.next_frame(), await reader.next_frame()
        assert [first["id"], second["id"]] == [e.id for e in missed if e is not None]
        assert [data(first)["changed"][H1]["progress"], data(second)["changed"][H1]["progress"]] == [0.6, 0.7]
        # and then live events, no snapshot
        hub.publish_changes(ChangeSet(changed={H1: {"progress": 0.8}}))
        live = await reader.next_event()
        assert live["event"] == "diff"
        assert data(live)["changed"][H1]["progress"] == 0.8
        await close(conn)
    assert served.runtime.metrics.value("sse_connects_total", opened_with="replay") == 1


async def test_last_event_id_query_parameter(served: RunningApp) -> None:
    hub = served.runtime.hub
    last = hub.last_event_id
    hub.publish_changes(ChangeSet(changed={H1: {"progress": 0.65}}))
    async with served.client.request(f"/api/events?lastEventId={last}") as conn:
        replayed = await StreamReader(conn).next_event()
        assert replayed["event"] == "diff"
        assert data(replayed)["changed"][H1]["progress"] == 0.65
        await close(conn)


@pytest.mark.parametrize("last_event_id", ["0badbeef-1", "garbage", "x" * 10_000])
async def test_unusable_last_event_id_gets_a_snapshot(served: RunningApp, last_event_id: str) -> None:
    async with served.client.request("/api/events", headers={"Last-Event-ID": last_event_id}) as conn:
        snap = await StreamReader(conn).next_event()
        assert snap["event"] == "snapshot"
        assert snap["id"] == served.runtime.hub.last_event_id
        await close(conn)


@pytest.mark.parametrize("where", ["header", "query"])
async def test_regression_latin1_digit_in_last_event_id_breaks_the_stream(
    served: RunningApp, where: str
) -> None:
    # Header byte 0xB2 is "²" in latin-1, which str.isdigit() accepts and int() refuses:
    # subscribe() raised inside the body after the 200 was sent, so the stream died before
    # its retry line, and the browser reconnected with the same id, forever.
    epoch = served.runtime.hub.epoch.encode()
    path = "/api/events" if where == "header" else f"/api/events?lastEventId={epoch.decode()}-%C2%B2"
    conn = served.client.request(path)
    if where == "header":
        conn.scope["headers"].append((b"last-event-id", epoch + b"-\xb2"))
    try:
        async with conn:
            reader = StreamReader(conn)
            assert await reader.next_frame(timeout=1.0) == {"retry": "5000"}
            assert (await reader.next_event(timeout=1.0))["event"] == "snapshot"
            await close(conn)
    except ValueError as exc:
        pytest.fail(f"the stream raised {exc!r}")


# -- the per-torrent stream --------------------------------------------------------------------


async def test_per_torrent_stream(served: RunningApp) -> None:
    hub = served.runtime.hub
    async with served.client.request(f"/api/torrents/{H1.upper()}/events") as conn:
        reader = StreamReader(conn)
        snap = await reader.next_event()
        assert snap["event"] == "snapshot"
        assert set(data(snap)["torrents"]) == {H1}
        assert "transfer" not in data(snap)
        hub.publish_changes(ChangeSet(changed={H2: {"progress": 0.9}}))
        mine = hub.publish_changes(ChangeSet(changed={H1: {"progress": 0.4}, H2: {"progress": 0.95}}))
        assert mine is not None
        diff = await reader.next_event()
        assert diff["id"] == mine.id  # the one about H2 alone was never sent
        assert data(diff) == {"changed": {H1: {"progress": 0.4}}}
        await close(conn)


async def test_per_torrent_stream_unknown_is_a_404(served: RunningApp) -> None:
    response = await served.client.get(f"/api/torrents/{UNKNOWN_HASH}/events")
    assert response.status_code == 404
    assert response.content_type == "application/json"
    assert (await response.get_json())["error"] == "not_found"


@pytest.mark.parametrize("bad", ["zz", H1[:-1], H1 + "00", "g" * 40])
async def test_per_torrent_stream_malformed_is_a_400(served: RunningApp, bad: str) -> None:
    response = await served.client.get(f"/api/torrents/{bad}/events")
    assert response.status_code == 400
    body = await response.get_json()
    assert body["error"] == "invalid_hash"
    assert body["field"] == "hash"


# -- how streams end ---------------------------------------------------------------------------


async def test_client_disconnect_unsubscribes(served: RunningApp) -> None:
    hub = served.runtime.hub
    async with served.client.request("/api/events") as conn:
        await StreamReader(conn).next_event()
        assert hub.client_count == 1
        metrics = await (await served.client.get("/metrics")).get_data(as_text=True)
        assert "quart_dl_sse_clients 1.0" in metrics.splitlines()  # prometheus_client writes floats
        status = await (await served.client.get("/api/status")).get_json()
        assert status["clients"] == 1
        assert status["poller"]["interval"] == 1.0  # someone watches: the fast cadence
        await close(conn)
    await wait_for_async(lambda: hub.client_count == 0, what="the subscriber to be gone")
    assert served.runtime.metrics.value("sse_disconnects_total", reason="client closed") == 1


async def test_overflow_drops_the_stream_and_it_resumes_with_last_event_id(served: RunningApp) -> None:
    hub = served.runtime.hub
    async with served.client.request("/api/events") as conn:
        snap = await StreamReader(conn).next_event()
        # One burst with no await in between: the stream task cannot drain its queue, as
        # when a client stops reading.
        for i in range(hub.queue_size + 1):
            hub.publish_changes(ChangeSet(changed={H1: {"progress": round(i / 1000, 3)}}))
        await wait_for_async(lambda: hub.client_count == 0, what="the overflowed stream to end")
        assert served.runtime.metrics.value("sse_disconnects_total", reason="overflow") == 1
        assert served.runtime.metrics.value("sse_disconnects_total", reason="client closed") == 0
        await close(conn)
    async with served.client.request("/api/events", headers={"Last-Event-ID": snap["id"]}) as conn:
        reader = StreamReader(conn)
        await reader.next_frame()  # retry
        replayed = [await reader.next_frame() for _ in range(hub.queue_size + 1)]
        assert [seq_of(f) for f in replayed] == list(range(seq_of(snap) + 1, hub.seq + 1))
        assert data(replayed[-1])["changed"][H1]["progress"] == round(hub.queue_size / 1000, 3)
        await close(conn)


async def test_shutdown_ends_streams_and_refuses_new_ones(served: RunningApp) -> None:
    hub = served.runtime.hub
    async with served.client.request("/api/events") as conn:
        await StreamReader(conn).next_event()
        hub.close_all()
        ended = await asyncio.wait_for(_read_to_end(conn), 3.0)
        assert ended == b""
    await wait_for_async(lambda: hub.client_count == 0, what="the stream to end")
    assert served.runtime.metrics.value("sse_disconnects_total", reason="server shutdown") == 1
    response = await served.client.get("/api/events")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert (await response.get_json())["error"] == "shutting_down"


async def _read_to_end(conn: Any) -> bytes:
    """Read until the final empty body chunk (the response is complete); return the rest."""
    rest = b""
    while True:
        chunk = await conn.receive()
        if chunk == b"":
            return rest
        rest += chunk


# -- protocol 2 and instances -------------------------------------------------------------------


async def test_v2_stream_opens_with_every_instance_and_diffs_name_theirs(served: RunningApp) -> None:
    hub = served.runtime.hub
    async with served.client.request("/api/events?v=2") as conn:
        reader = StreamReader(conn)
        await reader.next_frame()  # retry
        snap = data(await reader.next_frame())
        assert snap["v"] == 2
        assert list(snap["instances"]) == ["default"]
        assert set(snap["torrents"]["default"]) == {H1, H2}
        hub.publish_changes(ChangeSet(changed={H1: {"progress": 0.5}}), "default")
        diff = await reader.next_frame()
        assert data(diff) == {"instance": "default", "changed": {H1: {"progress": 0.5}}}
        await close(conn)


@pytest.mark.parametrize(
    "path",
    ["/api/events?instance=nope", "/api/instances/nope/events", f"/api/instances/nope/torrents/{H1}/events"],
)
async def test_an_unknown_instance_is_a_404_naming_it(served: RunningApp, path: str) -> None:
    response = await served.client.get(path)
    assert response.status_code == 404
    body = await response.get_json()
    assert (body["error"], body["field"]) == ("unknown_instance", "instance")
    assert "'nope'" in body["message"]


@pytest.mark.parametrize("path", ["/api/events?v=3", "/api/events?v=two", f"/api/torrents/{H1}/events?v=2"])
async def test_a_protocol_version_other_than_1_or_2_is_a_400(served: RunningApp, path: str) -> None:
    response = await served.client.get(path)
    assert response.status_code == 400
    assert (await response.get_json())["field"] == "v"


async def test_the_instance_routes_stream_that_instance_in_v1(served: RunningApp) -> None:
    for path in ("/api/instances/default/events", f"/api/instances/default/torrents/{H1}/events"):
        async with served.client.request(path) as conn:
            reader = StreamReader(conn)
            await reader.next_frame()
            snap = data(await reader.next_frame())
            assert snap["v"] == 1
            assert H1 in snap["torrents"]
            await close(conn)
