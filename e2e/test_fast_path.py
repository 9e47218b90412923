"""Chromium's EventSource on a reused keep-alive connection gets the socket layer's fast path.

Chromium opens the panel on a few connections and often gives the dashboard's EventSource
one that has just served a module (``connectionReused`` in the DevTools protocol): before
issue #12 such a stream took Quart's slower path. ``/metrics`` says which carrier holds it.
"""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from nginx import Nginx, keepalive_upstream, proxy_location
from panel_driver import debug, sample_for, wait_live
from playwright.sync_api import Page

from quart_dl.lab.server_process import ServerProcess
from quart_dl.lab.wait import wait_for

LOADS = 8


def metric(server: ServerProcess, name: str, carrier: str | None = None) -> float:
    """One sample of the server's ``/metrics`` (read directly, not through a proxy)."""
    with urllib.request.urlopen(server.url + "metrics", timeout=5) as reply:
        text = reply.read().decode()
    labels = re.escape(f'{{carrier="{carrier}"}}') if carrier else ""
    found = re.search(rf"^quart_dl_{name}{labels} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def test_regression_chromiums_eventsource_on_a_reused_connection_took_the_slow_path(
    page: Page, make_server: Callable[..., ServerProcess]
) -> None:
    server = make_server(heartbeat=5)
    responses: list[dict[str, Any]] = []
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.on("Network.responseReceived", lambda params: responses.append(params["response"]))
    stream: dict[str, Any] | None = None
    for _ in range(LOADS):  # which connection the stream gets depends on timing
        responses.clear()
        page.goto(server.url)
        wait_live(page)
        wait_for(lambda: server.status()["clients"] == 1, 5, "the previous page's stream to close")
        streams = [r for r in responses if "/api/events" in r["url"]]
        assert len(streams) == 1, [r["url"] for r in responses]
        if streams[0]["connectionReused"]:
            stream = streams[0]
            break
    if stream is None:
        pytest.fail(f"Chromium never reused a connection for the stream in {LOADS} page loads")
    earlier = [r["url"] for r in responses if r["connectionId"] == stream["connectionId"] and r is not stream]
    assert earlier, "the stream's connection served nothing before it"
    assert metric(server, "sse_streams", "socket") == 1
    assert metric(server, "sse_streams", "quart") == 0
    assert metric(server, "sse_streams_opened_total", "quart") == 0
    # And it stays live past 15 s, heartbeats arriving (every 5 s here).
    samples = sample_for(page, 16.0)
    assert all(s["state"] == "live" for s in samples), [s["state"] for s in samples if s["state"] != "live"][
        :3
    ]
    assert samples[-1]["at"] - samples[0]["at"] >= 16.0
    final = debug(page)
    assert final["opened"] == 1, final
    assert final["reconnects"] == 0, final
    assert final["heartbeats"] >= 2, final
    assert metric(server, "sse_streams", "socket") == 1
    assert server.status()["clients"] == 1


def test_the_panel_behind_nginx_with_an_upstream_keepalive_pool_gets_the_fast_path(
    page: Page,
    make_server: Callable[..., ServerProcess],
    make_nginx: Callable[..., Nginx],
    port: Callable[[], int],
) -> None:
    """An upstream ``keepalive`` pool, the usual advice for nginx, sends the panel's stream on
    an upstream connection that has just served the panel's files: the socket layer takes it
    back from Hypercorn (issue #12) rather than leaving it to Quart's path. (Without the pool,
    nginx opens a new upstream connection per request and nothing is taken back.)"""
    server = make_server(heartbeat=5)
    listen = port()
    location = proxy_location("/", "quart_dl", read_timeout="60s")
    make_nginx(
        [keepalive_upstream("quart_dl", server.port), f"server {{ listen 127.0.0.1:{listen}; {location} }}"],
        [listen],
    )
    page.goto(f"http://127.0.0.1:{listen}/")
    wait_live(page)
    assert metric(server, "connections_taken_back_total") >= 1
    assert metric(server, "sse_streams", "socket") == 1
    assert metric(server, "sse_streams", "quart") == 0
    assert metric(server, "sse_streams_opened_total", "quart") == 0
    assert server.status()["clients"] == 1
