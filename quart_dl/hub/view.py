"""The published view of one instance: torrents, status and transfer as of the last
published event.

A snapshot is taken from these views, never from a poller's working table, so a snapshot and
the diffs that follow it always line up. The REST API answers from them too, so a REST answer
and the stream never disagree. The hub holds one per qBittorrent instance; the protocol 2
snapshot (every instance) is put together from them in ``snapshot_v2``.
"""

from __future__ import annotations

from typing import Any

from ..status import InstanceStatus
from ..torrents import EMPTY_TRANSFER, ChangeSet, Record
from .frames import PROTOCOL_V2, PROTOCOL_VERSION, frame

#: Transfer fields that add up over instances (``alt_speed`` is true if any instance's is).
SUMMED = ("dl_speed", "up_speed", "dl_total", "up_total", "dl_limit", "up_limit")


class PublishedView:
    """What every stream has been told so far of one instance, and the snapshot of it."""

    def __init__(self, heartbeat: float, instance_id: str = "default", name: str = "") -> None:
        self.heartbeat = heartbeat
        self.instance_id = instance_id
        self.name = name or instance_id
        self.torrents: dict[str, Record] = {}
        #: The status record of the instance published here (``InstanceStatus.record``): the
        #: instance keeps it current, its visible changes are announced as ``status`` events.
        self.status: Record = InstanceStatus().record
        self.transfer: Record = dict(EMPTY_TRANSFER)
        self._snapshot_cache: tuple[int, bytes] | None = None

    def seed(self, torrents: dict[str, Record]) -> None:
        """Start from what the store last saw (before any event is published)."""
        self.torrents = {h: dict(r) for h, r in torrents.items()}

    def apply(self, changes: ChangeSet) -> None:
        """Take a change set into the view (just before it is published)."""
        for torrent_hash, delta in changes.changed.items():
            current = self.torrents.get(torrent_hash)
            if current is None:
                self.torrents[torrent_hash] = dict(delta)
            else:
                current.update(delta)
        for torrent_hash in changes.removed:
            self.torrents.pop(torrent_hash, None)
        if changes.transfer is not None:
            self.transfer = dict(changes.transfer)

    def snapshot_frame(self, seq: int, last_id: str, torrent_hash: str | None = None) -> bytes:
        """The ``snapshot`` event as of event ``seq`` (id ``last_id``).

        The all-torrents snapshot is cached per sequence number: a reconnect storm of
        thousands of clients encodes it once.
        """
        if torrent_hash is None:
            cached = self._snapshot_cache
            if cached is not None and cached[0] == seq:
                return cached[1]
            torrents = self.torrents
        else:
            record = self.torrents.get(torrent_hash)
            torrents = {torrent_hash: record} if record is not None else {}
        payload: dict[str, Any] = {
            "v": PROTOCOL_VERSION,
            "torrents": torrents,
            "status": self.status,
            "heartbeat": self.heartbeat,
        }
        if torrent_hash is None:
            payload["transfer"] = self.transfer
        data = frame("snapshot", payload, last_id)
        if torrent_hash is None:
            self._snapshot_cache = (seq, data)
        return data


def total_transfer(views: list[PublishedView]) -> Record:
    """The transfer record over every instance: speeds, totals and limits added up.

    A limit of 0 means none: the total of limits is only meaningful when every instance has
    one, so it is 0 as soon as one instance is unlimited.
    """
    total: Record = dict(EMPTY_TRANSFER)
    for key in SUMMED:
        values = [int(view.transfer.get(key) or 0) for view in views]
        total[key] = 0 if key.endswith("_limit") and (not values or 0 in values) else sum(values)
    total["alt_speed"] = any(bool(view.transfer.get("alt_speed")) for view in views)
    return total


def snapshot_v2(views: list[PublishedView], heartbeat: float, last_id: str) -> bytes:
    """The protocol 2 ``snapshot``: every instance's status, transfer and torrents (each record
    naming its instance), and the transfer total (docs/protocol.md, "Protocol 2")."""
    payload: dict[str, Any] = {
        "v": PROTOCOL_V2,
        "heartbeat": heartbeat,
        "instances": {
            view.instance_id: {
                "id": view.instance_id,
                "name": view.name,
                "status": view.status,
                "transfer": view.transfer,
            }
            for view in views
        },
        "torrents": {
            view.instance_id: {h: {**r, "instance": view.instance_id} for h, r in view.torrents.items()}
            for view in views
        },
        "transfer": total_transfer(views),
    }
    return frame("snapshot", payload, last_id)
