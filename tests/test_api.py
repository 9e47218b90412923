"""REST routes over the real app (``create_app`` with a FakeSession, in-memory SQLite)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fakes import (
    H1,
    H2,
    H3,
    UNKNOWN_HASH,
    RunningApp,
    full_update,
    partial_update,
    raw_torrent,
    running_app,
    seeding_torrent,
)

from quart_dl import __version__
from quart_dl.lab.wait import wait_for_async
from quart_dl.qbittorrent.client import Unreachable
from quart_dl.qbittorrent.fake import FakeSession

SERVER_STATE = {
    "dl_info_speed": 204_800,
    "up_info_speed": 1024,
    "dl_info_data": 650_117,
    "up_info_data": 4096,
}

TORRENTS = {
    H1: raw_torrent("Ubuntu.iso", added_on=300, eta=50, dlspeed=1000),
    H2: seeding_torrent("arch.iso", added_on=100, upspeed=2000),
    H3: raw_torrent(
        "debian.iso", added_on=200, state="stalledDL", progress=0.5, eta=500, tags="b,a", dlspeed=0
    ),
}


@pytest.fixture
async def served() -> AsyncIterator[RunningApp]:
    qbt = FakeSession([full_update(TORRENTS, SERVER_STATE)])
    async with running_app(qbt) as running:
        await wait_for_async(lambda: len(running.runtime.hub.torrents) == 3, what="the torrents")
        yield running


async def get_json(served: RunningApp, path: str, status: int = 200) -> Any:
    response = await served.client.get(path)
    assert response.status_code == status, await response.get_data(as_text=True)
    assert response.content_type == "application/json"
    return await response.get_json()


def hashes(body: dict[str, Any]) -> list[str]:
    return [t["hash"] for t in body["torrents"]]


# -- /api/torrents -----------------------------------------------------------------------------


async def test_list_defaults_to_added_at_ascending(served: RunningApp) -> None:
    body = await get_json(served, "/api/torrents")
    assert hashes(body) == [H2, H3, H1]
    assert body["count"] == 3
    assert body["event_id"] == served.runtime.hub.last_event_id
    assert body["event_id"].startswith(served.runtime.hub.epoch + "-")
    record = body["torrents"][1]
    assert record["name"] == "debian.iso"
    assert record["phase"] == "stalled"
    assert record["tags"] == ["b", "a"]
    assert list(record) == [*served.runtime.hub.torrents[H3], "instance"]
    assert record["instance"] == "default"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("sort=name", [H2, H3, H1]),  # case-insensitive: arch, debian, Ubuntu
        ("sort=name&order=desc", [H1, H3, H2]),
        ("sort=progress&order=desc", [H2, H3, H1]),
        ("sort=added_at&order=desc", [H1, H3, H2]),
        ("sort=dl_speed", [H2, H3, H1]),
        ("sort=eta", [H1, H3, H2]),  # unknown ETA last
        ("phase=seeding", [H2]),
        ("phase=downloading,stalled", [H3, H1]),
        ("phase=%20downloading%20,", [H1]),
        ("phase=paused", []),
        ("phase=stalled&sort=name&order=desc", [H3]),
    ],
)
async def test_list_filters_and_sorts(served: RunningApp, query: str, expected: list[str]) -> None:
    body = await get_json(served, f"/api/torrents?{query}")
    assert hashes(body) == expected
    assert body["count"] == len(expected)


async def test_regression_sort_descending_puts_none_first(served: RunningApp) -> None:
    # _sort_key puts None last ("Sort None last") but reverse=True flips it: sorting by ETA,
    # longest first, showed the torrents with no ETA at all at the top.
    body = await get_json(served, "/api/torrents?sort=eta&order=desc")
    assert hashes(body) == [H3, H1, H2]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("phase=bogus", "phase"),
        ("phase=seeding,Seeding", "phase"),
        ("sort=password", "sort"),
        ("sort=", "sort"),
        ("sort=" + "x" * 5000, "sort"),
        ("order=up", "order"),
        ("order=", "order"),
    ],
)
async def test_list_bad_parameter_is_a_400_naming_it(served: RunningApp, query: str, field: str) -> None:
    body = await get_json(served, f"/api/torrents?{query}", status=400)
    assert body["error"] == "invalid_parameter"
    assert body["field"] == field
    assert isinstance(body["message"], str)
    assert body["message"]


async def test_a_request_when_idle_gets_fresh_data() -> None:
    # Nobody streams: the poller idles (30 s). A REST request asks for a poll and waits for it.
    qbt = FakeSession([full_update({H1: raw_torrent()})])
    async with running_app(qbt, poll_interval=0.1, idle_poll_interval=30) as served:
        await wait_for_async(lambda: H1 in served.runtime.hub.torrents, what="the first poll")
        qbt.script(partial_update({H1: {"progress": 0.9}}))
        last = served.runtime.default.poller.last_success
        assert last is not None
        await wait_for_async(lambda: time.monotonic() - last > 0.15, what="the view to be older than 0.1 s")
        body = await get_json(served, f"/api/torrents/{H1}")
        assert body["progress"] == 0.9
        assert qbt.count("maindata") == 2


# -- /api/torrents/<hash> ----------------------------------------------------------------------


async def test_one_torrent(served: RunningApp) -> None:
    body = await get_json(served, f"/api/torrents/{H2}")
    assert body == {**served.runtime.hub.torrents[H2], "instance": "default"}
    assert body["complete"] is True
    assert body["eta"] is None
    assert await get_json(served, f"/api/torrents/{H2.upper()}") == body


@pytest.mark.parametrize("bad", ["zz", "5a1b", H1 + "0", H1[:-1] + "g", "x" * 5000, "%00"])
async def test_one_torrent_bad_hash_is_a_400(served: RunningApp, bad: str) -> None:
    body = await get_json(served, f"/api/torrents/{bad}", status=400)
    assert body["error"] == "invalid_hash"
    assert body["field"] == "hash"


async def test_one_torrent_unknown_is_a_404(served: RunningApp) -> None:
    body = await get_json(served, f"/api/torrents/{UNKNOWN_HASH}", status=404)
    assert body["error"] == "not_found"
    assert UNKNOWN_HASH in body["message"]


async def test_v2_hash_is_accepted(served: RunningApp) -> None:
    body = await get_json(served, f"/api/torrents/{'a' * 64}", status=404)
    assert body["error"] == "not_found"


# -- /api/status -------------------------------------------------------------------------------


async def test_status(served: RunningApp) -> None:
    body = await get_json(served, "/api/status")
    hub = served.runtime.hub
    assert body["status"]["qbittorrent"] == "connected"
    assert body["status"]["version"] == "v4.5.2"
    assert body["status"]["message"] is None
    assert isinstance(body["status"]["last_poll"], float)
    # speeds: the sum of the torrents' own; totals: qBittorrent's server_state
    assert body["transfer"] == {
        **{"dl_speed": 1000, "up_speed": 2000, "dl_total": 650_117, "up_total": 4096},
        **{"alt_speed": False, "dl_limit": 0, "up_limit": 0},
    }
    assert body["poller"]["interval"] == 30.0  # nobody streams
    assert body["poller"]["errors"] == 0
    assert body["poller"]["last_error"] is None
    assert body["database"] == {"ok": True, "last_error": None}
    assert body["clients"] == 0
    assert body["event_id"] == hub.last_event_id
    assert body["epoch"] == hub.epoch
    assert body["heartbeat"] == 15.0
    assert body["version"] == __version__
    assert body["protocol"] == 1


async def test_status_when_qbittorrent_is_unreachable() -> None:
    qbt = FakeSession()
    qbt.failure = Unreachable("cannot reach qBittorrent at http://127.0.0.1:8080 (connection refused)")
    async with running_app(qbt) as served:
        body = await get_json(served, "/api/status")
        assert body["status"]["qbittorrent"] == "unreachable"
        assert "connection refused" in body["status"]["message"]
        assert body["poller"]["errors"] >= 1
        assert body["poller"]["last_error"] == "unreachable"
        # and the torrent list answers at once from what is known (no wait for a poll)
        assert (await get_json(served, "/api/torrents"))["count"] == 0


# -- /api/history ------------------------------------------------------------------------------


async def test_history(served: RunningApp) -> None:
    body = await get_json(served, "/api/history")
    # global samples: the sum of the torrents' speeds
    assert [(s["dl_speed"], s["up_speed"]) for s in body["samples"]] == [(1000, 2000)]
    assert isinstance(body["samples"][0]["t"], float)
    one = await get_json(served, f"/api/history?minutes=5&hash={H1.upper()}")
    assert [(s["dl_speed"], s["up_speed"]) for s in one["samples"]] == [(1000, 0)]
    assert (await get_json(served, f"/api/history?hash={H3}"))["samples"] == []  # idle torrent


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("minutes=abc", "minutes"),
        ("minutes=0", "minutes"),
        ("minutes=-5", "minutes"),
        ("minutes=nan", "minutes"),
        ("minutes=inf", "minutes"),
        ("minutes=1e400", "minutes"),
        ("minutes=525601", "minutes"),
        ("hash=xyz", "hash"),
        ("hash=", "hash"),
    ],
)
async def test_history_bad_parameter_is_a_400_naming_it(served: RunningApp, query: str, field: str) -> None:
    body = await get_json(served, f"/api/history?{query}", status=400)
    assert body["error"] == "invalid_parameter"
    assert body["field"] == field


async def test_history_database_unavailable_is_a_503(served: RunningApp) -> None:
    from tortoise import Tortoise

    conn = Tortoise.get_connection("default")
    await conn.execute_script("ALTER TABLE transfer_sample RENAME TO transfer_sample_away")
    try:
        body = await get_json(served, "/api/history", status=503)
    finally:
        await conn.execute_script("ALTER TABLE transfer_sample_away RENAME TO transfer_sample")
    assert body["error"] == "database_unavailable"


# -- health and metrics ------------------------------------------------------------------------


async def test_healthz(served: RunningApp) -> None:
    assert await get_json(served, "/healthz") == {"ok": True}


async def test_metrics(served: RunningApp) -> None:
    response = await served.client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type == "text/plain; version=0.0.4; charset=utf-8"
    text = await response.get_data(as_text=True)
    lines = text.splitlines()
    assert "# TYPE quart_dl_sse_clients gauge" in lines
    assert "quart_dl_sse_clients 0.0" in lines
    assert "# TYPE quart_dl_events_published_total counter" in lines
    assert 'quart_dl_events_published_total{kind="diff"} 1.0' in lines
    assert 'quart_dl_events_published_total{kind="status"} 1.0' in lines
    assert "# TYPE quart_dl_poll_duration_seconds histogram" in lines
    assert any(line.startswith("quart_dl_poll_duration_seconds_count ") for line in lines)
    assert any(line.startswith("process_resident_memory_bytes ") for line in lines)


# -- several instances -------------------------------------------------------------------------

HOME_STATE = {"dl_info_speed": 1000, "up_info_speed": 0, "dl_info_data": 5000, "up_info_data": 100}
SEEDBOX_STATE = {"dl_info_speed": 0, "up_info_speed": 3000, "dl_info_data": 700, "up_info_data": 9000}


@pytest.fixture
async def two() -> AsyncIterator[RunningApp]:
    """``home`` (H1 downloading, H2) and ``seedbox`` (H1 seeding: cross-seeded, H3)."""
    sessions = {
        "home": FakeSession(
            [
                full_update(
                    {H1: raw_torrent("one.iso", added_on=10, dlspeed=1000), H2: TORRENTS[H2]}, HOME_STATE
                )
            ]
        ),
        "seedbox": FakeSession(
            [
                full_update(
                    {H1: seeding_torrent("one.iso", added_on=5, upspeed=3000), H3: TORRENTS[H3]},
                    SEEDBOX_STATE,
                )
            ],
            version="v5.1.0",
        ),
    }
    async with running_app(instances=sessions) as running:
        hub = running.runtime.hub
        await wait_for_async(
            lambda: len(hub.view("home").torrents) == 2 and len(hub.view("seedbox").torrents) == 2,
            what="both instances' torrents",
        )
        yield running


def pairs(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(t["instance"], t["hash"]) for t in body["torrents"]]


async def test_torrents_of_every_instance_each_naming_its_instance(two: RunningApp) -> None:
    body = await get_json(two, "/api/torrents")
    # added_at ascending across instances: H1 on seedbox (5), H1 at home (10), H2 (100), H3 (200)
    assert pairs(body) == [("seedbox", H1), ("home", H1), ("home", H2), ("seedbox", H3)]
    assert body["count"] == 4
    assert body["event_id"] == two.runtime.hub.last_event_id
    body = await get_json(two, "/api/torrents?phase=seeding&sort=name")
    assert pairs(body) == [("home", H2), ("seedbox", H1)]


async def test_torrents_of_one_instance(two: RunningApp) -> None:
    body = await get_json(two, "/api/torrents?instance=seedbox")
    assert pairs(body) == [("seedbox", H1), ("seedbox", H3)]


async def test_a_torrent_by_hash_is_the_primarys_then_the_first_holding_it(two: RunningApp) -> None:
    assert (await get_json(two, f"/api/torrents/{H1}"))["instance"] == "home"  # the primary
    assert (await get_json(two, f"/api/torrents/{H3}"))["instance"] == "seedbox"  # only there
    body = await get_json(two, f"/api/torrents/{H1}?instance=seedbox")
    assert (body["instance"], body["phase"]) == ("seedbox", "seeding")
    body = await get_json(two, f"/api/torrents/{H2}?instance=seedbox", status=404)
    assert body["error"] == "not_found"


async def test_status_has_every_instance_and_the_total(two: RunningApp) -> None:
    body = await get_json(two, "/api/status")
    hub = two.runtime.hub
    assert body["status"] == hub.view("home").status  # protocol 1: the primary's
    assert body["transfer"]["dl_speed"] == 1000
    assert body["protocol"] == 1
    assert body["server_id"] == hub.server_id
    assert list(body["instances"]) == ["home", "seedbox"]
    seedbox = body["instances"]["seedbox"]
    assert (seedbox["name"], seedbox["status"]["version"]) == ("Seedbox", "v5.1.0")
    assert seedbox["transfer"]["up_speed"] == 3000
    total = body["total_transfer"]
    # Speeds add up from the torrents' (home's H2 uploads 2000, seedbox's H1 3000).
    assert (total["dl_speed"], total["up_speed"], total["dl_total"], total["up_total"]) == (
        1000,
        5000,
        5700,
        9100,
    )


async def test_history_of_one_instance(two: RunningApp) -> None:
    home = await get_json(two, "/api/history")
    assert [(s["dl_speed"], s["up_speed"]) for s in home["samples"]] == [(1000, 2000)]  # H1 + H2
    seedbox = await get_json(two, "/api/history?instance=seedbox")
    assert [(s["dl_speed"], s["up_speed"]) for s in seedbox["samples"]] == [(0, 3000)]


@pytest.mark.parametrize(
    "path",
    [
        "/api/torrents?instance=nope",
        f"/api/torrents/{H1}?instance=nope",
        "/api/history?instance=nope",
    ],
)
async def test_an_unknown_instance_is_a_404_naming_it(two: RunningApp, path: str) -> None:
    body = await get_json(two, path, status=404)
    assert body == {
        "error": "unknown_instance",
        "message": "no qBittorrent instance named 'nope'",
        "field": "instance",
    }


@pytest.mark.parametrize("path", ["/api/torrents", f"/api/torrents/{H1}", "/api/history"])
async def test_a_repeated_instance_is_a_400_naming_it(two: RunningApp, path: str) -> None:
    body = await get_json(two, f"{path}?instance=home&instance=seedbox", status=400)
    assert (body["error"], body["field"]) == ("invalid_parameter", "instance")


async def test_v1_status_of_a_single_instance_server_has_the_additions(served: RunningApp) -> None:
    body = await get_json(served, "/api/status")
    assert list(body["instances"]) == ["default"]
    assert body["instances"]["default"]["name"] == "qBittorrent"
    assert body["total_transfer"] == body["transfer"]
