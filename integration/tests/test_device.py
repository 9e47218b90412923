"""A device per qBittorrent instance, against a real server following two real
qbittorrent-nox daemons (the flat flags: instance ``default``; an ``[[instances]]`` table:
``second``), restarted with other TOML files to make instances appear and disappear, and
against a real older server (protocol 1 only, no ``/api/instances``).
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
import qbittorrentapi
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import ATTR_ENTITY_ID, CONF_ACCESS_TOKEN, CONF_URL, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry  # type: ignore[import-untyped]
from quart_dl.lab.qbittorrent_nox import QbtInstance
from quart_dl.lab.server_process import ServerProcess
from quart_dl.lab.wait import wait_for_async

from custom_components.quart_dl.api import normalize_url
from custom_components.quart_dl.const import DOMAIN, EVENT_DOWNLOAD_ADDED

from .actions_helpers import in_qbittorrent, new_magnet, paused, until
from .conftest import (
    ACTIONS_TOKEN,
    SERVER_ARGS,
    instances_toml,
    make_instances_server,
    setup_actions_entry,
    setup_entry,
    wait_for_instances,
)
from .helpers import EventRecorder, StateRecorder, state_of

#: A commit of this repository from before several instances (no ``/api/instances``, no
#: protocol 2, no ``server_id``): a real older server, run from its own source tree.
OLD_SERVER_COMMIT = "7bb4d6e"
REPO = Path(__file__).resolve().parents[2]


def client_of(daemon: QbtInstance) -> qbittorrentapi.Client:
    """A logged-in Web API client of one daemon, to see the effects in qBittorrent."""
    client = qbittorrentapi.Client(host=daemon.url, username=daemon.username, password=daemon.password)
    client.auth_log_in()
    return client


def device(hass: HomeAssistant, entry: MockConfigEntry, suffix: str) -> dr.DeviceEntry | None:
    """The entry's device ``<entry id><suffix>`` (``_<instance>`` or ``/server``)."""
    return dr.async_get(hass).async_get_device(identifiers={(DOMAIN, f"{entry.entry_id}{suffix}")})


@pytest.fixture
def two_server(actions_qbt: QbtInstance, second_qbt: QbtInstance, tmp_path: Path) -> Iterator[ServerProcess]:
    """A server following ``actions_qbt`` (``default``) and ``second_qbt`` (``second``)."""
    config = instances_toml(tmp_path / "quart-dl.toml", ("second", "Second qBittorrent", second_qbt))
    process = make_instances_server(tmp_path / "server", actions_qbt, config)
    process.start()
    try:
        wait_for_instances(process, ["default", "second"])
        yield process
    finally:
        process.stop()


async def test_a_device_per_instance_under_the_servers_device(
    hass: HomeAssistant, two_server: ServerProcess
) -> None:
    """Each instance is a device named after it, child of the server's device (the
    totals); its entity ids say which; the default instance keeps the unique ids of old."""
    entry = await setup_actions_entry(hass, two_server)
    coordinator = entry.runtime_data.coordinator
    assert coordinator.data.protocol == 2
    assert list(coordinator.data.instances) == ["default", "second"]
    server = device(hass, entry, "/server")
    first, second = device(hass, entry, "_default"), device(hass, entry, "_second")
    assert server is not None
    assert first is not None
    assert second is not None
    assert (first.name, second.name) == ("qBittorrent", "Second qBittorrent")
    assert first.via_device_id == server.id
    assert second.via_device_id == server.id

    registry = er.async_get(hass)
    ids = {
        entity.unique_id: entity.entity_id
        for entity in er.async_entries_for_config_entry(registry, entry.entry_id)
    }
    e = entry.entry_id
    assert ids[f"{e}_download_speed"] == "sensor.qbittorrent_download_speed"
    assert ids[f"{e}_second.download_speed"] == "sensor.second_qbittorrent_download_speed"
    assert ids[f"{e}_second.downloads"] == "event.second_qbittorrent_downloads"
    assert ids[f"{e}_second.alt_speed"] == "switch.second_qbittorrent_alternative_speed_limits"
    assert ids[f"{e}_total_torrents"] == "sensor.quart_dl_total_torrents"
    on_second = {entity.entity_id for entity in er.async_entries_for_device(registry, second.id)}
    assert "sensor.second_qbittorrent_download_speed" in on_second
    assert "sensor.qbittorrent_download_speed" not in on_second

    # The totals add the instances up.
    counts = [len(i.torrents) for i in coordinator.data.instances.values()]
    await wait_for_async(
        lambda: state_of(hass, "sensor.quart_dl_total_torrents").state == str(sum(counts)),
        10,
        "the total of both instances' torrents",
    )


async def test_actions_and_events_go_to_their_instance(
    hass: HomeAssistant, two_server: ServerProcess, actions_qbt: QbtInstance, second_qbt: QbtInstance
) -> None:
    """An action on a device acts on that instance only, an entry's on the primary; the
    instance's event entity and the bus event name the instance and its device."""
    entry = await setup_actions_entry(hass, two_server)
    second = device(hass, entry, "_second")
    assert second is not None
    first_qbt, other_qbt = client_of(actions_qbt), client_of(second_qbt)
    second_events = StateRecorder(hass, "event.second_qbittorrent_downloads")
    first_events = StateRecorder(hass, "event.qbittorrent_downloads")
    bus = EventRecorder(hass, EVENT_DOWNLOAD_ADDED)

    there, there_hash = new_magnet()
    here, here_hash = new_magnet()
    await hass.services.async_call(
        DOMAIN, "add_torrent", {"device_id": second.id, "urls": [there]}, blocking=True
    )
    await hass.services.async_call(
        DOMAIN, "add_torrent", {"entry_id": entry.entry_id, "urls": [here]}, blocking=True
    )
    try:
        await in_qbittorrent(hass, other_qbt, there_hash, lambda r: r is not None, "added to second")
        await in_qbittorrent(hass, first_qbt, here_hash, lambda r: r is not None, "added to default")
        assert not await hass.async_add_executor_job(
            partial(first_qbt.torrents_info, torrent_hashes=there_hash)
        )

        await wait_for_async(lambda: bus.for_hash(there_hash), 15, "download_added of second")
        [event] = bus.for_hash(there_hash)
        assert (event["instance"], event["device_id"]) == ("second", second.id)
        announced = second_events.first(lambda s: s.attributes.get("hash") == there_hash)
        assert announced is not None
        assert announced[1].attributes["instance"] == "second"
        assert announced[1].attributes["device_id"] == second.id
        assert first_events.first(lambda s: s.attributes.get("hash") == there_hash) is None

        listed = await hass.services.async_call(
            DOMAIN, "get_torrents", {"device_id": second.id}, blocking=True, return_response=True
        )
        assert listed is not None
        assert {t["hash"]: t["instance"] for t in listed["torrents"]}.get(there_hash) == "second"
        primary = await hass.services.async_call(
            DOMAIN, "get_torrents", {"entry_id": entry.entry_id}, blocking=True, return_response=True
        )
        assert primary is not None
        assert there_hash not in {t["hash"] for t in primary["torrents"]}

        # The second instance's buttons and switch act on the second qBittorrent only.
        await hass.services.async_call(
            "button",
            "press",
            {ATTR_ENTITY_ID: "button.second_qbittorrent_stop_all_torrents"},
            blocking=True,
        )
        await in_qbittorrent(hass, other_qbt, there_hash, paused, "stopped by second's stop all")
        record = await hass.async_add_executor_job(partial(first_qbt.torrents_info, torrent_hashes=here_hash))
        assert not paused(dict(record[0]))
        switch = "switch.second_qbittorrent_alternative_speed_limits"
        await hass.services.async_call("switch", "turn_on", {ATTR_ENTITY_ID: switch}, blocking=True)
        await until(hass, other_qbt.transfer_speed_limits_mode, lambda m: str(m) == "1", "alt on")
        assert str(await hass.async_add_executor_job(first_qbt.transfer_speed_limits_mode)) == "0"

        with pytest.raises(ServiceValidationError) as err:
            await hass.services.async_call(
                DOMAIN, "stop_torrent", {"device_id": "nope", "hashes": "all"}, blocking=True
            )
        assert err.value.translation_key == "device_not_found"
    finally:
        await hass.async_add_executor_job(other_qbt.transfer_set_speed_limits_mode, False)
        await hass.async_add_executor_job(
            partial(other_qbt.torrents_delete, delete_files=True, torrent_hashes=there_hash)
        )
        await hass.async_add_executor_job(
            partial(first_qbt.torrents_delete, delete_files=True, torrent_hashes=here_hash)
        )
        for recorder in (second_events, first_events, bus):
            recorder.stop()


async def test_instances_come_and_go_across_server_restarts_without_a_reload(
    hass: HomeAssistant, actions_qbt: QbtInstance, second_qbt: QbtInstance, tmp_path: Path
) -> None:
    """The server restarted with another ``[[instances]]`` list: the new instance gets
    its device and entities, the gone one's device and entities are removed, the entry is
    not reloaded; an instance that comes back gets them again."""
    config = tmp_path / "quart-dl.toml"
    instances_toml(config, ("second", "Second qBittorrent", second_qbt))
    process = make_instances_server(tmp_path / "server", actions_qbt, config)
    process.start()
    try:
        wait_for_instances(process, ["default", "second"])
        entry = await setup_actions_entry(hass, process)
        coordinator = entry.runtime_data.coordinator
        registry = er.async_get(hass)
        old_device = device(hass, entry, "_second")
        assert old_device is not None
        assert state_of(hass, "sensor.second_qbittorrent_download_speed")

        async def restart(*tables: tuple[str, str, QbtInstance]) -> None:
            await hass.async_add_executor_job(process.stop)
            instances_toml(config, *tables)
            await hass.async_add_executor_job(process.start)
            await hass.async_add_executor_job(
                wait_for_instances, process, ["default", *(key for key, _, _ in tables)]
            )

        # The same daemon under another id and name: another instance to the server.
        await restart(("third", "Third", second_qbt))
        await wait_for_async(
            lambda: device(hass, entry, "_second") is None, 20, "the gone instance's device removed"
        )
        await wait_for_async(
            lambda: (
                (s := hass.states.get("sensor.third_download_speed")) is not None
                and s.state != STATE_UNAVAILABLE
            ),
            20,
            "the new instance's sensor",
        )
        third = device(hass, entry, "_third")
        assert third is not None
        assert third.name == "Third"
        assert registry.async_get("sensor.second_qbittorrent_download_speed") is None
        assert hass.states.get("sensor.second_qbittorrent_download_speed") is None
        assert state_of(hass, "event.third_downloads")
        assert state_of(hass, "sensor.qbittorrent_download_speed").state != STATE_UNAVAILABLE
        # No reload: the same coordinator, still loaded.
        assert entry.state is ConfigEntryState.LOADED
        assert entry.runtime_data.coordinator is coordinator

        await restart(("second", "Second qBittorrent", second_qbt))
        await wait_for_async(
            lambda: device(hass, entry, "_third") is None, 20, "the third instance's device removed"
        )
        await wait_for_async(
            lambda: (
                (s := hass.states.get("sensor.second_qbittorrent_download_speed")) is not None
                and s.state != STATE_UNAVAILABLE
            ),
            20,
            "the second instance's sensor again",
        )
        assert entry.runtime_data.coordinator is coordinator
    finally:
        await hass.async_add_executor_job(process.stop)


@pytest.fixture(scope="module")
def old_server_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The quart_dl package of :data:`OLD_SERVER_COMMIT`, taken from this repository."""
    git = shutil.which("git")
    if git is None:
        pytest.fail("git is needed to take the older server from the repository's history", pytrace=False)
    try:
        archive = subprocess.run(
            [git, "-C", str(REPO), "archive", "--format=tar", OLD_SERVER_COMMIT, "quart_dl"],
            check=True,
            capture_output=True,
            timeout=60,
        ).stdout
    except subprocess.CalledProcessError as err:
        pytest.fail(
            f"commit {OLD_SERVER_COMMIT} is not in this checkout (a shallow clone? fetch the history):"
            f" {err.stderr!r}",
            pytrace=False,
        )
    tree = tmp_path_factory.mktemp("old-server")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tree, filter="data")
    return tree


async def test_an_older_server_is_one_default_device_in_protocol_1(
    hass: HomeAssistant, actions_qbt: QbtInstance, old_server_tree: Path, tmp_path: Path
) -> None:
    """A server from before several instances (404 on /api/instances): one ``default``
    device, fed by a protocol 1 stream, its actions sent without ``instance``."""
    process = ServerProcess(
        tmp_path / "old",
        qbt_url=actions_qbt.url,
        qbt_username=actions_qbt.username,
        qbt_password=actions_qbt.password,
        heartbeat=1.0,
        poll_interval=0.5,
        extra_args=SERVER_ARGS,
        env={"QUART_DL_ACCESS_TOKEN": ACTIONS_TOKEN, "PYTHONPATH": str(old_server_tree)},
    )
    process.start()
    try:
        entry = await setup_entry(
            hass,
            process.url,
            data={CONF_URL: normalize_url(process.url), CONF_ACCESS_TOKEN: ACTIONS_TOKEN},
        )
        coordinator = entry.runtime_data.coordinator
        assert coordinator.data.server_id is None, "not an older server"
        assert coordinator.data.protocol == 1
        assert list(coordinator.data.instances) == ["default"]
        await wait_for_async(lambda: coordinator.stream.snapshots >= 1, 10, "a v1 snapshot")
        assert coordinator.stream.snapshots == 1
        assert device(hass, entry, "_default") is not None
        assert device(hass, entry, "/server") is not None
        await wait_for_async(
            lambda: state_of(hass, "sensor.qbittorrent_status").state == "connected",
            10,
            "the default instance's status",
        )
        # An action without ``instance``, which this server does not know.
        qbt = client_of(actions_qbt)
        switch = "switch.qbittorrent_alternative_speed_limits"
        try:
            await hass.services.async_call("switch", "turn_on", {ATTR_ENTITY_ID: switch}, blocking=True)
            await until(hass, qbt.transfer_speed_limits_mode, lambda m: str(m) == "1", "alt on")
        finally:
            await hass.async_add_executor_job(qbt.transfer_set_speed_limits_mode, False)
    finally:
        await hass.async_add_executor_job(process.stop)


async def test_a_user_may_delete_only_the_device_of_an_instance_that_is_gone(
    hass: HomeAssistant, actions_entry: MockConfigEntry
) -> None:
    """A device of an instance the server does not follow may be deleted by hand; the
    device of a followed instance and the server's may not (they would come back)."""
    from custom_components.quart_dl import async_remove_config_entry_device

    registry = dr.async_get(hass)
    ghost = registry.async_get_or_create(
        config_entry_id=actions_entry.entry_id,
        identifiers={(DOMAIN, f"{actions_entry.entry_id}_ghost")},
        name="ghost",
    )
    followed = device(hass, actions_entry, "_default")
    server = device(hass, actions_entry, "/server")
    assert followed is not None
    assert server is not None
    assert await async_remove_config_entry_device(hass, actions_entry, ghost)
    assert not await async_remove_config_entry_device(hass, actions_entry, followed)
    assert not await async_remove_config_entry_device(hass, actions_entry, server)
