"""Repair issues, against real servers: a refused token, a server unreachable for long;
each deleted by itself once the server answers again."""

from __future__ import annotations

import pytest
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import CONF_ACCESS_TOKEN, CONF_URL
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import MockConfigEntry  # type: ignore[import-untyped]
from quart_dl.lab.server_process import ServerProcess
from quart_dl.lab.wait import wait_for_async

from custom_components.quart_dl import coordinator as coordinator_module
from custom_components.quart_dl.api import normalize_url
from custom_components.quart_dl.const import DOMAIN, UNREACHABLE_ISSUE_AFTER
from custom_components.quart_dl.issues import TOKEN_REJECTED, UNREACHABLE, issue_id

from .conftest import TOKEN, mock_entry, wait_for_sync_connected


def _issue(hass: HomeAssistant, kind: str, entry: MockConfigEntry) -> ir.IssueEntry | None:
    return ir.async_get(hass).async_get_issue(DOMAIN, issue_id(kind, entry.entry_id))


async def test_refused_token_raises_an_issue_that_reauth_clears(
    hass: HomeAssistant, auth_server: ServerProcess
) -> None:
    """A wrong token: the entry fails with a reauth, and a repair issue names the entry
    and the server; the reauth with the right token reloads the entry, and the issue is
    gone."""
    await hass.async_add_executor_job(wait_for_sync_connected, auth_server, 20.0, TOKEN)
    base_url = normalize_url(auth_server.url)
    entry = mock_entry(base_url, data={CONF_URL: base_url, CONF_ACCESS_TOKEN: "wrong-token-0123456789"})
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_ERROR
    issue = _issue(hass, TOKEN_REJECTED, entry)
    assert issue is not None
    assert issue.translation_key == TOKEN_REJECTED
    assert issue.translation_placeholders == {"title": entry.title, "url": base_url}
    assert "wrong-token" not in str(issue.to_json())

    result = await entry.start_reauth_flow(hass)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_ACCESS_TOKEN: TOKEN})
    assert result["reason"] == "reauth_successful"
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert _issue(hass, TOKEN_REJECTED, entry) is None


async def test_unreachable_for_long_raises_an_issue_cleared_when_back(
    hass: HomeAssistant,
    server: ServerProcess,
    entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A server down for a moment raises nothing; once it is down for longer than the
    threshold (shortened here from 5 minutes) the issue appears, and it goes when the
    server is back."""
    assert UNREACHABLE_ISSUE_AFTER == 300
    coordinator = entry.runtime_data.coordinator
    await hass.async_add_executor_job(server.stop)
    await wait_for_async(lambda: not coordinator.last_update_success, 15, "a failed poll")
    assert _issue(hass, UNREACHABLE, entry) is None, "raised before the outage was long"

    monkeypatch.setattr(coordinator_module, "UNREACHABLE_ISSUE_AFTER", 0.0)
    await wait_for_async(lambda: _issue(hass, UNREACHABLE, entry) is not None, 15, "the unreachable issue")
    issue = _issue(hass, UNREACHABLE, entry)
    assert issue is not None
    assert issue.translation_placeholders is not None
    assert issue.translation_placeholders["url"] == normalize_url(server.url)

    await hass.async_add_executor_job(server.start)
    await wait_for_async(
        lambda: _issue(hass, UNREACHABLE, entry) is None, 15, "the issue gone with the server back"
    )
    assert coordinator.last_update_success
