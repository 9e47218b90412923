"""A Server-Sent Events parser that splits lines by hand.

Why not ``async for line in response.content``: aiohttp's line iterator raises
``ValueError: Chunk too big`` on lines over its buffer limit (~128 KiB), and a quart-dl
snapshot of a large library is one ``data:`` line of several hundred KiB. So the stream is
read with ``iter_any()`` and fed, chunk by chunk, to :class:`SseParser`, which follows the
WHATWG event-stream rules: lines end in CRLF, LF or CR (a CR at the end of one chunk and an
LF at the start of the next are one line end), ``data`` lines are joined with ``\\n``,
comments start with ``:``, and an event is dispatched on an empty line.
"""

from __future__ import annotations

from dataclasses import dataclass

from .const import MAX_LINE_BYTES


class SseLineTooLong(ValueError):
    """A single line exceeded :data:`~.const.MAX_LINE_BYTES`: the stream is not sane."""


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One dispatched event.

    ``id`` is the last event id *in force* when the event was dispatched (per the spec it
    carries over from earlier events that set one), ``None`` if none was ever set.
    """

    event: str
    data: str
    id: str | None


class SseParser:
    """Incremental event-stream parser: feed bytes, get complete events back.

    Besides events it tracks what a client needs to resume: the last event id and the
    server's ``retry:`` hint, and it counts comments (heartbeats) so that a caller can
    tell a live but idle stream from a dead one.
    """

    def __init__(self, max_line: int = MAX_LINE_BYTES) -> None:
        """Start with an empty buffer."""
        self._max_line = max_line
        self._buffer = bytearray()
        self._skip_lf = False
        self._event = ""
        self._data: list[str] = []
        self._has_data = False
        # The spec's "last event ID buffer": an ``id:`` line sets it, and only a complete
        # event block (the blank line) commits it. A stream cut inside a block must not
        # advance the id we resume from, or that event would never be replayed.
        self._id_buffer: str | None = None
        self.last_event_id: str | None = None
        self.retry_ms: int | None = None
        self.comments = 0

    def feed(self, chunk: bytes) -> list[SseEvent]:
        """Consume a chunk of the stream and return the events it completed."""
        events: list[SseEvent] = []
        data = chunk
        if self._skip_lf and data:
            # The previous chunk ended in CR: an LF right here belongs to that line end.
            if data[:1] == b"\n":
                data = data[1:]
            self._skip_lf = False
        start = 0
        length = len(data)
        while start < length:
            lf = data.find(b"\n", start)
            cr = data.find(b"\r", start)
            if lf == -1 and cr == -1:
                break
            if cr == -1 or (lf != -1 and lf < cr):
                end, next_start = lf, lf + 1
            else:
                end = cr
                if cr + 1 < length:
                    next_start = cr + 2 if data[cr + 1 : cr + 2] == b"\n" else cr + 1
                else:
                    next_start = cr + 1
                    self._skip_lf = True
            if self._buffer:
                self._buffer += data[start:end]
                line = bytes(self._buffer)
                self._buffer.clear()
            else:
                line = data[start:end]
            self._process_line(line, events)
            start = next_start
        if start < length:
            self._buffer += data[start:]
            if len(self._buffer) > self._max_line:
                raise SseLineTooLong(f"event-stream line longer than {self._max_line} bytes")
        return events

    def _process_line(self, raw: bytes, events: list[SseEvent]) -> None:
        """Apply one complete line (without its line end) to the pending event."""
        if not raw:
            self._dispatch(events)
            return
        line = raw.decode("utf-8", errors="replace")
        if line.startswith(":"):
            self.comments += 1
            return
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._has_data = True
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._id_buffer = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        # Any other field name is ignored, as the spec says.

    def reset(self) -> None:
        """Forget a block cut short by a lost connection; keep the id and retry hint.

        Called before reading a new connection: bytes of the old one must not be glued
        to the first line of the next.
        """
        self._buffer.clear()
        self._skip_lf = False
        self._event = ""
        self._data = []
        self._has_data = False
        self._id_buffer = self.last_event_id

    def _dispatch(self, events: list[SseEvent]) -> None:
        """End of an event block: commit its id, emit it if it carried data, reset."""
        self.last_event_id = self._id_buffer
        if self._has_data:
            events.append(
                SseEvent(
                    event=self._event or "message",
                    data="\n".join(self._data),
                    id=self.last_event_id,
                )
            )
        self._event = ""
        self._data = []
        self._has_data = False
