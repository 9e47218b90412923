"""Push: server events reach entity states and the bus, across network cuts and restarts.

Everything runs against the real stack: qBittorrent changes, the quart-dl server process
publishes, the integration's stream applies. Latencies are measured, not assumed.
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from functools import partial
from typing import Any

import pytest
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from pytest_homeassistant_custom_component.common import MockConfigEntry
from quart_dl.lab.server_process import ServerProcess
from quart_dl.lab.transfer import TransferPair
from quart_dl.lab.wait import wait_for, wait_for_async

from custom_components.quart_dl import coordinator as coordinator_module
from custom_components.quart_dl.const import DOMAIN, EVENT_DOWNLOAD_ADDED, EVENT_DOWNLOAD_COMPLETED
from custom_components.quart_dl.sse import SseEvent

from .conftest import setup_entry, wait_for_sync_connected
from .helpers import (
    EventRecorder,
    StateRecorder,
    StreamTap,
    TcpProxy,
    entity_id,
)

KIB = 1024
MIB = 1024 * KIB


def _seq(event_id: str | None) -> tuple[str, int]:
    """``<epoch>-<seq>`` as (epoch, seq) for comparisons within one server run."""
    assert event_id is not None
    epoch, _, seq = event_id.rpartition("-")
    return epoch, int(seq)


async def wait_caught_up(hass: HomeAssistant, server: ServerProcess, entry: MockConfigEntry) -> None:
    """Wait until the integration has applied every event the server has published so far.

    "Exactly once" can only be asserted once nothing more can arrive for the moment in
    question: this is that moment, as a condition rather than a sleep.
    """
    status = await hass.async_add_executor_job(server.status)
    epoch, seq = _seq(status["event_id"])
    stream = entry.runtime_data.coordinator.stream

    def caught_up() -> bool:
        if stream.last_event_id is None:
            return False
        current_epoch, current_seq = _seq(stream.last_event_id)
        return current_epoch == epoch and current_seq >= seq

    await wait_for_async(caught_up, 10, f"the integration to reach event {status['event_id']}")


def _carrier_counts(server: ServerProcess) -> dict[str, float]:
    """``quart_dl_sse_streams_opened_total`` by carrier, read from the server's /metrics."""
    with urllib.request.urlopen(server.url + "metrics", timeout=5) as answer:
        text = answer.read().decode()
    counts = {"socket": 0.0, "quart": 0.0}
    for line in text.splitlines():
        for carrier in counts:
            if line.startswith(f'quart_dl_sse_streams_opened_total{{carrier="{carrier}"}}'):
                counts[carrier] = float(line.rsplit(" ", 1)[1])
    return counts


async def test_the_stream_on_home_assistants_shared_session_takes_the_fast_path(
    hass: HomeAssistant, server: ServerProcess
) -> None:
    """Home Assistant's shared aiohttp session keeps connections alive: the config entry's
    stream may come on a connection that already served ``/api/status``. Either way the
    server's socket layer must carry it (issue #12), not Quart's slower path."""
    before = await hass.async_add_executor_job(_carrier_counts, server)
    await setup_entry(hass, server.url)

    def opened() -> dict[str, float]:
        now = _carrier_counts(server)
        return {carrier: now[carrier] - before[carrier] for carrier in now}

    await wait_for_async(
        lambda: opened()["socket"] >= 1, 10, "the entry's stream to open on the socket layer"
    )
    assert opened()["quart"] == 0, opened()


async def test_push_reaches_entity_within_one_second(
    hass: HomeAssistant,
    server: ServerProcess,
    entry: MockConfigEntry,
    qbt_pair: TransferPair,
    seeding_hash: str,
) -> None:
    """Pausing a torrent in qBittorrent shows in the ``paused`` sensor within a second.

    Measured twice: from the pause call in qBittorrent (includes the server's 0.5 s poll)
    and from the moment the server's event reached an independent stream reader (the
    integration's own delay).
    """
    paused = entity_id(hass, entry.entry_id, "sensor", "paused")
    before = int(hass.states.get(paused).state)
    tap = StreamTap(server.url)
    await tap.start()
    recorder = StateRecorder(hass, paused)
    client = qbt_pair.leecher_client
    try:
        started = time.monotonic()
        await hass.async_add_executor_job(partial(client.torrents_pause, torrent_hashes=seeding_hash))
        await wait_for_async(
            lambda: recorder.first(lambda s: s.state == str(before + 1)),
            5,
            "the paused sensor to count the paused torrent",
        )
        at_entity, _ = recorder.first(lambda s: s.state == str(before + 1))
        # The tap is a reader like any other: under load it may take its turn after the
        # integration's, so wait for it (with a deadline) rather than look once.
        published = await wait_for_async(
            lambda: tap.first(
                "diff",
                lambda p: p["changed"].get(seeding_hash, {}).get("phase") == "paused",
            ),
            5,
            "the server's pause event at the independent reader",
        )
        at_server, _ = published
        from_qbittorrent = at_entity - started
        from_server = at_entity - at_server
        print(
            f"pause -> entity {from_qbittorrent * 1000:.0f} ms; "
            f"server event -> entity {from_server * 1000:.0f} ms"
        )
        assert from_server < 1.0
        assert from_qbittorrent < 1.0
    finally:
        recorder.stop()
        await tap.stop()
        await hass.async_add_executor_job(partial(client.torrents_resume, torrent_hashes=seeding_hash))
    await wait_for_async(
        lambda: hass.states.get(paused).state == str(before),
        5,
        "the paused sensor to drop back after resume",
    )


async def test_completion_event_fires_once(
    hass: HomeAssistant,
    server: ServerProcess,
    entry: MockConfigEntry,
    qbt_pair: TransferPair,
) -> None:
    """A real download: one ``download_added``, one ``download_completed``, speeds shown."""
    added = EventRecorder(hass, EVENT_DOWNLOAD_ADDED)
    completed = EventRecorder(hass, EVENT_DOWNLOAD_COMPLETED)
    speed = StateRecorder(hass, entity_id(hass, entry.entry_id, "sensor", "download_speed"))
    tap = StreamTap(server.url)
    await tap.start()
    total = entity_id(hass, entry.entry_id, "sensor", "total")
    total_before = int(hass.states.get(total).state)
    name = f"complete-{uuid.uuid4().hex[:8]}.bin"

    info_hash = await hass.async_add_executor_job(
        # Slow enough (~8 s) that the server's 0.5 s polls see it moving.
        partial(qbt_pair.add_transfer, name, 2 * MIB, 256 * KIB)
    )
    await wait_for_async(lambda: completed.for_hash(info_hash), 30, "the completion event")
    await wait_caught_up(hass, server, entry)

    assert len(added.for_hash(info_hash)) == 1
    assert len(completed.for_hash(info_hash)) == 1
    event = completed.for_hash(info_hash)[0]
    device = dr.async_get(hass).async_get_device(identifiers={(DOMAIN, f"{entry.entry_id}_default")})
    assert device is not None
    assert event == {
        "config_entry_id": entry.entry_id,
        "instance": "default",
        "device_id": device.id,
        "hash": info_hash,
        "name": name,
        "size": 2 * MIB,
        "save_path": event["save_path"],
    }
    assert event["save_path"].startswith(str(qbt_pair.leecher.downloads))
    assert added.for_hash(info_hash)[0]["name"] == name
    assert int(hass.states.get(total).state) == total_before + 1
    # Every global download speed the server published reached the sensor (shown in
    # KiB/s). Compared with what an independent reader saw rather than with "> 0":
    # qBittorrent's global speed is sampled and often reads 0 between bursts.
    published = {
        payload["transfer"]["dl_speed"]
        for _, kind, payload in tap.events
        if kind == "diff" and "transfer" in payload
    }
    shown = {round(float(state.state) * 1024) for _, state in speed.states if state}
    initial = round(float(speed.states[0][1].state) * 1024) if speed.states else None
    assert published - {initial} <= shown | {0}, (published, shown)
    await tap.stop()
    added.stop()
    completed.stop()
    speed.stop()


async def test_network_cut_replays_missed_completion_once(
    hass: HomeAssistant,
    server: ServerProcess,
    proxy: TcpProxy,
    qbt_pair: TransferPair,
) -> None:
    """A download completes while the network is cut: after it heals, the integration
    resumes with Last-Event-ID, the server replays the missed diffs, and the completion
    event fires exactly once; meanwhile the entities were unavailable."""
    entry = await setup_entry(hass, proxy.url)
    coordinator = entry.runtime_data.coordinator
    completed = EventRecorder(hass, EVENT_DOWNLOAD_COMPLETED)
    total = entity_id(hass, entry.entry_id, "sensor", "total")

    info_hash = await hass.async_add_executor_job(
        partial(qbt_pair.add_transfer, f"replay-{uuid.uuid4().hex[:8]}.bin", 2 * MIB, 256 * KIB)
    )
    proxy.cut()
    await wait_for_async(
        lambda: hass.states.get(total).state == STATE_UNAVAILABLE,
        10,
        "the entities to turn unavailable while the server is out of reach",
    )

    def server_has_it_complete() -> bool:
        record = server_torrents().get(info_hash)
        return bool(record and record["complete"])

    def server_torrents() -> dict[str, dict[str, object]]:
        from quart_dl.lab.server_process import get_json

        answer = get_json(server.url + "api/torrents")
        return {record["hash"]: record for record in answer["torrents"]}

    # server_has_it_complete blocks (HTTP): the sync wait runs on Home Assistant's executor.
    await hass.async_add_executor_job(
        wait_for, server_has_it_complete, 40, "the download to complete on the server", 0.1
    )
    assert not completed.for_hash(info_hash), "an event crossed a cut network"

    proxy.restore()
    await wait_for_async(lambda: coordinator.stream.connects >= 2, 30, "the stream to reconnect")
    await wait_for_async(lambda: completed.for_hash(info_hash), 10, "the replayed completion")
    await wait_caught_up(hass, server, entry)
    assert len(completed.for_hash(info_hash)) == 1
    assert coordinator.stream.snapshots == 1, "the reconnect was not a replay"
    assert hass.states.get(total).state != STATE_UNAVAILABLE
    completed.stop()


async def test_stream_recovers_after_server_restart(
    hass: HomeAssistant,
    server: ServerProcess,
    entry: MockConfigEntry,
    qbt_pair: TransferPair,
    seeding_hash: str,
) -> None:
    """Server down: entities unavailable. Server back (a new run of the same event log):
    the stream reconnects and resumes with a replay (no second snapshot), fires no old
    completion, and pushes again."""
    coordinator = entry.runtime_data.coordinator
    completed = EventRecorder(hass, EVENT_DOWNLOAD_COMPLETED)
    paused = entity_id(hass, entry.entry_id, "sensor", "paused")
    old_epoch, _ = _seq(coordinator.stream.last_event_id)

    await hass.async_add_executor_job(server.stop)
    await wait_for_async(
        lambda: hass.states.get(paused).state == STATE_UNAVAILABLE,
        10,
        "the entities to turn unavailable while the server is down",
    )
    await hass.async_add_executor_job(server.start)
    await hass.async_add_executor_job(wait_for_sync_connected, server)
    await wait_for_async(
        lambda: coordinator.stream.connected and _seq(coordinator.stream.last_event_id)[0] != old_epoch,
        30,
        "the stream to reconnect to the restarted server",
    )
    assert hass.states.get(paused).state != STATE_UNAVAILABLE
    assert coordinator.stream.snapshots == 1, "the durable log's ids must survive the restart"

    before = int(hass.states.get(paused).state)
    client = qbt_pair.leecher_client
    try:
        await hass.async_add_executor_job(partial(client.torrents_pause, torrent_hashes=seeding_hash))
        await wait_for_async(
            lambda: hass.states.get(paused).state == str(before + 1),
            5,
            "a push after the restart",
        )
    finally:
        await hass.async_add_executor_job(partial(client.torrents_resume, torrent_hashes=seeding_hash))
    await wait_for_async(lambda: hass.states.get(paused).state == str(before), 5, "the resume")
    assert not completed.for_hash(seeding_hash), "a snapshot fired a completion event"
    completed.stop()


async def _completed_on_server(hass: HomeAssistant, server: ServerProcess, info_hash: str) -> None:
    from quart_dl.lab.server_process import get_json

    def complete() -> bool:
        answer = get_json(server.url + "api/torrents")
        return any(r["hash"] == info_hash and r["complete"] for r in answer["torrents"])

    await hass.async_add_executor_job(wait_for, complete, 40, "the download complete on the server", 0.1)


async def test_completion_while_the_server_was_killed_fires_once_marked_late(
    hass: HomeAssistant,
    server: ServerProcess,
    entry: MockConfigEntry,
    qbt_pair: TransferPair,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The server is SIGKILLed mid-download and the download completes meanwhile: once the
    server is back, the completion fires once, late, with the time it happened; a second
    restart of the server fires nothing again."""
    monkeypatch.setattr(coordinator_module, "LATE_AFTER", 0.0)
    completed = EventRecorder(hass, EVENT_DOWNLOAD_COMPLETED)
    coordinator = entry.runtime_data.coordinator
    info_hash = await hass.async_add_executor_job(
        partial(qbt_pair.add_transfer, f"killed-{uuid.uuid4().hex[:8]}.bin", 1 * MIB, 256 * KIB)
    )
    await hass.async_add_executor_job(server.kill)
    await hass.async_add_executor_job(partial(qbt_pair.wait_complete, info_hash))
    await hass.async_add_executor_job(server.start)
    await wait_for_async(lambda: completed.for_hash(info_hash), 30, "the completion after the restart")
    await wait_caught_up(hass, server, entry)
    assert len(completed.for_hash(info_hash)) == 1
    event = completed.for_hash(info_hash)[0]
    assert event["late"] is True
    assert event["happened_at"].endswith("+00:00")
    connects = coordinator.stream.connects
    await hass.async_add_executor_job(server.stop)
    await hass.async_add_executor_job(server.start)
    await wait_for_async(lambda: coordinator.stream.connects > connects, 30, "the reconnect")
    await wait_caught_up(hass, server, entry)
    assert len(completed.for_hash(info_hash)) == 1, "fired again after a second restart"
    completed.stop()


async def test_completion_while_home_assistant_was_down_fires_once_after_it_restarts(
    hass: HomeAssistant,
    server: ServerProcess,
    entry: MockConfigEntry,
    qbt_pair: TransferPair,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The entry is unloaded (as when Home Assistant stops), a download is added and
    completes, the entry is set up again: it resumes from the stored event id and fires the
    missed added and completed events once each, marked late; a reload fires nothing again."""
    monkeypatch.setattr(coordinator_module, "LATE_AFTER", 0.0)
    added = EventRecorder(hass, EVENT_DOWNLOAD_ADDED)
    completed = EventRecorder(hass, EVENT_DOWNLOAD_COMPLETED)
    await wait_caught_up(hass, server, entry)
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    info_hash = await hass.async_add_executor_job(
        partial(qbt_pair.add_transfer, f"ha-down-{uuid.uuid4().hex[:8]}.bin", 1 * MIB, 512 * KIB)
    )
    await _completed_on_server(hass, server, info_hash)
    assert not completed.for_hash(info_hash)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await wait_for_async(lambda: completed.for_hash(info_hash), 30, "the missed completion")
    await wait_caught_up(hass, server, entry)
    assert len(added.for_hash(info_hash)) == 1
    assert len(completed.for_hash(info_hash)) == 1
    assert completed.for_hash(info_hash)[0]["late"] is True
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    await wait_for_async(lambda: entry.runtime_data.coordinator.stream.connected, 10, "the stream")
    await wait_caught_up(hass, server, entry)
    assert len(completed.for_hash(info_hash)) == 1, "fired again after a reload"
    assert len(added.for_hash(info_hash)) == 1
    added.stop()
    completed.stop()


def _late(event_id: str, torrent_hash: str, completed_at: int) -> SseEvent:
    """A ``late`` completion as the server sends it (docs/protocol.md), for the coordinator."""
    torrent = {"hash": torrent_hash, "name": f"{torrent_hash[:6]}.bin", "completed_at": completed_at}
    data = {
        "id": event_id,
        "t": completed_at,
        "kind": "diff",
        "completed": [torrent_hash],
        "torrents": {torrent_hash: torrent},
    }
    return SseEvent(event="late", data=json.dumps(data), id=event_id)


async def test_regression_a_later_runs_lower_ids_were_not_fired_and_a_reannounced_completion_fired_twice(
    hass: HomeAssistant, server: ServerProcess, entry: MockConfigEntry
) -> None:
    """A server killed while its database was failing loses the events it could not write;
    its next run numbers on from the last written seq, with the next run number. Comparing
    ids by seq alone, the new run's events below the last fired seq never fired; and a
    completion the new run announces again (the lost one, under a new id) fired twice. The
    coordinator is fed the events of such a restart directly (the double fault cannot be
    staged in the harness): ids by (run, seq), each download and moment once."""
    coordinator = entry.runtime_data.coordinator
    status = await hass.async_add_executor_job(server.status)
    database, _, run_text = str(status["epoch"]).partition(".")
    run = int(run_text)
    completed = EventRecorder(hass, EVENT_DOWNLOAD_COMPLETED)
    lost, other = "a" * 40, "b" * 40
    coordinator._late(*_args(_late(f"{database}.{run}-900", lost, 1_700_000_000)))
    assert len(completed.for_hash(lost)) == 1
    # The next run: lower seqs, a new completion, and the lost one announced again.
    coordinator._late(*_args(_late(f"{database}.{run + 1}-850", other, 1_700_000_100)))
    coordinator._late(*_args(_late(f"{database}.{run + 1}-851", lost, 1_700_000_000)))
    assert len(completed.for_hash(other)) == 1, "a later run's event with a lower seq did not fire"
    assert len(completed.for_hash(lost)) == 1, "the same completion fired again under a new id"
    # A torrent that completes again (rechecked, downloaded anew) is a new moment: it fires.
    coordinator._late(*_args(_late(f"{database}.{run + 1}-852", lost, 1_700_000_500)))
    assert len(completed.for_hash(lost)) == 2
    completed.stop()


def _args(event: SseEvent) -> tuple[SseEvent, dict[str, Any]]:
    return event, json.loads(event.data)


async def test_regression_stream_back_within_seconds_after_a_long_outage(
    hass: HomeAssistant, server: ServerProcess, entry: MockConfigEntry
) -> None:
    """Regression: after an outage long enough for the stream's backoff to grow (22-23 s
    measured), the stream came back only when that backoff ran out, though the fallback
    poll saw the server within seconds. Now a poll that finds the server back reconnects
    the stream at once: it is live within the poll interval (5 s) plus a connect, far
    below the backoff it had reached."""
    coordinator = entry.runtime_data.coordinator
    connects = coordinator.stream.connects
    await hass.async_add_executor_job(server.stop)
    await wait_for_async(
        lambda: (coordinator.stream.retry_delay or 0) >= 15,
        60,
        "the stream's backoff to grow past 15 s while the server is down",
    )
    await hass.async_add_executor_job(server.start)
    back = time.monotonic()
    await wait_for_async(
        lambda: coordinator.stream.connects > connects and coordinator.stream.connected,
        10,
        "the stream live again well before its backoff runs out",
    )
    print(f"stream live {time.monotonic() - back:.1f} s after the server was back")
    assert coordinator.last_update_success
