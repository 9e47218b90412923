"""Progress moves on screen while qBittorrent downloads: the dashboard row and the detail
view follow a real throttled transfer through diffs, without a reload, and end where
qBittorrent is."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from panel_driver import (
    KiB,
    MiB,
    browser_now,
    debug,
    detail_progress,
    qbt_percent,
    qbt_torrent,
    recorded,
    rises,
    row_progress,
    wait_live,
)
from playwright.sync_api import Page, expect

from quart_dl.lab.server_process import ServerProcess
from quart_dl.lab.transfer import SEEDING_STATES, TransferPair
from quart_dl.lab.wait import wait_for


def test_dashboard_progress_rises_live_and_ends_where_qbittorrent_is(
    page: Page, pair: TransferPair, make_server: Callable[..., ServerProcess], artifacts: Path
) -> None:
    server = make_server(heartbeat=15)
    page.goto(server.url)
    wait_live(page)
    page.evaluate("() => { window.__notReloaded = true; }")

    torrent_hash = pair.add_transfer("progress.bin", size=3 * MiB, rate=200 * KiB)
    row = page.locator(f'[data-testid=torrent-row][data-hash="{torrent_hash}"]')
    expect(row).to_be_visible(timeout=10_000)
    expect(row.get_by_test_id("torrent-name")).to_have_text("progress.bin")
    wait_for(
        lambda: rises(recorded(page, torrent_hash)) >= 3 and (row_progress(page, torrent_hash) or 0) >= 25,
        30,
        "the row's progress to rise 3 times, past 25 %",
    )
    page.screenshot(path=artifacts / "dashboard.png")

    # Slow the transfer to a crawl: what the row shows must settle on qBittorrent's value.
    pair.set_rate(torrent_hash, 1 * KiB)

    def agrees() -> bool:
        shown = row_progress(page, torrent_hash)
        return shown is not None and abs(shown - qbt_percent(pair, torrent_hash)) <= 2

    wait_for(agrees, 5, "the row to show qBittorrent's progress (within 2 points)")
    mid = row_progress(page, torrent_hash)
    assert mid is not None
    assert 0 < mid < 100

    pair.set_rate(torrent_hash, 0)
    expect(row.get_by_test_id("torrent-state")).to_have_text("Seeding", timeout=30_000)
    expect(row.get_by_test_id("torrent-progress-text")).to_have_text("100%")
    torrent = qbt_torrent(pair, torrent_hash)
    assert torrent.state in SEEDING_STATES
    assert torrent.amount_left == 0
    final = row_progress(page, torrent_hash)
    assert final is not None
    assert abs(final - torrent.progress * 100) <= 2

    values = recorded(page, torrent_hash)
    assert rises(values) >= 3, values
    assert values == sorted(values), f"the row showed progress going back: {values}"
    assert page.evaluate("() => window.__notReloaded === true"), "the page was reloaded"
    state = debug(page)
    assert state["opened"] == 1, state
    assert state["state"] == "live", state


def test_detail_view_progress_rises_live(
    page: Page, pair: TransferPair, make_server: Callable[..., ServerProcess], artifacts: Path
) -> None:
    server = make_server(heartbeat=15)
    torrent_hash = pair.add_transfer("detail.bin", size=3 * MiB, rate=150 * KiB)
    page.goto(server.url)
    wait_live(page)
    row = page.locator(f'[data-testid=torrent-row][data-hash="{torrent_hash}"]')
    row.get_by_test_id("torrent-name").click()
    expect(page).to_have_url(server.url + f"#/torrent/{torrent_hash}")
    detail = page.get_by_test_id("detail")
    expect(detail).to_be_visible()
    expect(page.get_by_test_id("detail-name")).to_have_text("detail.bin", timeout=10_000)
    wait_live(page)
    assert debug(page)["stream"] == f"api/torrents/{torrent_hash}/events?heartbeat=event"
    shown_from = browser_now(page)

    wait_for(
        lambda: (
            rises(recorded(page, torrent_hash, "detail", since=shown_from)) >= 2
            and (detail_progress(page) or 0) >= 20
        ),
        30,
        "the detail view's progress to rise twice, past 20 %",
    )
    expect(page.get_by_test_id("detail-state")).to_have_text("Downloading")
    page.screenshot(path=artifacts / "detail.png")
    current = detail_progress(page)
    assert current is not None
    assert 0 < current < 100
    assert abs(current - qbt_percent(pair, torrent_hash)) <= 10
    values = recorded(page, torrent_hash, "detail", since=shown_from)
    assert values == sorted(values), values
    assert debug(page)["state"] == "live"
