"""Numbers: qBittorrent's global download and upload limits (disabled by default).

Shown in KiB/s because qBittorrent keeps global limits in whole KiB/s anyway (2,000,000
bytes/s reads back as 1,999,872); 0 means unlimited. While the alternative speed limits
are on, qBittorrent's ``server_state`` reports the alternative limits, so the numbers show
those; which limit a change made then lands on is qBittorrent's business and is not
tested here (the tests set limits with the alternative limits off).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from homeassistant.components.number import (
    NumberDeviceClass,
    NumberEntity,
    NumberEntityDescription,
    NumberMode,
)
from homeassistant.const import EntityCategory, UnitOfDataRate
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import QuartDlConfigEntry
from .coordinator import QuartDlCoordinator
from .entity import QuartDlEntity, async_add_instance_entities
from .models import InstanceState

PARALLEL_UPDATES = 0

KIB = 1024


def _limit_kib(key: str) -> Callable[[InstanceState], float | None]:
    def value(state: InstanceState) -> float | None:
        limit = state.transfer.get(key)
        if isinstance(limit, int) and not isinstance(limit, bool):
            return limit // KIB
        return None

    return value


@dataclass(frozen=True, kw_only=True)
class QuartDlNumberEntityDescription(NumberEntityDescription):
    """Describes a quart-dl number: its value in KiB/s and the transfer key it sets."""

    value_fn: Callable[[InstanceState], float | None]
    transfer_key: str


NUMBERS: tuple[QuartDlNumberEntityDescription, ...] = tuple(
    QuartDlNumberEntityDescription(
        key=key,
        translation_key=key,
        device_class=NumberDeviceClass.DATA_RATE,
        native_unit_of_measurement=UnitOfDataRate.KIBIBYTES_PER_SECOND,
        native_min_value=0,
        native_max_value=1_000_000,
        native_step=1,
        mode=NumberMode.BOX,
        entity_category=EntityCategory.CONFIG,
        entity_registry_enabled_default=False,
        value_fn=_limit_kib(key),
        transfer_key=key,
    )
    for key in ("dl_limit", "up_limit")
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: QuartDlConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the numbers of each instance (now, and of every one that appears)."""
    coordinator = entry.runtime_data.coordinator
    async_add_instance_entities(
        entry,
        async_add_entities,
        lambda instance_id: (
            QuartDlNumberEntity(coordinator, description, instance_id) for description in NUMBERS
        ),
    )


class QuartDlNumberEntity(QuartDlEntity, NumberEntity):
    """A global limit of qBittorrent, read from the pushed transfer object."""

    entity_description: QuartDlNumberEntityDescription

    def __init__(
        self,
        coordinator: QuartDlCoordinator,
        description: QuartDlNumberEntityDescription,
        instance_id: str,
    ) -> None:
        """Bind the description to one instance."""
        super().__init__(coordinator, description.key, instance_id)
        self.entity_description = description

    @property
    def available(self) -> bool:
        """Available while the server reaches qBittorrent."""
        return (
            super().available and (instance := self.instance) is not None and instance.qbittorrent_connected
        )

    @property
    def native_value(self) -> float | None:
        """The limit in KiB/s (0 = unlimited)."""
        instance = self.instance
        return self.entity_description.value_fn(instance) if instance is not None else None

    async def async_set_native_value(self, value: float) -> None:
        """Set the limit in qBittorrent (KiB/s to bytes/s)."""
        client = self.coordinator.client
        answer = await self._async_act(
            client.set_transfer(
                instance=self.instance_param,
                **{self.entity_description.transfer_key: int(value) * KIB},
            )
        )
        self._apply_transfer(answer)
