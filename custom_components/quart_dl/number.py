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
from .entity import QuartDlEntity
from .models import ServerState

PARALLEL_UPDATES = 0

KIB = 1024


def _limit_kib(key: str) -> Callable[[ServerState], float | None]:
    def value(state: ServerState) -> float | None:
        limit = state.transfer.get(key)
        if isinstance(limit, int) and not isinstance(limit, bool):
            return limit // KIB
        return None

    return value


@dataclass(frozen=True, kw_only=True)
class QuartDlNumberEntityDescription(NumberEntityDescription):
    """Describes a quart-dl number: its value in KiB/s and the transfer key it sets."""

    value_fn: Callable[[ServerState], float | None]
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
    """Add the numbers of one quart-dl server."""
    coordinator = entry.runtime_data.coordinator
    async_add_entities(QuartDlNumberEntity(coordinator, description) for description in NUMBERS)


class QuartDlNumberEntity(QuartDlEntity, NumberEntity):
    """A global limit of qBittorrent, read from the pushed transfer object."""

    entity_description: QuartDlNumberEntityDescription

    def __init__(
        self, coordinator: QuartDlCoordinator, description: QuartDlNumberEntityDescription
    ) -> None:
        """Bind the description to the server's coordinator."""
        super().__init__(coordinator, description.key)
        self.entity_description = description

    @property
    def available(self) -> bool:
        """Available while the server reaches qBittorrent."""
        return (
            super().available
            and self.coordinator.data is not None
            and self.coordinator.data.qbittorrent_connected
        )

    @property
    def native_value(self) -> float | None:
        """The limit in KiB/s (0 = unlimited)."""
        return self.entity_description.value_fn(self.coordinator.data)

    async def async_set_native_value(self, value: float) -> None:
        """Set the limit in qBittorrent (KiB/s to bytes/s)."""
        client = self.coordinator.client
        answer = await self._async_act(
            client.set_transfer(**{self.entity_description.transfer_key: int(value) * KIB})
        )
        self._apply_transfer(answer)
