"""The global limit numbers (disabled by default), against a real server and qBittorrent."""

from __future__ import annotations

import qbittorrentapi
from homeassistant.const import ATTR_ENTITY_ID
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry  # type: ignore[import-untyped]

from .actions_helpers import settles, until
from .helpers import entity_id, state_of


async def number_shows(hass: HomeAssistant, number: str, value: float) -> None:
    """The entity follows qBittorrent through the stream (a regression: read at once under
    load, it still showed the limit before the action)."""

    async def read() -> float:
        return float(state_of(hass, number).state)

    await settles(read, lambda shown: shown == value, f"{number} to show {value}")


async def test_limits_are_disabled_by_default_and_set_qbittorrent(
    hass: HomeAssistant, actions_entry: MockConfigEntry, qbt: qbittorrentapi.Client
) -> None:
    """Both numbers start disabled; enabled, setting one sets qBittorrent's global limit."""
    registry = er.async_get(hass)
    numbers = {
        key: entity_id(hass, actions_entry.entry_id, "number", key) for key in ("dl_limit", "up_limit")
    }
    for number in numbers.values():
        found = registry.async_get(number)
        assert found is not None
        assert found.disabled_by is er.RegistryEntryDisabler.INTEGRATION
        registry.async_update_entity(number, disabled_by=None)
    assert await hass.config_entries.async_reload(actions_entry.entry_id)
    await hass.async_block_till_done()

    try:
        await hass.services.async_call(
            "number",
            "set_value",
            {ATTR_ENTITY_ID: numbers["dl_limit"], "value": 512},
            blocking=True,
        )
        await until(hass, qbt.transfer_download_limit, lambda v: v == 512 * 1024, "dl limit")
        await number_shows(hass, numbers["dl_limit"], 512)
        await hass.services.async_call(
            "number",
            "set_value",
            {ATTR_ENTITY_ID: numbers["up_limit"], "value": 100},
            blocking=True,
        )
        await until(hass, qbt.transfer_upload_limit, lambda v: v == 100 * 1024, "up limit")
        await number_shows(hass, numbers["up_limit"], 100)
    finally:
        await hass.async_add_executor_job(qbt.transfer_set_download_limit, 0)
        await hass.async_add_executor_job(qbt.transfer_set_upload_limit, 0)
