"""Binary sensor: whether the quart-dl server reaches a qBittorrent instance."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from homeassistant.components.binary_sensor import (
    BinarySensorDeviceClass,
    BinarySensorEntity,
    BinarySensorEntityDescription,
)
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import QuartDlConfigEntry
from .coordinator import QuartDlCoordinator
from .entity import QuartDlEntity, async_add_instance_entities
from .models import InstanceState

PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class QuartDlBinarySensorEntityDescription(BinarySensorEntityDescription):
    """Describes a quart-dl binary sensor."""

    is_on_fn: Callable[[InstanceState], bool]
    attributes_fn: Callable[[InstanceState], dict[str, Any] | None] = lambda _: None


BINARY_SENSORS: tuple[QuartDlBinarySensorEntityDescription, ...] = (
    QuartDlBinarySensorEntityDescription(
        key="qbittorrent_connected",
        translation_key="qbittorrent_connected",
        device_class=BinarySensorDeviceClass.CONNECTIVITY,
        entity_category=EntityCategory.DIAGNOSTIC,
        is_on_fn=lambda state: state.qbittorrent_connected,
        # The server's own sentence says *why* it is off (down, hung, wrong password).
        attributes_fn=lambda state: {
            "message": state.status.get("message"),
            "version": state.status.get("version"),
        },
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: QuartDlConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the binary sensors of each instance (now, and of every one that appears)."""
    coordinator = entry.runtime_data.coordinator
    async_add_instance_entities(
        entry,
        async_add_entities,
        lambda instance_id: (
            QuartDlBinarySensorEntity(coordinator, description, instance_id) for description in BINARY_SENSORS
        ),
    )


class QuartDlBinarySensorEntity(QuartDlEntity, BinarySensorEntity):
    """A binary sensor whose state is a function of the server state."""

    entity_description: QuartDlBinarySensorEntityDescription

    def __init__(
        self,
        coordinator: QuartDlCoordinator,
        description: QuartDlBinarySensorEntityDescription,
        instance_id: str,
    ) -> None:
        """Bind the description to one instance."""
        super().__init__(coordinator, description.key, instance_id)
        self.entity_description = description

    @property
    def is_on(self) -> bool | None:
        """Whether the condition holds in the instance's latest state."""
        instance = self.instance
        return self.entity_description.is_on_fn(instance) if instance is not None else None

    @property
    def extra_state_attributes(self) -> dict[str, Any] | None:
        """Details that explain the state."""
        instance = self.instance
        return self.entity_description.attributes_fn(instance) if instance is not None else None
