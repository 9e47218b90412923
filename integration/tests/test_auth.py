"""A quart-dl server with an access token: the flow proves it, the stream carries it, and a
changed token leads to re-authentication rather than a silent stall."""

from __future__ import annotations

from homeassistant.components import frontend
from homeassistant.config_entries import SOURCE_REAUTH, SOURCE_USER, ConfigEntryState
from homeassistant.const import CONF_ACCESS_TOKEN, CONF_URL, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from pytest_homeassistant_custom_component.common import MockConfigEntry
from quart_dl.lab.server_process import ServerProcess
from quart_dl.lab.transfer import TransferPair
from quart_dl.lab.wait import wait_for_async

from custom_components.quart_dl.api import normalize_url
from custom_components.quart_dl.const import DOMAIN
from custom_components.quart_dl.panel import panel_url_path

from .conftest import TOKEN, make_server, mock_entry
from .helpers import entity_id

NEW_TOKEN = "a-different-token-9876543210abcdef"


async def _user_flow(hass: HomeAssistant, user_input: dict[str, str]) -> dict:  # type: ignore[type-arg]
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    return await hass.config_entries.flow.async_configure(result["flow_id"], user_input)  # type: ignore[return-value]


async def test_flow_proves_the_token(hass: HomeAssistant, auth_server: ServerProcess) -> None:
    """No token or a wrong one: ``invalid_auth``. The right one: an entry whose stream
    (Bearer header) and panel (token in the frame's address) both get in."""
    result = await _user_flow(hass, {CONF_URL: auth_server.url})
    assert result.get("errors") == {"base": "invalid_auth"}, result
    result = await _user_flow(hass, {CONF_URL: auth_server.url, CONF_ACCESS_TOKEN: "wrong-token-0123456789"})
    assert result.get("errors") == {"base": "invalid_auth"}, result

    result = await _user_flow(hass, {CONF_URL: auth_server.url, CONF_ACCESS_TOKEN: TOKEN})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    entry = result["result"]
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    coordinator = entry.runtime_data.coordinator
    await wait_for_async(lambda: coordinator.stream.connected, 10, "the authenticated stream")
    panel = hass.data[frontend.DATA_PANELS][panel_url_path(entry)]
    assert panel.config["url"] == f"{normalize_url(auth_server.url)}/?token={TOKEN}"


async def test_changed_token_starts_reauth(
    hass: HomeAssistant, auth_server: ServerProcess, qbt_pair: TransferPair
) -> None:
    """The server restarts with another token: entities go unavailable, Home Assistant asks
    for the new token, and with it the stream comes back."""
    entry: MockConfigEntry = mock_entry(auth_server.url)
    entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(entry, data={**entry.data, CONF_ACCESS_TOKEN: TOKEN})
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    coordinator = entry.runtime_data.coordinator
    await wait_for_async(lambda: coordinator.stream.connected, 10, "the authenticated stream")
    total = entity_id(hass, entry.entry_id, "sensor", "total")

    await hass.async_add_executor_job(auth_server.stop)
    renewed = make_server(auth_server.root, qbt_pair, port=auth_server.port, token=NEW_TOKEN)
    await hass.async_add_executor_job(renewed.start)
    try:

        def reauth_flows() -> list[dict]:  # type: ignore[type-arg]
            return [
                flow
                for flow in hass.config_entries.flow.async_progress_by_handler(DOMAIN)
                if flow["context"]["source"] == SOURCE_REAUTH
            ]

        await wait_for_async(reauth_flows, 30, "Home Assistant to ask for the new token")
        assert hass.states.get(total).state == STATE_UNAVAILABLE

        flow_id = reauth_flows()[0]["flow_id"]
        result = await hass.config_entries.flow.async_configure(
            flow_id, {CONF_ACCESS_TOKEN: "still-not-the-right-one-000"}
        )
        assert result.get("errors") == {"base": "invalid_auth"}, result
        result = await hass.config_entries.flow.async_configure(flow_id, {CONF_ACCESS_TOKEN: NEW_TOKEN})
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "reauth_successful"
        await hass.async_block_till_done()
        assert entry.data[CONF_ACCESS_TOKEN] == NEW_TOKEN
        coordinator = entry.runtime_data.coordinator
        await wait_for_async(lambda: coordinator.stream.connected, 15, "the stream with the new token")
        assert hass.states.get(total).state != STATE_UNAVAILABLE
        panel = hass.data[frontend.DATA_PANELS][panel_url_path(entry)]
        assert panel.config["url"].endswith(f"?token={NEW_TOKEN}")
    finally:
        await hass.async_add_executor_job(renewed.stop)
