"""The integration's view of one quart-dl server, and how events change it.

Kept free of Home Assistant imports: applying a snapshot or a diff is pure data work,
tested on its own, and the coordinator only decides *when* to apply and whom to tell.

A server follows one or several qBittorrent instances. The view keeps one
:class:`InstanceState` per instance, in the server's configured order (the first is the
*primary*, the one protocol 1 describes). Against a server that speaks protocol 2 every
instance is known (``/api/instances``, the v2 stream); against an older one, the only
instance is the one its v1 stream follows (``default``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .const import DEFAULT_INSTANCE_ID, DEFAULT_INSTANCE_NAME

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
    removed, in the instance it came from.

    Each entry is a copy of the torrent's record as it stood after the diff's changes, so
    an event about a torrent that the same diff also removed still has its name and size.
    """

    instance_id: str = DEFAULT_INSTANCE_ID
    added: tuple[TorrentRecord, ...] = ()
    completed: tuple[TorrentRecord, ...] = ()
    removed: tuple[TorrentRecord, ...] = ()


@dataclass(slots=True)
class InstanceState:
    """One qBittorrent instance as the server last told: its torrents, status, transfer.

    ``torrents`` maps hash to the full record (diff fields merged in). ``status`` and
    ``transfer`` are the protocol's status and transfer objects of this instance.
    """

    id: str = DEFAULT_INSTANCE_ID
    name: str = DEFAULT_INSTANCE_NAME
    torrents: dict[str, TorrentRecord] = field(default_factory=dict)
    status: dict[str, Any] = field(default_factory=dict)
    transfer: dict[str, Any] = field(default_factory=dict)
    #: qBittorrent's version (``/api/instances``; ``None`` from an older server).
    version: str | None = None
    #: False for an instance known only from a diff that named it (its name unknown yet):
    #: it gets no entities until ``/api/instances`` or a snapshot describes it, so that
    #: its entity ids come from its name, not its id.
    described: bool = True

    @property
    def qbittorrent_state(self) -> str | None:
        """Connection state of qBittorrent as the server sees it (``connected``, …)."""
        value = self.status.get("qbittorrent")
        return value if isinstance(value, str) else None

    @property
    def qbittorrent_connected(self) -> bool:
        """Whether the server currently reaches this qBittorrent."""
        return self.qbittorrent_state == "connected"

    def count(self, phases: frozenset[str]) -> int:
        """Number of torrents whose phase is one of ``phases``."""
        return sum(1 for record in self.torrents.values() if record.get("phase") in phases)

    def speed(self, key: str) -> int | None:
        """A global speed from the transfer object (bytes per second)."""
        value = self.transfer.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

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
            instance_id=self.id,
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
        return tuple(dict(self.torrents.get(str(key)) or {"hash": str(key)}) for key in hashes)

    def apply_status(self, status: Mapping[str, Any]) -> None:
        """Take a ``status`` event: the status object as a whole (v2's ``instance`` aside)."""
        self.status = {key: value for key, value in status.items() if key != "instance"}


@dataclass(slots=True)
class ServerState:
    """Everything the entities show, as last told by the server.

    ``instances`` in the server's configured order; ``protocol`` is the stream version
    spoken with this server: 2 when it has ``/api/instances`` (every instance, one stream),
    1 for an older server (its one instance).
    """

    instances: dict[str, InstanceState] = field(default_factory=dict)
    heartbeat: float | None = None
    #: The quart-dl server's version.
    version: str | None = None
    #: The server's stable id (``server_id`` of ``/api/status``; ``None`` from a server
    #: that does not send one yet).
    server_id: str | None = None
    protocol: int = 1

    @property
    def primary(self) -> InstanceState:
        """The first instance (the one v1 routes and actions without ``instance`` mean)."""
        for instance in self.instances.values():
            return instance
        # Never empty once built from the server; an empty view gets the default instance.
        instance = self.instances[DEFAULT_INSTANCE_ID] = InstanceState()
        return instance

    def instance(self, instance_id: str) -> InstanceState | None:
        """One instance, or ``None`` if the server does not follow it (any more)."""
        return self.instances.get(instance_id)

    def total_speed(self, key: str) -> int | None:
        """A speed summed over the instances that report it (``None``: none does)."""
        speeds = [s for i in self.instances.values() if (s := i.speed(key)) is not None]
        return sum(speeds) if speeds else None

    @property
    def total_torrents(self) -> int:
        """Every torrent of every instance (the same hash in two instances counts twice)."""
        return sum(len(instance.torrents) for instance in self.instances.values())

    @property
    def any_connected(self) -> bool:
        """Whether the server reaches at least one of its qBittorrents."""
        return any(instance.qbittorrent_connected for instance in self.instances.values())

    @classmethod
    def from_rest(
        cls,
        status_answer: Mapping[str, Any],
        torrents_answer: Mapping[str, Any],
        instances_answer: Mapping[str, Any] | None = None,
    ) -> ServerState:
        """Build a state from ``GET /api/status``, ``/api/torrents`` and, from a server
        that has it, ``/api/instances`` (protocol 2); without it, the one instance of
        ``/api/status`` (protocol 1)."""
        heartbeat = status_answer.get("heartbeat")
        version = status_answer.get("version")
        server_id = status_answer.get("server_id")
        state = cls(
            heartbeat=float(heartbeat) if isinstance(heartbeat, int | float) else None,
            version=version if isinstance(version, str) else None,
            server_id=server_id if isinstance(server_id, str) and server_id else None,
        )
        records = [
            dict(record)
            for record in torrents_answer.get("torrents", [])
            if isinstance(record, Mapping) and isinstance(record.get("hash"), str)
        ]
        listed = _listed_instances(instances_answer)
        if listed:
            state.protocol = 2
            state.instances = {instance.id: instance for instance in listed}
            for record in records:
                owner = state.instances.get(str(record.get("instance")))
                if owner is not None:
                    owner.torrents[record["hash"]] = record
            return state
        instance_id, instance_name = _primary_instance(status_answer.get("instances"))
        state.instances = {
            instance_id: InstanceState(
                id=instance_id,
                name=instance_name,
                torrents={record["hash"]: record for record in records},
                status=dict(status_answer.get("status") or {}),
                transfer=dict(status_answer.get("transfer") or {}),
            )
        }
        return state

    def apply_snapshot(self, snapshot: Mapping[str, Any]) -> None:
        """Replace the whole view, as the protocol demands on every ``snapshot``.

        A v2 snapshot names every instance: the ones it lacks are gone. A v1 snapshot is
        the primary instance's (the only one a v1 stream follows).
        """
        heartbeat = snapshot.get("heartbeat")
        if isinstance(heartbeat, int | float) and heartbeat > 0:
            self.heartbeat = float(heartbeat)
        instances = snapshot.get("instances")
        if snapshot.get("v") == 2 and isinstance(instances, Mapping):
            torrents = snapshot.get("torrents") or {}
            rebuilt: dict[str, InstanceState] = {}
            for key, described in instances.items():
                if not isinstance(described, Mapping):
                    continue
                old = self.instances.get(str(key))
                instance = InstanceState(
                    id=str(key),
                    name=_name(described.get("name"), str(key)),
                    torrents=_torrents(torrents.get(key)),
                    status=dict(described.get("status") or {}),
                    transfer=dict(described.get("transfer") or {}),
                    version=old.version if old else None,
                )
                rebuilt[instance.id] = instance
            self.instances = rebuilt
            return
        primary = self.primary
        primary.torrents = _torrents(snapshot.get("torrents"))
        primary.status = dict(snapshot.get("status") or {})
        primary.transfer = dict(snapshot.get("transfer") or {})

    def apply_diff(self, diff: Mapping[str, Any]) -> DiffResult:
        """Merge one ``diff`` into the instance it names (v2), else the primary (v1).

        An instance not known yet (a server restarted with one more ``[[instances]]``
        table, resumed from the durable log without a snapshot) is added as it comes.
        """
        return self._instance_for(diff).apply_diff(diff)

    def apply_status(self, status: Mapping[str, Any]) -> None:
        """Take a ``status`` event for the instance it names (v2), else the primary."""
        self._instance_for(status).apply_status(status)

    def _instance_for(self, payload: Mapping[str, Any]) -> InstanceState:
        named = payload.get("instance")
        if not isinstance(named, str) or not named:
            return self.primary
        instance = self.instances.get(named)
        if instance is None:
            instance = self.instances[named] = InstanceState(id=named, name=named, described=False)
        return instance

    def apply_instances(self, answer: Mapping[str, Any]) -> bool:
        """Take the instance set of ``GET /api/instances``: add the new, drop the gone.

        Names and versions are updated; the torrents, status and transfer of an instance
        already known stay as the stream made them (the stream may be ahead of this
        answer). Returns whether the set or a name changed.
        """
        listed = _listed_instances(answer)
        if not listed:
            return False
        rebuilt: dict[str, InstanceState] = {}
        changed = [i.id for i in listed] != list(self.instances)
        for fresh in listed:
            known = self.instances.get(fresh.id)
            if known is None:
                rebuilt[fresh.id] = fresh
                continue
            changed = changed or known.name != fresh.name or not known.described
            known.name = fresh.name
            known.described = True
            known.version = fresh.version or known.version
            rebuilt[fresh.id] = known
        self.instances = rebuilt
        return changed


def _name(value: Any, fallback: str) -> str:
    return value if isinstance(value, str) and value else fallback


def _torrents(records: Any) -> dict[str, TorrentRecord]:
    if not isinstance(records, Mapping):
        return {}
    return {str(key): dict(record) for key, record in records.items() if isinstance(record, Mapping)}


def _listed_instances(answer: Mapping[str, Any] | None) -> list[InstanceState]:
    """The instances of a ``GET /api/instances`` answer, in its (configured) order."""
    if answer is None:
        return []
    listed = answer.get("instances")
    found: list[InstanceState] = []
    for item in listed if isinstance(listed, Iterable) else ():
        if not isinstance(item, Mapping) or not isinstance(item.get("id"), str):
            continue
        version = item.get("version")
        found.append(
            InstanceState(
                id=item["id"],
                name=_name(item.get("name"), item["id"]),
                status=dict(item.get("status") or {}),
                transfer=dict(item.get("transfer") or {}),
                version=version if isinstance(version, str) else None,
            )
        )
    return found


def _primary_instance(instances: Any) -> tuple[str, str]:
    """The first instance of ``/api/status``'s ``instances`` (id → {"name", …}), in the
    server's configured order: v1 answers and streams describe that one."""
    if isinstance(instances, Mapping):
        for key, value in instances.items():
            name = value.get("name") if isinstance(value, Mapping) else None
            return str(key), _name(name, str(key))
    return DEFAULT_INSTANCE_ID, DEFAULT_INSTANCE_NAME
