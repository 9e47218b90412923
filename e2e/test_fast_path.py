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
from panel_driver import debug, sample_for, wait_live
from playwright.sync_api import Page

from quart_dl.lab.server_process import ServerProcess
from quart_dl.lab.wait import wait_for

LOADS = 8


def metric(server: ServerProcess, name: str, carrier: str) -> float:
    with urllib.request.urlopen(server.url + "metrics", timeout=5) as reply:
        text = reply.read().decode()
    found = re.search(rf'^quart_dl_{name}{{carrier="{carrier}"}} (\S+)$', text, re.M)
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
