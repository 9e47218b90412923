"""Reading Server-Sent Events in tests: one parser, exactly as a browser's EventSource reads.

The tests must see a stream the way a real client does, or they prove nothing about one:
:class:`SSEParser` follows the WHATWG HTML "event stream interpretation" rules to the letter
(UTF-8 with one leading BOM dropped; lines ended by CRLF, LF or a lone CR, also when a CRLF
is split across two reads; ``field: value`` with or without the space after the colon, a
bare ``field`` meaning an empty value; several ``data`` lines joined with LF; ``id`` values
containing NUL ignored; ``retry`` taken only when all ASCII digits; an event dispatched on a
blank line and only when it has data; an unterminated last event dropped). It also keeps
what a browser throws away but a test wants to look at: comments (heartbeats), a
``retry`` hint on its own, the ``id`` line of each block, and when each block arrived.

:class:`SSEReader` is a blocking client on its own thread around the parser, over raw
``http.client`` rather than a library, so the test sees exactly what the server sent.
"""

from __future__ import annotations

import codecs
import http.client
import json
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

from .wait import wait_for

__all__ = ["SSEMessage", "SSEParser", "SSEReader"]

T = TypeVar("T")


class SSEMessage:
    """One block of the stream up to a blank line: an event, or a comment or retry hint.

    ``data`` is ``None`` when the block had no ``data`` field (EventSource dispatches nothing
    for it). ``id`` is the value of this block's own ``id`` field (``None`` without one);
    ``last_event_id`` is what EventSource reports as the event's ``lastEventId``, which
    carries over from earlier blocks.
    """

    __slots__ = ("at", "comment", "data", "event", "id", "last_event_id", "retry")

    def __init__(self) -> None:
        self.at = 0.0
        self.id: str | None = None
        self.last_event_id = ""
        self.event = "message"
        self.data: str | None = None
        self.comment: str | None = None
        self.retry: int | None = None

    def json(self) -> Any:
        """The data, decoded."""
        assert self.data is not None
        return json.loads(self.data)

    def __repr__(self) -> str:
        if self.comment is not None and self.data is None:
            return f"<SSE comment {self.comment!r}>"
        return f"<SSE {self.event} id={self.id} {len(self.data or '')} bytes>"


class SSEParser:
    """Incremental ``text/event-stream`` parser: feed it bytes as they arrive.

    :meth:`feed` returns the blocks completed by that chunk. A block is returned when it
    has data (an event), a comment, or a valid ``retry``; :attr:`last_event_id` and
    :attr:`retry` hold the stream-wide state EventSource keeps between events.
    """

    def __init__(self) -> None:
        # utf-8-sig drops one leading BOM, also one split across chunks; bad bytes become
        # U+FFFD, as the spec's "UTF-8 decode" does.
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
        self._text = ""
        self._skip_lf = False
        #: The last event ID buffer: set by ``id``, kept across events.
        self.last_event_id = ""
        #: The reconnection time the server asked for (milliseconds), if any.
        self.retry: int | None = None
        self._block = SSEMessage()
        self._data: list[str] = []
        self._event = ""
        self._seen = False

    def feed(self, chunk: bytes, at: float | None = None) -> list[SSEMessage]:
        """Parse ``chunk``; return the blocks it completed, stamped with ``at`` (default now)."""
        text = self._decoder.decode(chunk)
        if not text:
            return []
        if self._skip_lf:
            # The previous chunk ended in CR: an LF right after it is the same line end.
            self._skip_lf = False
            text = text.removeprefix("\n")
        self._text += text
        stamp = time.monotonic() if at is None else at
        done: list[SSEMessage] = []
        start = 0
        buffer = self._text
        while True:
            cr, lf = buffer.find("\r", start), buffer.find("\n", start)
            if cr < 0 and lf < 0:
                break
            if lf >= 0 and (cr < 0 or lf < cr):
                end, after = lf, lf + 1
            elif cr + 1 < len(buffer):
                end, after = cr, cr + 2 if buffer[cr + 1] == "\n" else cr + 1
            else:
                end, after = cr, cr + 1
                self._skip_lf = True
            message = self._line(buffer[start:end], stamp)
            if message is not None:
                done.append(message)
            start = after
        self._text = buffer[start:]
        return done

    def _line(self, line: str, at: float) -> SSEMessage | None:
        if line == "":
            return self._dispatch(at)
        block = self._block
        if line.startswith(":"):
            block.comment = line[1:].strip()
            self._seen = True
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value
                block.id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry = block.retry = int(value)
            self._seen = True
        return None

    def _dispatch(self, at: float) -> SSEMessage | None:
        block, data, event, seen = self._block, self._data, self._event, self._seen
        self._block, self._data, self._event, self._seen = SSEMessage(), [], "", False
        if not data and not seen:
            return None
        block.at = at
        block.last_event_id = self.last_event_id
        if data:
            block.data = "\n".join(data)
            block.event = event or "message"
        return block


class SSEReader:
    """A blocking SSE client on its own thread: records every block with its arrival time."""

    def __init__(self, url: str, headers: Mapping[str, str] | None = None, timeout: float = 120.0) -> None:
        parts = urlsplit(url)
        self.messages: list[SSEMessage] = []
        self.status: int | None = None
        self.response_headers: dict[str, str] = {}
        self.ended = threading.Event()
        self.error: BaseException | None = None
        self.parser = SSEParser()
        self._lock = threading.Lock()
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        self._conn = http.client.HTTPConnection(host, port, timeout=timeout)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        self._conn.request("GET", path, headers={"Accept": "text/event-stream", **(headers or {})})
        self._sock = self._conn.sock
        response = self._conn.getresponse()
        self.status = response.status
        self.response_headers = {k.lower(): v for k, v in response.getheaders()}
        self._response = response
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            while chunk := self._response.read1(65536):
                parsed = self.parser.feed(chunk)
                if parsed:
                    with self._lock:
                        self.messages.extend(parsed)
        except Exception as exc:  # noqa: BLE001 - a closed or broken stream ends the reader
            self.error = exc
        finally:
            self.ended.set()

    def snapshot(self) -> list[SSEMessage]:
        """The messages so far."""
        with self._lock:
            return list(self.messages)

    def events(self, kind: str | None = None) -> list[SSEMessage]:
        """Events (not comments), optionally of one kind."""
        return [m for m in self.snapshot() if m.data is not None and (kind is None or m.event == kind)]

    def heartbeats(self) -> list[SSEMessage]:
        """Heartbeat comments received."""
        return [m for m in self.snapshot() if m.comment == "heartbeat"]

    def wait(self, predicate: Callable[[list[SSEMessage]], T | None], timeout: float, what: str) -> T:
        """Wait until ``predicate(messages)`` is truthy."""

        def check() -> T | None:
            if self.ended.is_set() and not predicate(self.snapshot()):
                raise RuntimeError(f"stream ended while waiting for {what}")
            return predicate(self.snapshot())

        return wait_for(check, timeout, what)

    @property
    def last_id(self) -> str | None:
        """The newest event id seen."""
        ids = [m.id for m in self.snapshot() if m.id]
        return ids[-1] if ids else None

    def close(self) -> None:
        """Hang up."""
        # A blocking read on the reader thread is only interrupted by a shutdown.
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._conn.close()
        self._thread.join(5)

    def __enter__(self) -> SSEReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def apply_stream(messages: list[SSEMessage]) -> dict[str, dict[str, Any]]:
    """What a client shows after applying the messages: the last snapshot, then every diff."""
    view: dict[str, dict[str, Any]] = {}
    for message in messages:
        if message.data is None:
            continue
        payload = message.json()
        if message.event == "snapshot":
            view = {h: dict(r) for h, r in payload["torrents"].items()}
        elif message.event == "diff":
            for h, change in payload["changed"].items():
                view.setdefault(h, {}).update(change)
            for h in payload.get("removed", []):
                view.pop(h, None)
    return view
