"""Setting up, unloading and reloading an entry against a real quart-dl server."""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any
from unittest.mock import patch

from homeassistant.components import frontend
from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState
from homeassistant.const import STATE_OFF, STATE_ON, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.update_coordinator import UpdateFailed
from pytest_homeassistant_custom_component.common import MockConfigEntry  # type: ignore[import-untyped]
from quart_dl.lab.qbittorrent_nox import free_port
from quart_dl.lab.server_process import ServerProcess, get_json
from quart_dl.lab.transfer import TransferPair
from quart_dl.lab.wait import wait_for_async

from custom_components.quart_dl.api import QuartDlClient, QuartDlResponseError
from custom_components.quart_dl.const import DOMAIN, STREAM_READ_MARGIN
from custom_components.quart_dl.panel import panel_url_path

from .conftest import make_server, mock_entry, setup_entry
from .helpers import entity_id, state_of


async def test_setup_registers_panel_and_unload_removes_it(
    hass: HomeAssistant, server: ServerProcess, entry: MockConfigEntry
) -> None:
    """The sidebar gets an iframe panel pointing at the server; unload takes it away.

    Home Assistant's harness fails the test if a task, timer or thread outlives it, so
    passing also proves that the unload stops the stream reader.
    """
    panels = hass.data[frontend.DATA_PANELS]
    panel = panels[panel_url_path(entry)]
    assert panel.component_name == "iframe"
    assert panel.config == {"url": server.url}
    assert panel.sidebar_title == "Downloads"
    assert panel.sidebar_icon == "mdi:download"
    assert not panel.require_admin

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.NOT_LOADED
    assert panel_url_path(entry) not in hass.data[frontend.DATA_PANELS]
    assert state_of(hass, entity_id(hass, entry.entry_id, "sensor", "total")).state == (STATE_UNAVAILABLE)


async def test_entities_after_setup(
    hass: HomeAssistant, server: ServerProcess, entry: MockConfigEntry
) -> None:
    """One device, the speed and count sensors and the connectivity sensor, all live."""
    connected = state_of(hass, entity_id(hass, entry.entry_id, "binary_sensor", "qbittorrent_connected"))
    assert connected.state == STATE_ON
    assert connected.attributes["device_class"] == "connectivity"
    speed = state_of(hass, entity_id(hass, entry.entry_id, "sensor", "download_speed"))
    assert speed.attributes["device_class"] == "data_rate"
    assert speed.attributes["unit_of_measurement"] == "KiB/s"
    for key in ("downloading", "seeding", "paused", "total"):
        assert state_of(hass, entity_id(hass, entry.entry_id, "sensor", key)).state.isdigit()
    status = await hass.async_add_executor_job(server.status)
    total = state_of(hass, entity_id(hass, entry.entry_id, "sensor", "total"))
    assert total.state == str(len((await hass.async_add_executor_job(_torrents, server))["torrents"]))
    assert status["heartbeat"] == 1.0
    # The stream counts as dead after more than twice the server's heartbeat.
    coordinator = entry.runtime_data.coordinator
    assert coordinator._read_timeout() == 2 * 1.0 + STREAM_READ_MARGIN


async def test_entity_ids_say_what_they_are(
    hass: HomeAssistant, server: ServerProcess, entry: MockConfigEntry
) -> None:
    """The device is the qBittorrent instance, named after it, and the entity ids follow
    (``sensor.qbittorrent_download_speed``), not the server's address."""
    expected = {
        ("sensor", "download_speed"): "sensor.qbittorrent_download_speed",
        ("sensor", "upload_speed"): "sensor.qbittorrent_upload_speed",
        ("sensor", "downloading"): "sensor.qbittorrent_downloading",
        ("sensor", "seeding"): "sensor.qbittorrent_seeding",
        ("sensor", "paused"): "sensor.qbittorrent_paused",
        ("sensor", "total"): "sensor.qbittorrent_total_torrents",
        ("sensor", "qbittorrent_status"): "sensor.qbittorrent_status",
        ("binary_sensor", "qbittorrent_connected"): "binary_sensor.qbittorrent_connection",
        ("switch", "alt_speed"): "switch.qbittorrent_alternative_speed_limits",
        ("button", "stop_all"): "button.qbittorrent_stop_all_torrents",
        ("button", "start_all"): "button.qbittorrent_start_all_torrents",
        ("event", "downloads"): "event.qbittorrent_downloads",
    }
    for (platform, key), wanted in expected.items():
        assert entity_id(hass, entry.entry_id, platform, key) == wanted
    device = dr.async_get(hass).async_get_device(identifiers={(DOMAIN, f"{entry.entry_id}_default")})
    assert device is not None
    assert device.name == "qBittorrent"
    listed = await hass.async_add_executor_job(get_json, server.url + "api/instances")
    # The instance's device shows its qBittorrent's version; the server's device (its
    # parent, with the totals) quart-dl's.
    assert device.sw_version == listed["instances"][0]["version"]
    parent = dr.async_get(hass).async_get_device(identifiers={(DOMAIN, f"{entry.entry_id}/server")})
    assert parent is not None
    assert device.via_device_id == parent.id
    assert parent.sw_version == (await hass.async_add_executor_job(server.status))["version"]
    assert entity_id(hass, entry.entry_id, "sensor", "total_download_speed") == (
        "sensor.quart_dl_total_download_speed"
    )
    entities = er.async_entries_for_device(er.async_get(hass), device.id)
    assert len(entities) >= len(expected)


async def test_device_of_an_older_entry_keeps_its_id(hass: HomeAssistant, server: ServerProcess) -> None:
    """An entry made before devices per instance had the device ``(quart_dl, <entry id>)``:
    setup moves that device to the instance's identifier instead of making a second one."""
    entry = mock_entry(server.url)
    entry.add_to_hass(hass)
    registry = dr.async_get(hass)
    old = registry.async_get_or_create(
        config_entry_id=entry.entry_id, identifiers={(DOMAIN, entry.entry_id)}, name="quart-dl"
    )
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    devices = [
        device
        for device in dr.async_entries_for_config_entry(registry, entry.entry_id)
        if (DOMAIN, f"{entry.entry_id}/server") not in device.identifiers
    ]
    assert [device.id for device in devices] == [old.id]
    assert devices[0].identifiers == {(DOMAIN, f"{entry.entry_id}_default")}
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_removing_the_entry_removes_what_it_stored(
    hass: HomeAssistant, server: ServerProcess, entry: MockConfigEntry, hass_storage: dict[str, Any]
) -> None:
    """Deleting the entry deletes its stored stream position and its repair issues (the
    README's removal steps say nothing is left)."""
    key = f"{DOMAIN}.stream.{entry.entry_id}"
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert key in hass_storage, "the unload saves the stream position"
    await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    assert key not in hass_storage


def _torrents(server: ServerProcess) -> dict[str, Any]:
    from quart_dl.lab.server_process import get_json

    answer: dict[str, Any] = get_json(server.url + "api/torrents")
    return answer


async def test_reload(hass: HomeAssistant, server: ServerProcess, entry: MockConfigEntry) -> None:
    """A reload tears down and rebuilds: panel back, stream back."""
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert panel_url_path(entry) in hass.data[frontend.DATA_PANELS]
    coordinator = entry.runtime_data.coordinator
    await wait_for_async(lambda: coordinator.stream.connected, 10, "the stream after reload")


async def test_unreachable_server_retries_setup(hass: HomeAssistant) -> None:
    """No server at the URL: the entry waits in SETUP_RETRY, no panel is added."""
    entry = mock_entry(f"http://127.0.0.1:{free_port()}")
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert panel_url_path(entry) not in hass.data.get(frontend.DATA_PANELS, {})


async def test_regression_unreachable_retry_reason_is_translated_text(
    hass: HomeAssistant,
) -> None:
    """Regression: the retry reason of an unreachable server was aiohttp's repr
    (``/api/status: ClientConnectorError(ConnectionKey(host='127.0.0.1', ...))``). Now it
    is the translated message, with the URL and a short reason, and the UI gets its key."""
    url = f"http://127.0.0.1:{free_port()}"
    entry = mock_entry(url)
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    # Home Assistant drops the final period of an exception message.
    assert entry.reason == f"Cannot reach the quart-dl server at {url}: connection refused"
    assert entry.error_reason_translation_key == "cannot_connect"
    assert entry.error_reason_translation_placeholders == {
        "url": url,
        "reason": "connection refused",
    }


def _reauth_flows(hass: HomeAssistant) -> list[dict[str, Any]]:
    return [
        {**flow}
        for flow in hass.config_entries.flow.async_progress_by_handler(DOMAIN)
        if flow["context"]["source"] == SOURCE_REAUTH
    ]


def _host_not_allowed(url: str, host: str) -> str:
    return (
        f"The quart-dl server at {url} does not answer to the host name {host}. Add {host}"
        " to its allowed_hosts setting (--allowed-hosts or QUART_DL_ALLOWED_HOSTS), or set"
        " an access token on the server and in this entry (Reconfigure)"
    )


async def test_regression_refused_host_name_retries_setup_without_reauth(
    hass: HomeAssistant, named_host: str, server: ServerProcess
) -> None:
    """Regression: an entry whose host name the server refuses (403 host_not_allowed)
    started a reauth flow asking for a token. Now setup is retried, with a reason that
    names the host and the server's setting."""
    url = f"http://{named_host}:{server.port}"
    entry = mock_entry(url)
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert entry.reason == _host_not_allowed(url, named_host)
    assert entry.error_reason_translation_key == "host_not_allowed"
    assert _reauth_flows(hass) == []


async def test_regression_server_refusing_host_name_at_runtime(
    hass: HomeAssistant, named_host: str, qbt_pair: TransferPair, tmp_path: Path
) -> None:
    """The server is restarted without our host name in ``allowed_hosts``: entities go
    unavailable with the translated reason, no reauth flow starts; once the name is
    allowed again the stream comes back by itself."""
    allowed = make_server(tmp_path / "server", qbt_pair, allowed_hosts=named_host)
    await hass.async_add_executor_job(allowed.start)
    current = allowed
    try:
        url = f"http://{named_host}:{allowed.port}"
        entry = await setup_entry(hass, url)
        coordinator = entry.runtime_data.coordinator
        total = entity_id(hass, entry.entry_id, "sensor", "total")

        await hass.async_add_executor_job(allowed.stop)
        current = make_server(allowed.root, qbt_pair, port=allowed.port)
        await hass.async_add_executor_job(current.start)
        await wait_for_async(lambda: state_of(hass, total).state == STATE_UNAVAILABLE, 20, "unavailable")
        await wait_for_async(
            lambda: (
                isinstance(coordinator.last_exception, UpdateFailed)
                and coordinator.last_exception.translation_key == "host_not_allowed"
            ),
            20,
            "the poll to name the refused host",
        )
        assert str(coordinator.last_exception) == _host_not_allowed(url, named_host)
        assert _reauth_flows(hass) == []
        assert entry.state is ConfigEntryState.LOADED

        await hass.async_add_executor_job(current.stop)
        current = make_server(allowed.root, qbt_pair, port=allowed.port, allowed_hosts=named_host)
        await hass.async_add_executor_job(current.start)
        await wait_for_async(lambda: coordinator.stream.connected, 90, "the stream back")
        await wait_for_async(lambda: state_of(hass, total).state != STATE_UNAVAILABLE, 20, "available again")
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await hass.async_add_executor_job(current.stop)


async def test_polls_rest_while_the_stream_is_down(
    hass: HomeAssistant,
    server: ServerProcess,
    qbt_pair: TransferPair,
    seeding_hash: str,
) -> None:
    """A server whose stream fails but whose REST API answers: entities stay available
    and follow the REST API at the fallback interval."""

    async def broken_events(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        raise QuartDlResponseError("/api/events: HTTP 502")
        yield  # pragma: no cover - makes this an async generator

    with (
        patch.object(QuartDlClient, "events", broken_events),
        patch(
            "custom_components.quart_dl.coordinator.FALLBACK_POLL_INTERVAL",
            timedelta(seconds=1),
        ),
    ):
        entry = mock_entry(server.url)
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        coordinator = entry.runtime_data.coordinator
        await wait_for_async(lambda: coordinator.stream.failures >= 1, 5, "the stream to fail")
        paused = entity_id(hass, entry.entry_id, "sensor", "paused")
        before = int(state_of(hass, paused).state)
        torrent_hash = seeding_hash
        client = qbt_pair.leecher_client
        try:
            await hass.async_add_executor_job(partial(client.torrents_pause, torrent_hashes=torrent_hash))
            await wait_for_async(
                lambda: state_of(hass, paused).state == str(before + 1),
                10,
                "a poll to bring the pause",
            )
        finally:
            await hass.async_add_executor_job(partial(client.torrents_resume, torrent_hashes=torrent_hash))
        assert not coordinator.stream.connected
        assert coordinator.stream.snapshots == 0
        await wait_for_async(
            lambda: state_of(hass, paused).state == str(before), 10, "a poll to bring the resume"
        )
        assert await hass.config_entries.async_unload(entry.entry_id)


async def test_qbittorrent_down_turns_connectivity_off(
    hass: HomeAssistant, server: ServerProcess, qbt_pair: TransferPair
) -> None:
    """qBittorrent stops: the connectivity sensor goes off, speeds become unavailable,
    counts stay (the server still knows the torrents). It comes back: all on again."""
    entry = await setup_entry(hass, server.url)
    connected = entity_id(hass, entry.entry_id, "binary_sensor", "qbittorrent_connected")
    speed = entity_id(hass, entry.entry_id, "sensor", "download_speed")
    total = entity_id(hass, entry.entry_id, "sensor", "total")
    try:
        await hass.async_add_executor_job(qbt_pair.leecher.stop)
        await wait_for_async(lambda: state_of(hass, connected).state == STATE_OFF, 20, "off")
        assert state_of(hass, speed).state == STATE_UNAVAILABLE
        assert state_of(hass, total).state.isdigit()
        assert state_of(hass, connected).attributes["message"]
    finally:
        await hass.async_add_executor_job(qbt_pair.leecher.start)
    await wait_for_async(lambda: state_of(hass, connected).state == STATE_ON, 30, "on again")
    assert state_of(hass, speed).state != STATE_UNAVAILABLE
