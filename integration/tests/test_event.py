"""The event entity: each download's added, completed and removed, once, across a restart
of the server and of Home Assistant, against a real download in real qBittorrent."""

from __future__ import annotations

import uuid
from functools import partial
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from pytest_homeassistant_custom_component.common import MockConfigEntry  # type: ignore[import-untyped]
from quart_dl.lab.server_process import ServerProcess
from quart_dl.lab.transfer import TransferPair
from quart_dl.lab.wait import wait_for_async

from custom_components.quart_dl.const import DOMAIN, EVENT_DOWNLOAD_REMOVED
from custom_components.quart_dl.event import DOWNLOAD_EVENT_TYPES

from .helpers import EventRecorder, StateRecorder, entity_id, state_of
from .test_push import _completed_on_server, wait_caught_up

KIB = 1024


def _events(recorder: StateRecorder, event_type: str, info_hash: str) -> list[dict[str, Any]]:
    """The events the entity announced of ``event_type`` for one torrent.

    An event entity's state is the time of its last event: one event is one distinct
    state, however often it is written again (it is, when the entity comes back from
    unavailable while the server restarts).
    """
    seen: dict[str, dict[str, Any]] = {}
    for _, state in recorder.states:
        if (
            state is not None
            and state.attributes.get("event_type") == event_type
            and state.attributes.get("hash") == info_hash
        ):
            seen.setdefault(state.state, dict(state.attributes))
    return list(seen.values())


async def test_event_entity_announces_each_download_once_across_a_server_restart(
    hass: HomeAssistant,
    server: ServerProcess,
    entry: MockConfigEntry,
    qbt_pair: TransferPair,
) -> None:
    """A download is added, the server is killed while it completes and started again, the
    torrent is removed: the entity announces added, completed and removed once each (with
    the torrent's name), and the bus carries the removal with the device's id."""
    events = entity_id(hass, entry.entry_id, "event", "downloads")
    assert state_of(hass, events).attributes["event_types"] == DOWNLOAD_EVENT_TYPES
    recorder = StateRecorder(hass, events)
    removed_bus = EventRecorder(hass, EVENT_DOWNLOAD_REMOVED)
    name = f"event-{uuid.uuid4().hex[:8]}.bin"
    info_hash = await hass.async_add_executor_job(partial(qbt_pair.add_transfer, name, 1024 * KIB, 256 * KIB))
    await wait_for_async(
        lambda: _events(recorder, "download_added", info_hash), 15, "the entity's download_added"
    )
    await hass.async_add_executor_job(server.kill)
    await hass.async_add_executor_job(partial(qbt_pair.wait_complete, info_hash))
    await hass.async_add_executor_job(server.start)
    await wait_for_async(
        lambda: _events(recorder, "download_completed", info_hash),
        30,
        "the entity's download_completed after the restart",
    )
    await wait_caught_up(hass, server, entry)
    await hass.async_add_executor_job(
        partial(qbt_pair.leecher_client.torrents_delete, delete_files=True, torrent_hashes=info_hash)
    )
    await wait_for_async(
        lambda: _events(recorder, "download_removed", info_hash), 15, "the entity's download_removed"
    )
    await wait_caught_up(hass, server, entry)
    for event_type in DOWNLOAD_EVENT_TYPES:
        announced = _events(recorder, event_type, info_hash)
        assert len(announced) == 1, (event_type, announced)
        assert announced[0]["name"] == name
    device = dr.async_get(hass).async_get_device(identifiers={(DOMAIN, f"{entry.entry_id}_default")})
    assert device is not None
    [bus] = removed_bus.for_hash(info_hash)
    assert bus["device_id"] == device.id
    assert bus["name"] == name
    recorder.stop()
    removed_bus.stop()


async def test_event_entity_announces_a_download_completed_while_home_assistant_was_down_once(
    hass: HomeAssistant,
    server: ServerProcess,
    entry: MockConfigEntry,
    qbt_pair: TransferPair,
) -> None:
    """The entry is unloaded (as when Home Assistant stops), a download is added and completes,
    the entry is set up again: the entity announces the missed download_completed once (from
    the server's durable log, resumed at the stored id), and a reload announces nothing again."""
    events = entity_id(hass, entry.entry_id, "event", "downloads")
    recorder = StateRecorder(hass, events)
    await wait_caught_up(hass, server, entry)
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    info_hash = await hass.async_add_executor_job(
        partial(qbt_pair.add_transfer, f"ha-down-{uuid.uuid4().hex[:8]}.bin", 1024 * KIB, 512 * KIB)
    )
    await _completed_on_server(hass, server, info_hash)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await wait_for_async(
        lambda: _events(recorder, "download_completed", info_hash), 30, "the missed download_completed"
    )
    await wait_caught_up(hass, server, entry)
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    await wait_for_async(lambda: entry.runtime_data.coordinator.stream.connected, 10, "the stream")
    await wait_caught_up(hass, server, entry)
    assert len(_events(recorder, "download_completed", info_hash)) == 1
    assert len(_events(recorder, "download_added", info_hash)) == 1
    recorder.stop()
