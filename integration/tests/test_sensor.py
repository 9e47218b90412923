"""Sensors: the speed sensors' recorder-friendly throttle; counts stay immediate.

Time is advanced with Home Assistant's ``async_fire_time_changed`` (which runs the timers
due by then) rather than slept through: the throttle uses only timers, never a clock.
That helper runs *every* due timer of the loop, aiohttp's read timeout of the live event
stream included (7 s with the test server's 1 s heartbeat), so the test uses a 3 s
interval and never jumps 7 s ahead; the default (10 s) is checked on its own.
The entry is real (real server, real stream, an idle qBittorrent); the speeds are then
set on the coordinator's state by hand, because a real download's speeds cannot be made
to change on cue.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from homeassistant.const import CONF_ACCESS_TOKEN, CONF_URL
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import async_fire_time_changed  # type: ignore[import-untyped]
from quart_dl.lab.server_process import ServerProcess

from custom_components.quart_dl.api import normalize_url
from custom_components.quart_dl.const import CONF_SPEED_INTERVAL, DEFAULT_SPEED_INTERVAL

from .conftest import ACTIONS_TOKEN, setup_entry
from .helpers import StateRecorder, entity_id, state_of

#: The throttle interval of the test (see the module's docstring for why not the default).
INTERVAL = 3


def later(seconds: float) -> datetime:
    """``seconds`` from now, for ``async_fire_time_changed`` (it runs the timers due by
    then; the clock is not moved)."""
    return dt_util.utcnow() + timedelta(seconds=seconds)


async def test_default_interval_is_ten_seconds(hass: HomeAssistant, actions_server: ServerProcess) -> None:
    """An entry without the option throttles its speed sensors to 10 s (#16's default)."""
    assert DEFAULT_SPEED_INTERVAL == 10
    entry = await setup_entry(
        hass,
        actions_server.url,
        data={CONF_URL: normalize_url(actions_server.url), CONF_ACCESS_TOKEN: ACTIONS_TOKEN},
        options={},
    )
    sensors = [
        entity
        for entity in hass.data["sensor"].entities
        if entity.unique_id in (f"{entry.entry_id}_download_speed", f"{entry.entry_id}_upload_speed")
    ]
    assert len(sensors) == 2
    assert {sensor._interval for sensor in sensors} == {10.0}


async def test_speed_sensors_write_at_most_every_interval(
    hass: HomeAssistant, actions_server: ServerProcess
) -> None:
    """The first change is written at once, later ones within the window are held, the
    latest is written when the window closes; counts are immediate."""
    entry = await setup_entry(
        hass,
        actions_server.url,
        data={CONF_URL: normalize_url(actions_server.url), CONF_ACCESS_TOKEN: ACTIONS_TOKEN},
        options={CONF_SPEED_INTERVAL: INTERVAL},
    )
    coordinator = entry.runtime_data.coordinator
    speed = entity_id(hass, entry.entry_id, "sensor", "download_speed")
    upload = entity_id(hass, entry.entry_id, "sensor", "upload_speed")
    total = entity_id(hass, entry.entry_id, "sensor", "total")
    speeds = StateRecorder(hass, speed)
    uploads = StateRecorder(hass, upload)
    totals = StateRecorder(hass, total)
    # The stream's snapshot after setup was a change too, and opened a window: let time
    # pass until a window closes with nothing held (nothing written), so none is open.
    for _ in range(5):
        written = len(speeds.states)
        async_fire_time_changed(hass, later(INTERVAL + 1))
        await hass.async_block_till_done()
        if len(speeds.states) == written:
            break
    else:
        raise AssertionError("the speed sensor kept writing without changes")

    def push(dl_speed: int, torrents: int = 0) -> None:
        state = coordinator.data
        state.primary.transfer["dl_speed"] = dl_speed
        state.primary.transfer["up_speed"] = dl_speed
        state.primary.torrents = {
            f"{n:040x}": {"hash": f"{n:040x}", "phase": "paused"} for n in range(torrents)
        }
        coordinator.async_set_updated_data(state)

    def shown(recorder: StateRecorder) -> list[str]:
        return [s.state for _, s in recorder.states if s is not None]

    push(1024, torrents=1)
    await hass.async_block_till_done()
    assert shown(speeds) == ["1.0"]
    assert shown(totals) == ["1"]
    push(2048, torrents=2)
    push(3072, torrents=3)
    await hass.async_block_till_done()
    # Held: still the first value; the count went on at once.
    assert shown(speeds) == ["1.0"]
    assert shown(totals) == ["1", "2", "3"]
    assert state_of(hass, speed).state == "1.0"

    async_fire_time_changed(hass, later(2))
    await hass.async_block_till_done()
    assert shown(speeds) == ["1.0"], "written before the window closed"
    async_fire_time_changed(hass, later(4))
    await hass.async_block_till_done()
    # The latest held value, not the one in between.
    assert shown(speeds) == ["1.0", "3.0"]
    assert shown(uploads) == ["1.0", "3.0"]

    # Nothing changed in the next window: nothing written when it closes, and the window
    # after that is closed too, so the next change is written at once again.
    async_fire_time_changed(hass, later(4))
    await hass.async_block_till_done()
    assert shown(speeds) == ["1.0", "3.0"]
    async_fire_time_changed(hass, later(4))
    await hass.async_block_till_done()
    push(4096, torrents=0)
    await hass.async_block_till_done()
    assert shown(speeds) == ["1.0", "3.0", "4.0"]
    for recorder in (speeds, uploads, totals):
        recorder.stop()


async def test_interval_zero_writes_every_change(hass: HomeAssistant, actions_server: ServerProcess) -> None:
    """The option at 0: every change is written, as before the throttle."""
    entry = await setup_entry(
        hass,
        actions_server.url,
        data={CONF_URL: normalize_url(actions_server.url), CONF_ACCESS_TOKEN: ACTIONS_TOKEN},
        options={CONF_SPEED_INTERVAL: 0},
    )
    coordinator = entry.runtime_data.coordinator
    speed = entity_id(hass, entry.entry_id, "sensor", "download_speed")
    speeds = StateRecorder(hass, speed)
    for value in (1024, 2048, 3072):
        coordinator.data.primary.transfer["dl_speed"] = value
        coordinator.async_set_updated_data(coordinator.data)
    await hass.async_block_till_done()
    assert [s.state for _, s in speeds.states if s is not None] == ["1.0", "2.0", "3.0"]
    speeds.stop()
