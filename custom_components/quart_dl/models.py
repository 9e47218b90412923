"""The integration's view of one quart-dl server, and how events change it.

Kept free of Home Assistant imports: applying a snapshot or a diff is pure data work,
tested on its own, and the coordinator only decides *when* to apply and whom to tell.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

type TorrentRecord = dict[str, Any]

#: Phases counted as "downloading": incomplete torrents that are active, whether bytes are
#: flowing right now (``downloading``) or not (``stalled``). A paused or queued torrent is
#: not downloading.
DOWNLOADING_PHASES = frozenset({"downloading", "stalled"})
SEEDING_PHASES = frozenset({"seeding"})
PAUSED_PHASES = frozenset({"paused"})


@dataclass(frozen=True, slots=True)
class DiffResult:
    """What one applied diff means for automations: the downloads it added, completed and
    removed.

    Each entry is a copy of the torrent's record as it stood after the diff's changes, so
    an event about a torrent that the same diff also removed still has its name and size.
    """

    added: tuple[TorrentRecord, ...] = ()
    completed: tuple[TorrentRecord, ...] = ()
    removed: tuple[TorrentRecord, ...] = ()


@dataclass(slots=True)
class ServerState:
    """Everything the entities show, as last told by the server.

    ``torrents`` maps hash to the full record (diff fields merged in). ``status`` and
    ``transfer`` are the protocol's status and transfer objects.
    """

    torrents: dict[str, TorrentRecord] = field(default_factory=dict)
    status: dict[str, Any] = field(default_factory=dict)
    transfer: dict[str, Any] = field(default_factory=dict)
    heartbeat: float | None = None
    version: str | None = None
    #: The server's stable id (``server_id`` of ``/api/status``; ``None`` from a server
    #: that does not send one yet).
    server_id: str | None = None
    #: The primary qBittorrent instance (the one v1 describes): its id and display name,
    #: from ``/api/status``'s ``instances`` (first entry); the flat settings' defaults
    #: from a server without several instances.
    instance_id: str = "default"
    instance_name: str = "qBittorrent"

    @property
    def qbittorrent_state(self) -> str | None:
        """Connection state of qBittorrent as the server sees it (``connected``, …)."""
        value = self.status.get("qbittorrent")
        return value if isinstance(value, str) else None

    @property
    def qbittorrent_connected(self) -> bool:
        """Whether the server currently reaches qBittorrent."""
        return self.qbittorrent_state == "connected"

    def count(self, phases: frozenset[str]) -> int:
        """Number of torrents whose phase is one of ``phases``."""
        return sum(1 for record in self.torrents.values() if record.get("phase") in phases)

    def speed(self, key: str) -> int | None:
        """A global speed from the transfer object (bytes per second)."""
        value = self.transfer.get(key)
        return value if isinstance(value, int) else None

    @classmethod
    def from_rest(
        cls, status_answer: Mapping[str, Any], torrents_answer: Mapping[str, Any]
    ) -> ServerState:
        """Build a state from ``GET /api/status`` and ``GET /api/torrents`` answers."""
        torrents = {
            record["hash"]: dict(record)
            for record in torrents_answer.get("torrents", [])
            if isinstance(record, Mapping) and isinstance(record.get("hash"), str)
        }
        heartbeat = status_answer.get("heartbeat")
        version = status_answer.get("version")
        server_id = status_answer.get("server_id")
        instance_id, instance_name = _primary_instance(status_answer.get("instances"))
        return cls(
            torrents=torrents,
            status=dict(status_answer.get("status") or {}),
            transfer=dict(status_answer.get("transfer") or {}),
            heartbeat=float(heartbeat) if isinstance(heartbeat, int | float) else None,
            version=version if isinstance(version, str) else None,
            server_id=server_id if isinstance(server_id, str) and server_id else None,
            instance_id=instance_id,
            instance_name=instance_name,
        )

    def apply_snapshot(self, snapshot: Mapping[str, Any]) -> None:
        """Replace the whole view, as the protocol demands on every ``snapshot``."""
        torrents = snapshot.get("torrents") or {}
        self.torrents = {
            str(key): dict(record)
            for key, record in torrents.items()
            if isinstance(record, Mapping)
        }
        self.status = dict(snapshot.get("status") or {})
        self.transfer = dict(snapshot.get("transfer") or {})
        heartbeat = snapshot.get("heartbeat")
        if isinstance(heartbeat, int | float) and heartbeat > 0:
            self.heartbeat = float(heartbeat)

    def apply_diff(self, diff: Mapping[str, Any]) -> DiffResult:
        """Merge one ``diff`` event and say which downloads it added and completed.

        A hash in ``changed`` that is not known yet is taken as a new torrent (the
        protocol's rule); its record is whatever the diff carries. ``removed`` is applied
        after ``changed``, so a torrent changed and removed in one event ends up gone.
        """
        changed = diff.get("changed") or {}
        for key, fields in changed.items():
            if not isinstance(fields, Mapping):
                continue
            record = self.torrents.get(key)
            if record is None:
                record = self.torrents[key] = {"hash": key}
            record.update(fields)
        result = DiffResult(
            added=self._records(diff.get("added")),
            completed=self._records(diff.get("completed")),
            # Copied before they go: the event about a removal names what was removed.
            removed=self._records(diff.get("removed")),
        )
        for key in diff.get("removed") or ():
            self.torrents.pop(key, None)
        if isinstance(transfer := diff.get("transfer"), Mapping):
            self.transfer.update(transfer)
        return result

    def _records(self, hashes: Any) -> tuple[TorrentRecord, ...]:
        """Copies of the records of ``hashes`` (a bare ``{"hash": …}`` if unknown)."""
        if not isinstance(hashes, list):
            return ()
        return tuple(
            dict(self.torrents.get(str(key)) or {"hash": str(key)}) for key in hashes
        )

    def apply_status(self, status: Mapping[str, Any]) -> None:
        """Take a ``status`` event: the status object as a whole."""
        self.status = dict(status)

    def adopt_identity(self, other: ServerState) -> None:
        """Keep what only ``/api/status`` says (a snapshot does not): the server's id and
        the primary instance's id and name, and the heartbeat if this state has none."""
        self.server_id = other.server_id
        self.instance_id = other.instance_id
        self.instance_name = other.instance_name
        if self.heartbeat is None:
            self.heartbeat = other.heartbeat


def _primary_instance(instances: Any) -> tuple[str, str]:
    """The first instance of ``/api/status``'s ``instances`` (id → {"name", …}), in the
    server's configured order: v1 answers and streams describe that one."""
    if isinstance(instances, Mapping):
        for key, value in instances.items():
            name = value.get("name") if isinstance(value, Mapping) else None
            return str(key), str(name) if isinstance(name, str) and name else str(key)
    return "default", "qBittorrent"
