"""Setting up, unloading and reloading an entry against a real quart-dl server."""

from __future__ import annotations

from homeassistant.components import frontend
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry
from quart_dl.testing import ServerProcess

from custom_components.quart_dl.panel import panel_url_path


async def test_setup_registers_panel_and_unload_removes_it(
    hass: HomeAssistant, server: ServerProcess, entry: MockConfigEntry
) -> None:
    """The sidebar gets an iframe panel pointing at the server; unload takes it away."""
    panels = hass.data[frontend.DATA_PANELS]
    panel = panels[panel_url_path(entry)]
    assert panel.component_name == "iframe"
    assert panel.config == {"url": server.url}
    assert panel.sidebar_title == "Downloads"
    assert panel.sidebar_icon == "mdi:download"

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.NOT_LOADED
    assert panel_url_path(entry) not in hass.data[frontend.DATA_PANELS]
