"""quart_dl.hub.view: one instance's published view, and what protocol 2 builds from several."""

from __future__ import annotations

import json

from fakes import H1, parse_frames, raw_torrent

from quart_dl.hub.view import PublishedView, snapshot_v2, total_transfer
from quart_dl.torrents import EMPTY_TRANSFER, project


def view(instance_id: str, **transfer: object) -> PublishedView:
    published = PublishedView(15.0, instance_id, instance_id.title())
    published.transfer = {**EMPTY_TRANSFER, **transfer}
    return published


def test_total_transfer_adds_speeds_and_totals_and_any_alt_speed() -> None:
    total = total_transfer(
        [view("home", dl_speed=100, up_total=5), view("box", dl_speed=23, up_total=2, alt_speed=True)]
    )
    assert (total["dl_speed"], total["up_total"], total["alt_speed"]) == (123, 7, True)


def test_a_total_limit_is_none_when_any_instance_is_unlimited() -> None:
    """A limit of 0 is "no limit": 100 KiB/s plus unlimited is unlimited, not 100 KiB/s."""
    assert total_transfer([view("home", dl_limit=100), view("box", dl_limit=0)])["dl_limit"] == 0
    assert total_transfer([view("home", dl_limit=100), view("box", dl_limit=50)])["dl_limit"] == 150


def test_the_v2_snapshot_of_an_instance_without_torrents_has_an_empty_table() -> None:
    home, box = view("home"), view("box")
    home.seed({H1: project(H1, raw_torrent("one"))})
    (parsed,) = parse_frames(snapshot_v2([home, box], 15.0, "e-4"))
    data = json.loads(parsed["data"])
    assert parsed["id"] == "e-4"
    assert data["torrents"] == {"home": {H1: {**home.torrents[H1], "instance": "home"}}, "box": {}}
    box_part = {"id": "box", "name": "Box", "status": box.status, "transfer": box.transfer}
    assert data["instances"]["box"] == box_part
