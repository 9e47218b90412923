"""Base entities: one device per qBittorrent instance, the server's device for totals, and
the listener that adds the entities of an instance that appears.

Unique ids and device identifiers come from the config entry id rather than the server
URL: the URL can change (reconfigure), the entities and their history must not. An
instance's device is named after the instance (``qBittorrent`` by default, the server's
``qbt_name`` or the instance's ``name``), and with ``has_entity_name`` the entity ids
follow: ``sensor.qbittorrent_download_speed``, ``sensor.seedbox_download_speed``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from homeassistant.core import callback
from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .api import QuartDlError
from .coordinator import QuartDlCoordinator
from .device import (
    INSTANCE_MODEL,
    SERVER_MODEL,
    SERVER_NAME,
    device_identifier,
    server_identifier,
    unique_id,
)
from .errors import action_error
from .models import InstanceState
from .panel import panel_target

if TYPE_CHECKING:
    from . import QuartDlConfigEntry


def server_device_info(coordinator: QuartDlCoordinator) -> DeviceInfo:
    """The server's device: the parent of its instances' devices, holding the totals."""
    state = coordinator.data
    return DeviceInfo(
        identifiers={server_identifier(coordinator.config_entry.entry_id)},
        entry_type=DeviceEntryType.SERVICE,
        manufacturer="quart-dl",
        model=SERVER_MODEL,
        name=SERVER_NAME,
        sw_version=state.version if state else None,
        configuration_url=panel_target(coordinator.client.base_url),
    )


class QuartDlEntity(CoordinatorEntity[QuartDlCoordinator]):
    """An entity of one qBittorrent instance followed by a quart-dl server.

    Unavailable while the server does not follow its instance (any more): the device is
    then removed, with its entities, by the coordinator.
    """

    _attr_has_entity_name = True

    def __init__(self, coordinator: QuartDlCoordinator, key: str, instance_id: str) -> None:
        """Attach the entity to its instance's device."""
        super().__init__(coordinator)
        entry_id = coordinator.config_entry.entry_id
        self.instance_id = instance_id
        instance = coordinator.data.instance(instance_id) if coordinator.data else None
        self._attr_unique_id = unique_id(entry_id, instance_id, key)
        self._attr_device_info = DeviceInfo(
            identifiers={device_identifier(entry_id, instance_id)},
            entry_type=DeviceEntryType.SERVICE,
            manufacturer="quart-dl",
            model=INSTANCE_MODEL,
            name=instance.name if instance else instance_id,
            sw_version=instance.version if instance else None,
            configuration_url=panel_target(coordinator.client.base_url),
            via_device=server_identifier(entry_id),
        )

    @property
    def instance(self) -> InstanceState | None:
        """This entity's instance as last told (``None``: the server no longer has it)."""
        state = self.coordinator.data
        return state.instance(self.instance_id) if state is not None else None

    @property
    def available(self) -> bool:
        """Available while the server answers and follows this instance."""
        return super().available and self.instance is not None

    @property
    def instance_param(self) -> str | None:
        """The ``instance`` field of this entity's actions (none to a protocol 1 server)."""
        return self.coordinator.instance_param(self.instance_id)

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
        instance = self.instance
        if instance is None:
            return
        for key in ("alt_speed", "dl_limit", "up_limit"):
            if key in answer:
                instance.transfer[key] = answer[key]
        self.coordinator.async_update_listeners()


class QuartDlServerEntity(CoordinatorEntity[QuartDlCoordinator]):
    """An entity of the server itself (the totals over its instances)."""

    _attr_has_entity_name = True

    def __init__(self, coordinator: QuartDlCoordinator, key: str) -> None:
        """Attach the entity to the server's device."""
        super().__init__(coordinator)
        self._attr_unique_id = unique_id(coordinator.config_entry.entry_id, None, key)
        self._attr_device_info = server_device_info(coordinator)


@callback
def async_add_instance_entities(
    entry: QuartDlConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
    make: Callable[[str], Iterable[Entity]],
) -> None:
    """Add ``make(instance id)`` for every instance now, and for each that appears later.

    The way WLED adds segment entities: a listener on the coordinator compares the
    instances with those already given entities, and adds the new ones without a reload.
    An instance that goes is forgotten here (its device and entities are removed by the
    coordinator), so that it gets entities again if it comes back.
    """
    coordinator = entry.runtime_data.coordinator
    known: set[str] = set()

    @callback
    def _add_new() -> None:
        if coordinator.data is None:
            return
        instances = coordinator.data.instances
        known.intersection_update(instances)
        new = [key for key, instance in instances.items() if instance.described and key not in known]
        if not new:
            return
        known.update(new)
        async_add_entities([entity for instance_id in new for entity in make(instance_id)])

    _add_new()
    entry.async_on_unload(coordinator.async_add_listener(_add_new))
