"""Devices: one per qBittorrent instance of an entry, and the server's own device.

Its own module because the entities (which describe the devices), the coordinator (which
names the device in bus events and removes the devices of instances that are gone) and
the actions (which find the instance a device stands for) all need it, and the
coordinator cannot import the entities.

Identifiers:

* an instance: ``(quart_dl, "<entry id>_<instance id>")``;
* the server (the parent, ``via_device``, of its instances' devices, holding the totals):
  ``(quart_dl, "<entry id>/server")``. An instance id never holds a ``/`` (the server's
  id rule: ``[a-z0-9][a-z0-9_-]*``), so the two kinds never clash.
"""

from __future__ import annotations

from collections.abc import Iterable

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr

from .const import DEFAULT_INSTANCE_ID, DOMAIN, LOGGER

#: Model names shown on the device pages.
INSTANCE_MODEL = "qBittorrent via quart-dl"
SERVER_MODEL = "quart-dl server"
#: The server device's name: entity ids of the totals read ``sensor.quart_dl_total_…``.
SERVER_NAME = "quart-dl"


def device_identifier(entry_id: str, instance_id: str) -> tuple[str, str]:
    """The device registry identifier of one qBittorrent instance of one entry."""
    return DOMAIN, f"{entry_id}_{instance_id}"


def server_identifier(entry_id: str) -> tuple[str, str]:
    """The device registry identifier of the entry's server (the totals' device)."""
    return DOMAIN, f"{entry_id}/server"


def instance_of(entry_id: str, device: dr.DeviceEntry) -> str | None:
    """The instance id a device of ``entry_id`` stands for (``None``: the server's, or
    not ours)."""
    prefix = f"{entry_id}_"
    for domain, identifier in device.identifiers:
        if domain == DOMAIN and identifier.startswith(prefix):
            return identifier.removeprefix(prefix)
    return None


def unique_id(entry_id: str, instance_id: str | None, key: str) -> str:
    """The unique id of one entity.

    ``<entry id>_<key>`` for the server's own entities (keys ``total_…``) and for the
    instance ``default``: the entities of an entry made before devices per instance (whose
    one instance is ``default``) keep their unique ids, and with them their entity ids
    and history. Any other instance: ``<entry id>_<instance id>.<key>`` (a ``.`` is in no
    instance id and no key, so no two entities share one).
    """
    if instance_id is None or instance_id == DEFAULT_INSTANCE_ID:
        return f"{entry_id}_{key}"
    return f"{entry_id}_{instance_id}.{key}"


@callback
def async_migrate_device(hass: HomeAssistant, entry_id: str, instance_id: str) -> None:
    """Give the device of an entry made before devices per instance its new identifier.

    It was ``(quart_dl, <entry id>)``; moving the identifier keeps the device (its area,
    its name if the user set one, the automations that name its id) instead of leaving it
    behind empty next to a new one.
    """
    registry = dr.async_get(hass)
    old = registry.async_get_device(identifiers={(DOMAIN, entry_id)})
    if old is not None:
        registry.async_update_device(old.id, new_identifiers={device_identifier(entry_id, instance_id)})


@callback
def async_device_id(hass: HomeAssistant, entry_id: str, instance_id: str) -> str | None:
    """The device registry id of an instance's device (``None`` before it exists)."""
    device = dr.async_get(hass).async_get_device(identifiers={device_identifier(entry_id, instance_id)})
    return device.id if device else None


@callback
def async_rename_devices(hass: HomeAssistant, entry_id: str, names: dict[str, str]) -> None:
    """Give the instances' devices the names the server now gives the instances (a name
    the user gave a device is kept: it is ``name_by_user``, not touched here)."""
    registry = dr.async_get(hass)
    for instance_id, name in names.items():
        found = registry.async_get_device(identifiers={device_identifier(entry_id, instance_id)})
        if found is not None and found.name != name:
            registry.async_update_device(found.id, name=name)


@callback
def async_remove_stale_devices(hass: HomeAssistant, entry_id: str, instance_ids: Iterable[str]) -> list[str]:
    """Remove from the entry the devices of instances the server no longer follows.

    Their entities go with them (the entity registry drops a device's entities when the
    device leaves the entry). Called with the server's whole instance set only (a v2
    snapshot, ``/api/instances``), never on a failure. Returns the removed instance ids.
    """
    registry = dr.async_get(hass)
    current = set(instance_ids)
    removed: list[str] = []
    for device in dr.async_entries_for_config_entry(registry, entry_id):
        instance = instance_of(entry_id, device)
        if instance is not None and instance not in current:
            LOGGER.info("qBittorrent instance %r is gone from the server: removing its device", instance)
            registry.async_update_device(device.id, remove_config_entry_id=entry_id)
            removed.append(instance)
    return removed
