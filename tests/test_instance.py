"""quart_dl.qbittorrent.instance: one qBittorrent as a unit (a FakeSession, in-memory SQLite)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from fakes import H1, forget_sql_dialect, full_update, raw_torrent

from quart_dl.hub import Hub
from quart_dl.lab.wait import wait_for_async
from quart_dl.metrics import Metrics
from quart_dl.qbittorrent.fake import FakeSession
from quart_dl.qbittorrent.instance import DEFAULT_ID, Instance, InstanceSettings
from quart_dl.qbittorrent.session import QbtSession
from quart_dl.settings import Secret, Settings
from quart_dl.store.store import close_database, open_database

URL = "http://127.0.0.1:8080"
URL2 = "http://127.0.0.1:8081"


def config(instance_id: str = "home", url: str = URL) -> InstanceSettings:
    return InstanceSettings(
        id=instance_id,
        url=url,
        username="admin",
        password=Secret("pw-not-shown"),
        poll_interval=0.05,
        idle_poll_interval=0.05,
    )


@pytest.fixture
async def database() -> AsyncIterator[None]:
    forget_sql_dialect()
    await open_database("sqlite://:memory:")
    try:
        yield
    finally:
        await close_database()


def test_the_flat_settings_describe_the_default_instance() -> None:
    settings = Settings(qbt_url="http://10.0.0.2:8080", qbt_username="me", qbt_password=Secret("pw"))
    default = InstanceSettings.from_settings(settings)
    assert default.id == DEFAULT_ID
    assert (default.url, default.username, default.password.reveal()) == ("http://10.0.0.2:8080", "me", "pw")
    assert (default.poll_interval, default.idle_poll_interval) == (1.0, 30.0)
    assert "pw" not in repr(default)


def test_an_instance_without_a_session_gets_a_real_one() -> None:
    instance = Instance(config(), hub=Hub(), metrics=Metrics())
    assert isinstance(instance.session, QbtSession)


async def test_instance_polls_through_its_session_into_the_hub(database: None) -> None:
    hub = Hub()
    session = FakeSession([full_update({H1: raw_torrent("one")})])
    instance = Instance(config(), hub=hub, metrics=Metrics(), session=session)
    await instance.start()
    try:
        await wait_for_async(lambda: H1 in hub.torrents, what="the first poll published")
        assert instance.table.records[H1]["name"] == "one"
        assert instance.status.state == "connected"
        assert hub.status is instance.status.record  # the hub shows the instance's live status
        assert instance.store.instance_name == "home"  # its rows are keyed by its id
    finally:
        await instance.stop()
    assert session.closed


async def test_two_instances_on_one_hub_both_hear_a_first_viewer(database: None) -> None:
    # The demand signal: a second poller must not silently take the first one's hook.
    hub = Hub()
    configs = [replace(config(name, url), idle_poll_interval=30.0) for name, url in (("a", URL), ("b", URL2))]
    pollers = [Instance(c, hub=hub, metrics=Metrics(), session=FakeSession()).poller for c in configs]
    one, two = pollers
    assert (one.interval, two.interval) == (30.0, 30.0)
    assert [p._wake.is_set() for p in pollers] == [False, False]
    hub.subscribe()
    assert [p._wake.is_set() for p in pollers] == [True, True]
    assert (one.interval, two.interval) == (0.05, 0.05)
