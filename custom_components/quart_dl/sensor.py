"""Sensors: per instance its transfer speeds and torrent counts by state; on the server's
device the totals over its instances."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import EntityCategory, UnitOfDataRate
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.event import async_call_later
from homeassistant.helpers.typing import StateType
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from . import QuartDlConfigEntry
from .const import CONF_SPEED_INTERVAL, DEFAULT_SPEED_INTERVAL
from .coordinator import QuartDlCoordinator
from .entity import QuartDlEntity, QuartDlServerEntity, async_add_instance_entities
from .models import (
    DOWNLOADING_PHASES,
    PAUSED_PHASES,
    SEEDING_PHASES,
    InstanceState,
    ServerState,
)

# Entities only ever change through the coordinator, never by themselves.
PARALLEL_UPDATES = 0

QBITTORRENT_STATES = ["connecting", "connected", "unreachable", "auth_failed"]


def _qbittorrent_connected(state: InstanceState) -> bool:
    return state.qbittorrent_connected


@dataclass(frozen=True, kw_only=True)
class QuartDlSensorEntityDescription(SensorEntityDescription):
    """Describes a quart-dl sensor of an instance: where its value comes from, when it is
    meaningful."""

    value_fn: Callable[[InstanceState], StateType]
    #: Speeds are only true while qBittorrent answers; the last value seen before it went
    #: away would be a lie, so those sensors turn unavailable instead.
    available_fn: Callable[[InstanceState], bool] = lambda _: True
    #: Write at most one state per ``speed_interval`` (the option): speeds change with
    #: every push, and the recorder keeps each state. Counts and status stay immediate.
    throttled: bool = False


@dataclass(frozen=True, kw_only=True)
class QuartDlTotalSensorEntityDescription(SensorEntityDescription):
    """Describes a sensor of the server's device: a total over its instances."""

    value_fn: Callable[[ServerState], StateType]
    available_fn: Callable[[ServerState], bool] = lambda _: True
    throttled: bool = False


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
        throttled=True,
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
        throttled=True,
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
            state.qbittorrent_state if state.qbittorrent_state in QBITTORRENT_STATES else None
        ),
    ),
)


TOTAL_SENSORS: tuple[QuartDlTotalSensorEntityDescription, ...] = (
    QuartDlTotalSensorEntityDescription(
        key="total_download_speed",
        translation_key="total_download_speed",
        device_class=SensorDeviceClass.DATA_RATE,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfDataRate.BYTES_PER_SECOND,
        suggested_unit_of_measurement=UnitOfDataRate.KIBIBYTES_PER_SECOND,
        suggested_display_precision=1,
        value_fn=lambda state: state.total_speed("dl_speed"),
        available_fn=lambda state: state.any_connected,
        throttled=True,
    ),
    QuartDlTotalSensorEntityDescription(
        key="total_upload_speed",
        translation_key="total_upload_speed",
        device_class=SensorDeviceClass.DATA_RATE,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfDataRate.BYTES_PER_SECOND,
        suggested_unit_of_measurement=UnitOfDataRate.KIBIBYTES_PER_SECOND,
        suggested_display_precision=1,
        value_fn=lambda state: state.total_speed("up_speed"),
        available_fn=lambda state: state.any_connected,
        throttled=True,
    ),
    QuartDlTotalSensorEntityDescription(
        key="total_torrents",
        translation_key="total_torrents",
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda state: state.total_torrents,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: QuartDlConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the totals on the server's device, and each instance's sensors (now, and for
    every instance that appears later)."""
    coordinator = entry.runtime_data.coordinator
    interval = float(entry.options.get(CONF_SPEED_INTERVAL, DEFAULT_SPEED_INTERVAL))
    async_add_entities(
        QuartDlTotalSensorEntity(coordinator, description, interval) for description in TOTAL_SENSORS
    )
    async_add_instance_entities(
        entry,
        async_add_entities,
        lambda instance_id: (
            QuartDlSensorEntity(coordinator, description, instance_id, interval) for description in SENSORS
        ),
    )


class ThrottledSensor(CoordinatorEntity[QuartDlCoordinator], SensorEntity):
    """A sensor that may write its state at most once per ``interval`` seconds.

    A throttled sensor writes its state at most once per ``interval`` seconds: the first
    change is written at once and opens a window; changes inside the window are held,
    and the latest of them is written when the window closes (which opens the next one).
    So a value is never older than ``interval`` and the last one of a burst is never
    lost. Only timers are used, no clock reads, which keeps it testable with Home
    Assistant's ``async_fire_time_changed``. A change of availability is written at once.
    """

    #: Set by the subclass (from its description) before the entity is added.
    _interval: float = 0
    _window: CALLBACK_TYPE | None = None
    _held = False
    _written_available: bool | None = None

    async def async_added_to_hass(self) -> None:
        """Listen to the coordinator; close an open window when the entity goes."""
        await super().async_added_to_hass()
        self.async_on_remove(self._cancel_window)

    @callback
    def _cancel_window(self) -> None:
        if self._window is not None:
            self._window()
            self._window = None

    @callback
    def _handle_coordinator_update(self) -> None:
        """Write now, or hold the change until the open window closes."""
        if self._interval <= 0:
            super()._handle_coordinator_update()
            return
        if self._window is not None and self.available == self._written_available:
            self._held = True
            return
        self._write_and_open_window()

    @callback
    def _write_and_open_window(self) -> None:
        self._cancel_window()
        self._held = False
        self._written_available = self.available
        self.async_write_ha_state()
        self._window = async_call_later(self.hass, self._interval, self._window_closed)

    @callback
    def _window_closed(self, _now: datetime) -> None:
        self._window = None
        if self._held:
            self._write_and_open_window()


class QuartDlSensorEntity(QuartDlEntity, ThrottledSensor):
    """A sensor of one instance whose value is a function of that instance's state."""

    entity_description: QuartDlSensorEntityDescription

    def __init__(
        self,
        coordinator: QuartDlCoordinator,
        description: QuartDlSensorEntityDescription,
        instance_id: str,
        interval: float = 0,
    ) -> None:
        """Bind the description to one instance."""
        super().__init__(coordinator, description.key, instance_id)
        self.entity_description = description
        self._interval = interval if description.throttled else 0

    @property
    def available(self) -> bool:
        """Available while the server answers, follows the instance, and the value means
        something."""
        instance = self.instance
        return super().available and instance is not None and self.entity_description.available_fn(instance)

    @property
    def native_value(self) -> StateType:
        """The sensor's value, computed from the instance's latest state."""
        instance = self.instance
        return self.entity_description.value_fn(instance) if instance is not None else None


class QuartDlTotalSensorEntity(QuartDlServerEntity, ThrottledSensor):
    """A sensor of the server's device: a total over every instance."""

    entity_description: QuartDlTotalSensorEntityDescription

    def __init__(
        self,
        coordinator: QuartDlCoordinator,
        description: QuartDlTotalSensorEntityDescription,
        interval: float = 0,
    ) -> None:
        """Bind the description to the server's coordinator."""
        super().__init__(coordinator, description.key)
        self.entity_description = description
        self._interval = interval if description.throttled else 0

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
        """The total, computed from the latest server state."""
        return self.entity_description.value_fn(self.coordinator.data)
