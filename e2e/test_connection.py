"""The bug that started quart-dl: SSE clients dropped every 1–2 s, the browser reconnecting
in a loop. With the production heartbeat (15 s) one stream must simply stay open."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from panel_driver import debug, recorded_states, sample_for, wait_live
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page

from quart_dl.lab.server_process import ServerProcess


def test_panel_stays_live_past_15_s_on_one_stream_with_production_heartbeat(
    page: Page, make_server: Callable[..., ServerProcess]
) -> None:
    server = make_server(heartbeat=15)
    page.goto(server.url)
    wait_live(page)
    # The wait is the test: sample the state every 0.5 s for 20 s.
    samples = sample_for(page, 20.0)
    not_live = [s for s in samples if s["state"] != "live"]
    assert not not_live, f"the panel left Live: {not_live[:3]}"
    assert samples[-1]["at"] - samples[0]["at"] >= 20.0
    assert all(s["eventSources"] == 1 for s in samples), [s["eventSources"] for s in samples]
    assert samples[-1]["opened"] == 1, f"the panel opened {samples[-1]['opened']} streams"
    assert samples[-1]["reconnects"] == 0, samples[-1]
    assert samples[-1]["attempts"] == 0, samples[-1]
    assert server.status()["clients"] == 1
    # A heartbeat is due 15 s after the snapshot; allow for it to land just after the 20 s.
    try:
        page.wait_for_function("() => window.quartDl.heartbeats >= 1", timeout=10_000)
    except PlaywrightError:
        pytest.fail(f"no heartbeat reached the page in 30 s of silence: {debug(page)}")
    final = debug(page)
    assert final["opened"] == 1, final
    assert final["state"] == "live", final
    # Every state the indicator ever showed: connecting, then live, never anything after.
    states = recorded_states(page)
    assert "live" in states, states
    assert states[states.index("live") :] == ["live"], states
    assert server.status()["clients"] == 1
