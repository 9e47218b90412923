"""Diagnostics: useful for a stream that misbehaves, and redacted."""

from __future__ import annotations

import json

from homeassistant.const import CONF_ACCESS_TOKEN, CONF_URL
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry
from quart_dl.lab.server_process import ServerProcess

from custom_components.quart_dl.diagnostics import async_get_config_entry_diagnostics


async def test_diagnostics_are_redacted(
    hass: HomeAssistant, server: ServerProcess, entry: MockConfigEntry
) -> None:
    """No token, URL, torrent name, hash or path leaves; stream health does."""
    hass.config_entries.async_update_entry(entry, data={**entry.data, CONF_ACCESS_TOKEN: "very-secret"})
    result = await async_get_config_entry_diagnostics(hass, entry)
    text = json.dumps(result)
    assert "very-secret" not in text
    assert f"127.0.0.1:{server.port}" not in json.dumps(result["entry"])
    assert result["entry"]["data"][CONF_URL] == "**REDACTED**"
    assert result["stream"]["connected"] is True
    assert result["stream"]["snapshots"] == 1
    [instance] = result["server"]["instances"]
    assert instance["id"] == "default"
    assert instance["status"]["qbittorrent"] == "connected"
    coordinator = entry.runtime_data.coordinator
    for torrent_hash, record in coordinator.data.primary.torrents.items():
        assert torrent_hash not in text
        assert record["name"] not in text
    assert all(t["name"] == "**REDACTED**" for t in instance["torrents"])
