"""The published view: torrents, status and transfer as of the last published event.

A snapshot is taken from this view, never from a poller's working table, so a snapshot and
the diffs that follow it always line up. The REST API answers from it too, so a REST answer
and the stream never disagree.
"""

from __future__ import annotations

from typing import Any

from ..status import InstanceStatus
from ..torrents import EMPTY_TRANSFER, ChangeSet, Record
from .frames import PROTOCOL_VERSION, frame


class PublishedView:
    """What every stream has been told so far, and the snapshot of it."""

    def __init__(self, heartbeat: float) -> None:
        self.heartbeat = heartbeat
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
