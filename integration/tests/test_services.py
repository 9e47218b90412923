"""The ``quart_dl`` actions against a real server and a real qBittorrent.

Each action's effect is checked in qBittorrent itself (its Web API, through
qbittorrent-api), not in what the integration shows: the point is that the action did
what it says. Torrents are magnet links nobody serves, each test its own, so tests do not
see each other's torrents.
"""

from __future__ import annotations

import io
import uuid
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import qbittorrentapi
import torf  # type: ignore[import-untyped]
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from pytest_homeassistant_custom_component.common import MockConfigEntry  # type: ignore[import-untyped]
from quart_dl.lab.server_process import ServerProcess
from quart_dl.lab.transfer import make_payload, make_torrent

from custom_components.quart_dl.const import DOMAIN

from .actions_helpers import in_qbittorrent, new_magnet, paused, settles, until
from .conftest import READ_TOKEN, setup_actions_entry


@pytest.fixture
def entry(actions_entry: MockConfigEntry) -> MockConfigEntry:
    """An entry with the server's full access token."""
    return actions_entry


async def call(hass: HomeAssistant, service: str, entry: MockConfigEntry, **data: Any) -> Any:
    """Call one of our actions for ``entry`` and wait for it."""
    return await hass.services.async_call(
        DOMAIN,
        service,
        {"entry_id": entry.entry_id, **data},
        blocking=True,
        return_response=service == "get_torrents",
    )


async def add(hass: HomeAssistant, qbt: qbittorrentapi.Client, entry: MockConfigEntry, **options: Any) -> str:
    """Add a fresh magnet through the action; return its hash once qBittorrent holds it."""
    magnet, info_hash = new_magnet()
    await call(hass, "add_torrent", entry, urls=[magnet], **options)
    await in_qbittorrent(hass, qbt, info_hash, lambda r: r is not None, "the added torrent")
    return info_hash


async def test_add_torrent_with_options_and_get_torrents(
    hass: HomeAssistant, entry: MockConfigEntry, qbt: qbittorrentapi.Client, tmp_path: Path
) -> None:
    """add_torrent takes save path, category, tags and stopped; get_torrents filters."""
    save_path = str(tmp_path / "films")
    info_hash = await add(
        hass, qbt, entry, save_path=save_path, category="films", tags=["ha", "x"], stopped=True
    )
    await in_qbittorrent(
        hass,
        qbt,
        info_hash,
        lambda r: (
            r is not None
            and paused(r)
            and r["category"] == "films"
            and set(r["tags"].split(", ")) == {"ha", "x"}
            and r["save_path"].rstrip("/") == save_path
        ),
        "stopped, with category, tags and save path",
    )

    # Home Assistant sees it a poll and a push after qBittorrent does (a regression: asked at
    # once, under load, the answer could still be empty).
    answer = await settles(
        lambda: call(hass, "get_torrents", entry, category="films", tag="ha", phase=["paused"]),
        lambda a: info_hash in [t["hash"] for t in a["torrents"]],
        "get_torrents to list the stopped torrent",
    )
    torrent = next(t for t in answer["torrents"] if t["hash"] == info_hash)
    assert torrent["phase"] == "paused"
    assert torrent["category"] == "films"
    assert sorted(torrent["tags"]) == ["ha", "x"]
    assert torrent["save_path"].rstrip("/") == save_path
    assert torrent["added"] is not None
    assert torrent["added"].endswith("+00:00")
    assert torrent["completed"] is None
    assert set(torrent) >= {
        "name",
        "hash",
        "progress",
        "state",
        "phase",
        "eta",
        "ratio",
        "size",
        "downloaded",
        "amount_left",
        "dl_speed",
        "up_speed",
        "save_path",
        "added",
        "completed",
    }
    assert answer["count"] == len(answer["torrents"])
    # The filters exclude: another phase, another tag.
    none = await call(hass, "get_torrents", entry, category="films", phase=["seeding"])
    assert info_hash not in [t["hash"] for t in none["torrents"]]
    none = await call(hass, "get_torrents", entry, tag="no-such-tag")
    assert none == {"torrents": [], "count": 0}


async def test_stop_and_start_torrent(
    hass: HomeAssistant, entry: MockConfigEntry, qbt: qbittorrentapi.Client
) -> None:
    """stop_torrent stops it in qBittorrent, start_torrent starts it again."""
    info_hash = await add(hass, qbt, entry)
    await call(hass, "stop_torrent", entry, hashes=[info_hash])
    await in_qbittorrent(hass, qbt, info_hash, paused, "the torrent stopped")
    await call(hass, "start_torrent", entry, hashes=info_hash.upper())
    await in_qbittorrent(
        hass, qbt, info_hash, lambda r: r is not None and not paused(r), "the torrent started"
    )


async def test_set_category_and_set_tags(
    hass: HomeAssistant, entry: MockConfigEntry, qbt: qbittorrentapi.Client
) -> None:
    """set_category creates and sets the category; set_tags makes the tags exactly those."""
    info_hash = await add(hass, qbt, entry, tags=["old", "keep"], stopped=True)
    category = f"cat-{uuid.uuid4().hex[:6]}"
    await call(hass, "set_category", entry, hashes=[info_hash], category=category)
    await in_qbittorrent(
        hass, qbt, info_hash, lambda r: r is not None and r["category"] == category, "category"
    )
    await call(hass, "set_tags", entry, hashes=[info_hash], tags=["keep", "new"])
    await in_qbittorrent(
        hass,
        qbt,
        info_hash,
        lambda r: r is not None and set(r["tags"].split(", ")) == {"keep", "new"},
        "tags exactly keep and new",
    )
    await call(hass, "set_tags", entry, hashes=[info_hash], tags=[])
    await in_qbittorrent(hass, qbt, info_hash, lambda r: r is not None and r["tags"] == "", "no tags")
    await call(hass, "set_category", entry, hashes=[info_hash], category="")
    await in_qbittorrent(hass, qbt, info_hash, lambda r: r is not None and r["category"] == "", "no category")


async def seeded(
    hass: HomeAssistant, qbt: qbittorrentapi.Client, folder: Path, name: str
) -> tuple[str, Path]:
    """A real torrent with its file on disk, added to qBittorrent and checked complete."""
    payload = await hass.async_add_executor_job(make_payload, folder, name, 64 * 1024)
    data = await hass.async_add_executor_job(make_torrent, payload)
    info_hash = str(torf.Torrent.read_stream(io.BytesIO(data)).infohash)
    await hass.async_add_executor_job(partial(qbt.torrents_add, torrent_files=data, save_path=str(folder)))
    await in_qbittorrent(
        hass, qbt, info_hash, lambda r: r is not None and r["progress"] == 1, "checked complete"
    )
    return info_hash, payload


async def test_remove_torrent(
    hass: HomeAssistant, entry: MockConfigEntry, qbt: qbittorrentapi.Client, tmp_path: Path
) -> None:
    """remove_torrent removes the torrent from qBittorrent; its files stay unless
    delete_files is set, and then they are gone from the disk."""
    kept, kept_file = await seeded(hass, qbt, tmp_path / "kept", "kept.bin")
    gone, gone_file = await seeded(hass, qbt, tmp_path / "gone", "gone.bin")
    await call(hass, "remove_torrent", entry, hashes=[kept])
    await call(hass, "remove_torrent", entry, hashes=[gone], delete_files=True)
    await in_qbittorrent(hass, qbt, kept, lambda r: r is None, "the first torrent removed")
    await in_qbittorrent(hass, qbt, gone, lambda r: r is None, "the second torrent removed")
    await until(hass, gone_file.exists, lambda exists: not exists, "the deleted file gone")
    assert kept_file.exists()


async def test_errors_are_translated(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    actions_server: ServerProcess,
    qbt: qbittorrentapi.Client,
) -> None:
    """Bad hashes, unknown torrents, an unknown entry and a read-only token: each its key."""
    with pytest.raises(ServiceValidationError) as caught:
        await call(hass, "stop_torrent", entry, hashes=["not-a-hash"])
    assert caught.value.translation_key == "invalid_hash"

    _, unknown = new_magnet()
    with pytest.raises(ServiceValidationError) as caught:
        await call(hass, "stop_torrent", entry, hashes=[unknown])
    assert caught.value.translation_key == "unknown_torrents"
    assert (caught.value.translation_placeholders or {}).get("hashes") == unknown

    with pytest.raises(ServiceValidationError) as caught:
        await hass.services.async_call(
            DOMAIN, "stop_torrent", {"entry_id": "nope", "hashes": "all"}, blocking=True
        )
    assert caught.value.translation_key == "entry_not_found"

    info_hash = await add(hass, qbt, entry)
    # A second entry for the same server, with the read-only token.
    read_only = await setup_actions_entry(hass, actions_server, token=READ_TOKEN)
    with pytest.raises(HomeAssistantError) as refused:
        await call(hass, "stop_torrent", read_only, hashes=[info_hash])
    assert refused.value.translation_key == "read_only"
    # Read-only still reads, and qBittorrent was not touched.
    answer = await call(hass, "get_torrents", read_only)
    assert info_hash in [t["hash"] for t in answer["torrents"]]
    record = await hass.async_add_executor_job(partial(qbt.torrents_info, torrent_hashes=info_hash))
    assert not paused(dict(record[0]))


async def test_descriptions_load_with_every_field(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """services.yaml loads as Home Assistant reads it for the action editor (anchors and
    all), with each field and its selector, and the English names from strings.json."""
    from homeassistant.helpers.service import async_get_all_descriptions

    descriptions = (await async_get_all_descriptions(hass))[DOMAIN]
    assert set(descriptions) == {
        "add_torrent",
        "remove_torrent",
        "start_torrent",
        "stop_torrent",
        "set_category",
        "set_tags",
        "get_torrents",
    }
    for service, description in descriptions.items():
        assert description["fields"]["entry_id"]["selector"] == {"config_entry": {"integration": DOMAIN}}, (
            service
        )
        assert description["name"], service
    assert descriptions["remove_torrent"]["fields"]["hashes"]["required"] is True
    assert descriptions["get_torrents"]["response"] == {"optional": False}
