"""Server-Sent Events framing: every event is encoded to bytes once, then shared.

An ``Event`` holds its payload and its encoded frame. The per-torrent streams need a
filtered frame (only that torrent's part of a diff); it is built on first demand and cached
on the event, so a thousand viewers of one torrent still cost one encoding.
"""

from __future__ import annotations

import json
import time
from typing import Any

PROTOCOL_VERSION = 1
#: The protocol that follows several instances in one stream (docs/protocol.md, "Protocol 2").
PROTOCOL_V2 = 2


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
    """One published event: sequence number, id, kind, payload and its encoded frame.

    ``t`` is when it happened (unix seconds) and ``lifecycle`` what a late client must still
    be told of it (added, completed, removed, an action's result) once the diff itself is
    pruned; both are kept by the durable log. An event read back from the database carries
    only its frame: its payload is decoded from it on first use (a replay to a whole-library
    stream never needs it).

    ``instance`` names the qBittorrent instance it is about (None: the server as a whole).
    ``data`` is the protocol 1 frame, byte for byte what a v1 client got before there were
    several instances; ``data_v2`` (the same payload naming its ``instance``) is encoded on
    first demand, so a server whose viewers all speak v1 never pays for it.
    """

    __slots__ = (
        "_by_hash",
        "_chunk",
        "_chunk_v2",
        "_payload",
        "_v2",
        "data",
        "id",
        "instance",
        "kind",
        "lifecycle",
        "seq",
        "t",
    )

    def __init__(
        self,
        seq: int,
        epoch: str,
        kind: str,
        payload: dict[str, Any],
        *,
        t: float | None = None,
        lifecycle: dict[str, Any] | None = None,
        instance: str | None = None,
    ) -> None:
        self.seq = seq
        self.id = f"{epoch}-{seq}"
        self.kind = kind
        self.instance = instance
        self._payload: dict[str, Any] | None = payload
        self.data = frame(kind, payload, self.id)
        self.t = time.time() if t is None else t
        self.lifecycle = lifecycle
        self._by_hash: dict[str, bytes | None] | None = None
        self._chunk: bytes | None = None
        self._v2: bytes | None = None
        self._chunk_v2: bytes | None = None

    @classmethod
    def stored(
        cls,
        seq: int,
        event_id: str,
        kind: str,
        data: bytes,
        t: float,
        lifecycle: dict[str, Any] | None,
        instance: str | None = None,
    ) -> Event:
        """An event as the durable log kept it: its frame as written, not encoded again."""
        event = cls.__new__(cls)
        event.seq = seq
        event.id = event_id
        event.kind = kind
        event.instance = instance
        event._payload = None
        event.data = data
        event.t = t
        event.lifecycle = lifecycle
        event._by_hash = None
        event._chunk = None
        event._v2 = None
        event._chunk_v2 = None
        return event

    @property
    def payload(self) -> dict[str, Any]:
        """The event's data (decoded from the frame for an event read back from the log)."""
        if self._payload is None:
            line = next(part for part in self.data.split(b"\n") if part.startswith(b"data: "))
            self._payload = json.loads(line[6:])
        return self._payload

    def late_frame(self, v2: bool = False) -> bytes:
        """The ``late`` event that tells a client resuming after the diff window what it
        missed of this event: its id, when it happened, and its lifecycle part (and, in
        protocol 2, its instance)."""
        body: dict[str, Any] = {"id": self.id, "t": round(self.t, 3), "kind": self.kind}
        if v2 and self.instance is not None:
            body["instance"] = self.instance
        body.update(self.lifecycle or {})
        return frame("late", body, self.id)

    @property
    def data_v2(self) -> bytes:
        """The protocol 2 frame: the payload with its ``instance`` first (built once)."""
        if self._v2 is None:
            payload = self.payload
            if self.instance is None or "instance" in payload:
                self._v2 = self.data  # server-wide, or it names its instance already (action)
            else:
                self._v2 = frame(self.kind, {"instance": self.instance, **payload}, self.id)
        return self._v2

    @property
    def chunk_v2(self) -> bytes:
        """``data_v2`` as one HTTP chunk, framed once for every v2 stream."""
        if self._chunk_v2 is None:
            self._chunk_v2 = chunk(self.data_v2)
        return self._chunk_v2

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
