"""Devices: one per qBittorrent instance of an entry, found by its identifier.

Its own module because the entities (which describe the device) and the coordinator
(which names the device in bus events) both need it, and the coordinator cannot import the
entities.
"""

from __future__ import annotations

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr

from .const import DOMAIN


def device_identifier(entry_id: str, instance_id: str) -> tuple[str, str]:
    """The device registry identifier of one qBittorrent instance of one entry.

    One device per instance (``<entry id>_<instance id>``), so that a server following
    several instances can get a device for each: today an entry has the primary
    instance's only (``default`` on a server without ``[[instances]]``).
    """
    return DOMAIN, f"{entry_id}_{instance_id}"


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
        registry.async_update_device(
            old.id, new_identifiers={device_identifier(entry_id, instance_id)}
        )


@callback
def async_device_id(hass: HomeAssistant, entry_id: str, instance_id: str) -> str | None:
    """The device registry id of an instance's device (``None`` before it exists)."""
    device = dr.async_get(hass).async_get_device(
        identifiers={device_identifier(entry_id, instance_id)}
    )
    return device.id if device else None
