"""Base entity: one device per quart-dl server, availability from the coordinator."""

from __future__ import annotations

from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .const import DOMAIN
from .coordinator import QuartDlCoordinator
from .panel import panel_target


class QuartDlEntity(CoordinatorEntity[QuartDlCoordinator]):
    """An entity of one quart-dl server.

    Unique ids and the device identifier come from the config entry id rather than the
    server URL: the URL can change (reconfigure), the entities and their history must not.
    """

    _attr_has_entity_name = True

    def __init__(self, coordinator: QuartDlCoordinator, key: str) -> None:
        """Attach the entity to the server's device."""
        super().__init__(coordinator)
        entry_id = coordinator.config_entry.entry_id
        self._attr_unique_id = f"{entry_id}_{key}"
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, entry_id)},
            entry_type=DeviceEntryType.SERVICE,
            manufacturer="quart-dl",
            model="quart-dl server",
            name=coordinator.config_entry.title,
            sw_version=coordinator.data.version if coordinator.data else None,
            configuration_url=panel_target(coordinator.client.base_url),
        )
