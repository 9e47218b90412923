"""The panel through outages: quart-dl killed and restarted, qBittorrent killed and
restarted. The panel must say what is going on, then show current data again, and never
show older values than it had (the original bug showed 0 % while a download was at 31 %)."""

from __future__ import annotations

import time
from collections.abc import Callable

from panel_driver import (
    KiB,
    MiB,
    api_torrent,
    browser_now,
    debug,
    qbt_percent,
    recorded,
    recorded_states,
    rises,
    row_progress,
    shown,
    wait_live,
)
from playwright.sync_api import Page, expect

from quart_dl.lab.server_process import ServerProcess
from quart_dl.lab.transfer import TransferPair
from quart_dl.lab.wait import wait_for


def test_server_killed_and_restarted_panel_reconnects_to_current_never_older_data(
    page: Page, pair: TransferPair, make_server: Callable[..., ServerProcess]
) -> None:
    server = make_server(heartbeat=15)
    torrent_hash = pair.add_transfer("restart.bin", size=4 * MiB, rate=160 * KiB)
    page.goto(server.url)
    wait_live(page)
    wait_for(lambda: (row_progress(page, torrent_hash) or 0) >= 10, 30, "the row past 10 %")

    # What the server says at the moment it dies (it can only publish more after this).
    at_restart = shown(api_torrent(server.url, torrent_hash)["progress"])
    killed_from = browser_now(page)
    server.kill()
    conn = page.get_by_test_id("connection-state")
    expect(conn).to_have_attribute("data-state", "reconnecting", timeout=5_000)
    expect(page.get_by_test_id("connection-label")).to_contain_text("Reconnecting")
    assert server.log_path.exists()

    server.start()  # the same port, a new process (and a new event epoch)
    back = time.monotonic()

    def current() -> bool:
        if debug(page)["state"] != "live":
            return False
        on_screen = row_progress(page, torrent_hash)
        api = api_torrent(server.url, torrent_hash)
        return (
            on_screen is not None
            and abs(on_screen - shown(api["progress"])) <= 1
            and abs(on_screen - qbt_percent(pair, torrent_hash)) <= 3
        )

    wait_for(current, 5, "current data within 5 s of the server being back")
    took = time.monotonic() - back
    # Keep watching a little: every value shown since the kill, however briefly.
    wait_for(
        lambda: rises(recorded(page, torrent_hash, since=killed_from)) >= 2,
        15,
        "progress to keep rising after the restart",
    )
    after = recorded(page, torrent_hash, since=killed_from)
    assert after, "nothing was shown after the restart"
    assert min(after) >= at_restart, (
        f"the panel showed {min(after)} % after the restart, below the {at_restart} % "
        f"the server reported when it was killed: {after}"
    )
    assert after == sorted(after), f"progress went back after the restart: {after}"
    assert "reconnecting" in recorded_states(page, since=killed_from)
    assert took <= 5


def test_qbittorrent_down_then_up_banner_shows_and_clears_and_progress_resumes(
    page: Page, pair: TransferPair, make_server: Callable[..., ServerProcess]
) -> None:
    server = make_server(heartbeat=15)
    torrent_hash = pair.add_transfer("qbt-down.bin", size=4 * MiB, rate=160 * KiB)
    page.goto(server.url)
    wait_live(page)
    wait_for(lambda: (row_progress(page, torrent_hash) or 0) >= 5, 30, "the row past 5 %")
    banner = page.get_by_test_id("qbt-banner")
    expect(banner).to_be_hidden()

    pair.leecher.kill()
    expect(banner).to_be_visible(timeout=15_000)
    expect(page.get_by_test_id("qbt-banner-title")).to_have_text("qBittorrent is unreachable.")
    # quart-dl itself is fine: the panel's stream stays open and live.
    assert debug(page)["state"] == "live"

    pair.leecher.start()
    pair.reconnect_peer(torrent_hash)
    expect(banner).to_be_hidden(timeout=30_000)
    resumed_from = browser_now(page)
    wait_for(
        lambda: rises(recorded(page, torrent_hash, since=resumed_from)) >= 2,
        30,
        "progress to rise again after qBittorrent came back",
    )
    wait_for(
        lambda: abs((row_progress(page, torrent_hash) or -100) - qbt_percent(pair, torrent_hash)) <= 3,
        5,
        "the row to agree with qBittorrent",
    )
    state = debug(page)
    assert state["state"] == "live", state
    assert state["opened"] == 1, state
    assert server.status()["status"]["qbittorrent"] == "connected"
