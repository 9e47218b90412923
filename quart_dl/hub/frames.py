"""Server-Sent Events framing: every event is encoded to bytes once, then shared.

An ``Event`` holds its payload and its encoded frame. The per-torrent streams need a
filtered frame (only that torrent's part of a diff); it is built on first demand and cached
on the event, so a thousand viewers of one torrent still cost one encoding.
"""

from __future__ import annotations

import json
from typing import Any

PROTOCOL_VERSION = 1


def dumps(payload: Any) -> str:
    """Compact JSON on one line: ``json`` escapes newlines, so a name can never split a frame."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def frame(kind: str, payload: Any, event_id: str | None = None) -> bytes:
    """One SSE frame: ``id:``, ``event:`` and a single ``data:`` line."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {kind}\ndata: {dumps(payload)}\n\n".encode()


def retry_frame(milliseconds: int) -> bytes:
    """The reconnect-delay hint that opens every stream."""
    return f"retry: {milliseconds}\n\n".encode()


HEARTBEAT_COMMENT = b": heartbeat\n\n"


def chunk(data: bytes) -> bytes:
    """``data`` as one HTTP/1.1 chunk (``Transfer-Encoding: chunked``), for the socket layer."""
    return b"%x\r\n%b\r\n" % (len(data), data)


#: The end of a chunked body.
LAST_CHUNK = b"0\r\n\r\n"


def heartbeat_event(now: float) -> bytes:
    """The heartbeat as an event, for browsers (EventSource hides comments from scripts)."""
    return frame("heartbeat", {"t": round(now, 3)})


class Event:
    """One published event: sequence number, id, kind, payload and its encoded frame."""

    __slots__ = ("_by_hash", "_chunk", "data", "id", "kind", "payload", "seq")

    def __init__(self, seq: int, epoch: str, kind: str, payload: dict[str, Any]) -> None:
        self.seq = seq
        self.id = f"{epoch}-{seq}"
        self.kind = kind
        self.payload = payload
        self.data = frame(kind, payload, self.id)
        self._by_hash: dict[str, bytes | None] | None = None
        self._chunk: bytes | None = None

    @property
    def chunk(self) -> bytes:
        """The frame as one HTTP chunk, framed once for every stream the socket layer holds."""
        if self._chunk is None:
            self._chunk = chunk(self.data)
        return self._chunk

    def for_torrent(self, torrent_hash: str) -> bytes | None:
        """The frame as a per-torrent stream sees it, or ``None`` if it says nothing of it."""
        if self.kind == "action":
            # An action on other torrents says nothing of this one ("all" covers it).
            hashes = self.payload.get("hashes")
            return self.data if hashes == "all" or torrent_hash in (hashes or ()) else None
        if self.kind != "diff":
            return self.data
        if self._by_hash is None:
            self._by_hash = {}
        try:
            return self._by_hash[torrent_hash]
        except KeyError:
            pass
        out: bytes | None = None
        changed = self.payload.get("changed", {})
        part: dict[str, Any] = {}
        if torrent_hash in changed:
            part["changed"] = {torrent_hash: changed[torrent_hash]}
        for key in ("removed", "added", "completed"):
            if torrent_hash in self.payload.get(key, ()):
                part[key] = [torrent_hash]
        if part:
            part.setdefault("changed", {})
            out = frame("diff", part, self.id)
        self._by_hash[torrent_hash] = out
        return out
