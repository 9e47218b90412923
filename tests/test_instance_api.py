"""quart_dl.web.instance_api: ``/api/instances`` and the per-instance routes, over the real app
with two instances, each a FakeSession (``home`` and ``seedbox``; in-memory SQLite).

The same hash in both instances (cross-seeding) is two torrents; an unknown instance is a
JSON 404 naming it on every route, never a 500.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from fakes import H1, H2, H3, UNKNOWN_HASH, RunningApp, full_update, raw_torrent, running_app, seeding_torrent

from quart_dl.lab.wait import wait_for_async
from quart_dl.qbittorrent.client import Unreachable
from quart_dl.qbittorrent.fake import FakeSession
from quart_dl.torrents import PHASES

HOME_STATE = {"dl_info_speed": 1000, "up_info_speed": 0, "dl_info_data": 5000, "up_info_data": 100}
SEEDBOX_STATE = {"dl_info_speed": 0, "up_info_speed": 3000, "dl_info_data": 700, "up_info_data": 9000}


def two() -> dict[str, FakeSession]:
    home = FakeSession(
        [full_update({H1: raw_torrent("one.iso", dlspeed=1000), H2: seeding_torrent("two.iso")}, HOME_STATE)]
    )
    seedbox = FakeSession(
        [
            full_update(
                {H1: seeding_torrent("one.iso", upspeed=3000), H3: raw_torrent("three.iso", dlspeed=0)},
                SEEDBOX_STATE,
            )
        ],
        version="v5.1.0",
    )
    return {"home": home, "seedbox": seedbox}


@pytest.fixture
async def served() -> AsyncIterator[RunningApp]:
    async with running_app(instances=two()) as running:
        hub = running.runtime.hub
        await wait_for_async(
            lambda: len(hub.view("home").torrents) == 2 and len(hub.view("seedbox").torrents) == 2,
            what="both instances' torrents",
        )
        yield running


async def get_json(served: RunningApp, path: str, status: int = 200) -> Any:
    response = await served.client.get(path)
    assert response.status_code == status, await response.get_data(as_text=True)
    assert response.content_type == "application/json"
    return await response.get_json()


def counts(**phases: int) -> dict[str, int]:
    return {"torrents": sum(phases.values()), **dict.fromkeys(PHASES, 0), **phases}


async def test_instances_lists_every_instance_in_order_with_a_total(served: RunningApp) -> None:
    body = await get_json(served, "/api/instances")
    home, seedbox = body["instances"]
    assert (home["id"], home["name"], seedbox["id"], seedbox["name"]) == (
        "home",
        "Home",
        "seedbox",
        "Seedbox",
    )
    assert home["status"]["qbittorrent"] == "connected"
    assert (home["version"], seedbox["version"]) == ("v4.5.2", "v5.1.0")
    assert home["counts"] == counts(downloading=1, seeding=1)
    assert seedbox["counts"] == counts(downloading=1, seeding=1)
    assert home["transfer"]["dl_speed"] == 1000
    assert seedbox["transfer"]["up_speed"] == 3000
    assert body["total"]["torrents"] == 4  # H1 in both: two torrents
    assert body["total"]["transfer"] == served.runtime.hub.total_transfer()
    assert body["total"]["transfer"]["dl_total"] == 5700
    assert body["server_id"] == served.runtime.hub.server_id
    assert "pw-" not in str(body)  # the passwords are never shown


async def test_one_instance(served: RunningApp) -> None:
    listed = (await get_json(served, "/api/instances"))["instances"][1]
    assert await get_json(served, "/api/instances/seedbox") == listed


async def test_one_instances_torrents_with_the_query_of_api_torrents(served: RunningApp) -> None:
    body = await get_json(served, "/api/instances/seedbox/torrents?sort=name")
    assert [(t["instance"], t["hash"]) for t in body["torrents"]] == [("seedbox", H1), ("seedbox", H3)]
    assert body["count"] == 2
    assert body["event_id"] == served.runtime.hub.last_event_id
    body = await get_json(served, "/api/instances/home/torrents?phase=seeding")
    assert [(t["instance"], t["hash"]) for t in body["torrents"]] == [("home", H2)]
    bad = await get_json(served, "/api/instances/home/torrents?order=up", status=400)
    assert (bad["error"], bad["field"]) == ("invalid_parameter", "order")


async def test_the_same_hash_in_two_instances_is_two_torrents(served: RunningApp) -> None:
    home = await get_json(served, f"/api/instances/home/torrents/{H1}")
    seedbox = await get_json(served, f"/api/instances/seedbox/torrents/{H1.upper()}")
    assert (home["instance"], home["phase"]) == ("home", "downloading")
    assert (seedbox["instance"], seedbox["phase"]) == ("seedbox", "seeding")


async def test_a_torrent_of_another_instance_is_a_404(served: RunningApp) -> None:
    body = await get_json(served, f"/api/instances/home/torrents/{H3}", status=404)
    assert body["error"] == "not_found"
    assert H3 in body["message"]
    body = await get_json(served, "/api/instances/home/torrents/nothex", status=400)
    assert (body["error"], body["field"]) == ("invalid_hash", "hash")


async def test_one_instances_status(served: RunningApp) -> None:
    body = await get_json(served, "/api/instances/seedbox/status")
    assert (body["id"], body["name"]) == ("seedbox", "Seedbox")
    assert body["status"]["version"] == "v5.1.0"
    assert body["transfer"]["up_speed"] == 3000
    assert body["poller"]["errors"] == 0
    assert body["database"] == {"ok": True, "last_error": None}
    assert body["event_id"] == served.runtime.hub.last_event_id


async def test_one_instances_history(served: RunningApp) -> None:
    home = await get_json(served, "/api/instances/home/history")
    seedbox = await get_json(served, "/api/instances/seedbox/history")
    assert [(s["dl_speed"], s["up_speed"]) for s in home["samples"]] == [(1000, 0)]
    assert [(s["dl_speed"], s["up_speed"]) for s in seedbox["samples"]] == [(0, 3000)]
    one = await get_json(served, f"/api/instances/seedbox/history?hash={H1}")
    assert [(s["dl_speed"], s["up_speed"]) for s in one["samples"]] == [(0, 3000)]
    bad = await get_json(served, "/api/instances/home/history?minutes=0", status=400)
    assert bad["field"] == "minutes"


@pytest.mark.parametrize(
    "path",
    [
        "/api/instances/nope",
        "/api/instances/nope/torrents",
        f"/api/instances/nope/torrents/{H1}",
        "/api/instances/nope/torrents/nothex",
        "/api/instances/nope/status",
        "/api/instances/nope/history",
        "/api/instances/Default/status",
    ],
)
async def test_an_unknown_instance_is_a_404_naming_it(served: RunningApp, path: str) -> None:
    name = path.split("/")[3]
    body = await get_json(served, path, status=404)
    assert body == {
        "error": "unknown_instance",
        "message": f"no qBittorrent instance named {name!r}",
        "field": "instance",
    }


async def test_a_long_unknown_instance_is_cut_in_the_message(served: RunningApp) -> None:
    body = await get_json(served, "/api/instances/" + "x" * 5000, status=404)
    assert body["error"] == "unknown_instance"
    assert len(body["message"]) < 120


async def test_one_instance_down_changes_only_its_status() -> None:
    sessions = two()
    sessions["seedbox"].failure = Unreachable("cannot reach qBittorrent at http://127.0.0.1:18081")
    async with running_app(instances=sessions) as served:
        await wait_for_async(
            lambda: len(served.runtime.hub.view("home").torrents) == 2, what="home's torrents"
        )
        home, seedbox = (await get_json(served, "/api/instances"))["instances"]
        assert home["status"]["qbittorrent"] == "connected"
        assert seedbox["status"]["qbittorrent"] == "unreachable"
        assert seedbox["counts"]["torrents"] == 0
        status = await get_json(served, "/api/instances/seedbox/status")
        assert status["poller"]["last_error"] == "unreachable"
        assert (await get_json(served, "/api/instances/home/torrents"))["count"] == 2


async def test_a_single_instance_server_lists_default() -> None:
    async with running_app(FakeSession([full_update({H1: raw_torrent()})])) as one:
        await wait_for_async(lambda: H1 in one.runtime.hub.torrents, what="the torrent")
        body = await get_json(one, "/api/instances")
        (default,) = body["instances"]
        assert (default["id"], default["name"]) == ("default", "qBittorrent")
        assert body["total"]["torrents"] == 1
        record = await get_json(one, f"/api/instances/default/torrents/{H1}")
        assert record["instance"] == "default"
        assert (await get_json(one, f"/api/instances/default/torrents/{UNKNOWN_HASH}", 404))[
            "error"
        ] == "not_found"
