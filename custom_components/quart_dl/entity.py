"""Base entity: a device per qBittorrent instance, availability from the coordinator."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import Any

from homeassistant.core import callback
from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .api import QuartDlError
from .const import DEFAULT_INSTANCE_ID, DEFAULT_INSTANCE_NAME
from .coordinator import QuartDlCoordinator
from .device import device_identifier
from .errors import action_error
from .panel import panel_target


class QuartDlEntity(CoordinatorEntity[QuartDlCoordinator]):
    """An entity of one qBittorrent instance followed by a quart-dl server.

    Unique ids and the device identifier come from the config entry id rather than the
    server URL: the URL can change (reconfigure), the entities and their history must not.
    The device is named after the instance (``qBittorrent`` by default, the server's
    ``qbt_name`` or the instance's ``name``), and with ``has_entity_name`` the entity ids
    follow: ``sensor.qbittorrent_download_speed``.
    """

    _attr_has_entity_name = True

    def __init__(self, coordinator: QuartDlCoordinator, key: str) -> None:
        """Attach the entity to its instance's device."""
        super().__init__(coordinator)
        entry_id = coordinator.config_entry.entry_id
        state = coordinator.data
        instance_id = state.instance_id if state else DEFAULT_INSTANCE_ID
        # The primary instance's entities keep the unique ids they had before devices per
        # instance (``<entry id>_<key>``): their history stays theirs.
        self._attr_unique_id = f"{entry_id}_{key}"
        self._attr_device_info = DeviceInfo(
            identifiers={device_identifier(entry_id, instance_id)},
            entry_type=DeviceEntryType.SERVICE,
            manufacturer="quart-dl",
            model="qBittorrent via quart-dl",
            name=state.instance_name if state else DEFAULT_INSTANCE_NAME,
            sw_version=state.version if state else None,
            configuration_url=panel_target(coordinator.client.base_url),
        )

    async def _async_act[T](self, request: Awaitable[T]) -> T:
        """Await one action request; a failure becomes a translated error for the UI."""
        try:
            return await request
        except QuartDlError as err:
            raise action_error(err, self.coordinator.client.base_url) from err

    @callback
    def _apply_transfer(self, answer: Mapping[str, Any]) -> None:
        """Take the state ``POST /api/transfer`` answered, ahead of the confirming push.

        The answer is qBittorrent's read-back after the change (limits already rounded to
        whole KiB/s), so showing it at once is not a guess; the pushed transfer object
        that follows says the same, or corrects it.
        """
        state = self.coordinator.data
        if state is None:
            return
        for key in ("alt_speed", "dl_limit", "up_limit"):
            if key in answer:
                state.transfer[key] = answer[key]
        self.coordinator.async_update_listeners()
