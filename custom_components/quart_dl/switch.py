"""Switch: qBittorrent's alternative speed limits ("turtle mode").

The state is the pushed transfer object's ``alt_speed``, so a change made in qBittorrent's
own UI or in the panel shows here too; turning it on or off is ``POST /api/transfer``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from homeassistant.components.switch import SwitchEntity, SwitchEntityDescription
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import QuartDlConfigEntry
from .coordinator import QuartDlCoordinator
from .entity import QuartDlEntity, async_add_instance_entities
from .models import InstanceState

# One request per action is plenty; Home Assistant need not limit us further.
PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class QuartDlSwitchEntityDescription(SwitchEntityDescription):
    """Describes a quart-dl switch: its state, and the transfer setting it changes."""

    is_on_fn: Callable[[InstanceState], bool | None]
    #: The key of ``POST /api/transfer`` that this switch sets to true or false.
    transfer_key: str


SWITCHES: tuple[QuartDlSwitchEntityDescription, ...] = (
    QuartDlSwitchEntityDescription(
        key="alt_speed",
        translation_key="alt_speed",
        is_on_fn=lambda state: value if isinstance(value := state.transfer.get("alt_speed"), bool) else None,
        transfer_key="alt_speed",
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: QuartDlConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the switches of each instance (now, and of every one that appears)."""
    coordinator = entry.runtime_data.coordinator
    async_add_instance_entities(
        entry,
        async_add_entities,
        lambda instance_id: (
            QuartDlSwitchEntity(coordinator, description, instance_id) for description in SWITCHES
        ),
    )


class QuartDlSwitchEntity(QuartDlEntity, SwitchEntity):
    """A switch over one boolean of qBittorrent's global transfer settings."""

    entity_description: QuartDlSwitchEntityDescription

    def __init__(
        self,
        coordinator: QuartDlCoordinator,
        description: QuartDlSwitchEntityDescription,
        instance_id: str,
    ) -> None:
        """Bind the description to one instance."""
        super().__init__(coordinator, description.key, instance_id)
        self.entity_description = description

    @property
    def available(self) -> bool:
        """Available while the server reaches qBittorrent (else nothing can be switched)."""
        return (
            super().available and (instance := self.instance) is not None and instance.qbittorrent_connected
        )

    @property
    def is_on(self) -> bool | None:
        """Whether the setting is on, as last pushed (``None`` from an older server)."""
        instance = self.instance
        return self.entity_description.is_on_fn(instance) if instance is not None else None

    async def async_turn_on(self, **kwargs: Any) -> None:
        """Switch the setting on in qBittorrent."""
        await self._async_set(True)

    async def async_turn_off(self, **kwargs: Any) -> None:
        """Switch the setting off in qBittorrent."""
        await self._async_set(False)

    async def _async_set(self, value: bool) -> None:
        client = self.coordinator.client
        answer = await self._async_act(
            client.set_transfer(instance=self.instance_param, **{self.entity_description.transfer_key: value})
        )
        self._apply_transfer(answer)
