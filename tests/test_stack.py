"""The whole stack, for real: qbittorrent-nox pair → quart-dl process → SSE over HTTP.

Each test states what must hold for a user watching the panel: progress rises to completion
on the stream, heartbeats keep a silent stream alive, a reconnect resumes without loss or
duplicates, qBittorrent going away and coming back is survived, wrong credentials are
reported without a crash or a ban, and a stream outlives Quart's 60 s response timeout.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

from quart_dl.lab.server_process import ServerProcess, get_json
from quart_dl.lab.sse_reader import SSEMessage, SSEReader, apply_stream
from quart_dl.lab.transfer import TransferPair
from quart_dl.lab.wait import wait_for

MiB = 1024 * 1024


def progress_values(messages: list[SSEMessage], torrent_hash: str) -> list[float]:
    """Every progress value the stream carried for one torrent, in order."""
    values: list[float] = []
    for message in messages:
        if message.data is None:
            continue
        payload = message.json()
        if message.event == "snapshot":
            record = payload["torrents"].get(torrent_hash)
            if record:
                values.append(record["progress"])
        elif message.event == "diff":
            change = payload["changed"].get(torrent_hash, {})
            if "progress" in change:
                values.append(change["progress"])
    return values


def test_stream_shows_progress_rising_to_completion(
    pair: TransferPair, make_server: Callable[..., ServerProcess]
) -> None:
    server = make_server()
    with SSEReader(server.url + "api/events") as stream:
        assert stream.status == 200
        headers = stream.response_headers
        assert headers["content-type"].startswith("text/event-stream")
        assert headers["cache-control"] == "no-cache"
        assert headers["x-accel-buffering"] == "no"
        assert headers.get("content-encoding", "identity") == "identity"
        first = stream.wait(lambda m: m, 5, "the first message")[0]
        assert first.retry == 3000
        snapshot = stream.wait(lambda m: [e for e in m if e.event == "snapshot"], 5, "a snapshot")[0]
        assert snapshot.id is not None
        assert snapshot.id.startswith(server.status()["epoch"] + "-")
        assert snapshot.json()["v"] == 1

        torrent_hash = pair.add_transfer("rising.bin", size=2 * MiB, rate=256 * 1024)
        completed = stream.wait(
            lambda m: [e for e in m if e.event == "diff" and torrent_hash in e.json().get("completed", [])],
            60,
            "the completion event",
        )
        assert len(completed) == 1
        values = progress_values(stream.snapshot(), torrent_hash)
        rises = sum(1 for a, b in itertools.pairwise(values) if b > a)
        assert rises >= 3, f"progress rose only {rises} times: {values}"
        view = apply_stream(stream.snapshot())[torrent_hash]
        assert view["complete"] is True
        assert view["amount_left"] == 0
        assert view["phase"] == "seeding"
        # The REST API tells the same story as the stream.
        assert get_json(server.url + f"api/torrents/{torrent_hash}")["complete"] is True
        ids = [m.id for m in stream.events()]
        assert len(ids) == len(set(ids)), "event ids repeat"


def test_heartbeats_arrive_at_the_configured_interval(make_server: Callable[..., ServerProcess]) -> None:
    server = make_server(heartbeat=1.0, poll_interval=5.0)
    with SSEReader(server.url + "api/events") as stream:
        stream.wait(lambda m: len([x for x in m if x.comment == "heartbeat"]) >= 4, 15, "four heartbeats")
        messages = stream.snapshot()
    # A heartbeat is sent only after a silence of one interval, and not much later than that.
    beats = [m for m in messages if m.comment == "heartbeat"]
    previous = [max(x.at for x in messages if x.at < b.at) for b in beats]
    gaps = [b.at - p for b, p in zip(beats, previous, strict=True)]
    assert all(0.9 <= gap <= 1.6 for gap in gaps), gaps
    assert "heartbeat" in server.log_text()  # logged at DEBUG


def test_reconnect_with_last_event_id_resumes_without_loss_or_duplicates(
    pair: TransferPair, make_server: Callable[..., ServerProcess]
) -> None:
    server = make_server()
    torrent_hash = pair.add_transfer("resume.bin", size=2 * MiB, rate=200 * 1024)
    with SSEReader(server.url + "api/events") as first:
        first.wait(lambda m: len(progress_values(m, torrent_hash)) >= 3, 30, "progress on the first stream")
        last_id = first.last_id
        seen_first = first.events()
    assert last_id is not None
    # Let some events happen while nobody is connected.
    wait_for(lambda: server.status()["event_id"] != last_id and server.status()["event_id"], 15, "new events")
    with SSEReader(server.url + "api/events", headers={"Last-Event-ID": last_id}) as second:
        second.wait(lambda m: [e for e in m if e.data], 5, "the replay")
        replayed = second.events()
        assert all(e.event != "snapshot" for e in replayed), "a resumable id got a snapshot"
        seq = [int(e.id.rsplit("-", 1)[1]) for e in replayed if e.id]
        assert seq[0] == int(last_id.rsplit("-", 1)[1]) + 1, "an event was lost"
        assert seq == list(range(seq[0], seq[0] + len(seq))), "an event was lost or duplicated"
        # First stream + replay (+ what followed) shows exactly what a fresh snapshot shows.
        with SSEReader(server.url + "api/events") as fresh:
            second.wait(
                lambda m: fresh.last_id is not None and fresh.last_id == second.last_id,
                10,
                "both streams at the same event",
            )
            resumed_view = apply_stream(seen_first + second.snapshot())
            fresh_view = apply_stream(fresh.snapshot())
    assert resumed_view == fresh_view
    assert torrent_hash in fresh_view


def test_an_id_from_another_server_run_gets_a_snapshot(make_server: Callable[..., ServerProcess]) -> None:
    server = make_server()
    with SSEReader(server.url + "api/events", headers={"Last-Event-ID": "deadbeef-3"}) as stream:
        events = stream.wait(lambda m: [e for e in m if e.data], 5, "the opening event")
        assert events[0].event == "snapshot"


def test_poller_recovers_after_qbittorrent_is_killed_and_restarted(
    pair: TransferPair, make_server: Callable[..., ServerProcess]
) -> None:
    server = make_server()
    with SSEReader(server.url + "api/events") as stream:
        stream.wait(lambda m: [e for e in m if e.event == "snapshot"], 5, "a snapshot")
        pair.leecher.kill()
        stream.wait(
            lambda m: [e for e in m if e.event == "status" and e.json()["qbittorrent"] == "unreachable"],
            10,
            "status unreachable",
        )
        assert server.running
        pair.leecher.start()
        down_at = len(stream.snapshot())
        stream.wait(
            lambda m: [
                e for e in m[down_at:] if e.event == "status" and e.json()["qbittorrent"] == "connected"
            ],
            40,
            "status connected again",
        )
        # The stream carried on: the same connection, still receiving.
        assert not stream.ended.is_set()
        count = len(stream.snapshot())
        stream.wait(lambda m: len(m) > count, 10, "messages after the recovery")
    assert get_json(server.url + "api/status")["status"]["qbittorrent"] == "connected"


def test_wrong_password_gives_auth_failed_without_crash_or_ban(
    pair: TransferPair, make_server: Callable[..., ServerProcess]
) -> None:
    server = make_server(qbt_password="not-the-password")
    status = wait_for(
        lambda: (s := server.status())["status"]["qbittorrent"] == "auth_failed" and s, 15, "auth_failed"
    )
    assert "not-the-password" not in str(status)
    assert server.running
    assert "not-the-password" not in server.log_text()
    # No ban: the right password still works for everyone else at this address.
    assert pair.leecher.client().app_version().startswith("v")
    with SSEReader(server.url + "api/events") as stream:
        snapshot = stream.wait(lambda m: [e for e in m if e.event == "snapshot"], 5, "a snapshot")[0]
        assert snapshot.json()["status"]["qbittorrent"] == "auth_failed"


def test_stream_outlives_quarts_60_second_response_timeout(make_server: Callable[..., ServerProcess]) -> None:
    server = make_server(heartbeat=1.0)
    started = time.monotonic()
    with SSEReader(server.url + "api/events") as stream:
        # The wait itself is the test: the stream must still be open after 65 s.
        stream.wait(lambda m: time.monotonic() - started > 65 and m, 80, "65 s of stream")
        assert not stream.ended.is_set(), "the stream ended"
        # Still delivering after 60 s: events when something changed, heartbeats otherwise.
        late = [m for m in stream.snapshot() if m.at - started > 60]
        assert late, "nothing arrived after 60 s"
        gaps = [b.at - a.at for a, b in itertools.pairwise(stream.snapshot())]
        assert max(gaps) < 2.0, f"a silence of {max(gaps):.1f} s with a 1 s heartbeat"
        assert server.status()["clients"] == 1
