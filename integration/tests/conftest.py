"""Fixtures: a real qBittorrent pair, a real quart-dl server, Home Assistant with our entry.

Nothing here is mocked: the server is ``python -m quart_dl serve`` as a separate process on
loopback, following a real ``qbittorrent-nox`` leecher that downloads from a real seeder.
The pair is started once per session (it is the slow part); every test gets a fresh server
with an empty data directory, so no test sees another's events.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
import pytest_socket  # type: ignore[import-untyped]
import qbittorrentapi
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import CONF_ACCESS_TOKEN, CONF_URL
from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import DATA_CONNECTOR
from pytest_homeassistant_custom_component.common import MockConfigEntry  # type: ignore[import-untyped]
from quart_dl.lab.qbittorrent_nox import QbtInstance
from quart_dl.lab.server_process import ServerProcess
from quart_dl.lab.transfer import TransferPair
from quart_dl.lab.wait import wait_for_async

# Import the integration before Home Assistant's test harness sets up its own
# ``custom_components`` test folder: otherwise that folder shadows ours and every setup
# fails with "Integration 'quart_dl' not found".
import custom_components.quart_dl  # noqa: F401
from custom_components.quart_dl.api import normalize_url
from custom_components.quart_dl.config_flow import entry_title
from custom_components.quart_dl.const import CONF_SPEED_INTERVAL, DOMAIN

from .helpers import FakeHostsResolver, TcpProxy

#: Server timings for the tests: a 1 s heartbeat, and a poll every 0.5 s busy or idle, so
#: that a change in qBittorrent is published within ~0.5 s. The 300 ms retry hint makes a
#: reconnect quick without touching the integration's own backoff logic.
SERVER_ARGS = ("--idle-poll-interval", "0.5", "--retry-ms", "300")


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Let Home Assistant load integrations from ``custom_components``."""


@pytest.fixture(autouse=True)
def loopback_sockets(socket_enabled: None) -> None:
    """Allow sockets; Home Assistant's harness still limits connections to 127.0.0.1."""


@pytest.fixture(scope="session")
def qbt_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TransferPair]:
    """A seeder and a leecher ``qbittorrent-nox`` on loopback, for the whole session."""
    # Session fixtures are set up after Home Assistant's harness has disabled sockets for
    # the first test, and before that test's ``socket_enabled``: allow them here.
    pytest_socket.enable_socket()
    pair = TransferPair(tmp_path_factory.mktemp("qbt"))
    pair.start()
    try:
        yield pair
    finally:
        pair.stop()


@pytest.fixture(scope="session")
def seeding_hash(qbt_pair: TransferPair) -> str:
    """A small download the leecher has completed and seeds, for pause/resume tests."""
    pytest_socket.enable_socket()  # see qbt_pair
    info_hash = qbt_pair.add_transfer(f"seeding-{uuid.uuid4().hex[:8]}.bin", 256 * 1024, 0)
    qbt_pair.wait_complete(info_hash, timeout=30)
    return info_hash


#: Access token of the ``auth_server`` fixture (quart-dl wants at least 16 characters).
TOKEN = "integration-test-token-0123456789"


#: A host name that resolves to 127.0.0.1 in the tests (see ``named_host``) and that a
#: quart-dl server without a token does not answer to unless it is in ``allowed_hosts``:
#: dotted, not ``localhost``, not ``.local`` (``.test`` is reserved for tests, RFC 6761).
TEST_HOST = "quart-dl.test"


def make_server(
    root: Path,
    pair: TransferPair,
    port: int = 0,
    token: str | None = None,
    allowed_hosts: str | None = None,
) -> ServerProcess:
    """A quart-dl server process following the pair's leecher (not started).

    With ``token`` the server requires it (given through the environment, never argv);
    ``allowed_hosts`` is its setting of that name (comma-separated host names).
    """
    env: dict[str, str] = {}
    if token:
        env["QUART_DL_ACCESS_TOKEN"] = token
    if allowed_hosts is not None:
        env["QUART_DL_ALLOWED_HOSTS"] = allowed_hosts
    return ServerProcess(
        root,
        qbt_url=pair.leecher.url,
        qbt_username=pair.leecher.username,
        qbt_password=pair.leecher.password,
        heartbeat=1.0,
        poll_interval=0.5,
        port=port,
        extra_args=SERVER_ARGS,
        env=env or None,
    )


@pytest.fixture
def server(qbt_pair: TransferPair, tmp_path: Path) -> Iterator[ServerProcess]:
    """A fresh quart-dl server, connected to qBittorrent before the test starts."""
    process = make_server(tmp_path / "server", qbt_pair)
    process.start()
    try:
        wait_for_sync_connected(process)
        yield process
    finally:
        process.stop()


@pytest.fixture
def auth_server(qbt_pair: TransferPair, tmp_path: Path) -> Iterator[ServerProcess]:
    """A fresh quart-dl server that requires :data:`TOKEN`."""
    process = make_server(tmp_path / "auth-server", qbt_pair, token=TOKEN)
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def named_host(hass: HomeAssistant) -> Iterator[str]:
    """:data:`TEST_HOST`, resolving to 127.0.0.1 for Home Assistant's shared session.

    Must be set up before anything in the test asks for that session: the resolver is
    fixed when the connector is made.
    """
    assert not hass.data.get(DATA_CONNECTOR), "the shared session exists already"
    resolver = FakeHostsResolver({TEST_HOST: "127.0.0.1"})
    with patch("homeassistant.helpers.aiohttp_client._async_make_resolver", return_value=resolver):
        yield TEST_HOST


def wait_for_sync_connected(process: ServerProcess, timeout: float = 20.0, token: str | None = None) -> None:
    """Block until the server reports qBittorrent as connected (``token``: its token)."""
    from quart_dl.lab.wait import wait_for as wait_sync

    def status() -> Any:
        if token is None:
            return process.status()
        request = urllib.request.Request(
            process.url + "api/status", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.load(response)

    wait_sync(
        lambda: status()["status"]["qbittorrent"] == "connected",
        timeout,
        "the server to connect to qBittorrent",
    )


@pytest.fixture
async def proxy(server: ServerProcess) -> AsyncIterator[TcpProxy]:
    """A TCP proxy in front of the server, for cutting the network under the integration."""
    tcp = TcpProxy("127.0.0.1", server.port)
    await tcp.start()
    try:
        yield tcp
    finally:
        await tcp.stop()


def mock_entry(url: str, **kwargs: object) -> MockConfigEntry:
    """A config entry as the config flow would create it for ``url``."""
    base_url = normalize_url(url)
    # Unthrottled speed sensors: the push tests compare every published speed with the
    # sensor's states. test_sensor.py checks the throttle with the real default.
    kwargs.setdefault("options", {CONF_SPEED_INTERVAL: 0})
    kwargs.setdefault("data", {CONF_URL: base_url})
    return MockConfigEntry(
        domain=DOMAIN,
        title=entry_title(base_url),
        unique_id=base_url,
        **kwargs,
    )


async def setup_entry(hass: HomeAssistant, url: str, **kwargs: object) -> MockConfigEntry:
    """Add and set up an entry for ``url``; wait until its event stream is up."""
    entry = mock_entry(url, **kwargs)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    coordinator = entry.runtime_data.coordinator
    await wait_for_async(lambda: coordinator.stream.connected, 10, "the event stream to connect")
    return entry


@pytest.fixture
async def entry(hass: HomeAssistant, server: ServerProcess) -> MockConfigEntry:
    """Our config entry, loaded, with its stream connected straight to the server."""
    return await setup_entry(hass, server.url)


#: The tokens of the ``actions_server`` fixture: the full one acts, the read one only reads.
ACTIONS_TOKEN = "integration-actions-token-0123456789"
READ_TOKEN = "integration-read-only-token-0123456789"


@pytest.fixture(scope="session")
def actions_qbt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QbtInstance]:
    """One ``qbittorrent-nox`` of its own for the action tests.

    Actions stop, delete and relabel torrents and switch global limits: on the shared
    transfer pair they would disturb the other tests' downloads. Torrents here are magnet
    links nobody serves (no DHT, no peers), which qBittorrent keeps as torrents waiting
    for metadata: enough to start, stop, label and remove them.
    """
    pytest_socket.enable_socket()  # see qbt_pair
    daemon = QbtInstance(tmp_path_factory.mktemp("actions-qbt"), name="actions")
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture(scope="module")
def actions_server(
    actions_qbt: QbtInstance, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A quart-dl server on :func:`actions_qbt` with a full and a read-only token."""
    pytest_socket.enable_socket()  # see qbt_pair
    process = ServerProcess(
        tmp_path_factory.mktemp("actions-server"),
        qbt_url=actions_qbt.url,
        qbt_username=actions_qbt.username,
        qbt_password=actions_qbt.password,
        heartbeat=1.0,
        poll_interval=0.5,
        extra_args=SERVER_ARGS,
        env={"QUART_DL_ACCESS_TOKEN": ACTIONS_TOKEN, "QUART_DL_READ_TOKEN": READ_TOKEN},
    )
    process.start()
    try:
        wait_for_sync_connected(process, token=ACTIONS_TOKEN)
        yield process
    finally:
        process.stop()


async def setup_actions_entry(
    hass: HomeAssistant, server: ServerProcess, token: str = ACTIONS_TOKEN
) -> MockConfigEntry:
    """An entry for :func:`actions_server` with ``token``, loaded, its stream up."""
    base_url = normalize_url(server.url)
    return await setup_entry(
        hass,
        server.url,
        data={CONF_URL: base_url, CONF_ACCESS_TOKEN: token},
    )


@pytest.fixture
def qbt(actions_qbt: QbtInstance) -> qbittorrentapi.Client:
    """A client of the actions daemon, to see the actions' effects in qBittorrent."""
    client = qbittorrentapi.Client(
        host=actions_qbt.url, username=actions_qbt.username, password=actions_qbt.password
    )
    client.auth_log_in()
    return client


@pytest.fixture
async def actions_entry(hass: HomeAssistant, actions_server: ServerProcess) -> MockConfigEntry:
    """An entry for :func:`actions_server` with its full access token."""
    return await setup_actions_entry(hass, actions_server)


@pytest.fixture(scope="session")
def second_qbt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QbtInstance]:
    """A second ``qbittorrent-nox`` (4.5.2), the other instance of a two-instance server."""
    pytest_socket.enable_socket()  # see qbt_pair
    daemon = QbtInstance(tmp_path_factory.mktemp("second-qbt"), name="second")
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()


def instances_toml(path: Path, *tables: tuple[str, str, QbtInstance]) -> Path:
    """Write a TOML file with one ``[[instances]]`` table per (id, name, daemon)."""
    text = "".join(
        "[[instances]]\n"
        f'id = "{key}"\n'
        f"name = {json.dumps(name)}\n"
        f'url = "{daemon.url}"\n'
        f'username = "{daemon.username}"\n'
        f"password = {json.dumps(daemon.password)}\n"
        for key, name, daemon in tables
    )
    path.write_text(text, encoding="utf-8")
    return path


def make_instances_server(root: Path, primary: QbtInstance, config: Path) -> ServerProcess:
    """A server following ``primary`` by the flat flags (instance ``default``) and the
    ``[[instances]]`` tables of ``config``, with :data:`ACTIONS_TOKEN` (not started)."""
    return ServerProcess(
        root,
        qbt_url=primary.url,
        qbt_username=primary.username,
        qbt_password=primary.password,
        heartbeat=1.0,
        poll_interval=0.5,
        extra_args=(*SERVER_ARGS, "--config", str(config)),
        env={"QUART_DL_ACCESS_TOKEN": ACTIONS_TOKEN},
    )


def wait_for_instances(process: ServerProcess, ids: list[str], timeout: float = 20.0) -> None:
    """Block until the server lists exactly ``ids``, every one connected to qBittorrent."""
    from quart_dl.lab.wait import wait_for as wait_sync

    def listed() -> bool:
        request = urllib.request.Request(
            process.url + "api/instances", headers={"Authorization": f"Bearer {ACTIONS_TOKEN}"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            instances = json.load(response)["instances"]
        return [i["id"] for i in instances] == ids and all(
            i["status"]["qbittorrent"] == "connected" for i in instances
        )

    wait_sync(listed, timeout, f"the server to follow {ids}, connected")
