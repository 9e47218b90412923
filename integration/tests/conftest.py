"""Fixtures: a real qBittorrent pair, a real quart-dl server, Home Assistant with our entry.

Nothing here is mocked: the server is ``python -m quart_dl serve`` as a separate process on
loopback, following a real ``qbittorrent-nox`` leecher that downloads from a real seeder.
The pair is started once per session (it is the slow part); every test gets a fresh server
with an empty data directory, so no test sees another's events.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from unittest.mock import patch

import pytest
import pytest_socket  # type: ignore[import-untyped]
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import CONF_URL
from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import DATA_CONNECTOR
from pytest_homeassistant_custom_component.common import MockConfigEntry  # type: ignore[import-untyped]
from quart_dl.lab.server_process import ServerProcess
from quart_dl.lab.transfer import TransferPair
from quart_dl.lab.wait import wait_for_async

# Import the integration before Home Assistant's test harness sets up its own
# ``custom_components`` test folder: otherwise that folder shadows ours and every setup
# fails with "Integration 'quart_dl' not found".
import custom_components.quart_dl  # noqa: F401
from custom_components.quart_dl.api import normalize_url
from custom_components.quart_dl.config_flow import entry_title
from custom_components.quart_dl.const import DOMAIN

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
    with patch(
        "homeassistant.helpers.aiohttp_client._async_make_resolver", return_value=resolver
    ):
        yield TEST_HOST


def wait_for_sync_connected(process: ServerProcess, timeout: float = 20.0) -> None:
    """Block until the server reports qBittorrent as connected."""
    from quart_dl.lab.wait import wait_for as wait_sync

    wait_sync(
        lambda: process.status()["status"]["qbittorrent"] == "connected",
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
    return MockConfigEntry(
        domain=DOMAIN,
        title=entry_title(base_url),
        unique_id=base_url,
        data={CONF_URL: base_url},
        **kwargs,
    )


async def setup_entry(hass: HomeAssistant, url: str) -> MockConfigEntry:
    """Add and set up an entry for ``url``; wait until its event stream is up."""
    entry = mock_entry(url)
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
