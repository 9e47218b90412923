"""The stop all / start all buttons, against a real server and qBittorrent."""

from __future__ import annotations

from functools import partial

import qbittorrentapi
from homeassistant.const import ATTR_ENTITY_ID
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry  # type: ignore[import-untyped]

from .actions_helpers import in_qbittorrent, new_magnet, paused
from .helpers import entity_id


async def test_stop_all_and_start_all(
    hass: HomeAssistant, actions_entry: MockConfigEntry, qbt: qbittorrentapi.Client
) -> None:
    """Stop all stops every torrent in qBittorrent; start all starts them again."""
    hashes = []
    for _ in range(2):
        magnet, info_hash = new_magnet()
        await hass.async_add_executor_job(partial(qbt.torrents_add, urls=magnet))
        hashes.append(info_hash)
    for info_hash in hashes:
        await in_qbittorrent(
            hass, qbt, info_hash, lambda r: r is not None and not paused(r), "added, running"
        )

    stop_all = entity_id(hass, actions_entry.entry_id, "button", "stop_all")
    start_all = entity_id(hass, actions_entry.entry_id, "button", "start_all")
    await hass.services.async_call("button", "press", {ATTR_ENTITY_ID: stop_all}, blocking=True)
    for info_hash in hashes:
        await in_qbittorrent(hass, qbt, info_hash, paused, "stopped by stop all")
    await hass.services.async_call("button", "press", {ATTR_ENTITY_ID: start_all}, blocking=True)
    for info_hash in hashes:
        await in_qbittorrent(hass, qbt, info_hash, lambda r: r is not None and not paused(r), "started again")
