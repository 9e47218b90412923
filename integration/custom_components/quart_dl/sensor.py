"""Sensors: global transfer speeds and torrent counts by state."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import EntityCategory, UnitOfDataRate
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.typing import StateType

from . import QuartDlConfigEntry
from .coordinator import QuartDlCoordinator
from .entity import QuartDlEntity
from .models import DOWNLOADING_PHASES, PAUSED_PHASES, SEEDING_PHASES, ServerState

# Entities only ever change through the coordinator, never by themselves.
PARALLEL_UPDATES = 0

QBITTORRENT_STATES = ["connecting", "connected", "unreachable", "auth_failed"]


def _qbittorrent_connected(state: ServerState) -> bool:
    return state.qbittorrent_connected


@dataclass(frozen=True, kw_only=True)
class QuartDlSensorEntityDescription(SensorEntityDescription):
    """Describes a quart-dl sensor: where its value comes from, when it is meaningful."""

    value_fn: Callable[[ServerState], StateType]
    #: Speeds are only true while qBittorrent answers; the last value seen before it went
    #: away would be a lie, so those sensors turn unavailable instead.
    available_fn: Callable[[ServerState], bool] = lambda _: True


SENSORS: tuple[QuartDlSensorEntityDescription, ...] = (
    QuartDlSensorEntityDescription(
        key="download_speed",
        translation_key="download_speed",
        device_class=SensorDeviceClass.DATA_RATE,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfDataRate.BYTES_PER_SECOND,
        suggested_unit_of_measurement=UnitOfDataRate.KIBIBYTES_PER_SECOND,
        suggested_display_precision=1,
        value_fn=lambda state: state.speed("dl_speed"),
        available_fn=_qbittorrent_connected,
    ),
    QuartDlSensorEntityDescription(
        key="upload_speed",
        translation_key="upload_speed",
        device_class=SensorDeviceClass.DATA_RATE,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfDataRate.BYTES_PER_SECOND,
        suggested_unit_of_measurement=UnitOfDataRate.KIBIBYTES_PER_SECOND,
        suggested_display_precision=1,
        value_fn=lambda state: state.speed("up_speed"),
        available_fn=_qbittorrent_connected,
    ),
    QuartDlSensorEntityDescription(
        key="downloading",
        translation_key="downloading",
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda state: state.count(DOWNLOADING_PHASES),
    ),
    QuartDlSensorEntityDescription(
        key="seeding",
        translation_key="seeding",
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda state: state.count(SEEDING_PHASES),
    ),
    QuartDlSensorEntityDescription(
        key="paused",
        translation_key="paused",
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda state: state.count(PAUSED_PHASES),
    ),
    QuartDlSensorEntityDescription(
        key="total",
        translation_key="total",
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda state: len(state.torrents),
    ),
    QuartDlSensorEntityDescription(
        key="qbittorrent_status",
        translation_key="qbittorrent_status",
        device_class=SensorDeviceClass.ENUM,
        options=QBITTORRENT_STATES,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda state: (
            state.qbittorrent_state
            if state.qbittorrent_state in QBITTORRENT_STATES
            else None
        ),
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: QuartDlConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the sensors of one quart-dl server."""
    coordinator = entry.runtime_data.coordinator
    async_add_entities(
        QuartDlSensorEntity(coordinator, description) for description in SENSORS
    )


class QuartDlSensorEntity(QuartDlEntity, SensorEntity):
    """A sensor whose value is a function of the server state."""

    entity_description: QuartDlSensorEntityDescription

    def __init__(
        self,
        coordinator: QuartDlCoordinator,
        description: QuartDlSensorEntityDescription,
    ) -> None:
        """Bind the description to the server's coordinator."""
        super().__init__(coordinator, description.key)
        self.entity_description = description

    @property
    def available(self) -> bool:
        """Available while the server answers and the value means something."""
        return (
            super().available
            and self.coordinator.data is not None
            and self.entity_description.available_fn(self.coordinator.data)
        )

    @property
    def native_value(self) -> StateType:
        """The sensor's value, computed from the latest server state."""
        return self.entity_description.value_fn(self.coordinator.data)
