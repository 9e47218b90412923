"""Acting on torrents from the panel, in Chromium, against a real server and real
qBittorrent daemons: select rows and pause them ("Pausing…" on screen, then paused, as
qBittorrent says), add .torrent files by dropping them and through the file picker, delete
with and without the files (looked at on disk), the editors, the alt-speed toggle, a refusal
shown on the row, another viewer's action, phone width with the keyboard, and a read-only
token that hides every control.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from panel_driver import (
    ACTION_RECORDER,
    KiB,
    MiB,
    action_marks,
    drop_files,
    qbt_torrent,
    row_selector,
    visible_action_controls,
    wait_live,
)
from playwright.sync_api import BrowserContext, Page, expect

from quart_dl.lab.qbittorrent_nox import daemon_binary
from quart_dl.lab.server_process import ServerFactory, ServerProcess
from quart_dl.lab.transfer import TransferPair, make_payload, make_torrent
from quart_dl.lab.wait import wait_for

OPEN = {"QUART_DL_OPEN_ACTIONS": "true"}
PAUSED_STATES = {"pausedDL", "pausedUP", "stoppedDL", "stoppedUP"}
TOKEN = "full-" + secrets.token_urlsafe(24)
READ_TOKEN = "read-" + secrets.token_urlsafe(24)


@pytest.fixture
def context(context: BrowserContext) -> BrowserContext:
    context.add_init_script(ACTION_RECORDER)
    return context


@pytest.fixture(scope="module")
def pair5(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TransferPair]:
    """A qBittorrent 5.1 seeder and leecher (Debian 13's), for the verbs 5.0 renamed."""
    with TransferPair(tmp_path_factory.mktemp("qbt5"), binary=daemon_binary("5")) as running:
        yield running


@pytest.fixture(params=["4", "5"])
def versioned(
    request: pytest.FixtureRequest, pair: TransferPair, tmp_path: Path
) -> Iterator[tuple[TransferPair, ServerFactory]]:
    """(pair, make_server) on qBittorrent 4.5.2 and on 5.1."""
    chosen = pair if request.param == "4" else request.getfixturevalue("pair5")
    factory = ServerFactory(
        tmp_path / f"v{request.param}", chosen.leecher.url, chosen.leecher.username, chosen.leecher.password
    )
    yield chosen, factory
    factory.close()
    if chosen is not pair:
        chosen.leecher_client.torrents_delete(delete_files=True, torrent_hashes="all")


def open_panel(page: Page, server: ServerProcess, query: str = "") -> None:
    page.goto(server.url + query)
    wait_live(page)


def row(page: Page, torrent_hash: str) -> Any:
    return page.locator(row_selector(torrent_hash))


def state_of(pair: TransferPair, torrent_hash: str) -> str:
    return str(qbt_torrent(pair, torrent_hash).state)


def test_select_two_rows_pause_shows_pausing_then_paused(
    page: Page, versioned: tuple[TransferPair, ServerFactory]
) -> None:
    chosen, make_server = versioned
    first = chosen.add_transfer("first.bin", size=4 * MiB, rate=40 * KiB)
    second = chosen.add_transfer("second.bin", size=4 * MiB, rate=40 * KiB)
    other = chosen.add_transfer("untouched.bin", size=4 * MiB, rate=40 * KiB)
    server = make_server(heartbeat=15, env=OPEN)
    open_panel(page, server)
    for h in (first, second, other):
        expect(row(page, h).get_by_test_id("torrent-state")).to_have_text("Downloading", timeout=15_000)

    # Click first, shift-click the third: a range of three; then untick the third.
    page.get_by_test_id("sort-name").click()  # by name: first, second, untouched
    row(page, first).get_by_test_id("torrent-select").click()
    row(page, other).get_by_test_id("torrent-select").click(modifiers=["Shift"])
    expect(page.get_by_test_id("bulk-count")).to_have_text("3 selected")
    expect(row(page, second).get_by_test_id("torrent-select")).to_be_checked()
    row(page, other).get_by_test_id("torrent-select").click()
    expect(page.get_by_test_id("bulk-count")).to_have_text("2 selected")
    expect(row(page, other).get_by_test_id("torrent-select")).not_to_be_checked()
    page.get_by_test_id("bulk-pause").click()

    for h in (first, second):
        expect(row(page, h).get_by_test_id("torrent-state")).to_have_text("Paused", timeout=10_000)
        expect(row(page, h).get_by_test_id("torrent-action")).to_be_hidden()
        marks = action_marks(page, h)
        assert "Pausing…" in marks, marks
        assert marks[-1] == "", marks  # the mark went once the record said paused
        assert state_of(chosen, h) in PAUSED_STATES
    # The pending mark came before the paused state, never after it.
    log = page.evaluate("(h) => window.__actions.filter((a) => a.hash === h)", first)
    pausing = next(a["p"] for a in log if a["text"] == "Pausing…")
    paused = next(a["p"] for a in log if a["kind"] == "torrent-state" and a["text"] == "Paused")
    assert pausing < paused, log
    assert state_of(chosen, other) not in PAUSED_STATES
    expect(row(page, other).get_by_test_id("torrent-state")).not_to_have_text("Paused")

    # And back: resume from the selection bar.
    page.get_by_test_id("bulk-resume").click()
    for h in (first, second):
        expect(row(page, h).get_by_test_id("torrent-state")).not_to_have_text("Paused", timeout=10_000)
        assert "Resuming…" in action_marks(page, h)
    wait_for(
        lambda: all(state_of(chosen, h) not in PAUSED_STATES for h in (first, second)),
        10,
        "qBittorrent to resume both",
    )


def test_select_all_takes_the_rows_shown(
    page: Page, pair: TransferPair, make_server: Callable[..., ServerProcess]
) -> None:
    apple = pair.add_transfer("apple.bin", size=2 * MiB, rate=20 * KiB)
    pear = pair.add_transfer("pear.bin", size=2 * MiB, rate=20 * KiB)
    server = make_server(heartbeat=15, env=OPEN)
    open_panel(page, server)
    expect(page.get_by_test_id("torrent-row")).to_have_count(2, timeout=10_000)
    page.get_by_test_id("search").fill("apple")
    expect(page.get_by_test_id("torrent-row")).to_have_count(1)
    select_all = page.get_by_test_id("select-all")
    select_all.check()
    expect(page.get_by_test_id("bulk-count")).to_have_text("1 selected")
    page.get_by_test_id("search").fill("")
    expect(page.get_by_test_id("torrent-row")).to_have_count(2)
    expect(row(page, apple).get_by_test_id("torrent-select")).to_be_checked()
    expect(row(page, pear).get_by_test_id("torrent-select")).not_to_be_checked()
    assert select_all.evaluate("(el) => el.indeterminate") is True
    select_all.click()  # some shown are selected: now all of them
    expect(page.get_by_test_id("bulk-count")).to_have_text("2 selected")
    select_all.click()  # all selected: none
    expect(page.get_by_test_id("bulk-bar")).to_be_hidden()
    select_all.click()
    expect(page.get_by_test_id("bulk-count")).to_have_text("2 selected")
    page.keyboard.press("Escape")
    expect(page.get_by_test_id("bulk-bar")).to_be_hidden()


def torrent_file(pair: TransferPair, name: str, size: int = 256 * KiB) -> bytes:
    """A .torrent for a new payload on the seeder (the leecher gets only the .torrent)."""
    payload = make_payload(pair.seeder.downloads / ("add-" + secrets.token_hex(3)), name, size)
    return make_torrent(payload)


def test_add_torrent_by_drop(
    page: Page, pair: TransferPair, make_server: Callable[..., ServerProcess]
) -> None:
    server = make_server(heartbeat=15, env=OPEN)
    open_panel(page, server)
    data = torrent_file(pair, "dropped.bin")
    # Dropped on the page: the add dialog opens with the file in it.
    drop_files(page, "#dashboard", [("dropped.torrent", data)])
    dialog = page.get_by_test_id("add-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_test_id("add-file-item")).to_have_count(1)
    expect(dialog.get_by_test_id("add-file-item")).to_contain_text("dropped.torrent")
    # A second one dropped on the dialog's own drop zone joins it.
    second = torrent_file(pair, "dropped-too.bin")
    drop_files(page, "#add-drop", [("dropped-too.torrent", second)])
    expect(dialog.get_by_test_id("add-file-item")).to_have_count(2)
    dialog.get_by_test_id("add-submit").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_test_id("action-toast")).to_contain_text("Added 2 torrents")
    for name in ("dropped.bin", "dropped-too.bin"):
        expect(page.get_by_test_id("torrent-name").filter(has_text=name)).to_be_visible(timeout=10_000)
    names = {t.name for t in pair.leecher_client.torrents_info()}
    assert {"dropped.bin", "dropped-too.bin"} <= names


def test_add_torrent_through_the_file_picker_stopped_with_category_and_tags(
    page: Page, versioned: tuple[TransferPair, ServerFactory], tmp_path: Path
) -> None:
    pair, make_server = versioned  # 5.x adds "stopped", 4.5 "paused": both must show Paused
    pair.leecher_client.torrents_create_category(name="linux")
    server = make_server(heartbeat=15, env=OPEN)
    open_panel(page, server)
    path = tmp_path / "picked.torrent"
    path.write_bytes(torrent_file(pair, "picked.bin"))
    page.get_by_test_id("add-open").click()
    dialog = page.get_by_test_id("add-dialog")
    dialog.get_by_test_id("add-file").set_input_files(str(path))
    expect(dialog.get_by_test_id("add-file-item")).to_contain_text("picked.torrent")
    expect(dialog.get_by_test_id("add-category").locator("option[value=linux]")).to_have_count(1)
    dialog.get_by_test_id("add-category").select_option("linux")
    dialog.get_by_test_id("add-tags").fill("iso, test")
    dialog.get_by_test_id("add-stopped").check()
    dialog.get_by_test_id("add-submit").click()
    expect(dialog).to_be_hidden()
    added = page.get_by_test_id("torrent-row").filter(has_text="picked.bin")
    expect(added.get_by_test_id("torrent-state")).to_have_text("Paused", timeout=10_000)
    expect(added.get_by_test_id("torrent-meta")).to_have_text("linux · iso · test")
    (torrent,) = [t for t in pair.leecher_client.torrents_info() if t.name == "picked.bin"]
    assert torrent.category == "linux"
    assert set(torrent.tags.split(", ")) == {"iso", "test"}
    assert torrent.state in PAUSED_STATES


def test_add_refused_by_qbittorrent_keeps_the_dialog_open_with_the_reason(
    page: Page, pair: TransferPair, make_server: Callable[..., ServerProcess]
) -> None:
    server = make_server(heartbeat=15, env=OPEN)
    open_panel(page, server)
    page.get_by_test_id("add-open").click()
    dialog = page.get_by_test_id("add-dialog")
    drop_files(page, "#add-drop", [("broken.torrent", b"d4:infoi1ee")])
    dialog.get_by_test_id("add-submit").click()
    expect(dialog.get_by_test_id("add-error")).not_to_be_empty(timeout=10_000)
    expect(dialog).to_be_visible()
    assert pair.leecher_client.torrents_info() == []


def complete_transfer(pair: TransferPair, name: str) -> str:
    torrent_hash = pair.add_transfer(name, size=512 * KiB, rate=0)
    pair.wait_complete(torrent_hash)
    return torrent_hash


def test_delete_with_files_removes_them_from_disk(
    page: Page, versioned: tuple[TransferPair, ServerFactory]
) -> None:
    pair, make_server = versioned
    torrent_hash = complete_transfer(pair, "doomed.bin")
    on_disk = pair.download_path(torrent_hash)
    assert on_disk.is_file()
    server = make_server(heartbeat=15, env=OPEN)
    open_panel(page, server)
    r = row(page, torrent_hash)
    expect(r.get_by_test_id("torrent-state")).to_have_text("Seeding", timeout=10_000)
    r.get_by_test_id("torrent-menu").click()
    page.get_by_test_id("menu-delete").click()
    dialog = page.get_by_test_id("delete-dialog")
    expect(dialog).to_contain_text("doomed.bin")
    files_box = dialog.get_by_test_id("field-input-delete_files")
    expect(files_box).not_to_be_checked()  # unticked unless the person ticks it
    files_box.check()
    dialog.get_by_test_id("dialog-delete").click()
    expect(r).to_have_count(0, timeout=10_000)
    assert "Deleting…" in action_marks(page, torrent_hash)
    wait_for(lambda: not on_disk.exists(), 10, f"qBittorrent to delete {on_disk}")
    assert pair.leecher_client.torrents_info(torrent_hashes=torrent_hash) == []


def test_delete_keeps_files_unless_asked_and_cancel_changes_nothing(
    page: Page, pair: TransferPair, make_server: Callable[..., ServerProcess]
) -> None:
    torrent_hash = complete_transfer(pair, "kept.bin")
    on_disk = pair.download_path(torrent_hash)
    server = make_server(heartbeat=15, env=OPEN)
    open_panel(page, server)
    page.locator("#rows [data-testid=torrent-name]").first.click()  # the detail view
    expect(page.get_by_test_id("detail-name")).to_have_text("kept.bin", timeout=10_000)
    page.get_by_test_id("detail-delete").click()
    # The question starts on Cancel: Enter alone deletes nothing.
    expect(page.get_by_test_id("delete-dialog").get_by_test_id("dialog-cancel")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("delete-dialog")).to_have_count(0)
    assert pair.leecher_client.torrents_info(torrent_hashes=torrent_hash) != []
    page.get_by_test_id("detail-delete").click()
    page.get_by_test_id("delete-dialog").get_by_test_id("dialog-delete").click()
    expect(page.get_by_test_id("dashboard")).to_be_visible()
    expect(row(page, torrent_hash)).to_have_count(0, timeout=10_000)
    wait_for(lambda: pair.leecher_client.torrents_info(torrent_hashes=torrent_hash) == [], 10, "the delete")
    assert on_disk.is_file(), "the files were deleted although the box was not ticked"


def test_detail_view_pause_and_resume(
    page: Page, pair: TransferPair, make_server: Callable[..., ServerProcess]
) -> None:
    torrent_hash = pair.add_transfer("detailed.bin", size=4 * MiB, rate=40 * KiB)
    server = make_server(heartbeat=15, env=OPEN)
    page.goto(server.url + f"#/torrent/{torrent_hash}")
    wait_live(page)
    expect(page.get_by_test_id("detail-state")).to_have_text("Downloading", timeout=10_000)
    toggle = page.get_by_test_id("detail-toggle")
    expect(toggle).to_have_text("Pause")
    toggle.click()
    expect(page.get_by_test_id("detail-state")).to_have_text("Paused", timeout=10_000)
    expect(page.get_by_test_id("detail-action")).to_be_hidden()
    assert "Pausing…" in action_marks(page, torrent_hash, "detail-action")
    assert state_of(pair, torrent_hash) in PAUSED_STATES
    expect(toggle).to_have_text("Resume")
    toggle.click()
    expect(page.get_by_test_id("detail-state")).not_to_have_text("Paused", timeout=10_000)
    assert "Resuming…" in action_marks(page, torrent_hash, "detail-action")


def test_category_and_tags_editors_offer_the_instance_own(
    page: Page, pair: TransferPair, make_server: Callable[..., ServerProcess]
) -> None:
    client = pair.leecher_client
    client.torrents_create_category(name="movies")
    client.torrents_create_tags(tags=["keep"])
    torrent_hash = pair.add_transfer("labelled.bin", size=2 * MiB, rate=20 * KiB)
    server = make_server(heartbeat=15, env=OPEN)
    open_panel(page, server)
    r = row(page, torrent_hash)
    r.get_by_test_id("torrent-menu").click()
    page.get_by_test_id("menu-category").click()
    dialog = page.get_by_test_id("category-dialog")
    expect(dialog.locator("datalist option[value=movies]")).to_have_count(1)
    dialog.get_by_test_id("field-input-category").fill("movies")
    dialog.get_by_test_id("dialog-set").press("Enter")
    expect(r.get_by_test_id("torrent-meta")).to_have_text("movies", timeout=10_000)
    assert qbt_torrent(pair, torrent_hash).category == "movies"

    # A new category is created on the way.
    r.get_by_test_id("torrent-menu").click()
    page.get_by_test_id("menu-category").click()
    page.get_by_test_id("category-dialog").get_by_test_id("field-input-category").fill("fresh")
    page.get_by_test_id("category-dialog").get_by_test_id("dialog-set").click()
    expect(r.get_by_test_id("torrent-meta")).to_have_text("fresh", timeout=10_000)
    assert "fresh" in client.torrents_categories()

    r.get_by_test_id("torrent-menu").click()
    page.get_by_test_id("menu-tags").click()
    dialog = page.get_by_test_id("tags-dialog")
    expect(dialog.locator("datalist option[value=keep]")).to_have_count(1)
    dialog.get_by_test_id("field-input-tags").fill("keep, new")
    dialog.get_by_test_id("dialog-add").click()
    expect(r.get_by_test_id("torrent-meta")).to_have_text("fresh · keep · new", timeout=10_000)
    r.get_by_test_id("torrent-menu").click()
    page.get_by_test_id("menu-tags").click()
    page.get_by_test_id("tags-dialog").get_by_test_id("field-input-tags").fill("keep")
    page.get_by_test_id("tags-dialog").get_by_test_id("dialog-remove").click()
    expect(r.get_by_test_id("torrent-meta")).to_have_text("fresh · new", timeout=10_000)
    assert qbt_torrent(pair, torrent_hash).tags == "new"


def test_refused_action_shows_failed_on_the_row(
    page: Page, pair: TransferPair, make_server: Callable[..., ServerProcess]
) -> None:
    """Queueing is off in the lab's qBittorrent: it refuses "queue top", and the row says so."""
    torrent_hash = pair.add_transfer("refused.bin", size=2 * MiB, rate=20 * KiB)
    server = make_server(heartbeat=15, env=OPEN)
    open_panel(page, server)
    r = row(page, torrent_hash)
    r.get_by_test_id("torrent-menu").click()
    page.get_by_test_id("menu-queue_top").click()
    mark = r.get_by_test_id("torrent-action")
    expect(mark).to_have_text("Queue top failed", timeout=10_000)
    expect(mark).to_have_attribute("data-state", "failed")
    assert mark.get_attribute("title"), "the reason is not shown"
    expect(page.get_by_test_id("action-toast").filter(has_text="Queue top failed")).to_be_visible()
    mark.click()  # dismissed
    expect(mark).to_be_hidden()


def alt_on(client: Any) -> bool:
    """qBittorrent's alternative speed limits are on (the Web API answers "1" or "0")."""
    return str(client.transfer_speed_limits_mode()) == "1"


def test_alt_speed_toggle_follows_qbittorrent(
    page: Page, pair: TransferPair, make_server: Callable[..., ServerProcess]
) -> None:
    client = pair.leecher_client
    if alt_on(client):
        client.transfer_toggle_speed_limits_mode()
    server = make_server(heartbeat=15, env=OPEN)
    open_panel(page, server)
    toggle = page.get_by_test_id("alt-speed")
    expect(toggle).to_have_attribute("aria-pressed", "false", timeout=10_000)
    try:
        toggle.click()
        expect(toggle).to_have_attribute("aria-pressed", "true")
        expect(toggle).to_have_attribute("data-pending", "false", timeout=10_000)
        wait_for(lambda: alt_on(client), 10, "qBittorrent to turn alt speed on")
        toggle.click()
        expect(toggle).to_have_attribute("data-pending", "false", timeout=10_000)
        expect(toggle).to_have_attribute("aria-pressed", "false")
        wait_for(lambda: not alt_on(client), 10, "qBittorrent to turn alt speed off")
    finally:
        if alt_on(client):
            client.transfer_toggle_speed_limits_mode()


def test_another_viewer_sees_the_action(
    context: BrowserContext, pair: TransferPair, make_server: Callable[..., ServerProcess]
) -> None:
    torrent_hash = pair.add_transfer("shared.bin", size=4 * MiB, rate=40 * KiB)
    server = make_server(heartbeat=15, env=OPEN)
    actor, watcher = context.new_page(), context.new_page()
    for p in (actor, watcher):
        open_panel(p, server)
        expect(row(p, torrent_hash).get_by_test_id("torrent-state")).to_have_text(
            "Downloading", timeout=10_000
        )
    ids = {p.evaluate("() => window.quartDlActions.clientId") for p in (actor, watcher)}
    assert len(ids) == 2, "two tabs share a client id"
    row(actor, torrent_hash).get_by_test_id("torrent-toggle").click()
    expect(watcher.get_by_test_id("action-toast")).to_contain_text("Another viewer: Pause", timeout=10_000)
    expect(watcher.get_by_test_id("action-toast")).to_contain_text("shared.bin")
    expect(row(watcher, torrent_hash).get_by_test_id("torrent-state")).to_have_text("Paused", timeout=10_000)
    expect(actor.get_by_test_id("action-toast")).to_have_count(0)  # its own action: no toast


def test_phone_width_pause_and_resume_with_the_keyboard(
    page: Page, pair: TransferPair, make_server: Callable[..., ServerProcess], artifacts: Path
) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    torrent_hash = pair.add_transfer("phone.bin", size=4 * MiB, rate=40 * KiB)
    server = make_server(heartbeat=15, env=OPEN)
    open_panel(page, server)
    r = row(page, torrent_hash)
    expect(r.get_by_test_id("torrent-state")).to_have_text("Downloading", timeout=10_000)
    for test_id in ("torrent-select", "torrent-toggle", "torrent-menu", "add-open"):
        box = page.get_by_test_id(test_id).first.bounding_box()
        assert box is not None, test_id
        assert box["x"] >= 0, (test_id, box)
        assert box["x"] + box["width"] <= 390, (test_id, box)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390

    r.get_by_test_id("torrent-toggle").focus()
    page.keyboard.press("Enter")
    expect(r.get_by_test_id("torrent-state")).to_have_text("Paused", timeout=10_000)
    assert "Pausing…" in action_marks(page, torrent_hash)
    # The focus stayed on the button (now "Resume"), so the keyboard carries on from there.
    expect(r.get_by_test_id("torrent-toggle")).to_be_focused()
    expect(r.get_by_test_id("torrent-toggle")).to_have_attribute("aria-label", "Resume")

    # The menu, by keyboard: Tab to "More actions", Enter, the first item is Pause, down to Resume.
    page.keyboard.press("Tab")
    expect(r.get_by_test_id("torrent-menu")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("menu-pause")).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(page.get_by_test_id("menu-resume")).to_be_focused()
    page.keyboard.press("Enter")
    expect(r.get_by_test_id("torrent-state")).not_to_have_text("Paused", timeout=10_000)

    # Select with Space, and the bar fits the phone.
    r.get_by_test_id("torrent-select").focus()
    page.keyboard.press("Space")
    bar = page.get_by_test_id("bulk-bar")
    expect(bar).to_be_visible()
    box = bar.bounding_box()
    assert box is not None
    assert box["x"] + box["width"] <= 390, box
    page.screenshot(path=artifacts / "actions-phone.png")


def test_read_only_access_hides_the_controls(
    page: Page, pair: TransferPair, make_server: Callable[..., ServerProcess]
) -> None:
    torrent_hash = pair.add_transfer("readonly.bin", size=2 * MiB, rate=20 * KiB)
    server = make_server(
        heartbeat=15, env={"QUART_DL_ACCESS_TOKEN": TOKEN, "QUART_DL_READ_TOKEN": READ_TOKEN}
    )
    # The full token: the controls are there (so the check below can fail).
    open_panel(page, server, f"?token={TOKEN}")
    expect(row(page, torrent_hash)).to_be_visible(timeout=10_000)
    expect(page.get_by_test_id("torrent-toggle")).to_be_visible()
    assert set(visible_action_controls(page)) >= {
        "add-open",
        "torrent-select",
        "torrent-toggle",
        "torrent-menu",
    }

    # The read-only token (Home Assistant's sidebar): the rows, and no control at all.
    page.context.clear_cookies()
    open_panel(page, server, f"?token={READ_TOKEN}")
    expect(row(page, torrent_hash)).to_be_visible(timeout=10_000)
    page.wait_for_function("() => document.body.dataset.act === 'false'")
    assert visible_action_controls(page) == []
    row(page, torrent_hash).get_by_test_id("torrent-name").click()
    expect(page.get_by_test_id("detail-name")).to_have_text("readonly.bin", timeout=10_000)
    assert visible_action_controls(page) == []


def test_lan_open_mode_is_read_only_by_default(
    page: Page, pair: TransferPair, make_server: Callable[..., ServerProcess]
) -> None:
    torrent_hash = pair.add_transfer("lan.bin", size=2 * MiB, rate=20 * KiB)
    server = make_server(heartbeat=15)
    open_panel(page, server)
    expect(row(page, torrent_hash)).to_be_visible(timeout=10_000)
    page.wait_for_function("() => document.body.dataset.act === 'false'")
    assert visible_action_controls(page) == []
