"""Behind nginx, and embedded the way Home Assistant shows the panel.

nginx closes an upstream connection that sends nothing for ``proxy_read_timeout``: only
heartbeats more frequent than that keep a quiet stream open. The control runs show the
same setups failing when quart-dl's protection is missing, so a pass means something.

Measured on Debian's nginx 1.22: with default buffering (``proxy_buffering on``) and no
compression, nginx passes each small chunk on as it arrives whether or not it honours
``X-Accel-Buffering: no`` (ignoring the header changes nothing there). Where the header
does matter is a compressing nginx: see the parametrized test below, whose control shows
a buffered, gzipped stream held back until it ends.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from nginx import Nginx, proxy_location
from panel_driver import (
    KiB,
    MiB,
    debug,
    recorded,
    recorded_states,
    rises,
    row_progress,
    sample_for,
    wait_live,
)
from playwright.sync_api import Page, expect

from quart_dl.lab.server_process import ServerProcess
from quart_dl.lab.transfer import TransferPair
from quart_dl.lab.wait import wait_for

# Home Assistant's iframe panel sandbox (frontend src/util/iframe.ts).
HA_SANDBOX = (
    "allow-forms allow-popups allow-pointer-lock allow-same-origin allow-scripts allow-modals allow-downloads"
)


def proxied(
    make_nginx: Callable[..., Nginx], port: Callable[[], int], server: ServerProcess, extra: str = ""
) -> tuple[Nginx, str]:
    """nginx on a port of its own, proxying everything to ``server`` with a 5 s read timeout."""
    listen = port()
    location = proxy_location("/", server.port, read_timeout="5s", extra=extra)
    proxy = make_nginx([f"server {{ listen 127.0.0.1:{listen}; {location} }}"], [listen])
    return proxy, f"http://127.0.0.1:{listen}/"


def assert_one_live_stream(samples: list[dict[str, object]], final: dict[str, object]) -> None:
    not_live = [s for s in samples if s["state"] != "live"]
    assert not not_live, f"the panel left Live: {not_live[:3]}"
    assert all(s["eventSources"] == 1 for s in samples), [s["eventSources"] for s in samples]
    assert final["opened"] == 1, f"the panel opened {final['opened']} streams"
    assert final["reconnects"] == 0, final
    assert final["attempts"] == 0, final


def test_behind_nginx_heartbeat_below_read_timeout_keeps_one_live_stream(
    page: Page,
    pair: TransferPair,
    make_server: Callable[..., ServerProcess],
    make_nginx: Callable[..., Nginx],
    port: Callable[[], int],
) -> None:
    server = make_server(heartbeat=2)
    proxy, url = proxied(make_nginx, port, server)
    page.goto(url)
    wait_live(page)
    # 15 s with nothing to report (no torrents): only heartbeats carry the stream through
    # three of nginx's 5 s read timeouts.
    quiet = sample_for(page, 15.0)
    assert quiet[-1]["heartbeats"] >= 5, f"only {quiet[-1]['heartbeats']} heartbeats in 15 quiet seconds"
    # Then a transfer, added from another thread so the sampling goes on: progress must
    # arrive through the proxy as it happens.
    with ThreadPoolExecutor(1) as pool:
        adding = pool.submit(pair.add_transfer, "proxied.bin", size=2 * MiB, rate=200 * KiB)
        busy = sample_for(page, 15.0)
        torrent_hash = adding.result(timeout=30)
    samples = quiet + busy
    assert samples[-1]["at"] - samples[0]["at"] >= 30
    wait_for(lambda: rises(recorded(page, torrent_hash)) >= 3, 10, "progress to rise 3 times through nginx")
    row = page.locator(f'[data-testid=torrent-row][data-hash="{torrent_hash}"]')
    expect(row.get_by_test_id("torrent-state")).to_have_text("Seeding", timeout=15_000)
    final = debug(page)
    assert_one_live_stream(samples, final)
    states = recorded_states(page)
    assert states[states.index("live") :] == ["live"], states
    assert server.status()["clients"] == 1
    assert "upstream timed out" not in proxy.error_text()


def test_behind_nginx_heartbeat_above_read_timeout_drops_the_stream(
    page: Page,
    make_server: Callable[..., ServerProcess],
    make_nginx: Callable[..., Nginx],
    port: Callable[[], int],
) -> None:
    """Control: the production heartbeat (15 s) behind a 5 s read timeout is cut."""
    server = make_server(heartbeat=15)
    proxy, url = proxied(make_nginx, port, server)
    page.goto(url)
    wait_live(page)
    page.wait_for_function(
        "() => window.quartDl.reconnects > 0 || window.quartDl.attempts > 0 || window.quartDl.opened > 1",
        timeout=30_000,
    )
    assert "reconnecting" in recorded_states(page)
    wait_for(lambda: "upstream timed out" in proxy.error_text(), 5, "nginx to log the timeout")


# nginx with gzip on for event streams, as some setups have it (Home Assistant's ingress
# compressed them until 2026). A compressed, buffered stream is held back until it ends.
# Either of quart-dl's headers alone keeps it flowing: ``Content-Encoding: identity`` makes
# nginx skip compression, ``X-Accel-Buffering: no`` makes it flush every chunk. The control
# takes both away from nginx (hidden / ignored) and must see the panel starve.
GZIP = "gzip on; gzip_types text/event-stream application/json; gzip_min_length 1;"
IGNORE_ACCEL = "proxy_ignore_headers X-Accel-Buffering;"
HIDE_IDENTITY = "proxy_hide_header Content-Encoding;"


@pytest.mark.parametrize(
    ("extra", "flows"),
    [
        pytest.param(IGNORE_ACCEL, True, id="identity-encoding-alone"),
        pytest.param(HIDE_IDENTITY, True, id="x-accel-buffering-alone"),
        pytest.param(IGNORE_ACCEL + " " + HIDE_IDENTITY, False, id="control-neither"),
    ],
)
def test_behind_compressing_nginx_events_are_not_held_back(
    page: Page,
    make_server: Callable[..., ServerProcess],
    make_nginx: Callable[..., Nginx],
    port: Callable[[], int],
    extra: str,
    flows: bool,
) -> None:
    server = make_server(heartbeat=2)
    _, url = proxied(make_nginx, port, server, extra=f"{GZIP} {extra}")
    page.goto(url)
    if flows:
        wait_live(page, timeout=10)
        page.wait_for_function("() => window.quartDl.heartbeats >= 2", timeout=10_000)
        assert debug(page)["opened"] == 1
    else:
        samples = sample_for(page, 8.0)
        assert all(s["state"] != "live" for s in samples), "a compressed, buffered stream went live"
        assert samples[-1]["heartbeats"] == 0


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


def test_embedded_under_a_path_prefix_in_another_origin_goes_live(
    page: Page,
    pair: TransferPair,
    make_server: Callable[..., ServerProcess],
    make_nginx: Callable[..., Nginx],
    port: Callable[[], int],
    tmp_path: Path,
) -> None:
    """Home Assistant's sidebar: an iframe (sandboxed like HA's) on a page of another site,
    pointing at quart-dl under a path prefix behind a proxy."""
    server = make_server(heartbeat=15)
    proxy_port, host_port = port(), port()
    panel_url = f"http://127.0.0.1:{proxy_port}/quart-dl/"
    host = tmp_path / "host"
    host.mkdir()
    (host / "index.html").write_text(
        "<!doctype html><title>Home</title><h1>Home</h1>"
        f'<iframe id="panel" src="{panel_url}" sandbox="{HA_SANDBOX}" allow="fullscreen"'
        ' style="width:100%;height:600px;border:0"></iframe>'
    )
    listen6 = f"listen [::1]:{host_port};" if _ipv6_loopback() else ""
    make_nginx(
        [
            f"server {{ listen 127.0.0.1:{proxy_port}; "
            f"{proxy_location('/quart-dl/', server.port, read_timeout='60s')} }}",
            f"server {{ listen 127.0.0.1:{host_port}; {listen6} root {host}; }}",
        ],
        [proxy_port, host_port],
    )
    streams: list[str] = []
    page.on("request", lambda r: streams.append(r.url) if "/events" in r.url else None)
    # "localhost" and "127.0.0.1" are different sites: the panel is a cross-site frame.
    page.goto(f"http://localhost:{host_port}/")
    frame = wait_for(
        lambda: next((f for f in page.frames if f.url.startswith(panel_url)), None), 10, "the panel's frame"
    )
    wait_live(frame)
    torrent_hash = pair.add_transfer("embedded.bin", size=2 * MiB, rate=200 * KiB)
    row = page.frame_locator("#panel").locator(f'[data-testid=torrent-row][data-hash="{torrent_hash}"]')
    expect(row.get_by_test_id("torrent-name")).to_have_text("embedded.bin", timeout=10_000)
    wait_for(lambda: rises(recorded(frame, torrent_hash)) >= 3, 30, "progress to rise 3 times in the frame")
    assert (row_progress(frame, torrent_hash) or 0) > 0
    # One stream, the panel's protocol 2 one, under the prefix (no reconnect loop).
    assert streams == [panel_url + "api/events?v=2&heartbeat=event"], streams
    state = debug(frame)
    assert state["state"] == "live", state
    assert state["opened"] == 1, state


def alt_on(pair: TransferPair) -> bool:
    """qBittorrent's alternative speed limits are on (the Web API answers "1" or "0")."""
    return str(pair.leecher_client.transfer_speed_limits_mode()) == "1"


def test_actions_from_the_panel_behind_nginx_on_its_own_port(
    page: Page,
    pair: TransferPair,
    make_server: Callable[..., ServerProcess],
    make_nginx: Callable[..., Nginx],
    port: Callable[[], int],
) -> None:
    """The README's nginx settings pass the panel's actions through: the same-origin check
    compares the page's Origin (with the proxy's port) to the Host nginx forwards, so
    ``Host $host`` (no port) made every action from the panel a 403 ``cross_site``."""
    if alt_on(pair):
        pair.leecher_client.transfer_toggle_speed_limits_mode()
    server = make_server(heartbeat=15, env={"QUART_DL_OPEN_ACTIONS": "true"})
    extra = "proxy_set_header X-Forwarded-Proto $scheme;"
    _proxy, url = proxied(make_nginx, port, server, extra=extra)
    page.goto(url)
    wait_live(page)
    toggle = page.get_by_test_id("alt-speed")
    expect(toggle).to_have_attribute("aria-pressed", "false", timeout=10_000)
    try:
        toggle.click()
        wait_for(lambda: alt_on(pair), 10, "qBittorrent to turn alt speed on through nginx")
        expect(toggle).to_have_attribute("aria-pressed", "true", timeout=10_000)
        expect(toggle).to_have_attribute("data-pending", "false", timeout=10_000)
    finally:
        if alt_on(pair):
            pair.leecher_client.transfer_toggle_speed_limits_mode()
