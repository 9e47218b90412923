"""Event entity: a download was added, completed or removed, once per download.

Home Assistant prefers event entities to bare bus events: they belong to a device, show
in its logbook, and an automation picks them from a list (state trigger on the entity,
``event_type`` attribute) instead of typing an event name. The bus events stay, for the
automations that use them. Both come from the coordinator's one place that decides what
fires (live diffs and late replays, each download and moment once, across restarts of
the server and of Home Assistant); a snapshot or a poll never fires.
"""

from __future__ import annotations

from typing import Any

from homeassistant.components.event import EventEntity, EventEntityDescription
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import QuartDlConfigEntry
from .coordinator import QuartDlCoordinator
from .entity import QuartDlEntity, async_add_instance_entities

PARALLEL_UPDATES = 0

#: The event types, as the coordinator names them (the bus event without ``quart_dl_``).
DOWNLOAD_EVENT_TYPES = ["download_added", "download_completed", "download_removed"]

#: What an event carries to the entity's attributes (the bus event also has the entry id,
#: which the entity already belongs to).
EVENT_ATTRIBUTES = ("hash", "name", "size", "save_path", "instance", "device_id", "late", "happened_at")

EVENTS: tuple[EventEntityDescription, ...] = (
    EventEntityDescription(
        key="downloads",
        translation_key="downloads",
        event_types=DOWNLOAD_EVENT_TYPES,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: QuartDlConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the event entity of each instance (now, and of every one that appears)."""
    coordinator = entry.runtime_data.coordinator
    async_add_instance_entities(
        entry,
        async_add_entities,
        lambda instance_id: (
            QuartDlEventEntity(coordinator, description, instance_id) for description in EVENTS
        ),
    )


class QuartDlEventEntity(QuartDlEntity, EventEntity):
    """Downloads of one qBittorrent instance: added, completed, removed."""

    entity_description: EventEntityDescription

    def __init__(
        self,
        coordinator: QuartDlCoordinator,
        description: EventEntityDescription,
        instance_id: str,
    ) -> None:
        """Bind the description to one instance."""
        super().__init__(coordinator, description.key, instance_id)
        self.entity_description = description

    async def async_added_to_hass(self) -> None:
        """Follow the coordinator's download events while the entity exists."""
        await super().async_added_to_hass()
        self.async_on_remove(self.coordinator.async_add_download_listener(self._download))

    @callback
    def _download(self, event_type: str, data: dict[str, Any]) -> None:
        if data.get("instance") != self.instance_id:
            return
        self._trigger_event(event_type, {key: data[key] for key in EVENT_ATTRIBUTES if key in data})
        self.async_write_ha_state()
