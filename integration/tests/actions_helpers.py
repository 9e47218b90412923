"""Shared by the action tests: a client of the actions daemon, waits on qBittorrent itself."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import qbittorrentapi
from homeassistant.core import HomeAssistant


def new_magnet() -> tuple[str, str]:
    """A magnet link of a random info-hash (no one serves it) and that hash."""
    info_hash = uuid.uuid4().hex + uuid.uuid4().hex[:8]
    return f"magnet:?xt=urn:btih:{info_hash}&dn=ha-{info_hash[:8]}", info_hash


def paused(record: dict[str, Any] | None) -> bool:
    """qBittorrent's stopped states (4.x paused…, 5.x stopped…)."""
    return record is not None and str(record["state"]).startswith(("paused", "stopped"))


async def until[T](hass: HomeAssistant, read: Callable[[], T], check: Callable[[T], bool], what: str) -> T:
    """Read qBittorrent (blocking, so in the executor) until ``check`` holds, 10 s at most."""
    deadline = time.monotonic() + 10
    value = await hass.async_add_executor_job(read)
    while not check(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for qBittorrent: {what} (last: {value!r})")
        await asyncio.sleep(0.1)
        value = await hass.async_add_executor_job(read)
    return value


async def in_qbittorrent(
    hass: HomeAssistant,
    qbt: qbittorrentapi.Client,
    info_hash: str,
    check: Callable[[dict[str, Any] | None], bool],
    what: str,
) -> None:
    """Wait until qBittorrent's record of ``info_hash`` (None: gone) passes ``check``."""

    def record() -> dict[str, Any] | None:
        found = qbt.torrents_info(torrent_hashes=info_hash)
        return dict(found[0]) if found else None

    await until(hass, record, check, what)


async def settles[T](read: Callable[[], Awaitable[T]], check: Callable[[T], bool], what: str) -> T:
    """Read Home Assistant's side (a service's answer, an entity's state) until ``check``
    holds, 10 s at most: it follows qBittorrent through the server's stream, a poll later."""
    deadline = time.monotonic() + 10
    value = await read()
    while not check(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for Home Assistant: {what} (last: {value!r})")
        await asyncio.sleep(0.1)
        value = await read()
    return value
