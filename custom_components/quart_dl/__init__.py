"""The quart-dl integration: a live download panel and push-updated sensors.

One config entry per quart-dl server, with one device per qBittorrent instance the server
follows and the server's own device (the totals) as their parent. Setting it up fetches
the state once over REST (an unreachable server fails the setup, and Home Assistant
retries), adds the entities, starts
the event stream as a background task of the entry and puts the server's web panel in the
sidebar. Unloading undoes all of it: the entry cancels its background task, the panel is
removed, and no task, timer or connection is left behind.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from homeassistant.config_entries import ConfigEntry, ConfigEntryState
from homeassistant.const import CONF_ACCESS_TOKEN, CONF_URL, Platform
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryNotReady
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.storage import Store
from homeassistant.helpers.typing import ConfigType
from homeassistant.helpers.update_coordinator import UpdateFailed

from .api import QuartDlClient
from .config_flow import keyed_on_server_id
from .const import DOMAIN, LOGGER, STORAGE_KEY, STORAGE_VERSION
from .coordinator import QuartDlCoordinator
from .device import async_migrate_device, instance_of
from .entity import server_device_info
from .issues import async_clear
from .panel import async_register_panel, async_remove_panel
from .services import async_setup_services

PLATFORMS: tuple[Platform, ...] = (
    Platform.BINARY_SENSOR,
    Platform.BUTTON,
    Platform.EVENT,
    Platform.NUMBER,
    Platform.SENSOR,
    Platform.SWITCH,
)

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


@dataclass(slots=True)
class QuartDlRuntimeData:
    """What a loaded entry holds: the client and the coordinator feeding the entities."""

    client: QuartDlClient
    coordinator: QuartDlCoordinator
    #: The options this setup applied; the update listener reloads only when they change
    #: (a reconfigure or reauth reloads the entry by itself).
    options: Mapping[str, Any]


type QuartDlConfigEntry = ConfigEntry[QuartDlRuntimeData]


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the actions, once for the domain (they name their entry by id)."""
    async_setup_services(hass)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: QuartDlConfigEntry) -> bool:
    """Set up one quart-dl server."""
    client = QuartDlClient(
        async_get_clientsession(hass),
        entry.data[CONF_URL],
        entry.data.get(CONF_ACCESS_TOKEN),
    )
    coordinator = QuartDlCoordinator(hass, entry, client)
    try:
        await coordinator.async_config_entry_first_refresh()
    except ConfigEntryNotReady as err:
        # The coordinator raises a bare ConfigEntryNotReady whose cause is our translated
        # UpdateFailed. Only its text would reach the entry (in English); raising it again
        # with the translation key lets the UI show the retry reason in the user's language.
        failure = err.__cause__
        if isinstance(failure, UpdateFailed) and failure.translation_key:
            raise ConfigEntryNotReady(
                translation_domain=DOMAIN,
                translation_key=failure.translation_key,
                translation_placeholders=failure.translation_placeholders,
            ) from failure
        raise
    entry.runtime_data = QuartDlRuntimeData(
        client=client, coordinator=coordinator, options=dict(entry.options)
    )
    primary = coordinator.data.primary.id
    async_migrate_device(hass, entry.entry_id, primary)
    _async_adopt_server_id(hass, entry, coordinator.data.server_id)
    # The parent of the instances' devices exists before they name it (via_device).
    dr.async_get(hass).async_get_or_create(config_entry_id=entry.entry_id, **server_device_info(coordinator))
    # Devices of instances the server no longer follows go (now, and on every update).
    coordinator.async_sync_devices()
    entry.async_on_unload(coordinator.async_add_listener(coordinator.async_sync_devices))

    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)

    # Entities exist now, so the very first pushed event reaches them. The stream resumes
    # from the event id stored before Home Assistant (or this entry) last stopped.
    await coordinator.async_load_resume_point()
    coordinator.async_start_stream()
    entry.async_on_unload(coordinator.async_save_resume_point)

    if async_register_panel(hass, entry, client.base_url, entry.data.get(CONF_ACCESS_TOKEN)):
        entry.async_on_unload(lambda: async_remove_panel(hass, entry))

    # Options only change the panel, but a reload keeps one code path for setup.
    entry.async_on_unload(entry.add_update_listener(_async_options_updated))
    return True


async def async_remove_config_entry_device(
    hass: HomeAssistant, entry: QuartDlConfigEntry, device: dr.DeviceEntry
) -> bool:
    """Let the user delete an instance's device once the server no longer follows it
    (its devices are removed by themselves then; this covers one left while unloaded)."""
    instance = instance_of(entry.entry_id, device)
    if instance is None:
        return False
    data = entry.runtime_data.coordinator.data if entry.state is ConfigEntryState.LOADED else None
    return data is None or instance not in data.instances


@callback
def _async_adopt_server_id(hass: HomeAssistant, entry: QuartDlConfigEntry, server_id: str | None) -> None:
    """Key an entry made before server ids (on its URL) on its server's id from now on.

    So that a later change of address is a reconfigure of this entry, and adding the
    server again under another address is refused. Not if another entry holds that id
    already (two entries on one server, from before ids: the user decides which goes).
    An entry keyed on another id than the server now sends keeps its id: the config flows
    are where a different server is refused, and the warning says to look.
    """
    if server_id is None or entry.unique_id == server_id:
        return
    if keyed_on_server_id(entry):
        LOGGER.warning(
            "The quart-dl server at %s now has another server id than when it was added;"
            " reconfigure the entry if it is another server",
            entry.data[CONF_URL],
        )
        return
    if hass.config_entries.async_entry_for_domain_unique_id(DOMAIN, server_id) is None:
        hass.config_entries.async_update_entry(entry, unique_id=server_id)


async def async_remove_entry(hass: HomeAssistant, entry: QuartDlConfigEntry) -> None:
    """The entry is deleted: its repair issues and its stored stream position go with it."""
    async_clear(hass, entry.entry_id)
    await Store[dict[str, Any]](hass, STORAGE_VERSION, f"{STORAGE_KEY}.{entry.entry_id}").async_remove()


async def async_unload_entry(hass: HomeAssistant, entry: QuartDlConfigEntry) -> bool:
    """Unload the platforms; the stream task and the panel go with the entry."""
    return await hass.config_entries.async_unload_platforms(entry, PLATFORMS)


async def _async_options_updated(hass: HomeAssistant, entry: QuartDlConfigEntry) -> None:
    """Apply changed options (panel shown, title, icon) by reloading the entry."""
    if dict(entry.options) != entry.runtime_data.options:
        await hass.config_entries.async_reload(entry.entry_id)
