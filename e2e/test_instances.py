"""Several qBittorrent instances in the panel, in Chromium, against real daemons: one server
follows a qBittorrent 4.5.2 leecher (the flat ``--qbt-*`` settings: instance ``default``, named
"Home" in the TOML file) and a qBittorrent 5.1 leecher (an ``[[instances]]`` table: ``box``,
"Box"), both downloading the same .torrent from one seeder. The panel shows two rows for the
one hash, each with its instance, both live; the instance chips filter them; the detail view
and its address name the instance; stopping one daemon shows exactly one banner, naming it,
and marks only its rows stale while the other's keep moving. An action on a row goes to
that row's instance only. With one instance there is no instance column and no chips (the
panel as it was).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import qbittorrentapi
from panel_driver import (
    KiB,
    MiB,
    browser_now,
    debug,
    recorded,
    rises,
    row_progress,
    row_selector,
    wait_live,
)
from playwright.sync_api import Page, expect

from quart_dl.lab.qbittorrent_nox import QbtInstance, daemon_binary
from quart_dl.lab.server_process import ServerProcess
from quart_dl.lab.transfer import TransferPair
from quart_dl.lab.wait import wait_for

HOME = "default"  # the flat settings' instance, first: the primary
BOX = "box"
PAUSED_STATES = {"pausedDL", "pausedUP", "stoppedDL", "stoppedUP"}


@pytest.fixture(scope="module")
def leecher5(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QbtInstance]:
    """A second leecher, qBittorrent 5.1 (Debian 13's), for this module."""
    root = tmp_path_factory.mktemp("qbt5") / "leecher5"
    with QbtInstance(root, name="leecher5", binary=daemon_binary("5")) as daemon:
        yield daemon


@pytest.fixture
def client5(leecher5: QbtInstance) -> Iterator[qbittorrentapi.Client]:
    """The 5.1 leecher's client; the leecher is running at the start and left without torrents."""
    if not leecher5.running:
        leecher5.start()
    client = leecher5.client()
    yield client
    if not leecher5.running:
        leecher5.start()
        client = leecher5.client()
    client.torrents_delete(delete_files=True, torrent_hashes="all")


def two_instance_config(tmp_path: Path, leecher: QbtInstance) -> Path:
    """What a newcomer writes: the flat settings' qBittorrent named, and one more instance."""
    secret = tmp_path / "box.password"
    secret.write_text(leecher.password, encoding="utf-8")
    secret.chmod(0o600)
    config = tmp_path / "quart-dl.toml"
    config.write_text(
        'qbt_name = "Home"\n\n'
        "[[instances]]\n"
        f'id = "{BOX}"\n'
        'name = "Box"\n'
        f'url = "{leecher.url}"\n'
        f'username = "{leecher.username}"\n'
        f'password_file = "{secret}"\n',
        encoding="utf-8",
    )
    return config


def visible_rows(page: Page) -> list[tuple[str, str]]:
    """(instance, hash) of every dashboard row shown, in order."""
    return [
        (str(r[0]), str(r[1]))
        for r in page.evaluate(
            """() => [...document.querySelectorAll("[data-testid=torrent-row]")]
                 .filter((el) => el.checkVisibility())
                 .map((el) => [el.dataset.instance, el.dataset.hash])"""
        )
    ]


def test_two_instances_show_two_live_rows_and_one_down_instance_leaves_the_other_live(
    page: Page,
    pair: TransferPair,
    leecher5: QbtInstance,
    client5: qbittorrentapi.Client,
    make_server: Callable[..., ServerProcess],
    tmp_path: Path,
    artifacts: Path,
) -> None:
    torrent_hash = pair.add_transfer("twins.bin", size=12 * MiB, rate=128 * KiB)
    pair.also_leech(leecher5, torrent_hash, rate=128 * KiB, timeout=25)
    server = make_server(heartbeat=15, extra_args=("--config", str(two_instance_config(tmp_path, leecher5))))
    page.goto(server.url)
    wait_live(page)
    assert debug(page)["stream"] == "api/events?v=2&heartbeat=event"

    # One hash, two instances: two rows, each naming its instance.
    home_row = page.locator(row_selector(torrent_hash, HOME))
    box_row = page.locator(row_selector(torrent_hash, BOX))
    expect(home_row).to_be_visible(timeout=10_000)
    expect(box_row).to_be_visible()
    expect(page.locator(row_selector(torrent_hash))).to_have_count(2)
    expect(home_row.get_by_test_id("torrent-instance")).to_have_text("Home")
    expect(box_row.get_by_test_id("torrent-instance")).to_have_text("Box")
    expect(page.locator(".thead [data-key=instance]")).to_be_visible()
    expect(page.get_by_test_id("total-count")).to_have_text("2 torrents")
    totals = page.get_by_test_id("instance-total")
    expect(totals).to_have_count(2)
    expect(totals.nth(0).get_by_test_id("instance-total-name")).to_have_text("Home")
    expect(totals.nth(1).get_by_test_id("instance-total-name")).to_have_text("Box")

    # Both live: each row's progress rises on its own.
    def rising(instance: str) -> Callable[[], bool]:
        return lambda: rises(recorded(page, torrent_hash, instance=instance)) >= 3

    for instance in (HOME, BOX):
        wait_for(rising(instance), 30, f"the {instance} row's progress to rise 3 times")
    page.screenshot(path=artifacts / "instances.png")

    # The instance chips filter the list; "All instances" brings both back.
    chips = page.get_by_test_id("instance-filters")
    expect(chips).to_be_visible()
    expect(page.get_by_test_id(f"instance-filter-{BOX}")).to_contain_text("Box")
    page.get_by_test_id(f"instance-filter-{BOX}").click()
    expect(home_row).to_be_hidden()
    assert visible_rows(page) == [(BOX, torrent_hash)]
    page.get_by_test_id(f"instance-filter-{HOME}").click()
    expect(box_row).to_be_hidden()
    assert visible_rows(page) == [(HOME, torrent_hash)]
    page.get_by_test_id("instance-filter-all").click()
    expect(page.locator(row_selector(torrent_hash))).to_have_count(2)
    expect(box_row).to_be_visible()
    expect(home_row).to_be_visible()

    # The detail view and its address name the instance; its stream is that instance's.
    box_row.get_by_test_id("torrent-name").click()
    expect(page).to_have_url(server.url + f"#/torrent/{torrent_hash}?instance={BOX}")
    expect(page.get_by_test_id("detail-name")).to_have_text("twins.bin", timeout=10_000)
    expect(page.get_by_test_id("detail-instance")).to_have_text("Box")
    wait_live(page)
    assert debug(page)["stream"] == f"api/torrents/{torrent_hash}/events?instance={BOX}&heartbeat=event"
    shown_from = browser_now(page)
    wait_for(
        lambda: rises(recorded(page, torrent_hash, "detail", since=shown_from, instance=BOX)) >= 2,
        30,
        "the Box detail view's progress to rise twice",
    )
    page.get_by_test_id("back").click()
    wait_live(page)
    expect(page.locator(row_selector(torrent_hash))).to_have_count(2)

    # Stop the 4.5.2 daemon (the primary): one banner, naming it; only its row goes stale.
    banners = page.locator("[data-testid=instance-banner]:visible")
    expect(banners).to_have_count(0)
    pair.leecher.stop()
    stopped_from = browser_now(page)
    expect(banners).to_have_count(1, timeout=20_000)
    expect(banners.first).to_have_attribute("data-instance", HOME)
    title = banners.first.get_by_test_id("instance-banner-title")
    expect(title).to_have_text("qBittorrent “Home” is unreachable.")
    expect(page.get_by_test_id("qbt-banner")).to_be_hidden()
    expect(home_row).to_have_attribute("data-stale", "true")
    expect(box_row).to_have_attribute("data-stale", "false")
    expect(totals.nth(0)).to_have_attribute("data-health", "down")
    expect(totals.nth(1)).to_have_attribute("data-health", "ok")
    # A down instance's last speeds are not flowing now: its line says so.
    expect(totals.nth(0).get_by_test_id("instance-total-dl")).to_have_text("↓ –")
    wait_for(
        lambda: rises(recorded(page, torrent_hash, since=stopped_from, instance=BOX)) >= 2,
        30,
        "the Box row's progress to keep rising with Home down",
    )
    assert (row_progress(page, torrent_hash, BOX) or 0) > 0
    # Box's row was drawn again since (its progress rose): it is still not marked stale.
    assert box_row.get_attribute("data-stale") == "false"
    assert home_row.get_attribute("data-stale") == "true"
    # quart-dl itself is fine: the one stream stays open and live, nothing greys the page.
    state = debug(page)
    assert state["state"] == "live", state
    assert page.evaluate("() => document.body.dataset.fresh") == "true"
    expect(banners).to_have_count(1)
    page.screenshot(path=artifacts / "instances-one-down.png")


def test_one_instance_has_no_instance_column_and_no_chips(
    page: Page, pair: TransferPair, make_server: Callable[..., ServerProcess]
) -> None:
    torrent_hash = pair.add_transfer("alone.bin", size=2 * MiB, rate=200 * KiB)
    server = make_server(heartbeat=15)
    page.goto(server.url)
    wait_live(page)
    row = page.locator(row_selector(torrent_hash))
    expect(row).to_be_visible(timeout=10_000)
    expect(row).to_have_count(1)
    assert page.evaluate("() => document.body.dataset.multi") == "false"
    expect(row.get_by_test_id("torrent-instance")).to_be_hidden()
    expect(page.locator(".thead [data-key=instance]")).to_be_hidden()
    expect(page.get_by_test_id("instance-filters")).to_be_hidden()
    expect(page.get_by_test_id("instance-totals")).to_be_hidden()
    # The address of a torrent is what it was before instances.
    expect(row.get_by_test_id("torrent-name")).to_have_attribute("href", f"#/torrent/{torrent_hash}")
    expect(page.locator("[data-testid=instance-banner]")).to_have_count(0)
    assert debug(page)["stream"] == "api/events?v=2&heartbeat=event"


def test_an_action_on_a_row_goes_to_that_rows_instance(
    page: Page,
    pair: TransferPair,
    leecher5: QbtInstance,
    client5: qbittorrentapi.Client,
    make_server: Callable[..., ServerProcess],
    tmp_path: Path,
) -> None:
    torrent_hash = pair.add_transfer("act-twins.bin", size=8 * MiB, rate=64 * KiB)
    pair.also_leech(leecher5, torrent_hash, rate=64 * KiB, timeout=25)
    config = two_instance_config(tmp_path, leecher5)
    server = make_server(
        heartbeat=15, extra_args=("--config", str(config)), env={"QUART_DL_OPEN_ACTIONS": "true"}
    )
    page.goto(server.url)
    wait_live(page)
    box_row = page.locator(row_selector(torrent_hash, BOX))
    home_row = page.locator(row_selector(torrent_hash, HOME))
    expect(box_row.get_by_test_id("torrent-toggle")).to_be_visible(timeout=10_000)

    box_row.get_by_test_id("torrent-toggle").click()
    expect(box_row.get_by_test_id("torrent-state")).to_have_text("Paused", timeout=15_000)
    (paused,) = client5.torrents_info(torrent_hashes=torrent_hash)
    assert paused.state in PAUSED_STATES, paused.state
    # The same hash in the other instance was not touched.
    (home,) = pair.leecher_client.torrents_info(torrent_hashes=torrent_hash)
    assert home.state not in PAUSED_STATES, home.state
    expect(home_row.get_by_test_id("torrent-state")).not_to_have_text("Paused")
