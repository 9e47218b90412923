"""The torrent table: qBittorrent's partial ``sync/maindata`` answers merged into full records.

qBittorrent sends only the keys that changed since the last ``rid``; qbittorrent-api tracks
the rid but does not merge. This module keeps the raw merged state, projects it onto the
public record (docs/protocol.md), and compares projections to produce a ``ChangeSet``
holding only the public fields that really changed. Raw keys that churn on every poll
(``last_activity``, ``time_active``…) therefore never become events.

Pure data, no I/O: the poller feeds it, the store and the hub consume its change sets.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .record import FIELDS as FIELDS  # the public record's fields, declared in record.py

Record = dict[str, Any]

HASH_RE = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")

#: qBittorrent reports an unknown/infinite ETA as 100 days.
ETA_INFINITY = 8640000

PHASES = ("downloading", "seeding", "stalled", "paused", "queued", "checking", "error", "unknown")

_PHASE_OF_STATE = {
    "downloading": "downloading",
    "forcedDL": "downloading",
    "metaDL": "downloading",
    "forcedMetaDL": "downloading",
    "uploading": "seeding",
    "forcedUP": "seeding",
    "stalledUP": "seeding",
    "stalledDL": "stalled",
    "pausedDL": "paused",
    "pausedUP": "paused",
    "stoppedDL": "paused",
    "stoppedUP": "paused",
    "queuedDL": "queued",
    "queuedUP": "queued",
    "checkingDL": "checking",
    "checkingUP": "checking",
    "checkingResumeData": "checking",
    "moving": "checking",
    "allocating": "checking",
    "error": "error",
    "missingFiles": "error",
}


def phase_of(state: str) -> str:
    """qBittorrent's state in plain words (see docs/protocol.md)."""
    return _PHASE_OF_STATE.get(state, "unknown")


def is_complete(state: str, amount_left: int) -> bool:
    """Complete means nothing left *and* an upload state: progress alone shows 1.0 too early."""
    return amount_left == 0 and state.endswith("UP")


def _int(raw: Mapping[str, Any], key: str) -> int:
    value = raw.get(key, 0)
    if value.__class__ is int:  # what qBittorrent sends: skip the conversion (hot path)
        return value
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _float(raw: Mapping[str, Any], key: str) -> float:
    value = raw.get(key, 0.0)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    # JSON has no NaN or infinity (a ratio can be inf with nothing downloaded).
    return round(number, 4) if math.isfinite(number) else 0.0


def project(torrent_hash: str, raw: Mapping[str, Any]) -> Record:
    """The public record of one merged raw torrent."""
    state = str(raw.get("state", "unknown"))
    amount_left = _int(raw, "amount_left")
    eta = _int(raw, "eta")
    completion = _int(raw, "completion_on")
    complete = is_complete(state, amount_left)
    tags_raw = raw.get("tags", "")
    tags = [t.strip() for t in str(tags_raw).split(",") if t.strip()] if tags_raw else []
    return {
        "hash": torrent_hash,
        "name": str(raw.get("name", "")),
        "state": state,
        "phase": phase_of(state),
        "progress": _float(raw, "progress"),
        "complete": complete,
        "size": _int(raw, "size"),
        "downloaded": _int(raw, "downloaded"),
        "amount_left": amount_left,
        "dl_speed": _int(raw, "dlspeed"),
        "up_speed": _int(raw, "upspeed"),
        "eta": None if (eta <= 0 and not complete) or eta >= ETA_INFINITY else eta,
        "ratio": _float(raw, "ratio"),
        "seeds": _int(raw, "num_seeds"),
        "peers": _int(raw, "num_leechs"),
        "category": str(raw.get("category") or ""),
        "tags": tags,
        "save_path": str(raw.get("save_path") or ""),
        "added_at": _int(raw, "added_on"),
        "completed_at": completion if completion > 0 and complete else None,
    }


def transfer_of(server_state: Mapping[str, Any]) -> Record:
    """qBittorrent's own global figures from ``server_state`` (the totals are used), and
    the global limits in force: alternative speeds on or off, and the download and upload
    limits (bytes/s, 0 = unlimited; with alternative speeds on, the alternative ones)."""
    return {
        "dl_speed": _int(server_state, "dl_info_speed"),
        "up_speed": _int(server_state, "up_info_speed"),
        "dl_total": _int(server_state, "dl_info_data"),
        "up_total": _int(server_state, "up_info_data"),
        "alt_speed": bool(server_state.get("use_alt_speed_limits")),
        "dl_limit": max(0, _int(server_state, "dl_rate_limit")),
        "up_limit": max(0, _int(server_state, "up_rate_limit")),
    }


#: The transfer object before qBittorrent said anything.
EMPTY_TRANSFER: Record = {
    "dl_speed": 0,
    "up_speed": 0,
    "dl_total": 0,
    "up_total": 0,
    "alt_speed": False,
    "dl_limit": 0,
    "up_limit": 0,
}


@dataclass
class ChangeSet:
    """What one poll changed: only changed fields, with full records for added torrents."""

    changed: dict[str, Record] = field(default_factory=dict)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)
    transfer: Record | None = None

    def __bool__(self) -> bool:
        return bool(self.changed or self.removed or self.transfer is not None)

    def as_event(self) -> Record:
        """The ``diff`` event payload (docs/protocol.md): empty lists are left out."""
        payload: Record = {"changed": self.changed}
        if self.removed:
            payload["removed"] = self.removed
        if self.added:
            payload["added"] = self.added
        if self.completed:
            payload["completed"] = self.completed
        if self.transfer is not None:
            payload["transfer"] = self.transfer
        return payload


class TorrentTable:
    """The merged raw state of one qBittorrent instance and its public projection.

    ``known`` records (from the database, at start) seed the projection, so that the first
    full update yields a diff against what was last seen, and a completion that happened
    while quart-dl was not looking is still reported exactly once. ``first_run`` (a database
    that never saw this qBittorrent) makes the first full update a silent baseline.
    """

    def __init__(self, known: Mapping[str, Record] | None = None, *, first_run: bool = False) -> None:
        #: On a first install the first full update is the baseline, not news: hundreds of
        #: seeding torrents must not each be announced as added and completed.
        self._quiet = first_run
        self._raw: dict[str, dict[str, Any]] = {}
        self.records: dict[str, Record] = {h: dict(r) for h, r in (known or {}).items()}
        self.transfer: Record = dict(EMPTY_TRANSFER)
        # Seeded from ``complete``, not ``completed_at``: qBittorrent may not know when a
        # torrent completed (completion_on -1), and a restart must not announce it again.
        self._completed: set[str] = {h for h, r in self.records.items() if r.get("complete")}
        #: Torrents moving data, and the sums of all speeds, kept up to date torrent by torrent:
        #: summing 10,000 records on every poll (and scanning them for history samples) was a
        #: fixed cost of each poll, even with nothing changed (issue #5).
        self._active: set[str] = set()
        self._speeds = [0, 0]
        self._count_all()

    def apply(self, maindata: Mapping[str, Any]) -> ChangeSet:
        """Merge one ``sync/maindata`` answer and return what changed in public terms."""
        full = bool(maindata.get("full_update"))
        torrents = maindata.get("torrents") or {}
        removed_raw = [str(h) for h in maindata.get("torrents_removed") or ()]
        changes = ChangeSet()
        if full:
            self._raw = {}
        speeds = self._speeds
        if not isinstance(torrents, Mapping):
            raise TypeError("maindata 'torrents' is not an object")
        for torrent_hash, partial in torrents.items():
            if isinstance(partial, Mapping):
                self._raw.setdefault(str(torrent_hash), {}).update(partial)
        for torrent_hash in removed_raw:
            self._raw.pop(torrent_hash, None)

        touched = self._raw.keys() if full else (str(h) for h in torrents if str(h) in self._raw)
        for torrent_hash in list(touched):
            new = project(torrent_hash, self._raw[torrent_hash])
            old = self.records.get(torrent_hash)
            if old is None:
                changes.added.append(torrent_hash)
                changes.changed[torrent_hash] = new
            else:
                speeds[0] -= old["dl_speed"]
                speeds[1] -= old["up_speed"]
                if old.get("completed_at") and not new["completed_at"] and new["complete"]:
                    new["completed_at"] = old["completed_at"]
                delta = {k: v for k, v in new.items() if old.get(k) != v}
                if delta:
                    changes.changed[torrent_hash] = delta
            self.records[torrent_hash] = new
            speeds[0] += new["dl_speed"]
            speeds[1] += new["up_speed"]
            if new["dl_speed"] or new["up_speed"]:
                self._active.add(torrent_hash)
            else:
                self._active.discard(torrent_hash)
            if new["complete"] and torrent_hash not in self._completed:
                self._completed.add(torrent_hash)
                changes.completed.append(torrent_hash)
            elif not new["complete"] and torrent_hash in self._completed and new["amount_left"] > 0:
                # Re-checked or files deleted: it may complete again, and that is news again.
                self._completed.discard(torrent_hash)

        gone = set(removed_raw)
        if full:
            gone |= set(self.records) - set(self._raw)
        for torrent_hash in sorted(gone):
            if (old := self.records.pop(torrent_hash, None)) is not None:
                changes.removed.append(torrent_hash)
                speeds[0] -= old["dl_speed"]
                speeds[1] -= old["up_speed"]
            self._completed.discard(torrent_hash)
            self._active.discard(torrent_hash)

        if self._quiet and full:
            changes.added, changes.completed = [], []
            self._quiet = False
        merged = dict(self.transfer)
        server_state = maindata.get("server_state")
        if isinstance(server_state, Mapping) and server_state:
            fresh = transfer_of({**self._raw_server_state(), **server_state})
            merged["dl_total"], merged["up_total"] = fresh["dl_total"], fresh["up_total"]
            for key in ("alt_speed", "dl_limit", "up_limit"):
                merged[key] = fresh[key]
        # Speeds are the sum of the torrents' own: qBittorrent's global rate is measured over
        # its refresh interval and, under per-torrent limits, swings between 0 and bursts
        # while every torrent reports a steady rate (seen on 4.5.2 at 250 and 1500 ms).
        merged["dl_speed"], merged["up_speed"] = speeds
        if merged != self.transfer:
            changes.transfer = merged
            self.transfer = merged
        return changes

    def active(self) -> dict[str, Record]:
        """The torrents moving data now (the ones a history sample records)."""
        return {h: self.records[h] for h in self._active}

    def _count_all(self) -> None:
        """Speed sums and the active set from scratch (at start: records from the database)."""
        self._active = {h for h, r in self.records.items() if r.get("dl_speed") or r.get("up_speed")}
        self._speeds = [
            sum(r.get("dl_speed") or 0 for r in self.records.values()),
            sum(r.get("up_speed") or 0 for r in self.records.values()),
        ]

    def _raw_server_state(self) -> dict[str, Any]:
        """The transfer object in qBittorrent's key names, so partial server_state merges."""
        return {
            "dl_info_speed": self.transfer["dl_speed"],
            "up_info_speed": self.transfer["up_speed"],
            "dl_info_data": self.transfer["dl_total"],
            "up_info_data": self.transfer["up_total"],
            "use_alt_speed_limits": self.transfer.get("alt_speed", False),
            "dl_rate_limit": self.transfer.get("dl_limit", 0),
            "up_rate_limit": self.transfer.get("up_limit", 0),
        }
