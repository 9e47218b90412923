"""Buttons: stop every torrent, start every torrent (``hashes: "all"``).

"All" is resolved by the server against what qBittorrent holds at that moment, so a
torrent added a second ago is included, which a list built from our pushed state might
miss.
"""

from __future__ import annotations

from dataclasses import dataclass

from homeassistant.components.button import ButtonEntity, ButtonEntityDescription
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import QuartDlConfigEntry
from .coordinator import QuartDlCoordinator
from .entity import QuartDlEntity, async_add_instance_entities

PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class QuartDlButtonEntityDescription(ButtonEntityDescription):
    """Describes a quart-dl button: the action verb it sends for every torrent."""

    action: str


BUTTONS: tuple[QuartDlButtonEntityDescription, ...] = (
    QuartDlButtonEntityDescription(key="stop_all", translation_key="stop_all", action="pause"),
    QuartDlButtonEntityDescription(key="start_all", translation_key="start_all", action="resume"),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: QuartDlConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the buttons of each instance (now, and of every one that appears)."""
    coordinator = entry.runtime_data.coordinator
    async_add_instance_entities(
        entry,
        async_add_entities,
        lambda instance_id: (
            QuartDlButtonEntity(coordinator, description, instance_id) for description in BUTTONS
        ),
    )


class QuartDlButtonEntity(QuartDlEntity, ButtonEntity):
    """A button that sends one action verb for every torrent of the server."""

    entity_description: QuartDlButtonEntityDescription

    def __init__(
        self,
        coordinator: QuartDlCoordinator,
        description: QuartDlButtonEntityDescription,
        instance_id: str,
    ) -> None:
        """Bind the description to one instance."""
        super().__init__(coordinator, description.key, instance_id)
        self.entity_description = description

    async def async_press(self) -> None:
        """Send the verb for ``all`` torrents; the push shows the effect."""
        client = self.coordinator.client
        await self._async_act(
            client.torrent_action(self.entity_description.action, "all", instance=self.instance_param)
        )
